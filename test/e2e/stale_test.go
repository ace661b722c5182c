package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/test/testnet"
)

// TestStaleRecordsShownAndPruned: a sandbox whose netns is gone (a runtime
// failed after prestart and never ran poststop) is shown as stale, not
// ready, by status; prune removes exactly the stale records and leaves a
// live sandbox wired; teardown of a stale sandbox says that the netns was
// gone instead of claiming to have torn down objects.
func TestStaleRecordsShownAndPruned(t *testing.T) {
	node := testnet.NewNS(t)
	dir := t.TempDir()
	gonePod := func(id string) {
		pod, err := testnet.CreateNS("nbtest-")
		if err != nil {
			t.Fatal(err)
		}
		testnet.VethPair(t, node, pod, "v-"+id, "eth0", 0)
		testnet.AddAddr(t, pod, "eth0", "198.51.100.2/24")
		if code, _, stderr, _ := nbRun(t, "setup", "--netns", pod.Path(), "--id", id, "--state-dir", dir, "--cni-cache-dir", ""); code != 0 {
			t.Fatalf("setup %s: exit %d\n%s", id, code, stderr)
		}
		if err := testnet.DestroyNS(pod); err != nil {
			t.Fatal(err)
		}
	}
	gonePod("stale1")
	gonePod("stale2")
	_, live := topology(t, 0)
	before := testnet.Snapshot(t, live)
	if code, _, stderr, _ := nbRun(t, "setup", "--netns", live.Path(), "--id", "live", "--state-dir", dir, "--cni-cache-dir", ""); code != 0 {
		t.Fatalf("setup live: exit %d\n%s", code, stderr)
	}

	code, out, stderr, _ := nbRun(t, "status", "--state-dir", dir, "--output", "json")
	if code != 0 {
		t.Fatalf("status: exit %d\n%s", code, stderr)
	}
	var all []netbridge.Status
	if err := json.Unmarshal([]byte(out), &all); err != nil {
		t.Fatal(err)
	}
	stale := map[string]bool{}
	for _, s := range all {
		stale[s.ID] = s.Stale
	}
	if !stale["stale1"] || !stale["stale2"] || stale["live"] || len(all) != 3 {
		t.Errorf("status --output json: stale %v, want stale1 and stale2 only", stale)
	}
	if _, out, _, _ := nbRun(t, "status", "--state-dir", dir, "--id", "stale1"); !strings.Contains(out, "stale") || strings.Contains(out, ": ready,") {
		t.Errorf("status --id stale1 does not say stale:\n%s", out)
	}

	// Teardown of a stale sandbox (as the hook's poststop runs it) says
	// what happened.
	var log bytes.Buffer
	lib := netbridge.New(dir, slog.New(slog.NewTextHandler(&log, nil)))
	if err := lib.Teardown(context.Background(), "stale1"); err != nil || !strings.Contains(log.String(), "netns gone") || strings.Contains(log.String(), "torn down") {
		t.Errorf("teardown of a gone netns: %v, log:\n%s\nwant it to say the netns was gone", err, log.String())
	}

	code, out, stderr, _ = nbRun(t, "prune", "--state-dir", dir)
	if code != 0 || !strings.Contains(out, "stale2") || strings.Contains(out, "live") {
		t.Fatalf("prune: exit %d\n%s%s", code, out, stderr)
	}
	if names := testnet.DirNames(t, dir); strings.Join(names, " ") != "live.json live.lock" && strings.Join(names, " ") != "live.json" {
		t.Errorf("state dir after prune: %q, want only the live sandbox", names)
	}
	if code, _, stderr, _ := nbRun(t, "check", "--id", "live", "--state-dir", dir); code != 0 {
		t.Errorf("the live sandbox after prune: check exit %d\n%s", code, stderr)
	}
	if _, out, _, _ := nbRun(t, "prune", "--state-dir", dir); !strings.Contains(out, "no stale records") {
		t.Errorf("second prune: %s", out)
	}
	if code, _, stderr, _ := nbRun(t, "teardown", "--id", "live", "--state-dir", dir); code != 0 {
		t.Fatalf("teardown live: exit %d\n%s", code, stderr)
	}
	if d := testnet.Diff(before, testnet.Snapshot(t, live)); d != "" {
		t.Errorf("live pod after teardown:\n%s", d)
	}
}
