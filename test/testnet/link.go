package testnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// VethPair creates a veth pair with nodeIf in nodeNS and its peer podIf in
// podNS, sets both ends' MTU to mtu (0 keeps the kernel default of 1500) and
// brings both up. The pair is created from nodeNS with the peer placed in
// podNS by the same RTM_NEWLINK request (IFLA_NET_NS_FD on the peer), which
// is equivalent to creating it in nodeNS and moving the peer, but cannot
// clash with a link called podIf in nodeNS. t.Cleanup deletes the pair
// unless it is already gone.
func VethPair(t testing.TB, nodeNS, podNS ns.NetNS, nodeIf, podIf string, mtu int) {
	t.Helper()
	nh := Handle(t, nodeNS)
	ph := Handle(t, podNS)
	attrs := netlink.NewLinkAttrs()
	attrs.Name = nodeIf
	attrs.MTU = mtu
	veth := &netlink.Veth{
		LinkAttrs:     attrs,
		PeerName:      podIf,
		PeerNamespace: netlink.NsFd(int(podNS.Fd())),
		// The zero value would set the peer's txqueuelen to 0.
		PeerTxQLen: -1,
	}
	if err := nh.LinkAdd(veth); err != nil {
		t.Fatalf("creating veth %s (netns %s) <-> %s (netns %s): %v", nodeIf, Name(nodeNS), podIf, Name(podNS), err)
	}
	t.Cleanup(func() {
		nh, err := NewHandle(nodeNS)
		if err != nil {
			t.Errorf("deleting veth %s: %v", nodeIf, err)
			return
		}
		defer nh.Close()
		l, err := nh.LinkByName(nodeIf)
		if err != nil {
			return // already gone, for instance deleted with its peer
		}
		if err := nh.LinkDel(l); err != nil && !isNotFound(err) {
			t.Errorf("deleting veth %s in netns %s: %v", nodeIf, Name(nodeNS), err)
		}
	})
	for _, side := range []struct {
		h    *netlink.Handle
		name string
		n    ns.NetNS
	}{{nh, nodeIf, nodeNS}, {ph, podIf, podNS}} {
		l, err := side.h.LinkByName(side.name)
		if err != nil {
			t.Fatalf("looking up %s in netns %s: %v", side.name, Name(side.n), err)
		}
		if err := side.h.LinkSetUp(l); err != nil {
			t.Fatalf("bringing %s up in netns %s: %v", side.name, Name(side.n), err)
		}
	}
}

func isNotFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT)
}

// LinkByName returns the link called name in n or fails the test.
func LinkByName(t testing.TB, n ns.NetNS, name string) netlink.Link {
	t.Helper()
	h, l := handleAndLink(t, n, name)
	h.Close()
	return l
}

// handleAndLink is [HandleAndLink] failing the test on error.
func handleAndLink(t testing.TB, n ns.NetNS, name string) (*netlink.Handle, netlink.Link) {
	t.Helper()
	h, l, err := HandleAndLink(n, name)
	if err != nil {
		t.Fatal(err)
	}
	return h, l
}

// HandleAndLink returns a netlink handle in n (see [NewHandle]), which the
// caller closes, and the link called name, found through it. On error it
// closes the handle itself.
func HandleAndLink(n ns.NetNS, name string) (*netlink.Handle, netlink.Link, error) {
	h, err := NewHandle(n)
	if err != nil {
		return nil, nil, err
	}
	l, err := h.LinkByName(name)
	if err != nil {
		h.Close()
		return nil, nil, fmt.Errorf("looking up link %s in netns %s: %w", name, Name(n), err)
	}
	return h, l, nil
}

// LinkUp brings the link called name in n up.
func LinkUp(t testing.TB, n ns.NetNS, name string) {
	t.Helper()
	h, l := handleAndLink(t, n, name)
	defer h.Close()
	if err := h.LinkSetUp(l); err != nil {
		t.Fatalf("bringing %s up in netns %s: %v", name, Name(n), err)
	}
}

// SetMTU sets the MTU of the link called name in n.
func SetMTU(t testing.TB, n ns.NetNS, name string, mtu int) {
	t.Helper()
	h, l := handleAndLink(t, n, name)
	defer h.Close()
	if err := h.LinkSetMTU(l, mtu); err != nil {
		t.Fatalf("setting MTU %d on %s in netns %s: %v", mtu, name, Name(n), err)
	}
}

