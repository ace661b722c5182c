package journal

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/netbridge/netbridge/netbridge/internal/linkchange"
	"github.com/netbridge/netbridge/sandbox"
)

// Op is what a step did.
type Op string

// Step operations.
const (
	OpTap         Op = "create-tap"       // a tap device named Link
	OpBridge      Op = "create-bridge"    // a bridge named Link
	OpMacvtap     Op = "create-macvtap"   // a macvtap named Link
	OpDevice      Op = "create-device"    // a private device node at Path
	OpQdisc       Op = "add-qdisc"        // an ingress qdisc on Link
	OpFilter      Op = "add-filter"       // the filters of priority Prio on Link at Parent
	OpSetMAC      Op = "set-mac"          // Link's MAC changed from MAC to NewMAC
	OpRemoveAddrs Op = "remove-addresses" // Addrs removed from Link, and Routes with them
	OpSetMaster   Op = "set-master"       // Link enslaved to Master
	// OpKeepNeighbors records Link's permanent neighbours (Neighs), which
	// the kernel drops with a MAC change or the last IPv4 address.
	OpKeepNeighbors Op = "keep-neighbors"
)

// Link kinds, as the kernel names them, of the links netbridge creates.
const (
	KindTuntap  = "tuntap"
	KindBridge  = "bridge"
	KindMacvtap = "macvtap"
)

// LinkKind returns the kind of link o creates, "" when it creates none.
func (o Op) LinkKind() string {
	switch o {
	case OpTap:
		return KindTuntap
	case OpBridge:
		return KindBridge
	case OpMacvtap:
		return KindMacvtap
	}
	return ""
}

// Creates reports whether o creates a link.
func (o Op) Creates() bool { return o.LinkKind() != "" }

// Step is one journal entry. It is written before its object is created
// (Done false) and marked done once it exists; a crash in between leaves an
// entry whose object may or may not exist, and undo handles both.
type Step struct {
	Op     Op                 `json:"op"`
	Link   string             `json:"link"`
	Parent uint32             `json:"parent,omitempty"`
	Prio   uint16             `json:"prio,omitempty"`
	MAC    sandbox.MAC        `json:"mac,omitempty"`
	NewMAC sandbox.MAC        `json:"new_mac,omitempty"`
	Addrs  []linkchange.Addr  `json:"addrs,omitempty"`
	Routes []linkchange.Route `json:"routes,omitempty"`
	// KernelRoutes are the destinations of the kernel's prefix routes on
	// Link when its addresses were removed.
	KernelRoutes []netip.Prefix     `json:"kernel_routes,omitempty"`
	Master       string             `json:"master,omitempty"`
	Neighs       []linkchange.Neigh `json:"neighs,omitempty"`
	Path         string             `json:"path,omitempty"`
	// DevNum is the device number ("major:minor") of the node at Path,
	// recorded at its creation: only that device is removed. Records
	// written before it lack it.
	DevNum string `json:"devnum,omitempty"`
	// Iface is the CNI interface whose wiring the step is part of.
	Iface string `json:"iface,omitempty"`
	// Ref identifies Link beyond its name: the CNI interface as it was
	// when the step was journaled, or the link a create step made, once
	// made. Undo follows it through a rename and leaves alone a link that
	// merely took its name. Records of netbridge before version 1.1 (of
	// the format) lack it; undo then takes the NICs' indexes.
	Ref *LinkRef `json:"ref,omitempty"`
	// Tmp is the name a create-tap step creates its tap under, before
	// the tap gets its tag and its name Link in one request: a tap of
	// that name is ours even untagged (made by a setup interrupted in
	// between).
	Tmp string `json:"tmp,omitempty"`
	// TxQLen is Link's txqueuelen before an add-qdisc step: the kernel
	// raises a txqueuelen of 0 to 1000 when an ingress qdisc is added,
	// and undo lowers it again.
	TxQLen *int `json:"txqlen,omitempty"`
	Done   bool `json:"done"`
}

// LinkRef identifies a link of the sandbox netns: its ifindex, which the
// kernel does not give to another link while it exists and keeps through
// a rename or a move out and back, and, against a link of another netns
// moved in under the same ifindex, its kind and parent (IFLA_LINK: a veth's
// peer, a macvlan's lower device).
type LinkRef struct {
	Index  int    `json:"index"`
	Kind   string `json:"kind,omitempty"`
	Parent int    `json:"parent,omitempty"`
}

// RefOf returns what identifies l.
func RefOf(l netlink.Link) *LinkRef {
	a := l.Attrs()
	return &LinkRef{Index: a.Index, Kind: l.Type(), Parent: a.ParentIndex}
}

// Is reports whether l is the link r identifies.
func (r *LinkRef) Is(l netlink.Link) bool {
	a := l.Attrs()
	return a.Index == r.Index && (r.Kind == "" || l.Type() == r.Kind) && (r.Parent == 0 || a.ParentIndex == r.Parent)
}

// String says what s does, for messages: "creating tap \"nb-eth0\"".
func (s Step) String() string {
	switch s.Op {
	case OpTap:
		return fmt.Sprintf("creating tap %q", s.Link)
	case OpQdisc:
		return fmt.Sprintf("adding the ingress qdisc of %q", s.Link)
	case OpFilter:
		return fmt.Sprintf("adding the redirect filter on %q (prio %d)", s.Link, s.Prio)
	case OpBridge:
		return fmt.Sprintf("creating bridge %q", s.Link)
	case OpMacvtap:
		return fmt.Sprintf("creating macvtap %q", s.Link)
	case OpDevice:
		return fmt.Sprintf("creating device node %s", s.Path)
	case OpSetMAC:
		return fmt.Sprintf("changing the MAC of %q from %s to %s", s.Link, s.MAC, s.NewMAC)
	case OpRemoveAddrs:
		return fmt.Sprintf("moving the %d addresses of %q to the guest", len(s.Addrs), s.Link)
	case OpSetMaster:
		return fmt.Sprintf("attaching %q to %q", s.Link, s.Master)
	case OpKeepNeighbors:
		return fmt.Sprintf("recording the %d permanent neighbours of %q", len(s.Neighs), s.Link)
	}
	return fmt.Sprintf("%s on %q", s.Op, s.Link)
}
