package netbridge_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/testnet"
)

// BenchmarkSetupTeardown measures library Setup followed by Teardown of
// one sandbox with N NICs in one netns; ns/NIC is the cost per interface.
func BenchmarkSetupTeardown(b *testing.B) {
	for _, nics := range []int{1, 4} {
		for _, model := range []sandbox.Model{sandbox.ModelTCFilter, sandbox.ModelBridge, sandbox.ModelMacvtap, sandbox.ModelNone} {
			b.Run(fmt.Sprintf("model=%s/nics=%d", model, nics), func(b *testing.B) {
				node, pod := testnet.NewNS(b), testnet.NewNS(b)
				for i := range nics {
					podIf := fmt.Sprintf("eth%d", i)
					testnet.VethPair(b, node, pod, fmt.Sprintf("veth%d", i), podIf, 0)
					testnet.AddAddr(b, pod, podIf, fmt.Sprintf("198.51.%d.2/24", 100+i))
				}
				cfg := sandbox.Config{ID: "bench", Netns: pod.Path(), Model: model}
				lib := netbridge.New(benchStateDir(b), nil)
				ctx := context.Background()
				b.ResetTimer()
				for b.Loop() {
					sb, err := lib.Setup(ctx, cfg)
					if err != nil {
						b.Fatal(err)
					}
					if len(sb.NICs) != nics {
						b.Fatalf("%d NICs, want %d", len(sb.NICs), nics)
					}
					if err := lib.Teardown(ctx, cfg.ID); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(nics), "ns/NIC")
			})
		}
	}
}

// BenchmarkDiscover measures the discovery of one attached interface.
func BenchmarkDiscover(b *testing.B) {
	node, pod := testnet.NewNS(b), testnet.NewNS(b)
	testnet.VethPair(b, node, pod, "veth0", "eth0", 0)
	testnet.AddAddr(b, pod, "eth0", "198.51.100.2/24")
	testnet.AddRoute(b, pod, "eth0", "0.0.0.0/0", "198.51.100.1")
	ctx := context.Background()
	for b.Loop() {
		if _, err := netbridge.Discover(ctx, pod.Path(), nil); err != nil {
			b.Fatal(err)
		}
	}
}

func benchStateDir(b *testing.B) string {
	if d := os.Getenv("NETBRIDGE_BENCH_STATE_DIR"); d != "" {
		return filepath.Join(d, b.Name())
	}
	return b.TempDir()
}
