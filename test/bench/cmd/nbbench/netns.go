package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir holds the bind mounts of named network namespaces, as for
// `ip netns`.
const netnsDir = "/run/netns"

// netnsPrefix starts the name of every namespace the driver creates.
const netnsPrefix = "nbbench-"

// world is every network namespace the driver made. destroy removes them
// all; it runs on every way out of the driver.
type world struct {
	mu  sync.Mutex
	nss []*namedNS
}

// namedNS is a network namespace bind-mounted at /run/netns/NAME, with a
// netlink handle whose socket lives in it.
type namedNS struct {
	name, path string
	f          *os.File
	h          *netlink.Handle
}

// newNS creates a fresh named netns and records it for destroy. Unlike
// `ip netns add`, it does not turn /run/netns into a shared mount of
// itself, so it leaves no mount behind.
func (w *world) newNS() (*namedNS, error) {
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", netnsDir, err)
	}
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("naming a netns: %w", err)
	}
	n := &namedNS{name: netnsPrefix + hex.EncodeToString(b)}
	n.path = filepath.Join(netnsDir, n.name)
	f, err := os.OpenFile(n.path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return nil, fmt.Errorf("creating the mount point of netns %s: %w", n.name, err)
	}
	f.Close()
	w.mu.Lock()
	w.nss = append(w.nss, n) // from here on destroy removes the mount point
	w.mu.Unlock()
	if err := bindNewNetns(n.path); err != nil {
		return nil, fmt.Errorf("creating netns %s: %w", n.name, err)
	}
	if n.f, err = os.Open(n.path); err != nil {
		return nil, fmt.Errorf("opening netns %s: %w", n.name, err)
	}
	if n.h, err = netlink.NewHandleAt(netns.NsHandle(int(n.f.Fd()))); err != nil {
		return nil, fmt.Errorf("netlink in netns %s: %w", n.name, err)
	}
	lo, err := n.h.LinkByName("lo")
	if err == nil {
		err = n.h.LinkSetUp(lo)
	}
	if err != nil {
		return nil, fmt.Errorf("bringing lo up in netns %s: %w", n.name, err)
	}
	return n, nil
}

// bindNewNetns unshares a new netns on a locked thread, bind-mounts it on
// path and switches the thread back. The thread is unlocked only when that
// worked; otherwise the runtime ends it with its goroutine.
func bindNewNetns(path string) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("opening the current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
			return
		}
		err = unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, "")
		if err != nil {
			err = fmt.Errorf("bind-mounting on %s: %w", path, err)
		}
		if serr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); serr != nil {
			done <- errors.Join(err, fmt.Errorf("switching back to the original netns: %w", serr))
			return // still locked: the runtime discards the thread
		}
		runtime.UnlockOSThread()
		done <- err
	}()
	return <-done
}

// destroy unmounts and removes every namespace made, closing their handles
// first. Links inside go with them, taps included.
func (w *world) destroy() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var errs []error
	for _, n := range w.nss {
		if n.h != nil {
			n.h.Close()
		}
		if n.f != nil {
			n.f.Close()
		}
		if err := unix.Unmount(n.path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", n.path, err))
		}
		if err := os.Remove(n.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing %s: %w", n.path, err))
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
		veth := &netlink.Veth{LinkAttrs: attrs, PeerName: podIf, PeerNamespace: netlink.NsFd(int(pod.f.Fd())), PeerTxQLen: -1}
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
// (up) and a redirect filter each way at priority 20034.
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
				return fmt.Errorf("no redirect %s -> %s at prio 20034", dir[0].Attrs().Name, dir[1].Attrs().Name)
			}
		}
	}
	return nil
}

func hasRedirect(fs []netlink.Filter, to int) bool {
	for _, f := range fs {
		if f.Attrs().Priority != 20034 {
			continue
		}
		var actions []netlink.Action
		switch f := f.(type) {
		case *netlink.U32:
			actions = f.Actions
		case *netlink.MatchAll:
			actions = f.Actions
		}
		for _, a := range actions {
			if m, ok := a.(*netlink.MirredAction); ok && m.MirredAction == netlink.TCA_EGRESS_REDIR && m.Ifindex == to {
				return true
			}
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
