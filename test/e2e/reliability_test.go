package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/testnet"
)

// cli runs the netbridge binary and returns its combined output and error.
func cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(netbridgeBinary(t), args...).CombinedOutput()
	return string(out), err
}

// simplePod is a pod netns whose eth0 (veth to node) has one IPv4 address.
func simplePod(t *testing.T, node ns.NetNS, nodeIf string) ns.NetNS {
	t.Helper()
	pod := testnet.NewNS(t)
	testnet.VethPair(t, node, pod, nodeIf, "eth0", 0)
	testnet.AddAddr(t, pod, "eth0", "198.51.100.2/24")
	return pod
}

// parallel runs f(i) for i in [0,n) with at most width at a time and
// returns the wall time.
func parallel(n, width int, f func(i int)) time.Duration {
	start := time.Now()
	sem := make(chan struct{}, width)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(i)
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// TestConcurrentProcesses100Sandboxes sets up and tears down 100 sandboxes,
// each in its own pod netns, with up to 16 netbridge processes at a time
// sharing one state dir: no errors, every pod back to its snapshot, the
// state dir empty.
func TestConcurrentProcesses100Sandboxes(t *testing.T) {
	const sandboxes, width = 100, 16
	bin := netbridgeBinary(t)
	node := testnet.NewNS(t)
	pods := make([]ns.NetNS, sandboxes)
	for i := range pods {
		pods[i] = simplePod(t, node, fmt.Sprintf("veth%d", i))
	}
	dir := t.TempDir()
	id := func(i int) string { return fmt.Sprintf("conc-%03d", i) }
	t.Cleanup(func() {
		for i := range pods {
			exec.Command(bin, "teardown", "--id", id(i), "--state-dir", dir).Run()
		}
	})
	before := make([]string, sandboxes)
	parallel(sandboxes, 8, func(i int) { before[i] = testnet.Snapshot(t, pods[i]) })

	var mu sync.Mutex
	var errs []string
	fail := func(format string, args ...any) {
		mu.Lock()
		errs = append(errs, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	setupWall := parallel(sandboxes, width, func(i int) {
		out, err := exec.Command(bin, "setup", "--netns", pods[i].Path(), "--id", id(i), "--state-dir", dir, "--cni-cache-dir", "").CombinedOutput()
		if err != nil {
			fail("setup %s: %v\n%s", id(i), err, out)
		}
	})
	checkWall := parallel(sandboxes, width, func(i int) {
		out, err := exec.Command(bin, "check", "--id", id(i), "--state-dir", dir).CombinedOutput()
		if err != nil {
			fail("check %s: %v\n%s", id(i), err, out)
		}
	})
	if n := len(records(t, dir)); n != sandboxes {
		t.Errorf("%d state entries after setup, want %d", n, sandboxes)
	}
	teardownWall := parallel(sandboxes, width, func(i int) {
		out, err := exec.Command(bin, "teardown", "--id", id(i), "--state-dir", dir).CombinedOutput()
		if err != nil {
			fail("teardown %s: %v\n%s", id(i), err, out)
		}
	})
	for _, e := range errs {
		t.Error(e)
	}
	parallel(sandboxes, 8, func(i int) {
		if d := testnet.Diff(before[i], testnet.Snapshot(t, pods[i])); d != "" {
			fail("pod %d after teardown:\n%s", i, d)
		}
	})
	for _, e := range errs {
		if strings.HasPrefix(e, "pod ") {
			t.Error(e)
		}
	}
	if ents := testnet.DirNames(t, dir); len(ents) != 0 {
		t.Errorf("state dir not empty after teardown: %v", ents)
	}
	t.Logf("%d sandboxes, %d processes at a time: setup %v, check %v, teardown %v (wall)", sandboxes, width,
		setupWall.Round(time.Millisecond), checkWall.Round(time.Millisecond), teardownWall.Round(time.Millisecond))
}

// records lists the state records (not lock files) in dir.
func records(t *testing.T, dir string) []string {
	t.Helper()
	var r []string
	for _, e := range testnet.DirNames(t, dir) {
		if strings.HasSuffix(e, ".json") {
			r = append(r, e)
		}
	}
	return r
}

// ownedTaps counts the links in n tagged as netbridge's for id.
func ownedTaps(t *testing.T, n ns.NetNS, id string) int {
	t.Helper()
	links, err := testnet.Handle(t, n).LinkList()
	if err != nil {
		t.Fatal(err)
	}
	c := 0
	for _, l := range links {
		if l.Attrs().Alias == "netbridge:"+id && l.Type() == "tuntap" {
			c++
		}
	}
	return c
}

// TestConcurrentSetupsOfOneID runs 10 setup processes of the same id at
// once: all succeed, and there is one wiring (one tap) that Check accepts.
func TestConcurrentSetupsOfOneID(t *testing.T) {
	bin := netbridgeBinary(t)
	node := testnet.NewNS(t)
	pod := simplePod(t, node, "veth0")
	dir := t.TempDir()
	const id = "same-id"
	t.Cleanup(func() { exec.Command(bin, "teardown", "--id", id, "--state-dir", dir).Run() })
	before := testnet.Snapshot(t, pod)
	var mu sync.Mutex
	var errs []string
	parallel(10, 10, func(i int) {
		out, err := exec.Command(bin, "setup", "--netns", pod.Path(), "--id", id, "--state-dir", dir, "--cni-cache-dir", "").CombinedOutput()
		if err != nil {
			mu.Lock()
			errs = append(errs, fmt.Sprintf("setup %d: %v\n%s", i, err, out))
			mu.Unlock()
		}
	})
	for _, e := range errs {
		t.Error(e)
	}
	if n := ownedTaps(t, pod, id); n != 1 {
		t.Errorf("%d taps tagged netbridge:%s, want 1", n, id)
	}
	if err := netbridge.New(dir, nil).Check(context.Background(), id); err != nil {
		t.Errorf("Check after 10 concurrent setups: %v", err)
	}
	if out, err := cli(t, "teardown", "--id", id, "--state-dir", dir); err != nil {
		t.Fatalf("teardown: %v\n%s", err, out)
	}
	if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
		t.Errorf("after teardown:\n%s", d)
	}
	if ents := testnet.DirNames(t, dir); len(ents) != 0 {
		t.Errorf("state dir: %v", ents)
	}
}

// TestSetupRacingTeardown starts a setup and a teardown of the same id at
// once, many times, from a wired and from a clean pod. Each round must end
// either fully wired (record present, Check passes, one tap) or fully
// restored (no record, snapshot equal).
func TestSetupRacingTeardown(t *testing.T) {
	const rounds = 30
	bin := netbridgeBinary(t)
	for _, model := range []string{modelTCFilter, modelBridge} {
		t.Run(model, func(t *testing.T) {
			node := testnet.NewNS(t)
			pod := simplePod(t, node, "veth0")
			dir := t.TempDir()
			id := "race-" + model
			setup := []string{"setup", "--netns", pod.Path(), "--id", id, "--state-dir", dir, "--model", model, "--cni-cache-dir", ""}
			teardown := []string{"teardown", "--id", id, "--state-dir", dir}
			t.Cleanup(func() { exec.Command(bin, teardown...).Run() })
			before := testnet.Snapshot(t, pod)
			wired, restored := 0, 0
			for r := range rounds {
				if r%2 == 1 { // odd rounds race from a wired pod
					if out, err := cli(t, setup...); err != nil {
						t.Fatalf("round %d: pre-setup: %v\n%s", r, err, out)
					}
				}
				var sOut, tOut []byte
				var sErr, tErr error
				var wg sync.WaitGroup
				wg.Add(2)
				go func() { defer wg.Done(); sOut, sErr = exec.Command(bin, setup...).CombinedOutput() }()
				go func() { defer wg.Done(); tOut, tErr = exec.Command(bin, teardown...).CombinedOutput() }()
				wg.Wait()
				if sErr != nil {
					t.Errorf("round %d: setup: %v\n%s", r, sErr, sOut)
				}
				if tErr != nil {
					t.Errorf("round %d: teardown: %v\n%s", r, tErr, tOut)
				}
				if ents := records(t, dir); len(ents) > 0 {
					wired++
					if err := netbridge.New(dir, nil).Check(context.Background(), id); err != nil {
						t.Errorf("round %d: record present but Check fails: %v (state %v)", r, err, ents)
					}
					if n := ownedTaps(t, pod, id); n != 1 {
						t.Errorf("round %d: %d owned taps, want 1", r, n)
					}
				} else {
					restored++
					if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
						t.Errorf("round %d: no record, but the pod is not restored:\n%s", r, d)
					}
				}
				if out, err := cli(t, teardown...); err != nil {
					t.Fatalf("round %d: reset teardown: %v\n%s", r, err, out)
				}
				if t.Failed() {
					break
				}
			}
			if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
				t.Errorf("after all rounds:\n%s", d)
			}
			t.Logf("%s: %d rounds: %d ended wired, %d ended restored", model, rounds, wired, restored)
		})
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestSoakSetupTeardown runs many setup/teardown cycles through the library
// in this process and checks that links, qdiscs and filters (the pod
// snapshot), open fds, goroutines and the heap do not grow. The cycle count
// is reduced to fit the time budget, with a log line saying so.
func TestSoakSetupTeardown(t *testing.T) {
	for _, c := range []struct {
		model  string
		cycles int
		budget time.Duration
	}{
		{modelTCFilter, 1000, 45 * time.Second},
		{modelBridge, 300, 10 * time.Second},
	} {
		t.Run(c.model, func(t *testing.T) {
			_, pod := topology(t, 0)
			dir := t.TempDir()
			ctx := context.Background()
			const id = "soak"
			t.Cleanup(func() { netbridge.New(dir, nil).Teardown(ctx, id) })
			cfg := sandbox.Config{ID: id, Netns: pod.Path(), Model: sandbox.Model(c.model)}
			cycle := func() {
				if _, err := netbridge.New(dir, nil).Setup(ctx, cfg); err != nil {
					t.Fatal(err)
				}
				if err := netbridge.New(dir, nil).Teardown(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
			before := testnet.Snapshot(t, pod)
			// Warm up (lazy initialisation, pools) before the baseline.
			for range 5 {
				cycle()
			}
			fds0, gor0, heap0 := countFDs(t), runtime.NumGoroutine(), heapInuse()
			start := time.Now()
			cycle()
			one := time.Since(start)
			cycles := c.cycles
			if est := time.Duration(cycles) * one; est > c.budget {
				cycles = max(100, int(c.budget/one))
				t.Logf("REDUCED: one cycle takes %v; running %d cycles instead of %d to stay within %v", one, cycles, c.cycles, c.budget)
			}
			start = time.Now()
			for range cycles - 1 {
				cycle()
			}
			elapsed := time.Since(start)
			fds1, gor1, heap1 := countFDs(t), runtime.NumGoroutine(), heapInuse()
			t.Logf("%s: %d cycles in %v (first %v); fds %d -> %d, goroutines %d -> %d, heap in use %d KiB -> %d KiB",
				c.model, cycles, elapsed.Round(time.Millisecond), one, fds0, fds1, gor0, gor1, heap0>>10, heap1>>10)
			if fds1 > fds0+2 {
				t.Errorf("open fds grew from %d to %d", fds0, fds1)
			}
			if gor1 > gor0+2 {
				t.Errorf("goroutines grew from %d to %d", gor0, gor1)
			}
			if heap1 > heap0+4<<20 {
				t.Errorf("heap in use grew from %d KiB to %d KiB", heap0>>10, heap1>>10)
			}
			if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
				t.Errorf("pod changed after %d cycles:\n%s", cycles, d)
			}
			if ents := testnet.DirNames(t, dir); len(ents) != 0 {
				t.Errorf("state dir: %v", ents)
			}
		})
	}
}

// foreigners adds links and tc objects that belong to someone else, with
// fixed MACs so that their snapshot lines are reproducible. sfx tells the
// sets apart; withEth0Qdisc adds the ingress qdisc on eth0 (only once).
func foreigners(t *testing.T, pod ns.NetNS, sfx string, withEth0Qdisc bool) {
	t.Helper()
	x := func(args ...string) { testnet.Exec(t, pod, args[0], args[1:]...) }
	x("ip", "tuntap", "add", "dev", "fortap"+sfx, "mode", "tap")
	x("ip", "link", "set", "fortap"+sfx, "address", "02:00:5e:10:00:0"+sfx)
	x("ip", "link", "add", "forbr"+sfx, "address", "02:00:5e:20:00:0"+sfx, "type", "bridge")
	x("ip", "link", "set", "forbr"+sfx, "up")
	// This kernel has no dummy links: a veth pair inside the pod instead.
	x("ip", "link", "add", "fordum"+sfx, "address", "02:00:5e:30:00:0"+sfx, "type", "veth", "peer", "name", "forpeer"+sfx, "address", "02:00:5e:40:00:0"+sfx)
	x("ip", "link", "set", "fordum"+sfx, "up")
	x("ip", "link", "set", "forpeer"+sfx, "up")
	x("tc", "qdisc", "add", "dev", "fordum"+sfx, "ingress")
	x("tc", "filter", "add", "dev", "fordum"+sfx, "ingress", "prio", "100", "protocol", "all", "u32", "match", "u32", "0", "0", "flowid", "1:1")
	if withEth0Qdisc {
		x("tc", "qdisc", "add", "dev", "eth0", "ingress")
	}
	x("tc", "filter", "add", "dev", "eth0", "ingress", "prio", "10"+sfx, "protocol", "all", "u32", "match", "u32", "0", "0", "flowid", "1:1")
}

var u32Tables = regexp.MustCompile(`handle=[0-9a-f]+:`)

func removeForeigners(t *testing.T, pod ns.NetNS, sfx string) {
	t.Helper()
	x := func(args ...string) { testnet.Exec(t, pod, args[0], args[1:]...) }
	x("ip", "link", "del", "fortap"+sfx)
	x("ip", "link", "del", "forbr"+sfx)
	x("ip", "link", "del", "fordum"+sfx)
	x("tc", "filter", "del", "dev", "eth0", "ingress", "prio", "10"+sfx)
}

// TestForeignObjectsSurviveTeardown: a tap, a bridge, a veth with an
// ingress qdisc and u32 filter, and a u32 filter on the CNI interface's
// own ingress qdisc, added by someone else before setup and after setup,
// are left exactly as they are by teardown, in every model.
func TestForeignObjectsSurviveTeardown(t *testing.T) {
	for _, model := range []string{modelTCFilter, modelBridge, modelMacvtap} {
		t.Run(model, func(t *testing.T) {
			_, pod := topology(t, 0)
			dir := t.TempDir()
			ctx := context.Background()
			id := "foreign-" + model
			t.Cleanup(func() { netbridge.New(dir, nil).Teardown(ctx, id) })
			foreigners(t, pod, "1", true)
			s0 := testnet.Snapshot(t, pod)
			// The expected end state: the "after setup" set on top of s0.
			foreigners(t, pod, "2", false)
			s1 := testnet.Snapshot(t, pod)
			removeForeigners(t, pod, "2")
			if d := testnet.Diff(s0, testnet.Snapshot(t, pod)); d != "" {
				t.Fatalf("the foreign set does not remove cleanly:\n%s", d)
			}
			cfg := sandbox.Config{ID: id, Netns: pod.Path(), Model: sandbox.Model(model), Interfaces: []string{"eth0"}}
			if _, err := netbridge.New(dir, nil).Setup(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			foreigners(t, pod, "2", false)
			if err := netbridge.New(dir, nil).Check(ctx, id); err != nil {
				t.Errorf("Check with foreign objects around: %v", err)
			}
			if err := netbridge.New(dir, nil).Teardown(ctx, id); err != nil {
				t.Fatal(err)
			}
			// A u32 filter of a new priority gets a fresh hash table id
			// each time it is added: compare without it.
			if d := testnet.Diff(u32Tables.ReplaceAllString(s1, "handle=*:"), u32Tables.ReplaceAllString(testnet.Snapshot(t, pod), "handle=*:")); d != "" {
				t.Errorf("teardown touched foreign objects:\n%s", d)
			}
			if ents := testnet.DirNames(t, dir); len(ents) != 0 {
				t.Errorf("state dir: %v", ents)
			}
		})
	}
}

// TestBridgeTeardownKeepsOthersChanges: in the bridge model, a MAC someone
// else set on the CNI interface after setup stays after teardown, and an
// address someone else already put back is not added twice.
func TestBridgeTeardownKeepsOthersChanges(t *testing.T) {
	ctx := context.Background()
	t.Run("mac", func(t *testing.T) {
		_, pod := topology(t, 0)
		dir := t.TempDir()
		t.Cleanup(func() { netbridge.New(dir, nil).Teardown(ctx, "mac") })
		if _, err := netbridge.New(dir, nil).Setup(ctx, sandbox.Config{ID: "mac", Netns: pod.Path(), Model: modelBridge}); err != nil {
			t.Fatal(err)
		}
		const theirs = "02:00:5e:00:53:99"
		testnet.Exec(t, pod, "ip", "link", "set", "eth0", "address", theirs)
		if err := netbridge.New(dir, nil).Teardown(ctx, "mac"); err != nil {
			t.Fatal(err)
		}
		if got := testnet.LinkByName(t, pod, "eth0").Attrs().HardwareAddr.String(); got != theirs {
			t.Errorf("eth0 MAC after teardown = %s, want %s (set by someone else after setup)", got, theirs)
		}
	})
	t.Run("address", func(t *testing.T) {
		_, pod := topology(t, 0)
		dir := t.TempDir()
		t.Cleanup(func() { netbridge.New(dir, nil).Teardown(ctx, "addr") })
		before := testnet.Snapshot(t, pod)
		if _, err := netbridge.New(dir, nil).Setup(ctx, sandbox.Config{ID: "addr", Netns: pod.Path(), Model: modelBridge}); err != nil {
			t.Fatal(err)
		}
		addrs, err := testnet.Handle(t, pod).AddrList(testnet.LinkByName(t, pod, "eth0"), 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			if a.IPNet.String() == "198.51.100.2/24" {
				t.Skip("the bridge model left 198.51.100.2/24 on eth0; nothing to re-add")
			}
		}
		testnet.AddAddr(t, pod, "eth0", "198.51.100.2/24")
		if err := netbridge.New(dir, nil).Teardown(ctx, "addr"); err != nil {
			t.Fatalf("teardown with the address already back: %v", err)
		}
		out := testnet.Exec(t, pod, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
		if n := strings.Count(out, "198.51.100.2/24"); n != 1 {
			t.Errorf("198.51.100.2/24 on eth0 %d times after teardown:\n%s", n, out)
		}
		if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
			t.Errorf("after teardown:\n%s", d)
		}
	})
}
