package netbridge_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/test/testnet"
)

// TestEntryPointsNeverMoveOtherThreads runs every public entry point many
// times in parallel while watcher goroutines, each locked to its own OS
// thread, keep checking that their thread's netns never changes. Run it
// with -race; it raises GOMAXPROCS so the scheduler really spreads work.
func TestEntryPointsNeverMoveOtherThreads(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 4 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	}
	p := newPod(t, 0)
	home, err := netns.Current()
	if err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var checks atomic.Int64
	var watchers sync.WaitGroup
	for range 8 {
		watchers.Add(1)
		go func() {
			defer watchers.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for {
				select {
				case <-stop:
					return
				default:
				}
				cur, err := netns.Current()
				if err != nil {
					t.Error(err)
					return
				}
				if cur != home {
					t.Errorf("a watcher thread moved to netns %v (home %v)", cur, home)
					return
				}
				checks.Add(1)
				runtime.Gosched()
			}
		}()
	}

	ctx := context.Background()
	var workers sync.WaitGroup
	for w := range 4 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			id := fmt.Sprintf("sb-thr-%d", w)
			cfg := p.config(id)
			cfg.Interfaces = []string{"eth0"}
			for i := range 10 {
				// Only worker 0 wires eth0; the others exercise the
				// read-only entry points and setup's failure path.
				if w == 0 {
					sb, err := p.lib().Setup(ctx, cfg)
					if err != nil {
						t.Errorf("Setup: %v", err)
						return
					}
					sb.Close()
					if err := p.lib().Check(ctx, id); err != nil {
						t.Errorf("Check: %v", err)
					}
					if _, err := p.lib().Load(context.Background(), id); err != nil {
						t.Errorf("Load: %v", err)
					}
					if i%2 == 0 {
						if err := p.lib().Teardown(ctx, id); err != nil {
							t.Errorf("Teardown: %v", err)
						}
					}
				} else {
					bad := cfg
					bad.Interfaces = []string{"absent0"}
					if _, err := p.lib().Setup(ctx, bad); err == nil {
						t.Error("Setup of an absent interface succeeded")
					}
				}
				if _, err := netbridge.Discover(ctx, p.pod.Path(), nil); err != nil {
					t.Errorf("Discover: %v", err)
				}
				if _, err := p.lib().List(context.Background()); err != nil {
					t.Errorf("List: %v", err)
				}
				if cur, _ := netns.Current(); cur != home {
					t.Errorf("a worker thread moved to netns %v", cur)
				}
			}
			if err := p.lib().Teardown(ctx, id); err != nil {
				t.Errorf("final Teardown: %v", err)
			}
		}()
	}
	workers.Wait()
	close(stop)
	watchers.Wait()
	if checks.Load() == 0 {
		t.Fatal("the watchers made no check")
	}
	t.Logf("%d thread netns checks, all in the home netns", checks.Load())
	if d := testnet.Snapshot(t, p.pod); d == "" {
		t.Fatal("empty snapshot")
	}
}
