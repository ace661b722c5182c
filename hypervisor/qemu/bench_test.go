package qemu_test

import (
	"os"
	"testing"

	"github.com/netbridge/netbridge/hypervisor/internal/nictest"
	"github.com/netbridge/netbridge/hypervisor/qemu"
	"github.com/netbridge/netbridge/sandbox"
)

// BenchmarkByName measures rendering the by-name QEMU arguments.
func BenchmarkByName(b *testing.B) {
	nictest.Bench(b, func(b *testing.B, s sandbox.Sandbox) func() error {
		return func() error { _, err := qemu.ByName(s.NICs, qemu.Options{}); return err }
	})
}

// BenchmarkByFD measures rendering the fd-form QEMU arguments for NICs
// holding their queue files, eth0 with a vhost-net file too.
func BenchmarkByFD(b *testing.B) {
	nictest.Bench(b, func(b *testing.B, s sandbox.Sandbox) func() error {
		nics := withFiles(b, s.NICs)
		return func() error { _, _, err := qemu.ByFD(nics, qemu.Options{}, 3); return err }
	})
}

// BenchmarkQMPCommands measures building the hot-plug command sequence and
// encoding it as the JSON lines sent on the monitor socket.
func BenchmarkQMPCommands(b *testing.B) {
	nictest.Bench(b, func(b *testing.B, s sandbox.Sandbox) func() error {
		nics := withFiles(b, s.NICs)
		return func() error {
			cmds, err := qemu.QMPCommands(nics, nil)
			if err == nil {
				_, err = qemu.QMPLines(cmds)
			}
			return err
		}
	})
}

// withFiles gives every NIC one open file per queue (/dev/null standing in
// for a tap queue) and eth0 vhost with one vhost file per queue, as a
// sandbox set up with HoldFDs and vhost has; the files are closed at the
// end of the benchmark.
func withFiles(b *testing.B, nics []sandbox.NIC) []sandbox.NIC {
	b.Helper()
	open := func() *os.File {
		f, err := os.Open(os.DevNull)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { f.Close() })
		return f
	}
	for i := range nics {
		for range max(nics[i].Queues, 1) {
			nics[i].Files = append(nics[i].Files, open())
			if i == 0 {
				nics[i].VhostFiles = append(nics[i].VhostFiles, open())
			}
		}
	}
	nics[0].Vhost = true
	return nics
}
