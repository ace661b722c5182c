package netbridge_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/test/testnet"
)

// TestConcurrentSandboxesTakeOneInterfaceOnce: sandboxes set up at the
// same time on one interface, each with its own state directory: exactly
// one gets it, the others are refused with ErrInterfaceTaken, and the
// teardown of the winner leaves the pod as it was. Deciding that an
// interface is free and wiring it are one step for every netbridge working
// in the netns.
func TestConcurrentSandboxesTakeOneInterfaceOnce(t *testing.T) {
	p := newPod(t, 0)
	ctx := context.Background()
	before := testnet.Snapshot(t, p.pod)
	for round := range 5 {
		const n = 4
		var wg sync.WaitGroup
		errs := make([]error, n)
		cfgs := make([]netbridge.Config, n)
		for i := range n {
			cfgs[i] = netbridge.Config{ID: []string{"ra", "rb", "rc", "rd"}[i], Netns: p.pod.Path(), StateDir: t.TempDir(), Interfaces: []string{"eth0"}, TapName: []string{"tapa", "tapb", "tapc", "tapd"}[i]}
			wg.Go(func() { _, errs[i] = netbridge.Setup(ctx, cfgs[i]) })
		}
		wg.Wait()
		won := -1
		for i, err := range errs {
			switch {
			case err == nil && won >= 0:
				t.Errorf("round %d: both %s and %s got eth0", round, cfgs[won].ID, cfgs[i].ID)
			case err == nil:
				won = i
			case !errors.Is(err, netbridge.ErrInterfaceTaken):
				t.Errorf("round %d: %s: %v, want ErrInterfaceTaken", round, cfgs[i].ID, err)
			}
		}
		for _, c := range cfgs {
			if err := netbridge.Teardown(ctx, c.StateDir, c.ID); err != nil {
				t.Fatalf("round %d: teardown %s: %v", round, c.ID, err)
			}
		}
		if won < 0 {
			t.Fatalf("round %d: nobody got eth0: %v", round, errs)
		}
		if d := testnet.Diff(before, testnet.Snapshot(t, p.pod)); d != "" {
			t.Fatalf("round %d: after the teardowns:\n%s", round, d)
		}
	}
}
