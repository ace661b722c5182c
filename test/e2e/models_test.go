package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/pkg/probe"
	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/fakeguest"
	"github.com/netbridge/netbridge/test/testnet"
)

// Model variants as the tests name them: "macvtap-passthru" is the macvtap
// model in passthru mode, "macvtap" the macvtap model in bridge mode.
const macvtapPassthru = modelMacvtap + "-passthru"

var (
	// allVariants is every model a Config can ask for.
	allVariants = []string{modelTCFilter, modelBridge, modelMacvtap, macvtapPassthru, modelNone, modelAuto}
	// wiredVariants connect the interface to the guest: frames pass.
	wiredVariants = slices.DeleteFunc(slices.Clone(allVariants), func(v string) bool { return v == modelNone })
)

// withVariant returns cfg asking for the model variant v.
func withVariant(cfg sandbox.Config, v string) sandbox.Config {
	cfg.Model, cfg.MacvtapMode = sandbox.Model(v), ""
	if v == macvtapPassthru {
		cfg.Model, cfg.MacvtapMode = sandbox.ModelMacvtap, sandbox.MacvtapPassthru
	}
	return cfg
}

var (
	autoOnce  sync.Once
	autoModel string
	autoErr   error
)

// autoPick returns the model auto picks for a veth on this kernel, from a
// real probe.
func autoPick(t *testing.T) string {
	t.Helper()
	autoOnce.Do(func() {
		f, err := probe.Run()
		if err != nil {
			autoErr = err
			return
		}
		for _, m := range netbridge.ModelSupport(f) {
			if m.Model == modelAuto {
				for _, pick := range []string{modelTCFilter, modelBridge, modelMacvtap} {
					if strings.HasPrefix(m.Detail, "picks "+pick) {
						autoModel = pick
					}
				}
			}
		}
		if autoModel == "" {
			autoErr = fmt.Errorf("model auto cannot work on this kernel: %+v", f)
		}
	})
	if autoErr != nil {
		t.Fatal(autoErr)
	}
	return autoModel
}

// wantModel returns the model a NIC of a veth gets under variant v.
func wantModel(t *testing.T, v string) string {
	switch v {
	case macvtapPassthru:
		return modelMacvtap
	case modelAuto:
		return autoPick(t)
	}
	return v
}

// mustSetup runs Setup with the state in dir and registers Close and
// Teardown at cleanup (a second Teardown after the test's own does
// nothing).
func mustSetup(t *testing.T, dir string, cfg sandbox.Config) *sandbox.Sandbox {
	t.Helper()
	sb, err := netbridge.New(dir, nil).Setup(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Setup (model %s): %v", cfg.Model, err)
	}
	t.Cleanup(func() {
		sb.Close()
		if err := netbridge.New(dir, nil).Teardown(context.Background(), cfg.ID); err != nil {
			t.Errorf("cleanup Teardown of %s: %v", cfg.ID, err)
		}
	})
	return sb
}

func mustTeardown(t *testing.T, dir, id string) {
	t.Helper()
	if err := netbridge.New(dir, nil).Teardown(context.Background(), id); err != nil {
		t.Fatalf("Teardown of %s: %v", id, err)
	}
}

