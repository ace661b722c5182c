// Package nicdata holds the checks that the Cloud Hypervisor and Firecracker
// renderers apply to the plain NIC data they render.
package nicdata

import (
	"errors"
	"fmt"
	"strings"

	"github.com/netbridge/netbridge/netbridge"
)

// MaxQueues is the largest queue count a NIC may have: the Linux tap driver
// allows at most 256 queues per device (MAX_TAP_QUEUES).
const MaxQueues = 256

// Label names nics[i] in error messages, the way the other renderers do.
func Label(n *netbridge.NIC, i int) string {
	return fmt.Sprintf("NIC %d (%q)", i, n.Name)
}

// GuestMAC checks that m can be the address of a guest NIC: present, six
// bytes long and unicast.
func GuestMAC(m netbridge.MAC) error {
	switch {
	case len(m) == 0:
		return errors.New("guest MAC missing")
	case len(m) != 6:
		return fmt.Errorf("guest MAC %s is not a 6-byte Ethernet address", m)
	case m[0]&0x01 != 0:
		return fmt.Errorf("guest MAC %s is a multicast address", m)
	}
	return nil
}

// Queues returns the queue count of n, reading 0 as 1, or an error when it is
// out of range 1..MaxQueues.
func Queues(n *netbridge.NIC) (int, error) {
	q := n.Queues
	if q == 0 {
		q = 1
	}
	if q < 1 || q > MaxQueues {
		return 0, fmt.Errorf("queue count %d out of range 1..%d", n.Queues, MaxQueues)
	}
	return q, nil
}

// TapName checks a tap name the way the kernel checks interface names
// (dev_valid_name): 1 to 15 bytes, not "." or "..", without '/', ':' or
// whitespace.
func TapName(name string) error {
	switch {
	case name == "":
		return errors.New("tap name missing")
	case len(name) > 15:
		return fmt.Errorf("tap name %q longer than 15 bytes", name)
	case name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n\v\f\r\x00"):
		return fmt.Errorf("tap name %q is not a valid interface name", name)
	}
	return nil
}
