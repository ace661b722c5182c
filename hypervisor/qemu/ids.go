package qemu

import (
	"strconv"
	"strings"

	"github.com/netbridge/netbridge/netbridge"
)

// Prefixes of the ids this package gives QEMU objects. Both start with a
// letter, so every id built from them is well-formed whatever follows.
const (
	netdevPrefix = "net-"
	devicePrefix = "nic-"
)

// NetdevID returns the id of the -netdev backend of nics[i]: "net-" followed
// by the NIC's id base (see [DeviceID]). It panics if i is out of range, like
// indexing nics would.
func NetdevID(nics []netbridge.NIC, i int) string {
	return netdevPrefix + idBases(nics)[i]
}

// DeviceID returns the id of the guest device of nics[i]: "nic-" followed by
// the NIC's id base. The base is the NIC's Name with every character that QEMU
// does not accept in an id (anything but ASCII letters, digits, '-', '.' and
// '_') replaced by '_', or "if<i>" when the Name is empty. When two NICs would
// get the same base, a NIC whose Name needed no change keeps it and the others
// get "-2", "-3", ... appended in list order, skipping bases already taken.
// The ids therefore depend only on the list of names, so hot-plug code can
// recompute them from the same list. It panics if i is out of range.
func DeviceID(nics []netbridge.NIC, i int) string {
	return devicePrefix + idBases(nics)[i]
}

// idBases returns the unique id base of every NIC of nics, in order.
func idBases(nics []netbridge.NIC) []string {
	bases := make([]string, len(nics))
	taken := make(map[string]bool, len(nics))
	// First pass: names that are valid ids as they are keep their name, the
	// first holder of a duplicated name wins.
	for i, n := range nics {
		if n.Name != "" && sanitize(n.Name) == n.Name && !taken[n.Name] {
			bases[i] = n.Name
			taken[n.Name] = true
		}
	}
	// Second pass: everything else, in list order.
	for i, n := range nics {
		if bases[i] != "" {
			continue
		}
		base := sanitize(n.Name)
		if base == "" {
			base = "if" + strconv.Itoa(i)
		}
		candidate := base
		for k := 2; taken[candidate]; k++ {
			candidate = base + "-" + strconv.Itoa(k)
		}
		bases[i] = candidate
		taken[candidate] = true
	}
	return bases
}

// sanitize replaces every byte of s that is not allowed in a QEMU id by '_'.
// A multi-byte UTF-8 character becomes a single '_'.
func sanitize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if idChar(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// idChar reports whether QEMU accepts r after the first character of an id.
func idChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		r == '-' || r == '.' || r == '_'
}

// validID reports whether s is a well-formed QEMU id: a letter followed by
// letters, digits, '-', '.' and '_'.
func validID(s string) bool {
	if s == "" {
		return false
	}
	c := s[0]
	if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
		return false
	}
	for _, r := range s {
		if !idChar(r) {
			return false
		}
	}
	return true
}
