// Package macvtap is the macvtap model: it puts a macvtap on the
// interface, as Kata's macvtap mode does. The guest's queues are opened
// from a private device node under the state directory, never from the
// host's /dev/tapN, whose name is the ifindex inside the netns and can
// clash across sandboxes. In bridge mode the macvtap takes the interface's
// MAC for the guest and the interface gets a derived one; in passthru mode
// the macvtap takes over the interface, MAC included. Either way the
// addresses move to the guest. Equivalent to:
//
//	ip addr flush dev eth0; ip link set eth0 address DERIVED
//	ip link add link eth0 name nbm-eth0 address ORIGINAL type macvtap mode bridge
//	ip link set nbm-eth0 allmulticast on up
//	mknod STATEDIR/ID.dev/nbm-eth0 c MAJOR MINOR
package macvtap

import (
	"context"
	"fmt"
	"net"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/netbridge/internal/model"
	"github.com/netbridge/netbridge/pkg/macvtap"
	"github.com/netbridge/netbridge/pkg/probe"
	"github.com/netbridge/netbridge/sandbox"
)

// Model is the macvtap model.
type Model struct{}

// Name returns sandbox.ModelMacvtap.
func (Model) Name() sandbox.Model { return sandbox.ModelMacvtap }

// Carries says that the model carries veths, without a tap.
func (Model) Carries() model.Carriage {
	return model.Carriage{
		Kinds: []model.Kind{model.KindVeth},
		Refused: map[model.Kind]string{
			model.KindMacvlan: "a macvtap on a macvlan attaches to the macvlan's parent, outside this netns: use tcfilter",
			model.KindIpvlan:  "a macvtap cannot sit on an ipvlan, which shares its parent's MAC: use tcfilter",
		},
	}
}

// Missing returns macvtap when f lacks it.
func (Model) Missing(f probe.Features) []string { return f.Missing(probe.Macvtap) }

// Makes returns the name of the macvtap.
func (Model) Makes(n *model.Naming, ifname string) []string {
	return []string{n.Device(model.MacvtapPrefix, ifname)}
}

// Wire moves the interface's addresses to the guest (and, in bridge mode,
// its MAC aside), makes the macvtap and its device node, and opens its
// queues when the caller holds fds.
func (Model) Wire(ctx context.Context, j *model.Job) error {
	nic, sc := j.NIC, j.Steps
	nic.MacvtapMode = j.Opts.MacvtapMode
	if nic.MacvtapMode == "" {
		nic.MacvtapMode = sandbox.MacvtapBridge
	}
	nic.Tap = j.Names.Device(model.MacvtapPrefix, nic.Name)
	if err := j.Names.Free(nic.Tap, nic.Name); err != nil {
		return err
	}
	iface, err := sc.Netns().H.LinkByName(nic.Name)
	if err != nil {
		return fmt.Errorf("looking up %q: %w", nic.Name, err)
	}
	if err := sc.KeepNeighbors(ctx, iface); err != nil {
		return err
	}
	if err := sc.RemoveAddresses(ctx, iface); err != nil {
		return err
	}
	mode := netlink.MACVLAN_MODE_PASSTHRU // the interface keeps its MAC; the macvtap shares it
	if nic.MacvtapMode != sandbox.MacvtapPassthru {
		mode = netlink.MACVLAN_MODE_BRIDGE
		nic.HostMAC = j.Names.MAC(nic.Name, "host")
		if err := sc.SetMAC(ctx, iface, net.HardwareAddr(nic.HostMAC)); err != nil {
			return err
		}
	}
	if err := makeMacvtap(ctx, j, mode); err != nil {
		return err
	}
	if err := makeNode(ctx, j); err != nil {
		return err
	}
	if j.Opts.HoldFDs {
		return model.OpenQueues(sc.Netns().H, nic)
	}
	return nil
}

// makeMacvtap creates the job's macvtap in mode on the interface, with the
// guest's MAC, and brings it up with allmulticast on.
func makeMacvtap(ctx context.Context, j *model.Job, mode netlink.MacvlanMode) error {
	nic, h := j.NIC, j.Steps.Netns().H
	la := netlink.NewLinkAttrs()
	la.Name, la.ParentIndex, la.MTU = nic.Tap, nic.Index, nic.MTU
	la.HardwareAddr = net.HardwareAddr(nic.GuestMAC)
	la.TxQLen = 1000
	if nic.Queues > 1 {
		la.NumTxQueues, la.NumRxQueues = nic.Queues, nic.Queues
	}
	mvt := &netlink.Macvtap{Macvlan: netlink.Macvlan{LinkAttrs: la, Mode: mode}}
	if err := j.Steps.CreateLink(ctx, journal.OpMacvtap, mvt); err != nil {
		return err
	}
	link, err := h.LinkByName(nic.Tap)
	if err != nil {
		return fmt.Errorf("looking up macvtap %q: %w", nic.Tap, err)
	}
	nic.TapIndex, nic.TapMAC = link.Attrs().Index, sandbox.MAC(link.Attrs().HardwareAddr)
	// A macvtap passes on only the multicast groups its own address list
	// holds, and the guest's joins never reach it: without allmulticast the
	// guest misses IPv6 neighbour solicitations (solicited-node multicast)
	// and is unreachable over IPv6.
	if err := h.LinkSetAllmulticastOn(link); err != nil {
		return fmt.Errorf("turning allmulticast on for macvtap %q: %w", nic.Tap, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("bringing macvtap %q up: %w", nic.Tap, err)
	}
	return nil
}

// makeNode makes the private device node of the job's macvtap in the
// sandbox's node directory, journaled with its device number.
func makeNode(ctx context.Context, j *model.Job) error {
	nic := j.NIC
	dev, err := macvtap.Lookup(j.Steps.Netns().Fd(), nic.Tap, nic.TapIndex)
	if err != nil {
		return err
	}
	nic.Device = filepath.Join(j.Opts.NodeDir, nic.Tap)
	s := journal.Step{Op: journal.OpDevice, Path: nic.Device, DevNum: dev.String()}
	return j.Steps.Do(ctx, journal.Planned{Step: s, Make: func() error { return macvtap.MakeNode(nic.Device, dev) }})
}

// Check checks the macvtap, its place, MAC and flags, the interface's MAC,
// and the device node.
func (Model) Check(c *model.Checker, nic *sandbox.NIC) {
	l := c.Owned(nic.Tap, journal.KindMacvtap)
	if l == nil {
		return
	}
	c.Up(l)
	if l.Attrs().RawFlags&unix.IFF_ALLMULTI == 0 {
		c.Problem("%s: allmulticast is off (the guest would miss IPv6 neighbour solicitations)", nic.Tap)
	}
	if iface := c.Link(nic.Name); iface != nil && l.Attrs().ParentIndex != iface.Attrs().Index {
		c.Problem("%s: not on %s", nic.Tap, nic.Name)
	}
	if l.Attrs().HardwareAddr.String() != nic.GuestMAC.String() {
		c.Problem("%s: MAC is %s, want the guest's %s", nic.Tap, l.Attrs().HardwareAddr, nic.GuestMAC)
	}
	c.HostMAC(nic)
	want, err := macvtap.Lookup(c.NetnsFd(), nic.Tap, l.Attrs().Index)
	if err != nil {
		c.Problem("%s: %v", nic.Tap, err)
		return
	}
	if got, err := macvtap.NodeDevice(nic.Device); err != nil || got != want {
		c.Problem("%s: device node %s is %v (%v), want %s", nic.Tap, nic.Device, got, err, want)
	}
}
