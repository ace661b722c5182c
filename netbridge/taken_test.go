package netbridge_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/sandbox"
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
		cfgs := make([]sandbox.Config, n)
		libs := make([]*netbridge.Manager, n) // a state directory each
		for i := range n {
			cfgs[i] = sandbox.Config{ID: []string{"ra", "rb", "rc", "rd"}[i], Netns: p.pod.Path(), Interfaces: []string{"eth0"}, TapName: []string{"tapa", "tapb", "tapc", "tapd"}[i]}
			libs[i] = netbridge.New(t.TempDir(), nil)
			wg.Go(func() { _, errs[i] = libs[i].Setup(ctx, cfgs[i]) })
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
		for i, c := range cfgs {
			if err := libs[i].Teardown(ctx, c.ID); err != nil {
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

// TestSetupRepairsWhenTheTapWasDeleted: a tap deleted behind netbridge's
// back leaves the redirect filter on the interface pointing nowhere. That
// filter is the sandbox's own, which the undo before the repair removes:
// it is no sign of another sandbox, and setup repairs the wiring, for the
// whole sandbox and for an attached interface.
func TestSetupRepairsWhenTheTapWasDeleted(t *testing.T) {
	ctx := context.Background()
	for _, attach := range []bool{false, true} {
		p := newPod(t, 0)
		before := testnet.Snapshot(t, p.pod)
		cfg := p.config("sb-tapgone")
		cfg.Interfaces = []string{"eth0"}
		run := func() error {
			if attach {
				_, err := p.lib().Attach(ctx, cfg)
				return err
			}
			_, err := p.lib().Setup(ctx, cfg)
			return err
		}
		if err := run(); err != nil {
			t.Fatal(err)
		}
		testnet.Exec(t, p.pod, "ip", "link", "del", "nb-eth0")
		if err := run(); err != nil {
			t.Fatalf("attach %t: setting up again after the tap was deleted: %v", attach, err)
		}
		if err := p.lib().Check(ctx, cfg.ID); err != nil {
			t.Errorf("attach %t: Check after the repair: %v", attach, err)
		}
		teardown(t, p.stateDir, cfg.ID)
		if d := testnet.Diff(before, testnet.Snapshot(t, p.pod)); d != "" {
			t.Errorf("attach %t: after the repair and teardown:\n%s", attach, d)
		}
	}
}
