package netbridge

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/pkg/sysfs"
	"github.com/netbridge/netbridge/sandbox"
)

// bridge joins interface and tap in a Linux bridge of their own, as Clear
// Containers did. The interface must not keep the guest's MAC, or it would
// answer ARP for the guest itself: it gets a derived MAC, the guest gets the
// original, and the interface's addresses move to the guest. Equivalent to:
//
//	ip link add nbr-eth0 type bridge mcast_snooping 0 stp_state 0 forward_delay 0
//	ip addr flush dev eth0; ip link set eth0 address DERIVED master nbr-eth0
//	ip link set nb-eth0 master nbr-eth0; ip link set nbr-eth0 up
type bridge struct{}

func (bridge) name() Model                           { return ModelBridge }
func (bridge) supports(ifc *sandbox.Interface) error { return supportsKind(ModelBridge, ifc) }

func (bridge) wire(tx *txn, nic *NIC) error {
	if err := tx.createTap(nic); err != nil {
		return err
	}
	nic.Bridge = nameFor(bridgePrefix, nic.Name)
	if err := tx.nameFree(nic.Bridge, nic.Name); err != nil {
		return err
	}
	la := netlink.NewLinkAttrs()
	la.Name, la.MTU = nic.Bridge, nic.MTU
	snooping := false
	br := &netlink.Bridge{LinkAttrs: la, MulticastSnooping: &snooping}
	if err := tx.createLink(journal.OpBridge, br); err != nil {
		return err
	}
	brLink, err := tx.h.LinkByName(nic.Bridge)
	if err != nil {
		return fmt.Errorf("looking up bridge %q: %w", nic.Bridge, err)
	}
	// No spanning tree (the default) and no forwarding delay: the ports
	// forward at once. netlink has no attribute for the delay, so it is
	// written through a sysfs of the netns.
	err = sysfs.Do(tx.netnsFd, true, func(root string) error {
		return os.WriteFile(filepath.Join(root, "class/net", nic.Bridge, "bridge/forward_delay"), []byte("0"), 0)
	})
	if err != nil {
		return fmt.Errorf("setting the forward delay of bridge %q to 0: %w", nic.Bridge, err)
	}
	iface, err := tx.h.LinkByName(nic.Name)
	if err != nil {
		return fmt.Errorf("looking up %q: %w", nic.Name, err)
	}
	if err := tx.keepNeighbors(iface); err != nil {
		return err
	}
	if err := tx.removeAddresses(iface); err != nil {
		return err
	}
	if err := tx.setMAC(iface, net.HardwareAddr(nic.HostMAC)); err != nil {
		return err
	}
	if err := tx.setMaster(iface, brLink); err != nil {
		return err
	}
	tapLink, err := tx.h.LinkByName(nic.Tap)
	if err != nil {
		return fmt.Errorf("looking up tap %q: %w", nic.Tap, err)
	}
	if err := tx.setMaster(tapLink, brLink); err != nil {
		return err
	}
	if err := tx.h.LinkSetUp(brLink); err != nil {
		return fmt.Errorf("bringing bridge %q up: %w", nic.Bridge, err)
	}
	return nil
}

func (bridge) check(c *checker, nic *NIC) {
	c.tap(nic)
	br := c.owned(nic.Bridge, "bridge")
	if br == nil {
		return
	}
	c.up(br)
	for _, port := range []string{nic.Name, nic.Tap} {
		if l := c.link(port); l != nil && l.Attrs().MasterIndex != br.Attrs().Index {
			c.problem("%s: not attached to bridge %s", port, nic.Bridge)
		}
	}
	c.hostMAC(nic)
}
