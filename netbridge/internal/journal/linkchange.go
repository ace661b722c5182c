package journal

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

// This file holds the changes netbridge makes to links it does not own (the
// CNI interface): its MAC, its addresses and routes, and its master. Each is
// journaled with what it was, and undone only where the link still holds
// our change: a MAC someone else changed after setup stays theirs, an
// address someone else already put back is not added twice, and a link
// someone else moved to another master is not pulled out of it.

// AddrRecord is an address removed from an interface.
type AddrRecord struct {
	Prefix    netip.Prefix `json:"prefix"`
	Flags     int          `json:"flags,omitempty"`
	Scope     int          `json:"scope,omitempty"`
	Label     string       `json:"label,omitempty"`
	Broadcast netip.Addr   `json:"broadcast,omitzero"`
}

// RouteRecord is a route that went away with the addresses of an interface.
type RouteRecord struct {
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

// NeighRecord is a permanent neighbour entry of an interface.
type NeighRecord struct {
	IP    netip.Addr  `json:"ip"`
	MAC   sandbox.MAC `json:"mac"`
	Flags int         `json:"flags,omitempty"`
}

// KeepNeighbors journals the permanent neighbour entries of link (such as
// Calico's 169.254.1.1), because the kernel drops every neighbour entry of
// a link whose MAC changes or which loses its last IPv4 address. The step
// creates nothing; its undo, which runs after the MAC and the addresses are
// back, adds back the entries that are missing.
func (sc Scope) KeepNeighbors(ctx context.Context, link netlink.Link) error {
	h := sc.tx.k.H
	neighs, err := nlretry.Dump(func() ([]netlink.Neigh, error) { return h.NeighList(link.Attrs().Index, netlink.FAMILY_ALL) })
	if err != nil {
		return fmt.Errorf("listing the neighbours of %q: %w", link.Attrs().Name, err)
	}
	s := Step{Op: OpKeepNeighbors, Link: link.Attrs().Name, Ref: RefOf(link)}
	for _, n := range neighs {
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || n.State&netlink.NUD_PERMANENT == 0 || len(n.HardwareAddr) == 0 {
			continue
		}
		s.Neighs = append(s.Neighs, NeighRecord{IP: ip.Unmap(), MAC: sandbox.MAC(n.HardwareAddr), Flags: n.Flags})
	}
	if len(s.Neighs) == 0 {
		return nil
	}
	return sc.Do(ctx, Planned{Step: s, Make: func() error { return nil }})
}

func restoreNeighbors(h *netlink.Handle, link netlink.Link, s Step) error {
	for _, n := range s.Neighs {
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

// RemoveAddresses removes every address of link but IPv6 link-local ones,
// journaling them and the routes through link that the kernel drops with
// them. Equivalent to: ip addr flush dev LINK scope global (and host).
func (sc Scope) RemoveAddresses(ctx context.Context, link netlink.Link) error {
	name, h := link.Attrs().Name, sc.tx.k.H
	addrs, err := nlretry.Dump(func() ([]netlink.Addr, error) { return h.AddrList(link, netlink.FAMILY_ALL) })
	if err != nil {
		return fmt.Errorf("listing the addresses of %q: %w", name, err)
	}
	routes, err := nlretry.Dump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: link.Attrs().Index, Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return fmt.Errorf("listing the routes of %q: %w", name, err)
	}
	s := Step{Op: OpRemoveAddrs, Link: name, Ref: RefOf(link)}
	var doomed []netlink.Addr
	for _, a := range addrs {
		p, ok := PrefixOf(a.IPNet)
		if !ok || (p.Addr().Is6() && p.Addr().IsLinkLocalUnicast()) {
			continue
		}
		rec := AddrRecord{Prefix: p, Flags: a.Flags & settableAddrFlags, Scope: a.Scope, Label: a.Label}
		if b, ok := netip.AddrFromSlice(a.Broadcast); ok && p.Addr().Is4() {
			rec.Broadcast = b.Unmap()
		}
		s.Addrs = append(s.Addrs, rec)
		doomed = append(doomed, a)
	}
	if len(doomed) == 0 {
		return nil
	}
	for _, r := range routes {
		if r.Table == unix.RT_TABLE_LOCAL || len(r.MultiPath) > 0 {
			continue // the kernel makes these again with the addresses
		}
		p := RouteRecordOf(r)
		switch {
		case p == nil:
		case r.Protocol == unix.RTPROT_KERNEL:
			// The kernel makes its prefix routes again with the
			// addresses; which of them existed is recorded, because a
			// plugin such as ptp deletes them.
			s.KernelRoutes = append(s.KernelRoutes, p.Dst)
		default:
			s.Routes = append(s.Routes, *p)
		}
	}
	return sc.Do(ctx, Planned{Step: s, Make: func() error {
		// Secondary IPv4 addresses go with their primary: remove the last
		// listed first.
		for i := len(doomed) - 1; i >= 0; i-- {
			if err := ignoreAddrGone(h.AddrDel(link, &doomed[i])); err != nil {
				return fmt.Errorf("removing %s: %w (run teardown to restore what was removed)", doomed[i].IPNet, err)
			}
		}
		return nil
	}})
}

// settableRouteFlags are the RTNH_F_* flags a route can be added with;
// others (linkdown, dead) are the kernel's report of the link's state.
const settableRouteFlags = unix.RTNH_F_ONLINK

// RouteRecordOf returns route r as a record, nil when its destination
// cannot be read.
func RouteRecordOf(r netlink.Route) *RouteRecord {
	rr := RouteRecord{Protocol: int(r.Protocol), Scope: int(r.Scope), Priority: r.Priority, MTU: r.MTU, Table: r.Table, Type: r.Type, Flags: r.Flags & settableRouteFlags}
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

// restoreAddresses puts back the addresses of s onto link (the interface
// s was journaled on, possibly renamed since) exactly as they were, a
// broadcast address only where there was one; removes the prefix routes
// the kernel makes with them that did not exist before (ptp deletes them);
// and adds back the routes of s, next to any others of the same
// destination (another interface's default route stays). It keeps going
// after an error and returns them all.
func restoreAddresses(ctx context.Context, h *netlink.Handle, link netlink.Link, s Step, log *slog.Logger) error {
	var errs []error
	name := link.Attrs().Name
	for _, a := range s.Addrs {
		addr := &netlink.Addr{IPNet: ipNet(a.Prefix), Flags: a.Flags, Scope: a.Scope, Label: relabel(a.Label, s.Link, name), Broadcast: addrIP(a.Broadcast)}
		if addr.Broadcast == nil && a.Prefix.Addr().Is4() {
			// The netlink package makes one up for a nil broadcast
			// address; the unspecified one means none.
			addr.Broadcast = net.IPv4zero
		}
		if err := h.AddrAdd(link, addr); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("adding back %s: %w", a.Prefix, err))
		}
	}
	if slices.ContainsFunc(s.Routes, func(r RouteRecord) bool { return r.Src.Is6() }) {
		// A route may name an IPv6 source only once the address has left
		// duplicate address detection.
		if err := waitNotTentative(ctx, h, link, 5*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if err := removeNewKernelRoutes(h, link, s.KernelRoutes); err != nil {
		errs = append(errs, err)
	}
	// On-link routes first: the gateways of the others must be reachable.
	routes := slices.Clone(s.Routes)
	slices.SortStableFunc(routes, func(a, b RouteRecord) int {
		switch {
		case a.Gw.IsValid() == b.Gw.IsValid():
			return 0
		case a.Gw.IsValid():
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
func restoreRoute(h *netlink.Handle, link netlink.Link, r RouteRecord, log *slog.Logger) error {
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
		got := RouteRecordOf(e)
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
		p := RouteRecordOf(r)
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

// SetMAC gives link a new MAC, journaling the old one.
func (sc Scope) SetMAC(ctx context.Context, link netlink.Link, mac net.HardwareAddr) error {
	s := Step{Op: OpSetMAC, Link: link.Attrs().Name, MAC: sandbox.MAC(link.Attrs().HardwareAddr), NewMAC: sandbox.MAC(mac), Ref: RefOf(link)}
	return sc.Do(ctx, Planned{Step: s, Make: func() error { return sc.tx.k.H.LinkSetHardwareAddr(link, mac) }})
}

func undoSetMAC(h *netlink.Handle, link netlink.Link, s Step) error {
	if !bytes.Equal(link.Attrs().HardwareAddr, s.NewMAC) {
		return nil // changed since by someone else: theirs now
	}
	return h.LinkSetHardwareAddr(link, net.HardwareAddr(s.MAC))
}

// SetMaster enslaves link to master, journaling it.
func (sc Scope) SetMaster(ctx context.Context, link, master netlink.Link) error {
	s := Step{Op: OpSetMaster, Link: link.Attrs().Name, Master: master.Attrs().Name, Ref: RefOf(link)}
	return sc.Do(ctx, Planned{Step: s, Make: func() error { return sc.tx.k.H.LinkSetMaster(link, master) }})
}

func undoSetMaster(h *netlink.Handle, link netlink.Link, s Step) error {
	master, err := h.LinkByName(s.Master)
	if err != nil || link.Attrs().MasterIndex != master.Attrs().Index {
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
