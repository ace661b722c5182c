package sandbox

import (
	"fmt"
	"net"
)

// MAC is an Ethernet hardware address that marshals to and from its
// colon-separated text form ("02:ab:cd:ef:01:23") in JSON.
type MAC net.HardwareAddr

// String returns the colon-separated lower-case form of m, or "" when m is empty.
func (m MAC) String() string { return net.HardwareAddr(m).String() }

// MarshalText implements encoding.TextMarshaler.
func (m MAC) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler. It accepts only
// 6-byte (Ethernet) addresses, or the empty string for no address.
func (m *MAC) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*m = nil
		return nil
	}
	hw, err := net.ParseMAC(string(b))
	if err != nil {
		return fmt.Errorf("parsing MAC address %q: %w", b, err)
	}
	if len(hw) != 6 {
		return fmt.Errorf("parsing MAC address %q: not a 6-byte Ethernet address", b)
	}
	*m = MAC(hw)
	return nil
}
