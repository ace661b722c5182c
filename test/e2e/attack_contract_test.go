package e2e

// Tests of the promises that attacks on the request broke: two sandboxes on
// one interface, interface names that are not UTF-8 or are cut inside a
// character, usage errors after a successful setup, a CNI DEL that could
// fail forever, and the messages of a few refusals. Each runs the real CLI
// binary or the real CNI plugin binary against throwaway namespaces, and
// compares snapshots of the pod netns.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/testnet"
)

// cliRun runs the netbridge CLI and returns its exit status and its
// standard output and error together.
func cliRun(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(netbridgeBinary(t), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if cmd.ProcessState == nil {
		t.Fatalf("netbridge %q: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// cliTeardownAtCleanup tears sandbox id of dir down at the end of the test.
func cliTeardownAtCleanup(t *testing.T, dir, id string) {
	t.Cleanup(func() {
		if code, out := cliRun(t, "teardown", "--id", id, "--state-dir", dir); code != 0 {
			t.Errorf("cleanup teardown %s: exit %d: %s", id, code, out)
		}
	})
}

// cliSetup sets sandbox id up in pod with the extra flags; it must
// succeed. The sandbox is torn down at cleanup.
func cliSetup(t *testing.T, pod ns.NetNS, dir, id string, extra ...string) string {
	t.Helper()
	args := append([]string{"setup", "--netns", pod.Path(), "--id", id, "--state-dir", dir, "--cni-cache-dir", ""}, extra...)
	code, out := cliRun(t, args...)
	if code != 0 {
		t.Fatalf("netbridge %q: exit %d:\n%s", args, code, out)
	}
	cliTeardownAtCleanup(t, dir, id)
	return out
}

// prevFor is a minimal prevResult naming interface ifname in pod.
func prevFor(pod ns.NetNS, ifname string) string {
	return fmt.Sprintf(`{"cniVersion":"1.0.0","interfaces":[{"name":%q,"sandbox":%q}],"ips":[{"interface":0,"address":"198.51.100.2/24","gateway":"198.51.100.1"}]}`, ifname, pod.Path())
}

// pluginConf is the netbridge plugin's configuration with extra keys
// (a JSON fragment, or "") and a prevResult (or "").
func pluginConf(stateDir, extra, prev string) []byte {
	s := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"atk","type":"netbridge","stateDir":%q`, stateDir)
	if extra != "" {
		s += "," + extra
	}
	if prev != "" {
		s += `,"prevResult":` + prev
	}
	return []byte(s + "}")
}

// dirState describes the state directory: each record's name and
// content, and the names in its subdirectories (device nodes).
func dirState(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	for _, name := range testnet.DirNames(t, dir) {
		if strings.HasSuffix(name, ".lock") {
			continue
		}
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err == nil && fi.IsDir() {
			fmt.Fprintf(&b, "%s/: %v\n", name, testnet.DirNames(t, path))
			continue
		}
		c, err := os.ReadFile(path)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s: %s\n", name, c)
	}
	return b.String()
}

// TestAttackTwoSandboxesOneInterface: an interface wired for one sandbox
// is refused to another, whatever the models and whether the other uses
// the same state directory; the error names the owner, and says "another
// state directory" only when the owner has no record in the one used. The
// refused setup changes nothing: the owner's check still passes.
func TestAttackTwoSandboxesOneInterface(t *testing.T) {
	models := []string{modelTCFilter, modelBridge, modelMacvtap}
	for _, owner := range models {
		t.Run("owner-"+owner, func(t *testing.T) {
			t.Parallel()
			_, pod := topology(t, 0)
			dir, otherDir := t.TempDir(), t.TempDir()
			before := testnet.Snapshot(t, pod)
			cliSetup(t, pod, dir, "sbA", "--model", owner, "--interfaces", "eth0")
			wired := testnet.Snapshot(t, pod)
			for _, intruder := range models {
				for _, c := range []struct {
					name, dir, want, notWant string
					args                     []string
				}{
					{"same-dir", dir, `as recorded in ` + dir, "another state directory", []string{"--interfaces", "eth0"}},
					{"other-dir", otherDir, "no record in " + otherDir + " (set up with another state directory?)", "", []string{"--interfaces", "eth0"}},
					{"strict", dir, `as recorded in ` + dir, "", []string{"--strict"}},
					// Not named: skipped, and then nothing is left.
					{"selected", dir, "no interface to attach", "", nil},
				} {
					args := append([]string{"setup", "--netns", pod.Path(), "--id", "sbB", "--state-dir", c.dir, "--cni-cache-dir", "", "--model", intruder}, c.args...)
					code, out := cliRun(t, args...)
					if code != 2 || !strings.Contains(out, `wired by netbridge for sandbox "sbA"`) || !strings.Contains(out, c.want) ||
						(c.notWant != "" && strings.Contains(out, c.notWant)) {
						t.Errorf("%s over %s, %s: exit %d, want 2 and a message naming sbA with %q:\n%s", intruder, owner, c.name, code, c.want, out)
					}
					if d := testnet.Diff(wired, testnet.Snapshot(t, pod)); d != "" {
						t.Fatalf("the refused %s setup (%s) changed the pod:\n%s", intruder, c.name, d)
					}
					if names := testnet.DirNames(t, c.dir); strings.Contains(strings.Join(names, ","), "sbB.json") {
						t.Errorf("the refused setup left a record: %v", names)
					}
				}
			}
			if code, out := cliRun(t, "check", "--id", "sbA", "--state-dir", dir); code != 0 {
				t.Errorf("check of the owner after the refused setups: exit %d:\n%s", code, out)
			}
			if code, out := cliRun(t, "teardown", "--id", "sbA", "--state-dir", dir); code != 0 {
				t.Fatalf("teardown: exit %d:\n%s", code, out)
			}
			if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
				t.Errorf("after teardown:\n%s", d)
			}
		})
	}

	// Through the CNI plugin, as the report had it: two containers, each
	// with its own tap name, on the same interface. The second ADD is
	// refused; its DEL (which a runtime sends after a failed ADD) leaves
	// the first container's wiring alone.
	t.Run("cni", func(t *testing.T) {
		t.Parallel()
		bins := cniBins(t)
		node, pod := topology(t, 0)
		dir := t.TempDir()
		before := testnet.Snapshot(t, pod)
		prev := prevFor(pod, "eth0")
		if _, err := invokeNB(t, bins, node, "ADD", pluginConf(dir, `"tapName":"tapA"`, prev), "cA", pod.Path(), "eth0"); err != nil {
			t.Fatalf("ADD cA: %v", err)
		}
		wired := testnet.Snapshot(t, pod)
		_, err := invokeNB(t, bins, node, "ADD", pluginConf(dir, `"tapName":"tapB"`, prev), "cB", pod.Path(), "eth0")
		if err == nil {
			t.Fatal("ADD cB on the interface cA holds succeeded")
		}
		if e := cniErrorOf(t, err); e.Code != types.ErrInvalidNetworkConfig || !strings.Contains(e.Msg, `sandbox "cA"`) || !strings.Contains(e.Msg, "tapA") || !strings.Contains(e.Msg, "CNI DEL") {
			t.Errorf("ADD cB: code %d %q, want %d naming cA, its tap and how to free it", e.Code, e.Msg, types.ErrInvalidNetworkConfig)
		}
		if _, err := invokeNB(t, bins, node, "DEL", pluginConf(dir, `"tapName":"tapB"`, ""), "cB", pod.Path(), "eth0"); err != nil {
			t.Errorf("DEL cB: %v", err)
		}
		if d := testnet.Diff(wired, testnet.Snapshot(t, pod)); d != "" {
			t.Errorf("ADD and DEL of cB changed the pod:\n%s", d)
		}
		if err := netbridge.New(dir, nil).Check(context.Background(), "cA"); err != nil {
			t.Errorf("cA after cB's ADD and DEL: %v", err)
		}
		if _, err := invokeNB(t, bins, node, "DEL", pluginConf(dir, `"tapName":"tapA"`, ""), "cA", pod.Path(), "eth0"); err != nil {
			t.Fatalf("DEL cA: %v", err)
		}
		if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
			t.Errorf("after DEL cA:\n%s", d)
		}
	})
}

// TestAttackNamesNotUTF8: an interface whose name is not valid UTF-8 is
// never attached (JSON text, the record's format, cannot carry its name):
// skipped with a warning that shows its bytes, an error when named or
// under --strict, for the CLI and the CNI plugin; the CNI DEL after the
// refused ADD succeeds. A name whose derived tap (or bridge) name would be
// cut inside a character is attached with a name cut between characters:
// check passes and teardown restores the pod, in every model.
func TestAttackNamesNotUTF8(t *testing.T) {
	const bad = "eth\xff"
	t.Run("not-utf8", func(t *testing.T) {
		t.Parallel()
		node, pod := topology(t, 0)
		testnet.VethPair(t, node, pod, "vbad", bad, 0)
		testnet.AddAddr(t, pod, bad, "203.0.113.2/24")
		dir := t.TempDir()
		before := testnet.Snapshot(t, pod)
		for _, args := range [][]string{{"--interfaces", bad}, {"--strict"}, {"--interfaces", "eth0," + bad}} {
			all := append([]string{"setup", "--netns", pod.Path(), "--id", "u8", "--state-dir", dir, "--cni-cache-dir", ""}, args...)
			code, out := cliRun(t, all...)
			if code != 2 || !strings.Contains(out, `eth\xff`) || !strings.Contains(out, "UTF-8") {
				t.Errorf("netbridge %q: exit %d, want 2 and a message showing the name's bytes and saying UTF-8:\n%s", all, code, out)
			}
			if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
				t.Fatalf("the refused setup %q changed the pod:\n%s", args, d)
			}
		}
		out := cliSetup(t, pod, dir, "u8", "--output", "json")
		var sb sandbox.Sandbox
		if err := json.Unmarshal([]byte(out), &sb); err != nil {
			t.Fatalf("setup output: %v\n%s", err, out)
		}
		if len(sb.NICs) != 1 || sb.NICs[0].Name != "eth0" {
			t.Errorf("NICs %+v, want eth0 only", sb.NICs)
		}
		if len(sb.Warnings) != 1 || !strings.Contains(sb.Warnings[0], `"eth\xff"`) || !strings.Contains(sb.Warnings[0], "UTF-8") {
			t.Errorf("warnings %q, want one about \"eth\\xff\"", sb.Warnings)
		}
		if code, out := cliRun(t, "check", "--id", "u8", "--state-dir", dir); code != 0 {
			t.Errorf("check: exit %d:\n%s", code, out)
		}
		if code, out := cliRun(t, "teardown", "--id", "u8", "--state-dir", dir); code != 0 {
			t.Fatalf("teardown: exit %d:\n%s", code, out)
		}
		if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
			t.Errorf("after teardown:\n%s", d)
		}

		// The CNI plugin, with CNI_IFNAME set to those bytes.
		bins := cniBins(t)
		_, err := invokeNB(t, bins, node, "ADD", pluginConf(dir, "", prevFor(pod, "eth0")), "c8", pod.Path(), bad)
		if err == nil {
			t.Fatal("ADD of a name that is not UTF-8 succeeded")
		}
		if e := cniErrorOf(t, err); e.Code != types.ErrInvalidNetworkConfig || !strings.Contains(e.Msg, "UTF-8") {
			t.Errorf("ADD: code %d %q, want %d saying UTF-8", e.Code, e.Msg, types.ErrInvalidNetworkConfig)
		}
		for i := range 2 {
			if _, err := invokeNB(t, bins, node, "DEL", pluginConf(dir, "", ""), "c8", pod.Path(), bad); err != nil {
				t.Errorf("DEL %d after the refused ADD: %v", i+1, err)
			}
		}
		if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
			t.Errorf("after the plugin calls:\n%s", d)
		}
		if names := testnet.DirNames(t, dir); len(names) > 0 && !allLocks(names) {
			t.Errorf("state left: %v", names)
		}
	})

	// 13 bytes: an ASCII letter and four 3-byte characters. nb- + 13 > 15,
	// so the derived names are cut, at 6 bytes (tap) or 5 (bridge,
	// macvtap): taken as bytes, both cuts fall inside a character.
	const wide = "a€€€€"
	for _, model := range []string{modelTCFilter, modelBridge, modelMacvtap, modelNone} {
		t.Run("cut-"+model, func(t *testing.T) {
			t.Parallel()
			node, pod := topology(t, 0)
			testnet.VethPair(t, node, pod, "vwide", wide, 0)
			testnet.AddAddr(t, pod, wide, "203.0.113.2/24")
			dir := t.TempDir()
			before := testnet.Snapshot(t, pod)
			out := cliSetup(t, pod, dir, "cut", "--model", model, "--interfaces", wide, "--output", "json")
			var sb sandbox.Sandbox
			if err := json.Unmarshal([]byte(out), &sb); err != nil {
				t.Fatalf("setup output: %v\n%s", err, out)
			}
			if len(sb.NICs) != 1 || sb.NICs[0].Name != wide {
				t.Fatalf("NICs %+v, want %s", sb.NICs, wide)
			}
			for _, name := range []string{sb.NICs[0].Tap, sb.NICs[0].Bridge} {
				if !utf8.ValidString(name) || len(name) > 15 {
					t.Errorf("derived name %q: not valid UTF-8 or longer than 15 bytes", name)
				}
			}
			testnet.LinkByName(t, pod, sb.NICs[0].Tap)
			if code, out := cliRun(t, "check", "--id", "cut", "--state-dir", dir); code != 0 {
				t.Errorf("check: exit %d:\n%s", code, out)
			}
			if code, out := cliRun(t, "teardown", "--id", "cut", "--state-dir", dir); code != 0 {
				t.Fatalf("teardown: exit %d:\n%s", code, out)
			}
			if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
				t.Errorf("after teardown:\n%s", d)
			}
		})
	}
}

func allLocks(names []string) bool {
	for _, n := range names {
		if !strings.HasSuffix(n, ".lock") {
			return false
		}
	}
	return true
}

// TestAttackUsageErrorKeepsWiring: after a setup succeeded, a setup of the
// same id with a request that cannot be wired exits 2 and changes
// nothing: the pod, the record and the check stay as they were. A valid
// new request still replaces the old wiring, also when the old one moved
// the interface's addresses to the guest (bridge, macvtap) and the new one
// selects interfaces by their addresses.
func TestAttackUsageErrorKeepsWiring(t *testing.T) {
	for _, model := range []string{modelTCFilter, modelBridge, modelMacvtap} {
		t.Run(model, func(t *testing.T) {
			t.Parallel()
			node, pod := topology(t, 0)
			// A macvlan the bridge model cannot carry (on a link of its
			// own: a bridge port cannot have one), and a link with an
			// MTU no tap takes.
			testnet.VethPair(t, node, pod, "vlow", "low0", 0)
			testnet.Exec(t, pod, "ip", "link", "add", "link", "low0", "name", "mv0", "address", "02:00:5e:50:00:01", "type", "macvlan", "mode", "bridge")
			testnet.VethPair(t, node, pod, "vbig", "big0", 65535)
			dir := t.TempDir()
			before := testnet.Snapshot(t, pod)
			cliSetup(t, pod, dir, "u1", "--model", model, "--interfaces", "eth0")
			wired, record := testnet.Snapshot(t, pod), dirState(t, dir)
			for _, args := range [][]string{
				{"--interfaces", "nosuch0"},
				{"--interfaces", "lo"},
				{"--interfaces", "nb-eth0"},
				{"--interfaces", "eth0,nosuch"},
				{"--strict", "--interfaces", "eth0,nosuch"},
				{"--model", "bridge", "--interfaces", "mv0"},
				{"--interfaces", "big0"},
			} {
				all := append([]string{"setup", "--netns", pod.Path(), "--id", "u1", "--state-dir", dir, "--cni-cache-dir", ""}, args...)
				if code, out := cliRun(t, all...); code != 2 {
					t.Errorf("netbridge %q: exit %d, want 2:\n%s", args, code, out)
				} else {
					t.Logf("%q: %s", args, strings.TrimSpace(out))
				}
				if d := testnet.Diff(wired, testnet.Snapshot(t, pod)); d != "" {
					t.Fatalf("the refused setup %q changed the pod:\n%s", args, d)
				}
				if got := dirState(t, dir); got != record {
					t.Fatalf("the refused setup %q changed the state:\n%s\nwas\n%s", args, got, record)
				}
				if code, out := cliRun(t, "check", "--id", "u1", "--state-dir", dir); code != 0 {
					t.Fatalf("check after the refused setup %q: exit %d:\n%s", args, code, out)
				}
			}
			// Valid new requests: selected by address (eth0 has none
			// while the bridge or macvtap model holds them), then
			// another model.
			cliSetup(t, pod, dir, "u1", "--queues", "2")
			if code, out := cliRun(t, "check", "--id", "u1", "--state-dir", dir); code != 0 {
				t.Errorf("check after the new setup: exit %d:\n%s", code, out)
			}
			if code, out := cliRun(t, "teardown", "--id", "u1", "--state-dir", dir); code != 0 {
				t.Fatalf("teardown: exit %d:\n%s", code, out)
			}
			if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
				t.Errorf("after teardown:\n%s", d)
			}
		})
	}
}

// TestAttackAttachUsageErrorKeepsWiring: the same for Attach (the CNI
// plugin's ADD): asking for an attached interface with a request that
// cannot be wired fails with ErrInvalidConfig and leaves it wired.
func TestAttackAttachUsageErrorKeepsWiring(t *testing.T) {
	ctx := context.Background()
	node, pod := topology(t, 0)
	testnet.Exec(t, pod, "ip", "link", "add", "link", "eth0", "name", "mv0", "address", "02:00:5e:50:00:01", "type", "macvlan", "mode", "bridge")
	testnet.VethPair(t, node, pod, "veth1", "net1", 0)
	dir := t.TempDir()
	before := testnet.Snapshot(t, pod)
	cfg := sandbox.Config{ID: "at1", Netns: pod.Path(), Interfaces: []string{"mv0"}}
	if _, err := netbridge.New(dir, nil).Attach(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netbridge.New(dir, nil).Teardown(ctx, "at1") })
	cfg.Interfaces = []string{"net1"}
	if _, err := netbridge.New(dir, nil).Attach(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	wired, record := testnet.Snapshot(t, pod), dirState(t, dir)
	for _, c := range []struct {
		name string
		edit func(*sandbox.Config)
	}{
		{"macvlan under the bridge model", func(c *sandbox.Config) { c.Interfaces, c.Model = []string{"mv0"}, modelBridge }},
		{"tap name of the other interface", func(c *sandbox.Config) { c.Interfaces, c.Queues, c.TapName = []string{"mv0"}, 2, "nb-net1" }},
	} {
		cfg := sandbox.Config{ID: "at1", Netns: pod.Path()}
		c.edit(&cfg)
		if _, err := netbridge.New(dir, nil).Attach(ctx, cfg); err == nil {
			t.Errorf("%s: Attach succeeded", c.name)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
		if d := testnet.Diff(wired, testnet.Snapshot(t, pod)); d != "" {
			t.Fatalf("%s: the refused attach changed the pod:\n%s", c.name, d)
		}
		if got := dirState(t, dir); got != record {
			t.Fatalf("%s: the refused attach changed the state", c.name)
		}
		if err := netbridge.New(dir, nil).Check(ctx, "at1"); err != nil {
			t.Fatalf("%s: check after the refused attach: %v", c.name, err)
		}
	}
	if err := netbridge.New(dir, nil).Teardown(ctx, "at1"); err != nil {
		t.Fatal(err)
	}
	if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
		t.Errorf("after teardown:\n%s", d)
	}
}

// TestAttackCNIDelConverges: CNI DEL succeeds whatever a setup of the same
// id did. A setup of an id the plugin attached is refused (exit 2) and the
// attachment stays; when the setup came first, ADD is refused and DEL
// succeeds without undoing the setup, which teardown removes.
func TestAttackCNIDelConverges(t *testing.T) {
	bins := cniBins(t)
	t.Run("add-then-setup", func(t *testing.T) {
		t.Parallel()
		node, pod := topology(t, 0)
		dir := t.TempDir()
		before := testnet.Snapshot(t, pod)
		if _, err := invokeNB(t, bins, node, "ADD", pluginConf(dir, "", prevFor(pod, "eth0")), "advX", pod.Path(), "eth0"); err != nil {
			t.Fatalf("ADD: %v", err)
		}
		wired := testnet.Snapshot(t, pod)
		code, out := cliRun(t, "setup", "--netns", pod.Path(), "--id", "advX", "--state-dir", dir, "--cni-cache-dir", "")
		if code != 2 || !strings.Contains(out, "attached one by one") {
			t.Errorf("setup of an attached id: exit %d, want 2 saying it was attached one by one:\n%s", code, out)
		}
		if d := testnet.Diff(wired, testnet.Snapshot(t, pod)); d != "" {
			t.Errorf("the refused setup changed the pod:\n%s", d)
		}
		if err := netbridge.New(dir, nil).CheckInterface(context.Background(), "advX", "eth0"); err != nil {
			t.Errorf("the attachment after the refused setup: %v", err)
		}
		for i := range 2 {
			if _, err := invokeNB(t, bins, node, "DEL", pluginConf(dir, "", ""), "advX", pod.Path(), "eth0"); err != nil {
				t.Fatalf("DEL %d: %v", i+1, err)
			}
		}
		if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
			t.Errorf("after DEL:\n%s", d)
		}
	})
	t.Run("setup-then-add", func(t *testing.T) {
		t.Parallel()
		node, pod := topology(t, 0)
		dir, logDir := t.TempDir(), t.TempDir()
		logFile := filepath.Join(logDir, "nb.log")
		before := testnet.Snapshot(t, pod)
		cliSetup(t, pod, dir, "advY")
		wired := testnet.Snapshot(t, pod)
		conf := func(prev string) []byte { return pluginConf(dir, fmt.Sprintf(`"logFile":%q`, logFile), prev) }
		_, err := invokeNB(t, bins, node, "ADD", conf(prevFor(pod, "eth0")), "advY", pod.Path(), "eth0")
		if err == nil || cniErrorOf(t, err).Code != types.ErrInvalidNetworkConfig {
			t.Errorf("ADD on an id set up whole = %v, want code %d", err, types.ErrInvalidNetworkConfig)
		}
		for i := range 2 {
			if _, err := invokeNB(t, bins, node, "DEL", conf(""), "advY", pod.Path(), "eth0"); err != nil {
				t.Fatalf("DEL %d of an id set up whole: %v", i+1, err)
			}
		}
		if d := testnet.Diff(wired, testnet.Snapshot(t, pod)); d != "" {
			t.Errorf("ADD and DEL changed the sandbox set up whole:\n%s", d)
		}
		if code, out := cliRun(t, "check", "--id", "advY", "--state-dir", dir); code != 0 {
			t.Errorf("check after ADD and DEL: exit %d:\n%s", code, out)
		}
		if b, _ := os.ReadFile(logFile); !strings.Contains(string(b), "set up as a whole") {
			t.Errorf("the log does not say why DEL left the sandbox:\n%s", b)
		}
		if code, out := cliRun(t, "teardown", "--id", "advY", "--state-dir", dir); code != 0 {
			t.Fatalf("teardown: exit %d:\n%s", code, out)
		}
		if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
			t.Errorf("after teardown:\n%s", d)
		}
	})
}

// TestAttackCNIDelOtherStateDir: a DEL given another stateDir than its ADD
// succeeds and leaves the wiring (its record is in the other directory),
// and its log says so; the DEL with the right directory undoes it.
func TestAttackCNIDelOtherStateDir(t *testing.T) {
	bins := cniBins(t)
	node, pod := topology(t, 0)
	dir, otherDir, logDir := t.TempDir(), t.TempDir(), t.TempDir()
	logFile := filepath.Join(logDir, "nb.log")
	before := testnet.Snapshot(t, pod)
	if _, err := invokeNB(t, bins, node, "ADD", pluginConf(dir, "", prevFor(pod, "eth0")), "sd1", pod.Path(), "eth0"); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	t.Cleanup(func() { netbridge.New(dir, nil).Teardown(context.Background(), "sd1") })
	wired := testnet.Snapshot(t, pod)
	if _, err := invokeNB(t, bins, node, "DEL", pluginConf(otherDir, fmt.Sprintf(`"logFile":%q`, logFile), ""), "sd1", pod.Path(), "eth0"); err != nil {
		t.Fatalf("DEL with another stateDir: %v", err)
	}
	if d := testnet.Diff(wired, testnet.Snapshot(t, pod)); d != "" {
		t.Errorf("DEL with another stateDir changed the pod:\n%s", d)
	}
	if b, _ := os.ReadFile(logFile); !strings.Contains(string(b), "another stateDir") || !strings.Contains(string(b), `"level":"WARN"`) {
		t.Errorf("the log of the DEL with another stateDir does not warn about it:\n%s", b)
	}
	if _, err := invokeNB(t, bins, node, "DEL", pluginConf(dir, "", ""), "sd1", pod.Path(), "eth0"); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
		t.Errorf("after DEL with the right stateDir:\n%s", d)
	}
}

// TestAttackCNIGCLists: GC keeps the attachments in its list, also when the
// runtime sends it only under the key the spec first gave it
// (cni.dev/attachments); without a list it detaches every attachment of
// the network, live ones included, and its log says so.
func TestAttackCNIGCLists(t *testing.T) {
	bins := cniBins(t)
	node, pod := topology(t, 0)
	testnet.VethPair(t, node, pod, "veth1", "net1", 0)
	dir, logDir := t.TempDir(), t.TempDir()
	logFile := filepath.Join(logDir, "nb.log")
	before := testnet.Snapshot(t, pod)
	gcConf := func(extra string) []byte {
		s := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"atk","type":"netbridge","stateDir":%q,"logFile":%q`, dir, logFile)
		if extra != "" {
			s += "," + extra
		}
		return []byte(s + "}")
	}
	for _, ifname := range []string{"eth0", "net1"} {
		if _, err := invokeNB(t, bins, node, "ADD", pluginConf(dir, "", prevFor(pod, ifname)), "gc1", pod.Path(), ifname); err != nil {
			t.Fatalf("ADD %s: %v", ifname, err)
		}
	}
	t.Cleanup(func() { netbridge.New(dir, nil).Teardown(context.Background(), "gc1") })
	if _, err := invokeNB(t, bins, node, "GC", gcConf(`"cni.dev/attachments":[{"containerID":"gc1","ifname":"eth0"}]`), "", "", ""); err != nil {
		t.Fatalf("GC with cni.dev/attachments: %v", err)
	}
	if err := netbridge.New(dir, nil).CheckInterface(context.Background(), "gc1", "eth0"); err != nil {
		t.Errorf("eth0, listed under cni.dev/attachments, after GC: %v", err)
	}
	if err := netbridge.New(dir, nil).CheckInterface(context.Background(), "gc1", "net1"); err == nil {
		t.Errorf("net1, not listed, is still attached after GC")
	}
	if _, err := invokeNB(t, bins, node, "GC", gcConf(""), "", "", ""); err != nil {
		t.Fatalf("GC without a list: %v", err)
	}
	if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
		t.Errorf("after GC without a list:\n%s", d)
	}
	if b, _ := os.ReadFile(logFile); !strings.Contains(string(b), "without cni.dev/valid-attachments") {
		t.Errorf("the log of GC without a list does not say so:\n%s", b)
	}
}

// TestAttackMessages: the refusals say what is wrong: an MTU no tap takes
// names the tap's limit (and nothing is changed); CNI_IFNAME=lo says it is
// the loopback interface.
func TestAttackMessages(t *testing.T) {
	bins := cniBins(t)
	node, pod := topology(t, 65535)
	dir := t.TempDir()
	before := testnet.Snapshot(t, pod)
	code, out := cliRun(t, "setup", "--netns", pod.Path(), "--id", "mtu", "--state-dir", dir, "--cni-cache-dir", "", "--interfaces", "eth0")
	if code != 2 || !strings.Contains(out, "65521") || !strings.Contains(out, "MTU 65535") {
		t.Errorf("setup on an interface of MTU 65535: exit %d, want 2 naming the tap's limit 65521:\n%s", code, out)
	}
	if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
		t.Errorf("the refused setup changed the pod:\n%s", d)
	}
	// macvtap takes that MTU.
	cliSetup(t, pod, dir, "mtu", "--model", "macvtap", "--interfaces", "eth0")

	_, err := invokeNB(t, bins, node, "ADD", pluginConf(dir, "", prevFor(pod, "lo")), "lo1", pod.Path(), "lo")
	if err == nil {
		t.Fatal("ADD of lo succeeded")
	}
	if e := cniErrorOf(t, err); !strings.Contains(e.Msg, "loopback") || strings.Contains(e.Msg, "does not exist") {
		t.Errorf("ADD of lo: %q, want it to say lo is the loopback interface", e.Msg)
	}
}