// takeQueue hands the NIC's first held queue to the caller (the fake
// guest then owns it); without held queues it opens one the way a VMM
// would: the macvtap's device node, or the tap by name.
func takeQueue(t *testing.T, pod ns.NetNS, nic *sandbox.NIC) *os.File {
	t.Helper()
	if len(nic.Files) > 0 {
		f := nic.Files[0]
		nic.Files = nic.Files[1:]
		return f
	}
	if nic.Device != "" {
		f, err := os.OpenFile(nic.Device, os.O_RDWR, 0)
		if err != nil {
			t.Fatalf("opening %s's device node: %v", nic.Tap, err)
		}
		return f
	}
	f, err := fakeguest.OpenTap(pod, nic.Tap, true)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// flushNeighbors forgets what n learnt about its neighbours, so that the
// next ping has to resolve the guest again.
func flushNeighbors(t *testing.T, n ns.NetNS) {
	t.Helper()
	testnet.Exec(t, n, "ip", "-4", "neigh", "flush", "all")
	testnet.Exec(t, n, "ip", "-6", "neigh", "flush", "all")
}

// framesBothWays is pingBothWays after making node resolve the guest
// afresh, and also checks that the guest itself answered the node's ARP
// (IPv4) and neighbour solicitation (IPv6).
func framesBothWays(t *testing.T, node ns.NetNS, g *fakeguest.Guest, size int, pairs ...[2]netip.Addr) {
	t.Helper()
	flushNeighbors(t, node)
	pingResolving(t, node, g, size, pairs...)
}

// pingResolving is pingBothWays checking that the guest answered ARP and
// neighbour solicitations meanwhile. It only reports with t.Errorf, so it
// may run on goroutines of its own.
func pingResolving(t *testing.T, node ns.NetNS, g *fakeguest.Guest, size int, pairs ...[2]netip.Addr) {
	t.Helper()
	before := g.Stats()
	pingBothWays(t, node, g, size, pairs...)
	after := g.Stats()
	for _, p := range pairs {
		if p[1].Is4() && after.ARPRepliesSent == before.ARPRepliesSent {
			t.Errorf("the guest answered no ARP request while the node reached %s", p[1])
		}
		if p[1].Is6() && after.NeighborAdvertsSent == before.NeighborAdvertsSent {
			t.Errorf("the guest answered no neighbour solicitation while the node reached %s", p[1])
		}
	}
}

// publicJSON is the sandbox as JSON (held files are not part of it).
func publicJSON(t *testing.T, sb *sandbox.Sandbox) string {
	t.Helper()
	b, err := json.Marshal(sb)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestModelLifecycleTwice takes every model through two full cycles on a
// hand-made dual-stack veth: setup, setup again (nothing changes, the same
// sandbox is returned, held fds come from the second call), real frames
// both ways with the fake guest answering ARP and NDP, teardown twice, and
// the pod netns equal to its snapshot after each cycle. The none model
// wires nothing: the pod's own kernel answers and the guest sees no echo.
// (TestRealFramesThroughLibrary covers full-size frames at MTU 1500 and
// 9000; this is about repetition and idempotence.)
func TestModelLifecycleTwice(t *testing.T) {
	for _, v := range allVariants {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			node, pod := topology(t, 0)
			before := testnet.Snapshot(t, pod)
			dir := t.TempDir()
			cfg := withVariant(sandbox.Config{ID: "e2e-twice", Netns: pod.Path()}, v)
			for cycle := 1; cycle <= 2; cycle++ {
				sb := mustSetup(t, dir, cfg)
				wired := testnet.Snapshot(t, pod)
				second := mustSetup(t, dir, cfg)
				if d := testnet.Diff(wired, testnet.Snapshot(t, pod)); d != "" {
					t.Errorf("cycle %d: a second Setup changed the netns:\n%s", cycle, d)
				}
				// A third, holding the queues, returns the same with the fds.
				hold := cfg
				hold.HoldFDs = true
				again := mustSetup(t, dir, hold)
				for _, other := range []*sandbox.Sandbox{second, again} {
					if a, b := publicJSON(t, sb), publicJSON(t, other); a != b {
						t.Errorf("cycle %d: a repeated Setup returned\n%s\nthe first\n%s", cycle, b, a)
					}
				}
				if err := netbridge.New(dir, nil).Check(context.Background(), cfg.ID); err != nil {
					t.Errorf("cycle %d: Check: %v", cycle, err)
				}
				if len(again.NICs) != 1 {
					t.Fatalf("cycle %d: %d NICs, want 1", cycle, len(again.NICs))
				}
				nic := &again.NICs[0]
				if want := wantModel(t, v); string(nic.Model) != want {
					t.Errorf("cycle %d: NIC model %q, want %q", cycle, nic.Model, want)
				}
				if v == modelAuto && !strings.HasPrefix(nic.Why, "auto:") {
					t.Errorf("cycle %d: auto gave no reason: %q", cycle, nic.Why)
				}
				if mtu := testnet.LinkByName(t, pod, nic.Tap).Attrs().MTU; mtu != 1500 || nic.MTU != 1500 {
					t.Errorf("cycle %d: NIC MTU %d, %s MTU %d, want 1500", cycle, nic.MTU, nic.Tap, mtu)
				}
				g := startGuest(t, takeQueue(t, pod, nic), *nic)
				if v == modelNone {
					if err := testnet.Ping(node, podV4, 0, pingTimeout); err != nil {
						t.Errorf("cycle %d: the pod no longer answers with model none: %v", cycle, err)
					}
					if s := g.Stats(); s.EchoRepliesSent != 0 || s.ARPRepliesSent != 0 {
						t.Errorf("cycle %d: model none wired the guest in: %+v", cycle, s)
					}
				} else {
					framesBothWays(t, node, g, 0, [2]netip.Addr{nodeV4, podV4}, [2]netip.Addr{nodeV6, podV6})
				}
				g.Close()
				again.Close()
				mustTeardown(t, dir, cfg.ID)
				mustTeardown(t, dir, cfg.ID)
				if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
					t.Errorf("cycle %d: after teardown:\n%s", cycle, d)
				}
				if ids, err := netbridge.New(dir, nil).List(context.Background()); err != nil || len(ids) != 0 {
					t.Errorf("cycle %d: List after teardown = %v, %v", cycle, ids, err)
				}
			}
		})
	}
}

