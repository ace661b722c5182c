package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/bench/floor"
	"github.com/netbridge/netbridge/test/testnet"
)

// parallelSandboxes is the number of sandboxes BenchmarkParallel50 wires at
// once.
const parallelSandboxes = 50

// impl is one way to wire and unwire a sandbox in process: the library or
// the floor.
type impl struct {
	name     string
	setup    func(ctx context.Context, id, netnsPath string) error
	teardown func(ctx context.Context, id, netnsPath string) error
}

// impls returns the library (tcfilter model, state in stateDir) and the
// floor, each wiring the pod interface eth0.
func impls(stateDir string) []impl {
	return []impl{
		{
			name: "library",
			setup: func(ctx context.Context, id, netnsPath string) error {
				sb, err := netbridge.New(stateDir, nil).Setup(ctx, sandbox.Config{ID: id, Netns: netnsPath, Model: sandbox.ModelTCFilter})
				if err != nil {
					return err
				}
				if len(sb.NICs) != 1 {
					return fmt.Errorf("sandbox %s: %d NICs, want 1", id, len(sb.NICs))
				}
				return sb.Close()
			},
			teardown: func(ctx context.Context, id, _ string) error {
				return netbridge.New(stateDir, nil).Teardown(ctx, id)
			},
		},
		{
			name: "floor",
			setup: func(_ context.Context, _, netnsPath string) error {
				return floor.Setup(netnsPath, []string{"eth0"})
			},
			teardown: func(_ context.Context, _, netnsPath string) error {
				return floor.Teardown(netnsPath, []string{"eth0"})
			},
		},
	}
}

// pods makes n pod namespaces, each holding eth0 (198.51.100.2/24), the
// peer of a veth whose other end is in one node namespace.
func pods(b *testing.B, n int) []ns.NetNS {
	node := testnet.NewNS(b)
	out := make([]ns.NetNS, n)
	for i := range out {
		out[i] = testnet.NewNS(b)
		testnet.VethPair(b, node, out[i], fmt.Sprintf("veth%d", i), "eth0", 0)
		testnet.AddAddr(b, out[i], "eth0", "198.51.100.2/24")
	}
	return out
}

// stateDir returns an empty state directory for b: under
// $NETBRIDGE_BENCH_STATE_DIR (make bench points it at a tmpfs) if set,
// else in b.TempDir. It is removed at cleanup.
func stateDir(b *testing.B) string {
	d := os.Getenv("NETBRIDGE_BENCH_STATE_DIR")
	if d == "" {
		return b.TempDir()
	}
	dir, err := os.MkdirTemp(d, "inprocess-")
	if err != nil {
		b.Fatalf("creating a state directory: %v", err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "state")
}

// BenchmarkInProcess compares, for one NIC (model tcfilter), the library's
// Setup and Teardown with the floor's, each timed alone (the other half of
// the cycle runs with the timer stopped), and the whole cycle.
func BenchmarkInProcess(b *testing.B) {
	pod := pods(b, 1)[0]
	ctx := context.Background()
	for _, phase := range []string{"setup", "teardown", "setup+teardown"} {
		for _, im := range impls(stateDir(b)) {
			b.Run(phase+"/"+im.name, func(b *testing.B) {
				for b.Loop() {
					if phase == "teardown" {
						b.StopTimer()
					}
					if err := im.setup(ctx, "inproc", pod.Path()); err != nil {
						b.Fatal(err)
					}
					switch phase {
					case "setup":
						b.StopTimer()
					case "teardown":
						b.StartTimer()
					}
					if err := im.teardown(ctx, "inproc", pod.Path()); err != nil {
						b.Fatal(err)
					}
					if phase == "setup" {
						b.StartTimer()
					}
				}
			})
		}
	}
}

// BenchmarkParallel50 sets up 50 sandboxes (one netns with one veth NIC
// each, made once, outside the timer) concurrently from one goroutine each,
// waits, then tears them all down concurrently. ns/sandbox is the wall time
// of both halves per sandbox.
func BenchmarkParallel50(b *testing.B) {
	ps := pods(b, parallelSandboxes)
	ctx := context.Background()
	for _, im := range impls(stateDir(b)) {
		b.Run(im.name, func(b *testing.B) {
			run := func(fn func(ctx context.Context, id, netnsPath string) error, what string) {
				errs := make([]error, len(ps))
				var wg sync.WaitGroup
				for i, p := range ps {
					wg.Go(func() { errs[i] = fn(ctx, fmt.Sprintf("par%d", i), p.Path()) })
				}
				wg.Wait()
				for i, err := range errs {
					if err != nil {
						b.Fatalf("%s of sandbox %d: %v", what, i, err)
					}
				}
			}
			for b.Loop() {
				run(im.setup, "setup")
				run(im.teardown, "teardown")
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(ps)), "ns/sandbox")
		})
	}
}
