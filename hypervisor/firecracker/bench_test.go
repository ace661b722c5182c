package firecracker_test

import (
	"testing"

	"github.com/netbridge/netbridge/hypervisor/firecracker"
	"github.com/netbridge/netbridge/hypervisor/internal/nictest"
	"github.com/netbridge/netbridge/sandbox"
)

// BenchmarkNetworkInterfaces measures rendering the network-interfaces
// member of a configuration file.
func BenchmarkNetworkInterfaces(b *testing.B) {
	nictest.Bench(b, func(b *testing.B, s sandbox.Sandbox) func() error {
		return func() error { _, err := firecracker.NetworkInterfaces(s.NICs); return err }
	})
}

// BenchmarkPutBody measures rendering one PUT /network-interfaces request
// per NIC, as configuring the whole sandbox over the API does.
func BenchmarkPutBody(b *testing.B) {
	nictest.Bench(b, func(b *testing.B, s sandbox.Sandbox) func() error {
		return func() error {
			for i := range s.NICs {
				if _, _, err := firecracker.PutBody(s.NICs[i]); err != nil {
					return err
				}
			}
			return nil
		}
	})
}
