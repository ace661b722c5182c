package sandbox

import (
	"errors"
	"fmt"
)

// CheckGuestMAC checks that m can be the address of a guest NIC: present,
// six bytes long and unicast.
func CheckGuestMAC(m MAC) error {
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

// CheckMTU checks an optional MTU: 0 for none, else 68 (the least IPv4
// takes) to 65535.
func CheckMTU(mtu int) error {
	if mtu != 0 && (mtu < 68 || mtu > 65535) {
		return fmt.Errorf("MTU %d out of range 68..65535", mtu)
	}
	return nil
}

// QueueCount returns the number of queues of n, reading 0 as 1, or an
// error when it is out of range 1..MaxQueues.
func (n *NIC) QueueCount() (int, error) {
	q := max(n.Queues, 1)
	if n.Queues < 0 || q > MaxQueues {
		return 0, fmt.Errorf("queue count %d out of range 1..%d", n.Queues, MaxQueues)
	}
	return q, nil
}
