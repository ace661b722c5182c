// Package linkchange reads what netbridge takes away from a link it does
// not own (the CNI interface): its permanent neighbours, its addresses and
// the routes that go with them, its MAC, its master; and gives it back,
// only where the link still holds netbridge's change: a MAC someone else
// changed after setup stays theirs, an address someone else already put
// back is not added twice, and a link someone else moved to another master
// is not pulled out of it. The journal records what these functions read,
// and calls them to undo.
package linkchange

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/pkg/nlretry"
	"github.com/netbridge/netbridge/sandbox"
)

// Addr is an address removed from an interface, as the journal records it.
type Addr struct {
	Prefix    netip.Prefix `json:"prefix"`
	Flags     int          `json:"flags,omitempty"`
	Scope     int          `json:"scope,omitempty"`
	Label     string       `json:"label,omitempty"`
	Broadcast netip.Addr   `json:"broadcast,omitzero"`
}

// Route is a route that went away with the addresses of an interface, as
// the journal records it.
type Route struct {
	Dst      netip.Prefix `json:"dst"`
	Gw       netip.Addr   `json:"gw,omitzero"`
	Src      netip.Addr   `json:"src,omitzero"`
	Protocol int          `json:"protocol,omitempty"`
	Scope    int          `json:"scope,omitempty"`
	Priority int          `json:"priority,omitempty"`
	MTU      int          `json:"mtu,omitempty"`
	Table    int          `json:"table,omitempty"`
	Type     int          `json:"type,omitempty"`
	Flags    int          `json:"flags,omitempty"`
}

// Neigh is a permanent neighbour entry of an interface, as the journal
// records it.
type Neigh struct {
	IP    netip.Addr  `json:"ip"`
	MAC   sandbox.MAC `json:"mac"`
	Flags int         `json:"flags,omitempty"`
}

