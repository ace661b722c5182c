package guest_test

import (
	"testing"

	"github.com/netbridge/netbridge/hypervisor/guest"
	"github.com/netbridge/netbridge/hypervisor/internal/nictest"
	"github.com/netbridge/netbridge/sandbox"
)

// BenchmarkKernelIP measures rendering the kernel ip= parameter with two
// nameservers.
func BenchmarkKernelIP(b *testing.B) {
	nictest.Bench(b, func(b *testing.B, s sandbox.Sandbox) func() error {
		return func() error { _, err := guest.KernelIP(s.NICs, s.DNS.Nameservers...); return err }
	})
}

// BenchmarkJSON measures rendering the guest network document.
func BenchmarkJSON(b *testing.B) {
	nictest.Bench(b, func(b *testing.B, s sandbox.Sandbox) func() error {
		return func() error { _, err := guest.JSON(s); return err }
	})
}

// BenchmarkCmdline measures rendering the netbridge.nic= kernel parameters.
func BenchmarkCmdline(b *testing.B) {
	nictest.Bench(b, func(b *testing.B, s sandbox.Sandbox) func() error {
		return func() error { _, err := guest.Cmdline(s.NICs); return err }
	})
}

// BenchmarkCloudInit measures rendering the cloud-init network-config v2
// document.
func BenchmarkCloudInit(b *testing.B) {
	nictest.Bench(b, func(b *testing.B, s sandbox.Sandbox) func() error {
		return func() error { _, err := guest.CloudInit(s); return err }
	})
}
