// Package bridge is the bridge model: it joins interface and tap in a
// Linux bridge of their own, as Clear Containers did. The interface must
// not keep the guest's MAC, or it would answer ARP for the guest itself: it
// gets a derived MAC, the guest gets the original, and the interface's
// addresses move to the guest. Equivalent to:
//
//	ip link add nbr-eth0 type bridge mcast_snooping 0 stp_state 0 forward_delay 0
//	ip addr flush dev eth0; ip link set eth0 address DERIVED master nbr-eth0
//	ip link set nb-eth0 master nbr-eth0; ip link set nbr-eth0 up
package bridge

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/netbridge/internal/model"
	"github.com/netbridge/netbridge/pkg/probe"
	"github.com/netbridge/netbridge/pkg/sysfs"
	"github.com/netbridge/netbridge/sandbox"
)

// Model is the bridge model.
type Model struct{}

// Name returns sandbox.ModelBridge.
func (Model) Name() sandbox.Model { return sandbox.ModelBridge }

// Carries says that the model carries veths, through a tap.
func (Model) Carries() model.Carriage {
	return model.Carriage{
		Kinds: []model.Kind{model.KindVeth},
		Refused: map[model.Kind]string{
			model.KindMacvlan: "a macvlan only receives frames for its own MAC, and the bridge model moves that MAC to the guest: use tcfilter",
			model.KindIpvlan:  "an ipvlan shares its parent's MAC and cannot carry the guest's frames through a bridge: use tcfilter",
		},
		OnTap: true,
	}
}

// Missing returns what of tun and bridge f lacks.
func (Model) Missing(f probe.Features) []string { return f.Missing(probe.Tun, probe.Bridge) }

// Makes returns the names of the tap and the bridge.
func (Model) Makes(n *model.Naming, ifname string) []string {
	return []string{n.Device(model.TapPrefix, ifname), model.NameFor(model.BridgePrefix, ifname)}
}

// Wire makes the tap and the bridge, and moves the interface's addresses
// to the guest and its MAC aside.
func (Model) Wire(ctx context.Context, j *model.Job) error {
	nic, sc := j.NIC, j.Steps
	h := sc.Netns().H
	nic.HostMAC = j.Names.MAC(nic.Name, "host")
	if err := model.CreateTap(ctx, j); err != nil {
		return err
	}
	br, err := makeBridge(ctx, j)
	if err != nil {
		return err
	}
	iface, err := h.LinkByName(nic.Name)
	if err != nil {
		return fmt.Errorf("looking up %q: %w", nic.Name, err)
	}
	if err := sc.KeepNeighbors(ctx, iface); err != nil {
		return err
	}
	if err := sc.RemoveAddresses(ctx, iface); err != nil {
		return err
	}
	if err := sc.SetMAC(ctx, iface, net.HardwareAddr(nic.HostMAC)); err != nil {
		return err
	}
	if err := sc.SetMaster(ctx, iface, br); err != nil {
		return err
	}
	tapLink, err := h.LinkByName(nic.Tap)
	if err != nil {
		return fmt.Errorf("looking up tap %q: %w", nic.Tap, err)
	}
	if err := sc.SetMaster(ctx, tapLink, br); err != nil {
		return err
	}
	if err := h.LinkSetUp(br); err != nil {
		return fmt.Errorf("bringing bridge %q up: %w", nic.Bridge, err)
	}
	return nil
}

// makeBridge creates the job's bridge, without spanning tree (the default)
// and without forwarding delay: the ports forward at once.
func makeBridge(ctx context.Context, j *model.Job) (netlink.Link, error) {
	nic, k := j.NIC, j.Steps.Netns()
	nic.Bridge = model.NameFor(model.BridgePrefix, nic.Name)
	if err := j.Names.Free(nic.Bridge, nic.Name); err != nil {
		return nil, err
	}
	la := netlink.NewLinkAttrs()
	la.Name, la.MTU = nic.Bridge, nic.MTU
	snooping := false
	if err := j.Steps.CreateLink(ctx, journal.OpBridge, &netlink.Bridge{LinkAttrs: la, MulticastSnooping: &snooping}); err != nil {
		return nil, err
	}
	br, err := k.H.LinkByName(nic.Bridge)
	if err != nil {
		return nil, fmt.Errorf("looking up bridge %q: %w", nic.Bridge, err)
	}
	// netlink has no attribute for the forwarding delay, so it is written
	// through a sysfs of the netns.
	err = sysfs.Do(k.Fd(), true, func(root string) error {
		return os.WriteFile(filepath.Join(root, "class/net", nic.Bridge, "bridge/forward_delay"), []byte("0"), 0)
	})
	if err != nil {
		return nil, fmt.Errorf("setting the forward delay of bridge %q to 0: %w", nic.Bridge, err)
	}
	return br, nil
}

// Check checks the tap, the bridge and its ports, and the interface's MAC.
func (Model) Check(c *model.Checker, nic *sandbox.NIC) {
	c.Tap(nic)
	br := c.Owned(nic.Bridge, journal.KindBridge)
	if br == nil {
		return
	}
	c.Up(br)
	for _, port := range []string{nic.Name, nic.Tap} {
		if l := c.Link(port); l != nil && l.Attrs().MasterIndex != br.Attrs().Index {
			c.Problem("%s: not attached to bridge %s", port, nic.Bridge)
		}
	}
	c.HostMAC(nic)
}