// Neighbors returns the permanent neighbour entries of link (such as
// Calico's 169.254.1.1), which the kernel drops with a MAC change or the
// last IPv4 address.
func Neighbors(h *netlink.Handle, link netlink.Link) ([]Neigh, error) {
	neighs, err := nlretry.Dump(func() ([]netlink.Neigh, error) { return h.NeighList(link.Attrs().Index, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("listing the neighbours of %q: %w", link.Attrs().Name, err)
	}
	var out []Neigh
	for _, n := range neighs {
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || n.State&netlink.NUD_PERMANENT == 0 || len(n.HardwareAddr) == 0 {
			continue
		}
		out = append(out, Neigh{IP: ip.Unmap(), MAC: sandbox.MAC(n.HardwareAddr), Flags: n.Flags})
	}
	return out, nil
}

// RestoreNeighbors adds back the entries of neighs that link is missing.
func RestoreNeighbors(h *netlink.Handle, link netlink.Link, neighs []Neigh) error {
	for _, n := range neighs {
		family := netlink.FAMILY_V4
		if n.IP.Is6() {
			family = netlink.FAMILY_V6
		}
		err := h.NeighAdd(&netlink.Neigh{
			LinkIndex: link.Attrs().Index, Family: family, State: netlink.NUD_PERMANENT,
			Flags: n.Flags, IP: addrIP(n.IP), HardwareAddr: net.HardwareAddr(n.MAC),
		})
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("adding back neighbour %s: %w", n.IP, err)
		}
	}
	return nil
}

// settableAddrFlags are the IFA_F_* flags an address can be added with.
const settableAddrFlags = unix.IFA_F_NODAD | unix.IFA_F_NOPREFIXROUTE | unix.IFA_F_MANAGETEMPADDR | unix.IFA_F_HOMEADDRESS | unix.IFA_F_MCAUTOJOIN

func addrIP(a netip.Addr) net.IP {
	if !a.IsValid() {
		return nil
	}
	return net.IP(a.AsSlice())
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: addrIP(p.Addr()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// Addresses is what removing the addresses of a link takes away: the
// addresses (IPv6 link-local ones aside) and the routes through the link
// that the kernel drops with them.
type Addresses struct {
	Addrs  []Addr
	Routes []Route
	// KernelRoutes are the destinations of the kernel's prefix routes on
	// the link, which it makes again with the addresses.
	KernelRoutes []netip.Prefix
	doomed       []netlink.Addr
}

// ReadAddresses returns what removing the addresses of link takes away;
// nil when it has no address to remove.
func ReadAddresses(h *netlink.Handle, link netlink.Link) (*Addresses, error) {
	name := link.Attrs().Name
	addrs, err := nlretry.Dump(func() ([]netlink.Addr, error) { return h.AddrList(link, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("listing the addresses of %q: %w", name, err)
	}
	routes, err := nlretry.Dump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: link.Attrs().Index, Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("listing the routes of %q: %w", name, err)
	}
	a := &Addresses{}
	for _, ad := range addrs {
		p, ok := PrefixOf(ad.IPNet)
		if !ok || (p.Addr().Is6() && p.Addr().IsLinkLocalUnicast()) {
			continue
		}
		rec := Addr{Prefix: p, Flags: ad.Flags & settableAddrFlags, Scope: ad.Scope, Label: ad.Label}
		if b, ok := netip.AddrFromSlice(ad.Broadcast); ok && p.Addr().Is4() {
			rec.Broadcast = b.Unmap()
		}
		a.Addrs = append(a.Addrs, rec)
		a.doomed = append(a.doomed, ad)
	}
	if len(a.doomed) == 0 {
		return nil, nil
	}
	for _, r := range routes {
		if r.Table == unix.RT_TABLE_LOCAL || len(r.MultiPath) > 0 {
			continue // the kernel makes these again with the addresses
		}
		p := RouteOf(r)
		switch {
		case p == nil:
		case r.Protocol == unix.RTPROT_KERNEL:
			// The kernel makes its prefix routes again with the
			// addresses; which of them existed is recorded, because a
			// plugin such as ptp deletes them.
			a.KernelRoutes = append(a.KernelRoutes, p.Dst)
		default:
			a.Routes = append(a.Routes, *p)
		}
	}
	return a, nil
}

// Remove removes the addresses a read from link. Equivalent to: ip addr
// flush dev LINK scope global (and host).
func (a *Addresses) Remove(h *netlink.Handle, link netlink.Link) error {
	// Secondary IPv4 addresses go with their primary: remove the last
	// listed first.
	for i := len(a.doomed) - 1; i >= 0; i-- {
		if err := ignoreAddrGone(h.AddrDel(link, &a.doomed[i])); err != nil {
			return fmt.Errorf("removing %s: %w (run teardown to restore what was removed)", a.doomed[i].IPNet, err)
		}
	}
	return nil
}

// settableRouteFlags are the RTNH_F_* flags a route can be added with;
// others (linkdown, dead) are the kernel's report of the link's state.
const settableRouteFlags = unix.RTNH_F_ONLINK

// RouteOf returns route r as the journal records it, nil when its
// destination cannot be read. A route without destination is a default
// route of its family.
func RouteOf(r netlink.Route) *Route {
	rr := Route{Protocol: int(r.Protocol), Scope: int(r.Scope), Priority: r.Priority, MTU: r.MTU, Table: r.Table, Type: r.Type, Flags: r.Flags & settableRouteFlags}
	switch {
	case r.Dst != nil:
		p, ok := PrefixOf(r.Dst)
		if !ok {
			return nil
		}
		rr.Dst = p
	case r.Family == unix.AF_INET6:
		rr.Dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	default:
		rr.Dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	if gw, ok := netip.AddrFromSlice(r.Gw); ok {
		rr.Gw = gw.Unmap()
	}
	if src, ok := netip.AddrFromSlice(r.Src); ok {
		rr.Src = src.Unmap()
	}
	return &rr
}

// Restore puts back the addresses of a onto link, which was called was
// when they were removed (it may have been renamed since), exactly as they
// were, a broadcast address only where there was one; removes the prefix
// routes the kernel makes with them that did not exist before (ptp deletes
// them); and adds back the routes of a, next to any others of the same
// destination (another interface's default route stays). It keeps going
// after an error and returns them all. A wait for IPv6 duplicate address
// detection ends with ctx.
func (a *Addresses) Restore(ctx context.Context, h *netlink.Handle, link netlink.Link, was string, log *slog.Logger) error {
	var errs []error
	name := link.Attrs().Name
	for _, ad := range a.Addrs {
		addr := &netlink.Addr{IPNet: ipNet(ad.Prefix), Flags: ad.Flags, Scope: ad.Scope, Label: relabel(ad.Label, was, name), Broadcast: addrIP(ad.Broadcast)}
		if addr.Broadcast == nil && ad.Prefix.Addr().Is4() {
			// The netlink package makes one up for a nil broadcast
			// address; the unspecified one means none.
			addr.Broadcast = net.IPv4zero
		}
		if err := h.AddrAdd(link, addr); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("adding back %s: %w", ad.Prefix, err))
		}
	}
	if slices.ContainsFunc(a.Routes, func(r Route) bool { return r.Src.Is6() }) {
		// A route may name an IPv6 source only once the address has left
		// duplicate address detection.
		if err := waitNotTentative(ctx, h, link, 5*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if err := removeNewKernelRoutes(h, link, a.KernelRoutes); err != nil {
		errs = append(errs, err)
	}
	// On-link routes first: the gateways of the others must be reachable.
	routes := slices.Clone(a.Routes)
	slices.SortStableFunc(routes, func(x, y Route) int {
		switch {
		case x.Gw.IsValid() == y.Gw.IsValid():
			return 0
		case x.Gw.IsValid():
			return 1
		}
		return -1
	})
	for _, r := range routes {
		if err := restoreRoute(h, link, r, log); err != nil {
			via := "on link"
			if r.Gw.IsValid() {
				via = "via " + r.Gw.String()
			}
			errs = append(errs, fmt.Errorf("adding back route %s %s: %w", r.Dst, via, err))
		}
	}
	return errors.Join(errs...)
}

// relabel returns the label of an address of the link that was called
// was and now is: the default label (the link's name) and its aliases
// ("eth0:1") follow a rename.
func relabel(label, was, now string) string {
	if rest, ok := strings.CutPrefix(label, was); ok && (rest == "" || rest[0] == ':') {
		return now + rest
	}
	return label
}

// restoreRoute adds r back through link, without replacing any route: as
// an add that creates (the way the CNI plugins add routes, so that a route
// of another interface to the same destination stays). When the kernel
// says it exists: an identical route is fine; the same route on link
// stripped of something (the kernel drops the preferred source of an IPv6
// route with the address) is made whole again; another one stays, with a
// warning.
func restoreRoute(h *netlink.Handle, link netlink.Link, r Route, log *slog.Logger) error {
	rt := &netlink.Route{
		LinkIndex: link.Attrs().Index, Dst: ipNet(r.Dst), Gw: addrIP(r.Gw), Src: addrIP(r.Src),
		Protocol: netlink.RouteProtocol(r.Protocol), Scope: netlink.Scope(r.Scope), Priority: r.Priority,
		MTU: r.MTU, Table: r.Table, Type: r.Type, Flags: r.Flags,
	}
	err := h.RouteAddEcmp(rt)
	if !errors.Is(err, unix.EEXIST) {
		return err
	}
	routes, lerr := nlretry.Dump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: link.Attrs().Index, Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	})
	if lerr != nil {
		return errors.Join(err, lerr)
	}
	for _, e := range routes {
		got := RouteOf(e)
		if got == nil || got.Dst != r.Dst || got.Table != r.Table || got.Priority != r.Priority || got.Gw != r.Gw || got.Type != r.Type {
			continue
		}
		if *got == r {
			return nil // back already
		}
		if err := h.RouteDel(&e); err != nil && !errors.Is(err, unix.ESRCH) {
			return err
		}
		return h.RouteAddEcmp(rt)
	}
	log.Warn("a route of the destination netbridge moved to the guest exists already, with other attributes: left as it is",
		"link", link.Attrs().Name, "dst", r.Dst, "gw", r.Gw)
	return nil
}

// removeNewKernelRoutes deletes the kernel's prefix routes on link (main
// table) whose destination is not among before.
func removeNewKernelRoutes(h *netlink.Handle, link netlink.Link, before []netip.Prefix) error {
	routes, err := nlretry.Dump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: link.Attrs().Index, Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return fmt.Errorf("listing the routes of %q: %w", link.Attrs().Name, err)
	}
	var errs []error
	for _, r := range routes {
		p := RouteOf(r)
		if r.Protocol != unix.RTPROT_KERNEL || p == nil || slices.Contains(before, p.Dst) || (p.Dst.Addr().Is6() && p.Dst.Addr().IsLinkLocalUnicast()) {
			continue
		}
		if err := h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("removing the kernel's new route %s: %w", p.Dst, err))
		}
	}
	return errors.Join(errs...)
}

