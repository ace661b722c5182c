package journal

import (
	"context"
	"net"

	"github.com/vishvananda/netlink"

	"github.com/netbridge/netbridge/netbridge/internal/linkchange"
	"github.com/netbridge/netbridge/sandbox"
)

// This file journals the changes netbridge makes to links it does not own
// (the CNI interface), with what each takes away (package linkchange), so
// that undo can give it back.

// KeepNeighbors journals the permanent neighbour entries of link (such as
// Calico's 169.254.1.1), because the kernel drops every neighbour entry of
// a link whose MAC changes or which loses its last IPv4 address. The step
// creates nothing; its undo, which runs after the MAC and the addresses are
// back, adds back the entries that are missing.
func (sc Scope) KeepNeighbors(ctx context.Context, link netlink.Link) error {
	neighs, err := linkchange.Neighbors(sc.tx.k.H, link)
	if err != nil || len(neighs) == 0 {
		return err
	}
	s := Step{Op: OpKeepNeighbors, Link: link.Attrs().Name, Ref: RefOf(link), Neighs: neighs}
	return sc.Do(ctx, Planned{Step: s, Make: func() error { return nil }})
}

// RemoveAddresses removes every address of link but IPv6 link-local ones,
// journaling them and the routes through link that the kernel drops with
// them.
func (sc Scope) RemoveAddresses(ctx context.Context, link netlink.Link) error {
	h := sc.tx.k.H
	a, err := linkchange.ReadAddresses(h, link)
	if err != nil || a == nil {
		return err
	}
	s := Step{Op: OpRemoveAddrs, Link: link.Attrs().Name, Ref: RefOf(link), Addrs: a.Addrs, Routes: a.Routes, KernelRoutes: a.KernelRoutes}
	return sc.Do(ctx, Planned{Step: s, Make: func() error { return a.Remove(h, link) }})
}

// SetMAC gives link a new MAC, journaling the old one.
func (sc Scope) SetMAC(ctx context.Context, link netlink.Link, mac net.HardwareAddr) error {
	s := Step{Op: OpSetMAC, Link: link.Attrs().Name, MAC: sandbox.MAC(link.Attrs().HardwareAddr), NewMAC: sandbox.MAC(mac), Ref: RefOf(link)}
	return sc.Do(ctx, Planned{Step: s, Make: func() error { return sc.tx.k.H.LinkSetHardwareAddr(link, mac) }})
}

// SetMaster enslaves link to master, journaling it.
func (sc Scope) SetMaster(ctx context.Context, link, master netlink.Link) error {
	s := Step{Op: OpSetMaster, Link: link.Attrs().Name, Master: master.Attrs().Name, Ref: RefOf(link)}
	return sc.Do(ctx, Planned{Step: s, Make: func() error { return sc.tx.k.H.LinkSetMaster(link, master) }})
}
