package netbridge

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/pkg/linkname"
)

// Prefixes of the names netbridge gives the links it creates.
const (
	tapPrefix     = "nb-"
	bridgePrefix  = "nbr-"
	macvtapPrefix = "nbm-"
)

// nameFor returns the deterministic name of a link made for the interface
// named ifname: prefix + ifname when that fits in 15 bytes (IFNAMSIZ-1),
// else prefix, the start of ifname, "-" and 5 hex digits of a hash of the
// whole name. The start of ifname ends between two characters, never inside
// one (it is shorter then), so that a valid UTF-8 ifname gives a valid UTF-8
// name.
func nameFor(prefix, ifname string) string {
	if len(prefix)+len(ifname) <= linkname.MaxLen {
		return prefix + ifname
	}
	sum := sha256.Sum256([]byte(ifname))
	return prefix + linkname.Cut(ifname, linkname.MaxLen-len(prefix)-6) + "-" + hex.EncodeToString(sum[:])[:5]
}

// deviceName returns the name of the device the hypervisor opens for
// interface ifname (the tap, or the macvtap): the name the request gives,
// or the one nameFor derives.
func (tx *txn) deviceName(prefix, ifname string) string {
	return deviceName(tx.req, prefix, ifname)
}

// deviceName is the name of the device the hypervisor opens for interface
// ifname, wired as req asks.
func deviceName(req journal.Request, prefix, ifname string) string {
	if req.TapName != "" {
		return req.TapName
	}
	return nameFor(prefix, ifname)
}
