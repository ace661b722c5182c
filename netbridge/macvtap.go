package netbridge

import (
	"fmt"
	"net"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/pkg/macvtap"
	"github.com/netbridge/netbridge/sandbox"
)

// macvtapModel puts a macvtap on the interface, as Kata's macvtap mode
// does. The guest's queues are opened from a private device node under the
// state directory, never from the host's /dev/tapN, whose name is the
// ifindex inside the netns and can clash across sandboxes. In bridge mode
// the macvtap takes the interface's MAC for the guest and the interface
// gets a derived one; in passthru mode the macvtap takes over the
// interface, MAC included. Either way the addresses move to the guest.
// Equivalent to:
//
//	ip addr flush dev eth0; ip link set eth0 address DERIVED
//	ip link add link eth0 name nbm-eth0 address ORIGINAL type macvtap mode bridge
//	ip link set nbm-eth0 allmulticast on up
//	mknod STATEDIR/ID.dev/nbm-eth0 c MAJOR MINOR
type macvtapModel struct{}

func (macvtapModel) name() Model                           { return ModelMacvtap }
func (macvtapModel) supports(ifc *sandbox.Interface) error { return supportsKind(ModelMacvtap, ifc) }

func (macvtapModel) wire(tx *txn, nic *NIC) error {
	nic.MacvtapMode = tx.cfg.MacvtapMode
	if nic.MacvtapMode == "" {
		nic.MacvtapMode = MacvtapBridge
	}
	nic.Tap = tx.deviceName(macvtapPrefix, nic.Name)
	if err := tx.nameFree(nic.Tap, nic.Name); err != nil {
		return err
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
	mode := netlink.MACVLAN_MODE_BRIDGE
	if nic.MacvtapMode == MacvtapPassthru {
		mode = netlink.MACVLAN_MODE_PASSTHRU
		nic.HostMAC = nil // the interface keeps its MAC; the macvtap shares it
	} else if err := tx.setMAC(iface, net.HardwareAddr(nic.HostMAC)); err != nil {
		return err
	}
	la := netlink.NewLinkAttrs()
	la.Name, la.ParentIndex, la.MTU = nic.Tap, nic.Index, nic.MTU
	la.HardwareAddr = net.HardwareAddr(nic.GuestMAC)
	la.TxQLen = 1000
	if nic.Queues > 1 {
		la.NumTxQueues, la.NumRxQueues = nic.Queues, nic.Queues
	}
	mvt := &netlink.Macvtap{Macvlan: netlink.Macvlan{LinkAttrs: la, Mode: mode}}
	if err := tx.createLink(journal.OpMacvtap, mvt); err != nil {
		return err
	}
	link, err := tx.h.LinkByName(nic.Tap)
	if err != nil {
		return fmt.Errorf("looking up macvtap %q: %w", nic.Tap, err)
	}
	nic.TapIndex, nic.TapMAC = link.Attrs().Index, MAC(link.Attrs().HardwareAddr)
	// A macvtap passes on only the multicast groups its own address list
	// holds, and the guest's joins never reach it: without allmulticast the
	// guest misses IPv6 neighbour solicitations (solicited-node multicast)
	// and is unreachable over IPv6.
	if err := tx.h.LinkSetAllmulticastOn(link); err != nil {
		return fmt.Errorf("turning allmulticast on for macvtap %q: %w", nic.Tap, err)
	}
	if err := tx.h.LinkSetUp(link); err != nil {
		return fmt.Errorf("bringing macvtap %q up: %w", nic.Tap, err)
	}
	dev, err := macvtap.Lookup(tx.netnsFd, nic.Tap, nic.TapIndex)
	if err != nil {
		return err
	}
	nic.Device = filepath.Join(tx.st.Dir(), tx.id+".dev", nic.Tap)
	err = tx.create(journal.Step{Op: journal.OpDevice, Path: nic.Device, DevNum: dev.String()}, func() error { return macvtap.MakeNode(nic.Device, dev) })
	if err != nil {
		return err
	}
	if tx.cfg.HoldFDs {
		return tx.openQueues(nic)
	}
	return nil
}

func (macvtapModel) check(c *checker, nic *NIC) {
	l := c.owned(nic.Tap, "macvtap")
	if l == nil {
		return
	}
	c.up(l)
	if l.Attrs().RawFlags&unix.IFF_ALLMULTI == 0 {
		c.problem("%s: allmulticast is off (the guest would miss IPv6 neighbour solicitations)", nic.Tap)
	}
	if iface := c.link(nic.Name); iface != nil && l.Attrs().ParentIndex != iface.Attrs().Index {
		c.problem("%s: not on %s", nic.Tap, nic.Name)
	}
	if l.Attrs().HardwareAddr.String() != nic.GuestMAC.String() {
		c.problem("%s: MAC is %s, want the guest's %s", nic.Tap, l.Attrs().HardwareAddr, nic.GuestMAC)
	}
	c.hostMAC(nic)
	want, err := macvtap.Lookup(c.netnsFd, nic.Tap, l.Attrs().Index)
	if err != nil {
		c.problem("%s: %v", nic.Tap, err)
		return
	}
	if got, err := macvtap.NodeDevice(nic.Device); err != nil || got != want {
		c.problem("%s: device node %s is %v (%v), want %s", nic.Tap, nic.Device, got, err, want)
	}
}
