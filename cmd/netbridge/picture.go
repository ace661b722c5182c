package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/pkg/tcredirect"
	"github.com/netbridge/netbridge/sandbox"
)

// drawNICs draws, per NIC, the path from the CNI interface through the
// model's wiring to the guest NIC, with names, MACs, MTUs and addresses.
func drawNICs(w io.Writer, nics []sandbox.NIC) {
	for i, n := range nics {
		if i > 0 {
			fmt.Fprintln(w)
		}
		addrs := joinAddrs(n)
		iface := fmt.Sprintf("%s (%s, mac %s, mtu %d, %s)", n.Name, n.Kind, n.GuestMAC, n.MTU, addrs)
		if n.HostMAC != nil {
			iface = fmt.Sprintf("%s (%s, mac %s, was %s, mtu %d, addresses moved to the guest)", n.Name, n.Kind, n.HostMAC, n.GuestMAC, n.MTU)
		}
		tap := fmt.Sprintf("%s (tap, mac %s, mtu %d, %s)", n.Tap, n.TapMAC, n.MTU, plural(n.Queues, "queue"))
		guest := fmt.Sprintf("guest NIC %d (virtio-net, mac %s, mtu %d, %s%s)", i, n.GuestMAC, n.MTU, addrs, gateways(n))
		var lines []string
		switch n.Model {
		case sandbox.ModelTCFilter:
			lines = []string{iface, "<=> tc mirred redirect both ways (ingress, prio " + fmt.Sprint(tcredirect.Priority) + ")", tap, guest}
		case sandbox.ModelBridge:
			lines = []string{iface, "port of bridge " + n.Bridge + " (no STP, no multicast snooping)", tap, guest}
		case sandbox.ModelMacvtap:
			lines = []string{iface, fmt.Sprintf("%s (macvtap, %s mode, mac %s, device %s, by fd only)", n.Tap, n.MacvtapMode, n.TapMAC, n.Device), guest}
		case sandbox.ModelNone:
			lines = []string{iface, "(not connected: model none)", tap, guest}
		default: // passthrough
			lines = []string{fmt.Sprintf("%s (existing tap, mac %s, mtu %d, passed through)", n.Tap, n.TapMAC, n.MTU), guest}
		}
		for d, l := range lines {
			if d == 0 {
				fmt.Fprintf(w, "%s\n", l)
				continue
			}
			fmt.Fprintf(w, "%s└─ %s\n", strings.Repeat("   ", d-1), l)
		}
		if n.Why != "" {
			fmt.Fprintf(w, "   (model %s: %s)\n", n.Model, n.Why)
		}
	}
}

func joinAddrs(n sandbox.NIC) string {
	if len(n.Addresses) == 0 {
		return "no address"
	}
	var s []string
	for _, a := range n.Addresses {
		s = append(s, a.String())
	}
	return strings.Join(s, " ")
}

func gateways(n sandbox.NIC) string {
	var s []string
	for _, r := range n.Routes {
		if r.Dst.Bits() == 0 && r.Gw.IsValid() {
			s = append(s, r.Gw.String())
		}
	}
	if len(s) == 0 {
		return ""
	}
	return ", via " + strings.Join(s, " ")
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", max(n, 1), word)
}

// drawDot writes the same picture as a Graphviz digraph.
func drawDot(w io.Writer, all []netbridge.Status) {
	fmt.Fprintln(w, "digraph netbridge {")
	fmt.Fprintln(w, "  rankdir=LR;")
	fmt.Fprintln(w, "  node [shape=box, fontname=monospace];")
	for _, s := range all {
		fmt.Fprintf(w, "  subgraph %q {\n    label=%q;\n", "cluster_"+s.ID, fmt.Sprintf("sandbox %s (%s)\nnetns %s", s.ID, s.Phase, s.Netns))
		for i, n := range s.NICs {
			id := func(part string) string { return fmt.Sprintf("%s/%s/%s", s.ID, n.Name, part) }
			mac := n.GuestMAC
			if n.HostMAC != nil {
				mac = n.HostMAC
			}
			fmt.Fprintf(w, "    %q [label=%q];\n", id("if"), fmt.Sprintf("%s\n%s %s\nmtu %d", n.Name, n.Kind, mac, n.MTU))
			fmt.Fprintf(w, "    %q [label=%q, shape=ellipse];\n", id("guest"), fmt.Sprintf("guest NIC %d\n%s\n%s", i, n.GuestMAC, joinAddrs(n)))
			switch n.Model {
			case sandbox.ModelMacvtap:
				fmt.Fprintf(w, "    %q [label=%q];\n", id("tap"), fmt.Sprintf("%s\nmacvtap %s\n%s", n.Tap, n.MacvtapMode, n.Device))
				fmt.Fprintf(w, "    %q -> %q [label=\"lower\"];\n", id("tap"), id("if"))
			case sandbox.ModelPassthrough:
				fmt.Fprintf(w, "    %q [label=%q];\n", id("tap"), fmt.Sprintf("%s\nexisting tap", n.Tap))
			default:
				fmt.Fprintf(w, "    %q [label=%q];\n", id("tap"), fmt.Sprintf("%s\ntap %s\n%s", n.Tap, n.TapMAC, plural(n.Queues, "queue")))
				switch n.Model {
				case sandbox.ModelTCFilter:
					fmt.Fprintf(w, "    %q -> %q [label=\"mirred redirect\", dir=both];\n", id("if"), id("tap"))
				case sandbox.ModelBridge:
					fmt.Fprintf(w, "    %q [label=%q, shape=hexagon];\n", id("br"), "bridge "+n.Bridge)
					fmt.Fprintf(w, "    %q -> %q [dir=none];\n    %q -> %q [dir=none];\n", id("if"), id("br"), id("br"), id("tap"))
				}
			}
			fmt.Fprintf(w, "    %q -> %q [label=\"queues\", dir=both];\n", id("tap"), id("guest"))
		}
		fmt.Fprintln(w, "  }")
	}
	fmt.Fprintln(w, "}")
}
