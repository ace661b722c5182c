package guest

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/netbridge/netbridge/sandbox"
)

// CloudInit returns a cloud-init network configuration, version 2 (the
// netplan syntax), that configures every NIC of s statically. It is meant for
// the network-config file of a NoCloud seed (or any datasource's network
// configuration), which takes the document as is; under
// /etc/cloud/cloud.cfg.d it must be nested under a top-level "network:" key.
// The NICs appear in order, one per entry of "ethernets":
//
//	version: 2
//	ethernets:
//	  eth<k>:
//	    match:
//	      macaddress: "<guest MAC>"
//	    set-name: "eth<k>"
//	    mtu: <MTU>
//	    addresses:
//	      - "<address/prefix>"
//	    routes:
//	      - to: "<destination prefix>"
//	        via: "<gateway>"
//	        on-link: true
//	        mtu: <route MTU>
//
// Each entry matches the NIC by its guest MAC and names it eth<k> after its
// position in s.NICs, the name [KernelIP] and [JSON] use; cloud-init renames
// by MAC before it applies the configuration. mtu is left out when the NIC
// has none, addresses and routes when the NIC has none. A default route is
// written "0.0.0.0/0" or "::/0", which every netplan and cloud-init version
// reads (unlike "default"). A route MTU is written as the route's "mtu".
//
// A route whose IPv4 or global IPv6 gateway lies outside every address of
// the NIC gets "on-link: true", as Calico's default route via 169.254.1.1
// from a /32 address needs. A route without gateway gets "scope: link"
// (netplan refuses a global route without "via"), except a host route to a
// gateway of such an on-link route (Calico's 169.254.1.1/32, without MTU),
// which "on-link" already stands for and which is left out.
//
// netplan applies all of this. Where netplan is absent, cloud-init converts
// the document for its own renderers (ENI, sysconfig, networkd,
// NetworkManager), which keep to, via and (some of them) the route mtu, and
// drop scope and on-link with a schema warning: there a gateway outside the
// NIC's subnets stays unreachable, and the ENI and sysconfig renderers fail
// on any route left without gateway. Leaving Calico's host route out keeps
// the common Calico case from failing there.
//
// Static neighbour entries (such as Calico's permanent 169.254.1.1 entry)
// cannot be expressed in netplan version 2 and are left out; the guest
// resolves such neighbours with ARP or NDP. No DHCP, DNS or search domains
// are configured.
//
// Scalars that are not numbers or booleans are double-quoted, so that no
// YAML 1.1 reader takes a MAC such as 52:54:00:12:34:56 for a base-60
// integer. The output is deterministic. CloudInit fails on the same invalid
// data as [NewDocument]: a missing, multicast or shared guest MAC, or an
// invalid MTU, address, route or neighbour.
func CloudInit(s sandbox.Sandbox) ([]byte, error) {
	if _, err := interfaces(s.NICs, "cloud-init"); err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString("# cloud-init network configuration, version 2 (netplan syntax), rendered by netbridge\n")
	b.WriteString("version: 2\n")
	if len(s.NICs) == 0 {
		b.WriteString("ethernets: {}\n")
		return []byte(b.String()), nil
	}
	b.WriteString("ethernets:\n")
	for k := range s.NICs {
		n := &s.NICs[k]
		mac := n.GuestMAC.String()
		name := "eth" + strconv.Itoa(k)
		fmt.Fprintf(&b, "  %s:\n", name)
		b.WriteString("    match:\n")
		fmt.Fprintf(&b, "      macaddress: %s\n", yamlQuote(mac))
		fmt.Fprintf(&b, "    set-name: %s\n", yamlQuote(name))
		if n.MTU > 0 {
			fmt.Fprintf(&b, "    mtu: %d\n", n.MTU)
		}
		if len(n.Addresses) > 0 {
			b.WriteString("    addresses:\n")
			for _, a := range n.Addresses {
				fmt.Fprintf(&b, "      - %s\n", yamlQuote(a.String()))
			}
		}
		routes := cloudInitRoutes(n)
		if len(routes) > 0 {
			b.WriteString("    routes:\n")
			for _, r := range routes {
				fmt.Fprintf(&b, "      - to: %s\n", yamlQuote(r.Dst.String()))
				if r.Gw.IsValid() {
					fmt.Fprintf(&b, "        via: %s\n", yamlQuote(r.Gw.String()))
					if offLink(r.Gw, n.Addresses) {
						b.WriteString("        on-link: true\n")
					}
				} else {
					fmt.Fprintf(&b, "        scope: %s\n", yamlQuote("link"))
				}
				if r.MTU > 0 {
					fmt.Fprintf(&b, "        mtu: %d\n", r.MTU)
				}
			}
		}
	}
	return []byte(b.String()), nil
}

// cloudInitRoutes returns the routes of n that CloudInit writes: all but the
// gateway-less host routes, without MTU, to a gateway that another route of
// n reaches on-link.
func cloudInitRoutes(n *sandbox.NIC) []sandbox.Route {
	onLink := make(map[netip.Addr]bool)
	for _, r := range n.Routes {
		if r.Gw.IsValid() && offLink(r.Gw, n.Addresses) {
			onLink[r.Gw] = true
		}
	}
	routes := make([]sandbox.Route, 0, len(n.Routes))
	for _, r := range n.Routes {
		if !r.Gw.IsValid() && r.MTU == 0 && r.Dst.IsSingleIP() && onLink[r.Dst.Addr()] {
			continue
		}
		routes = append(routes, r)
	}
	return routes
}

// offLink reports whether gw needs "on-link": it is not an IPv6 link-local
// address (always reachable on the link) and no address of the NIC has a
// prefix containing it.
func offLink(gw netip.Addr, addrs []netip.Prefix) bool {
	if gw.Is6() && gw.IsLinkLocalUnicast() {
		return false
	}
	return !slices.ContainsFunc(addrs, func(a netip.Prefix) bool {
		return a.Masked().Contains(gw)
	})
}

// yamlQuote returns s as a YAML double-quoted scalar: '"' and '\' are
// escaped with a backslash; the characters YAML does not allow unescaped
// (C0 and C1 controls, DEL, U+FFFE, U+FFFF) and those it treats as line
// breaks or a byte order mark (U+0085, U+2028, U+2029, U+FEFF) are written
// as \xXX or \uXXXX; a byte that is not valid UTF-8, which YAML cannot
// carry, becomes U+FFFD. Everything else stands for itself.
func yamlQuote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s { // invalid UTF-8 bytes arrive as U+FFFD
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r >= 0x7f && r <= 0x9f:
			fmt.Fprintf(&b, `\x%02X`, r)
		case r == 0x2028 || r == 0x2029 || r == 0xfeff || r == 0xfffe || r == 0xffff:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
