package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netbridge/netbridge/test/testnet"
)

var (
	seamOnce   sync.Once
	seamBinary string
	seamErr    error
)

// seamNetbridge builds cmd/netbridge with the netbridge_testseam tag, whose
// setup obeys NETBRIDGE_SEAM_CRASH and NETBRIDGE_SEAM_FAIL.
func seamNetbridge(t *testing.T) string {
	t.Helper()
	seamOnce.Do(func() {
		dir, err := os.MkdirTemp("", "netbridge-seam-")
		if err != nil {
			seamErr = err
			return
		}
		seamBinary = filepath.Join(dir, "netbridge")
		out, err := exec.Command("go", "build", "-tags", "netbridge_testseam", "-o", seamBinary, "github.com/netbridge/netbridge/cmd/netbridge").CombinedOutput()
		if err != nil {
			seamErr = fmt.Errorf("%w: %s", err, out)
		}
	})
	if seamErr != nil {
		t.Fatalf("building the test-seam netbridge: %v", seamErr)
	}
	return seamBinary
}

// twoNICPod is topology plus a second network on net1 with a route that has
// an MTU, so that every model has two interfaces' worth of steps.
func twoNICPod(t *testing.T) (node, pod ns.NetNS) {
	node, pod = topology(t, 0)
	testnet.VethPair(t, node, pod, "veth1", "net1", 9000)
	testnet.AddAddr(t, node, "veth1", "203.0.113.1/24")
	testnet.AddAddr(t, pod, "net1", "203.0.113.2/24")
	testnet.AddAddr(t, pod, "net1", "2001:db8:2::2/64")
	testnet.Exec(t, pod, "ip", "route", "add", "192.0.2.0/24", "via", "203.0.113.1", "mtu", "1400")
	return node, pod
}

func journalLength(t *testing.T, dir, id string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, id+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Journal []json.RawMessage `json:"journal"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	return len(rec.Journal)
}

// seamRun runs the seam binary with one seam variable set and returns its
// error and output.
func seamRun(t *testing.T, env string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(seamNetbridge(t), args...)
	cmd.Env = append(os.Environ(), env)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func killed(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// TestCrashAtEveryStep kills setup with SIGKILL just before and just after
// every journal step of a two-interface setup in every model. After each
// crash, teardown restores the pod netns to its snapshot; and after the
// same crash, a new setup succeeds and leaves exactly the wiring of a clean
// setup.
func TestCrashAtEveryStep(t *testing.T) {
	total := 0
	for _, model := range []string{modelTCFilter, modelBridge, modelMacvtap} {
		t.Run(model, func(t *testing.T) {
			_, pod := twoNICPod(t)
			dir := t.TempDir()
			id := "crash-" + model
			setup := []string{"setup", "--netns", pod.Path(), "--id", id, "--model", model, "--state-dir", dir}
			teardown := []string{"teardown", "--id", id, "--state-dir", dir}
			t.Cleanup(func() { exec.Command(seamNetbridge(t), teardown...).Run() })

			before := testnet.Snapshot(t, pod)
			if out, err := seamRun(t, "NETBRIDGE_SEAM_CRASH=", setup...); err != nil {
				t.Fatalf("clean setup: %v\n%s", err, out)
			}
			wired := testnet.Snapshot(t, pod)
			steps := journalLength(t, dir, id)
			if out, err := seamRun(t, "NETBRIDGE_SEAM_CRASH=", teardown...); err != nil {
				t.Fatalf("clean teardown: %v\n%s", err, out)
			}
			if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
				t.Fatalf("clean teardown left:\n%s", d)
			}
			for k := 1; k <= steps; k++ {
				for _, point := range []string{fmt.Sprintf("-%d", k), fmt.Sprint(k)} {
					total++
					crash := func() {
						t.Helper()
						out, err := seamRun(t, "NETBRIDGE_SEAM_CRASH="+point, setup...)
						if !killed(err) {
							t.Fatalf("crash point %s: setup was not killed: %v\n%s", point, err, out)
						}
					}
					crash()
					if out, err := seamRun(t, "", teardown...); err != nil {
						t.Fatalf("crash point %s: teardown: %v\n%s", point, err, out)
					}
					if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
						t.Fatalf("crash point %s: teardown did not restore the snapshot:\n%s", point, d)
					}
					crash()
					if out, err := seamRun(t, "", setup...); err != nil {
						t.Fatalf("crash point %s: setup after the crash: %v\n%s", point, err, out)
					}
					if d := testnet.Diff(wired, testnet.Snapshot(t, pod)); d != "" {
						t.Fatalf("crash point %s: setup after the crash differs from a clean one:\n%s", point, d)
					}
					if out, err := seamRun(t, "", teardown...); err != nil {
						t.Fatalf("crash point %s: final teardown: %v\n%s", point, err, out)
					}
				}
			}
			if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
				t.Errorf("after every crash point:\n%s", d)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("state dir left with %d entries", len(ents))
			}
			t.Logf("model %s: %d journal steps, %d crash points", model, steps, 2*steps)
		})
	}
	t.Logf("%d crash points in all", total)
}

// TestRollbackAtEveryStep injects a failure at every journal step: setup
// fails with an error naming the step and the interface, and the pod netns
// equals its snapshot with no state left.
func TestRollbackAtEveryStep(t *testing.T) {
	for _, model := range []string{modelTCFilter, modelBridge, modelMacvtap} {
		t.Run(model, func(t *testing.T) {
			_, pod := twoNICPod(t)
			dir := t.TempDir()
			id := "rb-" + model
			setup := []string{"setup", "--netns", pod.Path(), "--id", id, "--model", model, "--state-dir", dir}
			t.Cleanup(func() { exec.Command(seamNetbridge(t), "teardown", "--id", id, "--state-dir", dir).Run() })
			before := testnet.Snapshot(t, pod)
			if out, err := seamRun(t, "", setup...); err != nil {
				t.Fatalf("clean setup: %v\n%s", err, out)
			}
			steps := journalLength(t, dir, id)
			if out, err := seamRun(t, "", "teardown", "--id", id, "--state-dir", dir); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			for k := 1; k <= steps; k++ {
				out, err := seamRun(t, fmt.Sprintf("NETBRIDGE_SEAM_FAIL=%d", k), setup...)
				if err == nil || !strings.Contains(out, "injected failure") || !strings.Contains(out, `interface "`) {
					t.Fatalf("step %d: setup = %v %q, want a failure naming the step and the interface", k, err, out)
				}
				if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
					t.Fatalf("step %d: the rollback left:\n%s", k, d)
				}
				if ents, _ := os.ReadDir(dir); len(ents) != 0 {
					t.Fatalf("step %d: the rollback left %d state entries", k, len(ents))
				}
			}
			t.Logf("model %s: %d injected failures rolled back", model, steps)
		})
	}
}
