package netbridge

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// tapPrefix starts every tap name netbridge chooses.
const tapPrefix = "nb-"

// tapNameFor returns the deterministic tap name of the interface named
// ifname: "nb-" + ifname when that fits in 15 bytes, else "nb-", the first
// 6 bytes of ifname, "-" and 5 hex digits of a hash of the whole name.
func tapNameFor(ifname string) string {
	if len(tapPrefix)+len(ifname) <= 15 {
		return tapPrefix + ifname
	}
	sum := sha256.Sum256([]byte(ifname))
	return tapPrefix + ifname[:6] + "-" + hex.EncodeToString(sum[:])[:5]
}

// tapName returns the tap name for ifname, checking that no link of the
// netns holds it already.
func tapName(ifs []Interface, ifname string) (string, error) {
	name := tapNameFor(ifname)
	for _, i := range ifs {
		if i.Name != name {
			continue
		}
		if i.Owner != "" {
			return "", fmt.Errorf("tap name %q for interface %q is taken by a tap netbridge made for sandbox %q that has no state record here (another --state-dir?); run teardown with that state dir, or delete it (ip link del %s) and its filters", name, ifname, i.Owner, name)
		}
		return "", fmt.Errorf("tap name %q for interface %q is taken by an existing %s link that netbridge did not create; rename or remove it", name, ifname, i.Kind)
	}
	return name, nil
}
