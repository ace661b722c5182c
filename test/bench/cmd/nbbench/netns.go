package main

import (
	"errors"
	"fmt"
	"sync"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/test/bench/floor"
	"github.com/netbridge/netbridge/test/testnet"
)

// netnsPrefix starts the name of every namespace the driver creates.
const netnsPrefix = "nbbench-"

// world is every network namespace the driver made. destroy removes them
// all; it runs on every way out of the driver.
type world struct {
	mu  sync.Mutex
	nss []*namedNS
}

// namedNS is a network namespace bind-mounted at /run/netns/NAME, open,
// with a netlink handle whose socket lives in it.
type namedNS struct {
	name, path string
	netns      ns.NetNS
	h          *netlink.Handle
}

// newNS creates a fresh named netns with lo up (see testnet.CreateNS) and
// records it for destroy.
func (w *world) newNS() (*namedNS, error) {
	nn, err := testnet.CreateNS(netnsPrefix)
	if err != nil {
		return nil, fmt.Errorf("creating a netns: %w", err)
	}
	n := &namedNS{name: testnet.Name(nn), path: nn.Path(), netns: nn}
	w.mu.Lock()
	w.nss = append(w.nss, n) // from here on destroy removes it
	w.mu.Unlock()
	if n.h, err = testnet.NewHandle(nn); err != nil {
		return nil, err
	}
	return n, nil
}

// destroy closes the netlink handle of every namespace made, then closes,
// unmounts and removes the namespace. Links inside go with them, taps
// included.
func (w *world) destroy() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var errs []error
	for _, n := range w.nss {
		if n.h != nil {
			n.h.Close()
		}
		if err := testnet.DestroyNS(n.netns); err != nil {
			errs = append(errs, err)
		}
	}
	w.nss = nil
	return errors.Join(errs...)
}

// sandbox is a pod netns whose CNI interfaces eth0, eth1, ... are veths
// with their peers in a node netns, each with an address, the way a CNI
// plugin leaves them.
type sandbox struct {
	id      string // the netbridge sandbox id
	ns      *namedNS
	ifnames []string
}

// taps returns the names of the taps every implementation makes, one per
// interface, in order.
func (s *sandbox) taps() []string {
	out := make([]string, len(s.ifnames))
	for i, n := range s.ifnames {
		out[i] = "nb-" + n
	}
	return out
}

// newSandbox makes a pod netns with nics veth interfaces, whose peers go to
// node named vethPrefix0, vethPrefix1, ... Interface i gets
// 198.51.100.(4i+2)/30 (for i < 64).
func (w *world) newSandbox(node *namedNS, id, vethPrefix string, nics int) (*sandbox, error) {
	if nics > 64 {
		return nil, fmt.Errorf("sandbox %s: %d NICs is more than 64", id, nics)
	}
	pod, err := w.newNS()
	if err != nil {
		return nil, err
	}
	s := &sandbox{id: id, ns: pod}
	for i := range nics {
		podIf := fmt.Sprintf("eth%d", i)
		nodeIf := fmt.Sprintf("%s%d", vethPrefix, i)
		attrs := netlink.NewLinkAttrs()
		attrs.Name = nodeIf
		veth := &netlink.Veth{LinkAttrs: attrs, PeerName: podIf, PeerNamespace: netlink.NsFd(int(pod.netns.Fd())), PeerTxQLen: -1}
		if err := node.h.LinkAdd(veth); err != nil {
			return nil, fmt.Errorf("creating veth %s (netns %s) <-> %s (netns %s): %w", nodeIf, node.name, podIf, pod.name, err)
		}
		for _, side := range []struct {
			n    *namedNS
			name string
		}{{node, nodeIf}, {pod, podIf}} {
			l, err := side.n.h.LinkByName(side.name)
			if err == nil {
				err = side.n.h.LinkSetUp(l)
			}
			if err != nil {
				return nil, fmt.Errorf("bringing %s up in netns %s: %w", side.name, side.n.name, err)
			}
		}
		addr, err := netlink.ParseAddr(fmt.Sprintf("198.51.100.%d/30", 4*i+2))
		if err != nil {
			return nil, fmt.Errorf("address of %s: %w", podIf, err)
		}
		l, err := pod.h.LinkByName(podIf)
		if err == nil {
			err = pod.h.AddrAdd(l, addr)
		}
		if err != nil {
			return nil, fmt.Errorf("adding %s to %s in netns %s: %w", addr, podIf, pod.name, err)
		}
		s.ifnames = append(s.ifnames, podIf)
	}
	return s, nil
}

