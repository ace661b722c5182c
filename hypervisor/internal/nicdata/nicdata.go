// Package nicdata holds the checks that the Cloud Hypervisor and Firecracker
// renderers apply to the plain NIC data they render.
package nicdata

import (
	"errors"
	"fmt"

	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/pkg/linkname"
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

// TapName checks a tap name with netbridge's rule for interface names
// (linkname.Check).
func TapName(name string) error {
	if err := linkname.Check(name); err != nil {
		return fmt.Errorf("tap %w", err)
	}
	return nil
}