// SetMAC sets the hardware address of the link called name in n.
func SetMAC(t testing.TB, n ns.NetNS, name string, mac net.HardwareAddr) {
	t.Helper()
	h, l := handleAndLink(t, n, name)
	defer h.Close()
	if err := h.LinkSetHardwareAddr(l, mac); err != nil {
		t.Fatalf("setting MAC %s on %s in netns %s: %v", mac, name, Name(n), err)
	}
}

// AddAddr adds the address cidr (for example "198.51.100.1/24" or
// "2001:db8:1::1/64") to the link ifname in n. IPv6 addresses are added with
// IFA_F_NODAD so that they are usable at once even in namespaces created
// [WithDAD]. Addresses go away with their link, so no cleanup is registered.
func AddAddr(t testing.TB, n ns.NetNS, ifname, cidr string) {
	t.Helper()
	addr, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatalf("parsing address %q: %v", cidr, err)
	}
	if addr.IP.To4() == nil {
		addr.Flags |= unix.IFA_F_NODAD
	}
	h, l := handleAndLink(t, n, ifname)
	defer h.Close()
	if err := h.AddrAdd(l, addr); err != nil {
		t.Fatalf("adding %s to %s in netns %s: %v", cidr, ifname, Name(n), err)
	}
}

// AddRoute adds a route through the link ifname in n. dst is a prefix, or
// "" or "default" for the default route of gw's family; gw is the next hop,
// or "" for an on-link (scope link) route. Routes go away with their link, so
// no cleanup is registered.
func AddRoute(t testing.TB, n ns.NetNS, ifname, dst, gw string) {
	t.Helper()
	h, l := handleAndLink(t, n, ifname)
	defer h.Close()
	r := &netlink.Route{LinkIndex: l.Attrs().Index}
	var gwAddr netip.Addr
	if gw != "" {
		var err error
		gwAddr, err = netip.ParseAddr(gw)
		if err != nil {
			t.Fatalf("parsing gateway %q: %v", gw, err)
		}
		r.Gw = net.IP(gwAddr.AsSlice())
	} else {
		r.Scope = netlink.SCOPE_LINK
	}
	switch dst {
	case "", "default":
		if !gwAddr.IsValid() {
			t.Fatalf("AddRoute: a default route needs a gateway")
		}
		bits := 32
		if gwAddr.Is6() {
			bits = 128
		}
		r.Dst = &net.IPNet{IP: make(net.IP, bits/8), Mask: net.CIDRMask(0, bits)}
	default:
		p, err := netip.ParsePrefix(dst)
		if err != nil {
			t.Fatalf("parsing route destination %q: %v", dst, err)
		}
		p = p.Masked()
		r.Dst = &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
	}
	if err := h.RouteAdd(r); err != nil {
		t.Fatalf("adding route %s via %q dev %s in netns %s: %v", r.Dst, gw, ifname, Name(n), err)
	}
}

// AddNeigh adds a permanent neighbour entry ip -> mac on ifname in n, like
// `ip neigh add IP lladdr MAC dev IFNAME nud permanent`.
func AddNeigh(t testing.TB, n ns.NetNS, ifname, ip, mac string) {
	t.Helper()
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		t.Fatalf("parsing neighbour address %q: %v", ip, err)
	}
	hw, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatalf("parsing neighbour MAC %q: %v", mac, err)
	}
	h, l := handleAndLink(t, n, ifname)
	defer h.Close()
	family := netlink.FAMILY_V4
	if addr.Is6() {
		family = netlink.FAMILY_V6
	}
	neigh := &netlink.Neigh{
		LinkIndex:    l.Attrs().Index,
		Family:       family,
		State:        netlink.NUD_PERMANENT,
		IP:           net.IP(addr.AsSlice()),
		HardwareAddr: hw,
	}
	if err := h.NeighAdd(neigh); err != nil {
		t.Fatalf("adding neighbour %s lladdr %s dev %s in netns %s: %v", ip, mac, ifname, Name(n), err)
	}
}

// linkNames maps the ifindexes of the links in a namespace to their names.
func linkNames(links []netlink.Link) map[int]string {
	m := make(map[int]string, len(links))
	for _, l := range links {
		m[l.Attrs().Index] = l.Attrs().Name
	}
	return m
}

func nameOf(names map[int]string, idx int) string {
	if idx == 0 {
		return "-"
	}
	if n, ok := names[idx]; ok {
		return n
	}
	return fmt.Sprintf("if%d", idx)
}
