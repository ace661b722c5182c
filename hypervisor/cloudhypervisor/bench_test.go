package cloudhypervisor_test

import (
	"testing"

	"github.com/netbridge/netbridge/hypervisor/cloudhypervisor"
	"github.com/netbridge/netbridge/hypervisor/internal/nictest"
	"github.com/netbridge/netbridge/sandbox"
)

// BenchmarkNetArgs measures rendering the --net values, by tap name and by
// fd.
func BenchmarkNetArgs(b *testing.B) {
	for _, form := range []string{"name", "fd"} {
		b.Run("form="+form, func(b *testing.B) {
			nictest.Bench(b, func(b *testing.B, s sandbox.Sandbox) func() error {
				return func() error { _, err := cloudhypervisor.NetArgs(s.NICs, 3, form == "fd"); return err }
			})
		})
	}
}

// BenchmarkAddNetBody measures rendering one vm.add-net body per NIC, as a
// hot-plug of the whole sandbox does.
func BenchmarkAddNetBody(b *testing.B) {
	nictest.Bench(b, func(b *testing.B, s sandbox.Sandbox) func() error {
		return func() error {
			for i := range s.NICs {
				if _, err := cloudhypervisor.AddNetBody(s.NICs[i], cloudhypervisor.DeviceID(s.NICs, i)); err != nil {
					return err
				}
			}
			return nil
		}
	})
}
