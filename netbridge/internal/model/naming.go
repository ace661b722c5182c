package model

import (
	"crypto/sha256"
	"encoding/hex"
	"net"

	"github.com/netbridge/netbridge/netbridge/internal/netview"
	"github.com/netbridge/netbridge/pkg/linkname"
	"github.com/netbridge/netbridge/pkg/macaddr"
	"github.com/netbridge/netbridge/pkg/state"
	"github.com/netbridge/netbridge/sandbox"
)

// Prefixes of the names netbridge gives the links it creates.
const (
	TapPrefix     = "nb-"
	BridgePrefix  = "nbr-"
	MacvtapPrefix = "nbm-"
)

// NameFor returns the deterministic name of a link made for the interface
// named ifname: prefix + ifname when that fits in 15 bytes (IFNAMSIZ-1),
// else prefix, the start of ifname, "-" and 5 hex digits of a hash of the
// whole name. The start of ifname ends between two characters, never inside
// one (it is shorter then), so that a valid UTF-8 ifname gives a valid UTF-8
// name.
func NameFor(prefix, ifname string) string {
	if len(prefix)+len(ifname) <= linkname.MaxLen {
		return prefix + ifname
	}
	sum := sha256.Sum256([]byte(ifname))
	return prefix + linkname.Cut(ifname, linkname.MaxLen-len(prefix)-6) + "-" + hex.EncodeToString(sum[:])[:5]
}

// Naming names the links made for the interfaces of one sandbox, and
// derives their MACs, free in its netns.
type Naming struct {
	id      string
	tapName string
	view    *netview.View
	st      *state.Store
	macs    map[string]bool // every MAC in the netns, and those derived so far
}

// NewNaming returns the naming of sandbox id in the netns v shows; tapName
// is the request's name of the device the hypervisor opens ("": derived
// ones), st where the owner of a link of a taken name is looked for.
func NewNaming(id, tapName string, v *netview.View, st *state.Store) *Naming {
	n := &Naming{id: id, tapName: tapName, view: v, st: st, macs: map[string]bool{}}
	for _, l := range v.Links {
		n.macs[l.MAC.String()] = true
	}
	return n
}

// ID returns the sandbox id.
func (n *Naming) ID() string { return n.id }

// Device returns the name of the device the hypervisor opens for interface
// ifname (the tap, or the macvtap): the name the request gives, or the one
// NameFor derives with prefix.
func (n *Naming) Device(prefix, ifname string) string {
	if n.tapName != "" {
		return n.tapName
	}
	return NameFor(prefix, ifname)
}

// Free checks that no link of the netns is called name, which netbridge
// would create for interface ifname.
func (n *Naming) Free(name, ifname string) error {
	return n.view.NameFree(name, ifname, n.id, n.st, nil)
}

// MAC derives the MAC of interface ifname's object named purpose, free in
// the netns.
func (n *Naming) MAC(ifname, purpose string) sandbox.MAC {
	mac := macaddr.DeriveFree(n.id+"/"+ifname+"/"+purpose, func(m net.HardwareAddr) bool { return n.macs[m.String()] })
	n.macs[mac.String()] = true
	return sandbox.MAC(mac)
}