// TestMacvtapsWithTheSameIfindex wires two sandboxes whose macvtaps get the
// same ifindex inside their own netns (so the host's /dev/tapN name would
// be the same) and passes frames through both at the same time.
func TestMacvtapsWithTheSameIfindex(t *testing.T) {
	type wired struct {
		node ns.NetNS
		nic  sandbox.NIC
		g    *fakeguest.Guest
	}
	var sbs []*wired
	dir := t.TempDir() // one state dir, as on a real node
	for i, mode := range []sandbox.MacvtapMode{sandbox.MacvtapBridge, sandbox.MacvtapPassthru} {
		node, pod := topology(t, 0)
		id := fmt.Sprintf("e2e-mvt-%d", i)
		sb := mustSetup(t, dir, sandbox.Config{ID: id, Netns: pod.Path(), Model: modelMacvtap, MacvtapMode: mode, HoldFDs: true})
		nic := &sb.NICs[0]
		sbs = append(sbs, &wired{node: node, nic: *nic, g: startGuest(t, takeQueue(t, pod, nic), *nic)})
	}
	a, b := sbs[0].nic, sbs[1].nic
	if a.TapIndex != b.TapIndex {
		t.Fatalf("the macvtaps got ifindexes %d and %d; the test needs them equal", a.TapIndex, b.TapIndex)
	}
	if a.Device == b.Device {
		t.Errorf("both sandboxes use device node %s", a.Device)
	}
	var wg sync.WaitGroup
	for _, s := range sbs {
		flushNeighbors(t, s.node)
		wg.Add(1)
		go func() {
			defer wg.Done()
			pingResolving(t, s.node, s.g, 0, [2]netip.Addr{nodeV4, podV4}, [2]netip.Addr{nodeV6, podV6})
		}()
	}
	wg.Wait()
	for i, s := range sbs {
		if err := netbridge.New(dir, nil).Check(context.Background(), fmt.Sprintf("e2e-mvt-%d", i)); err != nil {
			t.Errorf("Check: %v", err)
		}
		if err := s.g.Err(); err != nil {
			t.Errorf("guest %d: %v", i, err)
		}
	}
}

// TestBridgeModelOnVethWithoutCarrier wires, with the bridge model, a veth
// whose peer is down: its routes carry the kernel's linkdown flag, which
// must not be replayed when they are put back. Teardown restores the
// snapshot exactly.
func TestBridgeModelOnVethWithoutCarrier(t *testing.T) {
	for _, v := range []string{modelBridge, modelMacvtap} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			node, pod := topology(t, 0)
			testnet.Exec(t, pod, "ip", "route", "add", "203.0.113.0/24", "via", "198.51.100.1", "mtu", "1400")
			h := testnet.Handle(t, node)
			veth0 := testnet.LinkByName(t, node, "veth0")
			if err := h.LinkSetDown(veth0); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the pod's default route to be linkdown", func() bool {
				return strings.Contains(testnet.Exec(t, pod, "ip", "route", "show", "default"), "linkdown")
			})
			before := testnet.Snapshot(t, pod)
			dir := t.TempDir()
			cfg := withVariant(sandbox.Config{ID: "e2e-nocarrier", Netns: pod.Path()}, v)
			sb := mustSetup(t, dir, cfg)
			if n := len(sb.NICs); n != 1 || len(sb.NICs[0].Routes) != 3 {
				t.Errorf("NICs %+v, want eth0 with its 3 routes", sb.NICs)
			}
			mustTeardown(t, dir, cfg.ID)
			if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
				t.Errorf("after teardown:\n%s", d)
			}
			// Carrier back: the restored routes work again.
			if err := h.LinkSetUp(veth0); err != nil {
				t.Fatal(err)
			}
			if err := testnet.Ping(node, podV4, 0, pingTimeout); err != nil {
				t.Errorf("the pod is unreachable after teardown and carrier: %v", err)
			}
		})
	}
}

// waitFor polls cond every 20 ms for up to 5 s and fails the test if it
// never holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestMacvtapTeardownLeavesNoStateBehind checks that teardown of a macvtap
// sandbox removes everything it put in the state directory: the record,
// the lock file, the private device node and the directory holding it.
func TestMacvtapTeardownLeavesNoStateBehind(t *testing.T) {
	for _, mode := range []sandbox.MacvtapMode{sandbox.MacvtapBridge, sandbox.MacvtapPassthru} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			_, pod := topology(t, 0)
			dir := t.TempDir()
			cfg := sandbox.Config{ID: "e2e-mvt-state", Netns: pod.Path(), Model: modelMacvtap, MacvtapMode: mode}
			sb := mustSetup(t, dir, cfg)
			if _, err := os.Stat(sb.NICs[0].Device); err != nil {
				t.Fatalf("device node: %v", err)
			}
			mustTeardown(t, dir, cfg.ID)
			if e := testnet.DirNames(t, dir); len(e) != 0 {
				t.Errorf("state dir holds %v after teardown (want nothing: each sandbox leaves a directory behind otherwise)", e)
			}
		})
	}
}
