package netbridge

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
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

// deviceName returns the name of the device the hypervisor opens for
// interface ifname (the tap, or the macvtap): the name the request gives,
// or the one nameFor derives.
func (tx *txn) deviceName(prefix, ifname string) string {
	if tx.req.TapName != "" {
		return tx.req.TapName
	}
	return nameFor(prefix, ifname)
}

// validLinkName reports why name cannot name a link, or nil: the kernel
// takes 1 to 15 bytes, not "." or "..", without '/', ':' or white space.
func validLinkName(name string) error {
	switch {
	case name == "" || len(name) > 15:
		return fmt.Errorf("link name %q must be 1 to 15 bytes", name)
	case name == "." || name == "..":
		return fmt.Errorf("link name %q is not allowed", name)
	case strings.ContainsAny(name, "/: \t\n\v\f\r"):
		return fmt.Errorf("link name %q must not contain '/', ':' or white space", name)
	}
	return nil
}
