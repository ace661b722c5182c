// Package nicdata holds what the renderers share about the NICs they
// render beyond the data's own checks (package sandbox): how a NIC is named
// in a message, the tap name check, and the id bases of QEMU and Cloud
// Hypervisor devices.
package nicdata

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/netbridge/netbridge/pkg/linkname"
	"github.com/netbridge/netbridge/sandbox"
)

// Label names nics[i] in error messages, the way the other renderers do.
func Label(n *sandbox.NIC, i int) string {
	return fmt.Sprintf("NIC %d (%q)", i, n.Name)
}

// TapName checks a tap name with netbridge's rule for interface names
// (linkname.Check).
func TapName(name string) error {
	if err := linkname.Check(name); err != nil {
		return fmt.Errorf("tap %w", err)
	}
	return nil
}

// DevicePrefix starts the id of a NIC's guest device, in QEMU and in Cloud
// Hypervisor: "nic-" and the NIC's id base.
const DevicePrefix = "nic-"

// IDBases returns the id base of every NIC of nics, in order: the NIC's
// Name with every character that QEMU does not accept in an id (anything but
// ASCII letters, digits, '-', '.' and '_') replaced by '_', or "if<i>" when
// the Name is empty. When two NICs would get the same base, a NIC whose Name
// needed no change keeps it and the others get "-2", "-3", ... appended in
// list order, skipping bases already taken. The bases depend only on the
// list of names, so hot-plug code can recompute them from the same list.
// QEMU and Cloud Hypervisor build their device ids of them.
func IDBases(nics []sandbox.NIC) []string {
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

// sanitize replaces every character of s that is not allowed in a QEMU id by '_'.
// A multi-byte UTF-8 character becomes a single '_'.
func sanitize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if IDChar(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// IDChar reports whether QEMU accepts r after the first character of an id.
func IDChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		r == '-' || r == '.' || r == '_'
}