// waitNotTentative waits until no IPv6 address of link is tentative, for
// at most limit and until ctx is done.
func waitNotTentative(ctx context.Context, h *netlink.Handle, link netlink.Link, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		addrs, err := nlretry.Dump(func() ([]netlink.Addr, error) { return h.AddrList(link, netlink.FAMILY_V6) })
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(addrs, func(a netlink.Addr) bool { return a.Flags&unix.IFA_F_TENTATIVE != 0 }) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("IPv6 addresses of %q still tentative after %s", link.Attrs().Name, limit)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the IPv6 addresses of %q to leave duplicate address detection: %w", link.Attrs().Name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func ignoreAddrGone(err error) error {
	if errors.Is(err, unix.EADDRNOTAVAIL) {
		return nil
	}
	return err
}

// UndoSetMAC gives link back its MAC old where it still has new, the one
// netbridge gave it; a MAC someone else set since stays theirs.
func UndoSetMAC(h *netlink.Handle, link netlink.Link, old, new sandbox.MAC) error {
	if !bytes.Equal(link.Attrs().HardwareAddr, new) {
		return nil // changed since by someone else: theirs now
	}
	return h.LinkSetHardwareAddr(link, net.HardwareAddr(old))
}

// UndoSetMaster releases link from the bridge called master, where it still
// is a port of it.
func UndoSetMaster(h *netlink.Handle, link netlink.Link, master string) error {
	m, err := h.LinkByName(master)
	if err != nil || link.Attrs().MasterIndex != m.Attrs().Index {
		return nil // master gone (and the link released with it) or changed since
	}
	return h.LinkSetNoMaster(link)
}

// PrefixOf returns n as a prefix, false when it is not a well-formed IPv4
// or IPv6 one.
func PrefixOf(n *net.IPNet) (netip.Prefix, bool) {
	ip, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ip = ip.Unmap()
	ones, bits := n.Mask.Size()
	if bits == 0 || (ip.Is4() && bits != 32) || (ip.Is6() && bits != 128) {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(ip, ones), true
}
