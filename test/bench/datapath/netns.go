package datapath

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// runDir holds the bind mounts of named network namespaces, where `ip netns`
// looks for them.
const runDir = "/run/netns"

// namePrefix starts the name of every namespace and temporary directory Run
// creates, so that a leak is easy to attribute.
const namePrefix = "nbdp-"

// created, when set (by the package's tests), is told the path of every
// namespace and state directory Run creates, before anything else happens
// to it, so that the tests can check that each one is gone afterwards.
var created func(path string)

func record(path string) {
	if created != nil {
		created(path)
	}
}

// randomHex returns 2n random hex digits.
func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// newNS creates a network namespace, bind-mounted at /run/netns/nbdp-<hex>
// (so that `ip netns exec` can enter it while Run is going), and opens it.
// The namespace is made by unshare(2) on a locked OS thread that is moved
// back to its original namespace afterwards; if moving back fails, the
// thread stays locked and the Go runtime ends it, so no goroutine ever runs
// in the wrong namespace. Nothing is left behind when newNS fails.
func newNS() (ns.NetNS, error) {
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", runDir, err)
	}
	suffix, err := randomHex(6)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(runDir, namePrefix+suffix)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return nil, fmt.Errorf("creating netns mount point: %w", err)
	}
	record(path)
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("creating netns mount point %s: %w", path, err)
	}

	type outcome struct {
		mounted bool
		err     error
	}
	done := make(chan outcome, 1)
	go func() {
		runtime.LockOSThread()
		var o outcome
		defer func() { done <- o }()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			o.err = fmt.Errorf("opening the current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			o.err = fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
			return
		}
		if err := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, ""); err != nil {
			o.err = fmt.Errorf("bind-mounting the new netns on %s: %w", path, err)
		} else {
			o.mounted = true
		}
		if err := netns.Set(orig); err != nil {
			// Stay locked: the runtime ends this thread when we return.
			o.err = errors.Join(o.err, fmt.Errorf("moving the thread back to its netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
	}()
	o := <-done
	if o.err == nil {
		n, err := ns.GetNS(path)
		if err == nil {
			if err := linkUp(n, "lo"); err != nil {
				return nil, errors.Join(err, destroyNS(n))
			}
			return n, nil
		}
		o.err = fmt.Errorf("opening netns %s: %w", path, err)
	}
	if o.mounted {
		_ = unix.Unmount(path, unix.MNT_DETACH)
	}
	_ = os.Remove(path)
	return nil, o.err
}

// destroyNS closes n, unmounts it and removes its mount point. The kernel
// frees the namespace, and the links in it, once nothing else refers to it.
func destroyNS(n ns.NetNS) error {
	path := n.Path()
	var errs []error
	if err := n.Close(); err != nil {
		errs = append(errs, fmt.Errorf("closing netns %s: %w", path, err))
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
		errs = append(errs, fmt.Errorf("unmounting netns %s: %w", path, err))
	}
	if err := os.Remove(path); err != nil {
		errs = append(errs, fmt.Errorf("removing netns mount point %s: %w", path, err))
	}
	return errors.Join(errs...)
}

// handle returns a netlink handle whose socket lives in n.
func handle(n ns.NetNS) (*netlink.Handle, error) {
	h, err := netlink.NewHandleAt(netns.NsHandle(int(n.Fd())))
	if err != nil {
		return nil, fmt.Errorf("netlink handle in netns %s: %w", n.Path(), err)
	}
	return h, nil
}

// linkUp brings the link name of n up.
func linkUp(n ns.NetNS, name string) error {
	h, err := handle(n)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("looking up %s in netns %s: %w", name, n.Path(), err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("bringing %s up in netns %s: %w", name, n.Path(), err)
	}
	return nil
}

// vethPair creates a veth pair, nodeIf in node and its peer podIf in pod,
// gives each end its address (CIDR), brings both up and returns the two
// links as seen in their namespaces. The pair goes away with either
// namespace.
func vethPair(node, pod ns.NetNS, nodeIf, podIf, nodeAddr, podAddr string) (nodeLink, podLink netlink.Link, err error) {
	nh, err := handle(node)
	if err != nil {
		return nil, nil, err
	}
	defer nh.Close()
	ph, err := handle(pod)
	if err != nil {
		return nil, nil, err
	}
	defer ph.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = nodeIf
	veth := &netlink.Veth{
		LinkAttrs:     attrs,
		PeerName:      podIf,
		PeerNamespace: netlink.NsFd(int(pod.Fd())),
		PeerTxQLen:    -1, // the zero value would give the peer txqueuelen 0
	}
	if err := nh.LinkAdd(veth); err != nil {
		return nil, nil, fmt.Errorf("creating veth %s (netns %s) <-> %s (netns %s): %w", nodeIf, node.Path(), podIf, pod.Path(), err)
	}
	for _, side := range []struct {
		h          *netlink.Handle
		name, addr string
		n          ns.NetNS
		link       *netlink.Link
	}{{nh, nodeIf, nodeAddr, node, &nodeLink}, {ph, podIf, podAddr, pod, &podLink}} {
		l, err := side.h.LinkByName(side.name)
		if err != nil {
			return nil, nil, fmt.Errorf("looking up %s in netns %s: %w", side.name, side.n.Path(), err)
		}
		a, err := netlink.ParseAddr(side.addr)
		if err != nil {
			return nil, nil, fmt.Errorf("parsing address %s: %w", side.addr, err)
		}
		if err := side.h.AddrAdd(l, a); err != nil {
			return nil, nil, fmt.Errorf("adding %s to %s in netns %s: %w", side.addr, side.name, side.n.Path(), err)
		}
		if err := side.h.LinkSetUp(l); err != nil {
			return nil, nil, fmt.Errorf("bringing %s up in netns %s: %w", side.name, side.n.Path(), err)
		}
		if *side.link, err = side.h.LinkByName(side.name); err != nil {
			return nil, nil, fmt.Errorf("looking up %s in netns %s: %w", side.name, side.n.Path(), err)
		}
	}
	return nodeLink, podLink, nil
}

// setRandomMAC gives the link name of n a random, locally administered
// unicast MAC.
func setRandomMAC(n ns.NetNS, name string) error {
	mac := make(net.HardwareAddr, 6)
	if _, err := rand.Read(mac); err != nil {
		return fmt.Errorf("reading random bytes: %w", err)
	}
	mac[0] = mac[0]&^0x01 | 0x02
	h, err := handle(n)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("looking up %s in netns %s: %w", name, n.Path(), err)
	}
	if err := h.LinkSetHardwareAddr(l, mac); err != nil {
		return fmt.Errorf("setting the MAC of %s in netns %s to %s: %w", name, n.Path(), mac, err)
	}
	return nil
}