// wired checks, outside any timing, that every interface of s has its tap
// (up) and a redirect filter each way at netbridge's priority
// (floor.FilterPriority).
func (s *sandbox) wired() error {
	for i, ifname := range s.ifnames {
		tapName := s.taps()[i]
		link, err := s.ns.h.LinkByName(ifname)
		if err != nil {
			return fmt.Errorf("looking up %s: %w", ifname, err)
		}
		tap, err := s.ns.h.LinkByName(tapName)
		if err != nil {
			return fmt.Errorf("no tap %s for %s: %w", tapName, ifname, err)
		}
		if _, ok := tap.(*netlink.Tuntap); !ok || tap.Attrs().Flags&unix.IFF_UP == 0 {
			return fmt.Errorf("%s is a %s link, up=%v; want a tap that is up", tapName, tap.Type(), tap.Attrs().Flags&unix.IFF_UP != 0)
		}
		for _, dir := range [][2]netlink.Link{{link, tap}, {tap, link}} {
			fs, err := s.ns.h.FilterList(dir[0], netlink.MakeHandle(0xffff, 0))
			if err != nil {
				return fmt.Errorf("listing the ingress filters of %s: %w", dir[0].Attrs().Name, err)
			}
			if !hasRedirect(fs, dir[1].Attrs().Index) {
				return fmt.Errorf("no redirect %s -> %s at prio %d", dir[0].Attrs().Name, dir[1].Attrs().Name, floor.FilterPriority)
			}
		}
	}
	return nil
}

func hasRedirect(fs []netlink.Filter, to int) bool {
	for _, f := range fs {
		if f.Attrs().Priority == floor.FilterPriority && floor.RedirectTarget(f) == to {
			return true
		}
	}
	return false
}

// clean checks, outside any timing, that s is back to how it was made: no
// link but lo and the interfaces, and no ingress qdisc on them.
func (s *sandbox) clean() error {
	links, err := s.ns.h.LinkList()
	if err != nil {
		return fmt.Errorf("listing links of netns %s: %w", s.ns.name, err)
	}
	if len(links) != len(s.ifnames)+1 {
		var names []string
		for _, l := range links {
			names = append(names, l.Attrs().Name)
		}
		return fmt.Errorf("netns %s has links %v, want lo and %v", s.ns.name, names, s.ifnames)
	}
	for _, l := range links {
		qs, err := s.ns.h.QdiscList(l)
		if err != nil {
			return fmt.Errorf("listing qdiscs of %s: %w", l.Attrs().Name, err)
		}
		for _, q := range qs {
			if q.Attrs().Parent == netlink.HANDLE_INGRESS {
				return fmt.Errorf("%s in netns %s still has an ingress qdisc", l.Attrs().Name, s.ns.name)
			}
		}
	}
	return nil
}

// reset puts s back after a failed run: it deletes every link but lo and
// the interfaces, and the interfaces' ingress qdiscs.
func (s *sandbox) reset() error {
	links, err := s.ns.h.LinkList()
	if err != nil {
		return fmt.Errorf("listing links of netns %s: %w", s.ns.name, err)
	}
	keep := map[string]bool{"lo": true}
	for _, n := range s.ifnames {
		keep[n] = true
	}
	var errs []error
	for _, l := range links {
		if !keep[l.Attrs().Name] {
			if err := s.ns.h.LinkDel(l); err != nil {
				errs = append(errs, fmt.Errorf("deleting %s: %w", l.Attrs().Name, err))
			}
			continue
		}
		q := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: l.Attrs().Index, Parent: netlink.HANDLE_INGRESS, Handle: netlink.MakeHandle(0xffff, 0)}}
		if err := s.ns.h.QdiscDel(q); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("deleting the ingress qdisc of %s: %w", l.Attrs().Name, err))
		}
	}
	return errors.Join(errs...)
}
