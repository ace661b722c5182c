// Package nictest builds the NIC values the renderers' tests use.
package nictest

import (
	"net"
	"testing"

	"github.com/netbridge/netbridge/netbridge"
)

// MAC parses s, failing the test if it is not a MAC.
func MAC(t testing.TB, s string) netbridge.MAC {
	t.Helper()
	hw, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return netbridge.MAC(hw)
}

// NIC returns a single-queue tcfilter NIC on a veth named name, with tap
// tap, guest MAC m, tap MAC fe:00:00:00:00:01 and the given MTU.
func NIC(t testing.TB, name, tap, m string, mtu int) netbridge.NIC {
	return netbridge.NIC{
		Name:     name,
		Kind:     "veth",
		Model:    "tcfilter",
		Tap:      tap,
		TapMAC:   MAC(t, "fe:00:00:00:00:01"),
		GuestMAC: MAC(t, m),
		MTU:      mtu,
		Queues:   1,
	}
}
