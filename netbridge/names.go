package netbridge

import (
	"crypto/sha256"
	"encoding/hex"
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
// whole name.
func nameFor(prefix, ifname string) string {
	if len(prefix)+len(ifname) <= 15 {
		return prefix + ifname
	}
	sum := sha256.Sum256([]byte(ifname))
	return prefix + ifname[:15-len(prefix)-6] + "-" + hex.EncodeToString(sum[:])[:5]
}
