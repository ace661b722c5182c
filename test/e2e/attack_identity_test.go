package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/testnet"
)

// This file attacks what netbridge knows of the objects it changed: the
// CNI interface replaced, renamed or moved out and back before teardown,
// objects of netbridge's names made by someone else after a crash, filters
// of others on netbridge's qdiscs, two default routes, attributes the
// kernel changes on the side, and records written by the previous release.

// logBuffer is a slog destination safe for concurrent writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// loggedManager returns the library on the state directory dir, logging
// to the returned buffer.
func loggedManager(dir string) (*netbridge.Manager, *logBuffer) {
	b := &logBuffer{}
	return netbridge.New(dir, slog.New(slog.NewTextHandler(b, nil))), b
}

// ours matches the snapshot lines of the links netbridge makes for eth0
// and net1, and of what is on them.
var ours = regexp.MustCompile(`\bnb[rm]?-(eth0|net1)\b`)

// withoutOurs returns the lines of snapshot s that do not mention the links
// netbridge makes.
func withoutOurs(s string) string {
	var keep []string
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" && !ours.MatchString(l) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "")
}

// sortedLines returns the lines of the texts, together, sorted as a
// snapshot sorts them within sections; for comparing sets of lines.
func sortedLines(texts ...string) string {
	var all []string
	for _, s := range texts {
		for _, l := range strings.Split(s, "\n") {
			if l != "" {
				all = append(all, l)
			}
		}
	}
	slices.Sort(all)
	return strings.Join(all, "\n") + "\n"
}

// TestReplacedInterfaceLeftAlone: eth0 deleted and made again under the
// same name (a new ifindex, another address, default route, neighbour
// and, for tcfilter, its own ingress qdisc and filter) before teardown.
// Teardown deletes netbridge's own links and leaves the new eth0 exactly
// as it is, with a warning that names it.
func TestReplacedInterfaceLeftAlone(t *testing.T) {
	for _, model := range []string{modelTCFilter, modelBridge, modelMacvtap} {
		t.Run(model, func(t *testing.T) {
			node, pod := topology(t, 0)
			testnet.AddNeigh(t, pod, "eth0", "169.254.1.1", "02:00:5e:00:53:01")
			dir := t.TempDir()
			lib, logs := loggedManager(dir)
			ctx := context.Background()
			id := "replaced-" + model
			t.Cleanup(func() { netbridge.New(dir, nil).Teardown(context.Background(), id) })
			if _, err := lib.Setup(ctx, sandbox.Config{ID: id, Netns: pod.Path(), Model: sandbox.Model(model)}); err != nil {
				t.Fatal(err)
			}
			testnet.Exec(t, pod, "ip", "link", "del", "eth0")
			testnet.VethPair(t, node, pod, "veth9", "eth0", 0)
			testnet.AddAddr(t, pod, "eth0", "192.0.2.2/24")
			testnet.AddRoute(t, pod, "eth0", "default", "192.0.2.1")
			testnet.AddNeigh(t, pod, "eth0", "192.0.2.77", "02:00:5e:00:53:02")
			testnet.Exec(t, pod, "tc", "qdisc", "add", "dev", "eth0", "ingress")
			testnet.Exec(t, pod, "tc", "filter", "add", "dev", "eth0", "ingress", "prio", "7", "protocol", "ip", "u32", "match", "u32", "0", "0", "flowid", "1:1")
			replaced := testnet.Snapshot(t, pod)
			if err := lib.Teardown(ctx, id); err != nil {
				t.Fatalf("teardown: %v\n%s", err, logs)
			}
			if d := testnet.Diff(withoutOurs(replaced), testnet.Snapshot(t, pod)); d != "" {
				t.Errorf("teardown changed the new eth0 (or left netbridge's links):\n%s\nlog:\n%s", d, logs)
			}
			if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "eth0") {
				t.Errorf("no warning about the replaced eth0:\n%s", logs)
			}
		})
	}
}

// TestCrashedSetupLeavesUserObjects: setup killed after the journal
// announced the step creating nb-eth0 (nbm-eth0 for macvtap) and before
// the link existed; the user then makes a link of that name (a tap, or a
// macvtap on eth0, with an address) and an ingress qdisc with a filter on
// eth0. Teardown undoes what the setup did and leaves the user's objects
// exactly as they are: an announced step whose object carries no proof of
// being netbridge's is not netbridge's.
func TestCrashedSetupLeavesUserObjects(t *testing.T) {
	for _, model := range []string{modelTCFilter, modelBridge, modelMacvtap, modelNone} {
		t.Run(model, func(t *testing.T) {
			_, pod := topology(t, 0)
			dir := t.TempDir()
			id := "crash-user-" + model
			t.Cleanup(func() { seamRun(t, "", "teardown", "--id", id, "--state-dir", dir) })
			before := testnet.Snapshot(t, pod)
			// The step making the link: the first, but for macvtap the
			// third (after the addresses and the MAC of eth0).
			name, point, user := "nb-eth0", "-1", []string{"ip", "tuntap", "add", "dev", "nb-eth0", "mode", "tap"}
			if model == modelMacvtap {
				name, point, user = "nbm-eth0", "-3", []string{"ip", "link", "add", "link", "eth0", "name", "nbm-eth0", "type", "macvtap", "mode", "bridge"}
			}
			out, err := seamRun(t, "NETBRIDGE_SEAM_CRASH="+point, "setup", "--netns", pod.Path(), "--id", id, "--model", model, "--state-dir", dir)
			if !killed(err) {
				t.Fatalf("setup was not killed: %v\n%s", err, out)
			}
			crashed := testnet.Snapshot(t, pod)
			if strings.Contains(crashed, "link "+name+" ") {
				t.Fatalf("the crash left %s:\n%s", name, crashed)
			}
			testnet.Exec(t, pod, user[0], user[1:]...)
			testnet.Exec(t, pod, "ip", "link", "set", name, "address", "02:00:5e:00:53:10", "up")
			testnet.Exec(t, pod, "ip", "addr", "add", "192.0.2.9/24", "dev", name)
			testnet.Exec(t, pod, "tc", "qdisc", "add", "dev", "eth0", "ingress")
			testnet.Exec(t, pod, "tc", "filter", "add", "dev", "eth0", "ingress", "prio", "7", "protocol", "ip", "u32", "match", "u32", "0", "0", "flowid", "1:1")
			var users []string
			for _, l := range strings.Split(testnet.Diff(crashed, testnet.Snapshot(t, pod)), "\n") {
				if rest, ok := strings.CutPrefix(l, "+"); ok {
					users = append(users, rest)
				}
			}
			out, err = seamRun(t, "", "teardown", "--id", id, "--state-dir", dir)
			if err != nil {
				t.Fatalf("teardown: %v\n%s", err, out)
			}
			if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "link="+name) {
				t.Errorf("teardown did not warn about the %s it left alone:\n%s", name, out)
			}
			if d := testnet.Diff(sortedLines(before, strings.Join(users, "\n")), sortedLines(testnet.Snapshot(t, pod))); d != "" {
				t.Errorf("teardown, want the state before setup and the user's objects:\n%s", d)
			}
		})
	}
}

// TestInterruptedTapCreationUndone: setup killed while making its tap,
// after the tap existed under its temporary name and before it was tagged
// and named (simulated: the tap made by hand under the name the journal
// announced). Teardown deletes it: that name is proof enough.
func TestInterruptedTapCreationUndone(t *testing.T) {
	_, pod := topology(t, 0)
	dir := t.TempDir()
	id := "crash-tmp-tap"
	t.Cleanup(func() { seamRun(t, "", "teardown", "--id", id, "--state-dir", dir) })
	before := testnet.Snapshot(t, pod)
	out, err := seamRun(t, "NETBRIDGE_SEAM_CRASH=-1", "setup", "--netns", pod.Path(), "--id", id, "--model", modelNone, "--state-dir", dir)
	if !killed(err) {
		t.Fatalf("setup was not killed: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, id+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Journal []struct {
			Op  string `json:"op"`
			Tmp string `json:"tmp"`
		} `json:"journal"`
	}
	if err := json.Unmarshal(b, &rec); err != nil || len(rec.Journal) == 0 || rec.Journal[0].Op != "create-tap" || rec.Journal[0].Tmp == "" {
		t.Fatalf("want a create-tap step with a temporary name first: %v\n%s", err, b)
	}
	testnet.Exec(t, pod, "ip", "tuntap", "add", "dev", rec.Journal[0].Tmp, "mode", "tap", "vnet_hdr")
	if out, err := seamRun(t, "", "teardown", "--id", id, "--state-dir", dir); err != nil {
		t.Fatalf("teardown: %v\n%s", err, out)
	}
	if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
		t.Errorf("teardown left the half-made tap:\n%s", d)
	}
}

// TestForeignFiltersOnOurQdisc: filters someone adds after setup to the
// ingress qdisc netbridge made on eth0, at another priority and at
// netbridge's own, survive teardown, and so does the qdisc that holds
// them; only netbridge's filter goes.
func TestForeignFiltersOnOurQdisc(t *testing.T) {
	_, pod := topology(t, 0)
	dir := t.TempDir()
	ctx := context.Background()
	t.Cleanup(func() { netbridge.New(dir, nil).Teardown(ctx, "foreign-filters") })
	before := testnet.Snapshot(t, pod)
	if _, err := netbridge.New(dir, nil).Setup(ctx, sandbox.Config{ID: "foreign-filters", Netns: pod.Path(), Model: modelTCFilter}); err != nil {
		t.Fatal(err)
	}
	testnet.Exec(t, pod, "tc", "filter", "add", "dev", "eth0", "ingress", "prio", "7", "protocol", "ip", "u32", "match", "u32", "0", "0", "flowid", "1:1")
	testnet.Exec(t, pod, "tc", "filter", "add", "dev", "eth0", "ingress", "prio", "20034", "protocol", "all", "u32", "match", "u8", "0", "0", "flowid", "1:2")
	var theirs []string
	for _, l := range strings.Split(testnet.Snapshot(t, pod), "\n") {
		if strings.HasPrefix(l, "qdisc eth0 ") || strings.HasPrefix(l, "filter eth0 ") && !strings.Contains(l, "mirred") {
			theirs = append(theirs, l)
		}
	}
	if len(theirs) != 3 {
		t.Fatalf("want the qdisc and two foreign filters on eth0, got %q", theirs)
	}
	if err := netbridge.New(dir, nil).Teardown(ctx, "foreign-filters"); err != nil {
		t.Fatal(err)
	}
	after := testnet.Snapshot(t, pod)
	if d := testnet.Diff(sortedLines(before, strings.Join(theirs, "\n")), sortedLines(after)); d != "" {
		t.Errorf("teardown, want the state before setup plus the foreign filters and their qdisc:\n%s", d)
	}
}

// TestOurPriorityTakenRefused: a filter of someone else at netbridge's
// priority on eth0's ingress qdisc before setup, of protocol all (which
// netbridge's filter would silently join) or ip (which the kernel refuses
// with a bare "invalid argument"): setup fails with an error naming the
// priority and the interface, and changes nothing.
func TestOurPriorityTakenRefused(t *testing.T) {
	for _, proto := range []string{"all", "ip"} {
		t.Run(proto, func(t *testing.T) {
			_, pod := topology(t, 0)
			dir := t.TempDir()
			ctx := context.Background()
			t.Cleanup(func() { netbridge.New(dir, nil).Teardown(ctx, "prio-taken") })
			testnet.Exec(t, pod, "tc", "qdisc", "add", "dev", "eth0", "ingress")
			testnet.Exec(t, pod, "tc", "filter", "add", "dev", "eth0", "ingress", "prio", "20034", "protocol", proto, "u32", "match", "u32", "0", "0", "flowid", "1:1")
			before := testnet.Snapshot(t, pod)
			_, err := netbridge.New(dir, nil).Setup(ctx, sandbox.Config{ID: "prio-taken", Netns: pod.Path(), Model: modelTCFilter})
			if !errors.Is(err, netbridge.ErrFilterPriorityTaken) || !strings.Contains(err.Error(), "20034") || !strings.Contains(err.Error(), `"eth0"`) {
				t.Fatalf("setup = %v, want ErrFilterPriorityTaken naming priority 20034 and eth0", err)
			}
			if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
				t.Errorf("the refused setup changed:\n%s", d)
			}
		})
	}
}

// TestTwoDefaultRoutesRestored: eth0 and net1 each have an IPv4 default
// route, as the CNI plugins add them (the second prepended next to the
// first). The bridge and macvtap models move both to the guest, and
// teardown puts back exactly both.
func TestTwoDefaultRoutesRestored(t *testing.T) {
	for _, model := range []string{modelBridge, modelMacvtap} {
		t.Run(model, func(t *testing.T) {
			_, pod := twoNICPod(t)
			testnet.Exec(t, pod, "ip", "route", "prepend", "default", "via", "203.0.113.1", "dev", "net1")
			dir := t.TempDir()
			ctx := context.Background()
			t.Cleanup(func() { netbridge.New(dir, nil).Teardown(ctx, "two-defaults") })
			before := testnet.Snapshot(t, pod)
			if strings.Count(before, "unicast 0.0.0.0/0") != 2 {
				t.Fatalf("want two IPv4 default routes:\n%s", before)
			}
			if _, err := netbridge.New(dir, nil).Setup(ctx, sandbox.Config{ID: "two-defaults", Netns: pod.Path(), Model: sandbox.Model(model)}); err != nil {
				t.Fatal(err)
			}
			if err := netbridge.New(dir, nil).Teardown(ctx, "two-defaults"); err != nil {
				t.Fatal(err)
			}
			if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
				t.Errorf("teardown did not restore exactly:\n%s", d)
			}
		})
	}
}

// linesAbout returns the lines of snapshot s that mention link (with is
// true) or do not (with false).
func linesAbout(s, link string, with bool) string {
	re := regexp.MustCompile(`\b` + regexp.QuoteMeta(link) + `\b`)
	var keep []string
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" && re.MatchString(l) == with {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "")
}

// qdiscFree matches the snapshot line of an ingress qdisc on eth0 or eth9.
var qdiscFree = regexp.MustCompile(`(?m)^qdisc eth[09] ingress .*\n`)

// renamedSnapshot is snapshot s with link from renamed to to.
func renamedSnapshot(s, from, to string) string {
	re := regexp.MustCompile(`\b` + regexp.QuoteMeta(from) + `\b`)
	return sortedLines(re.ReplaceAllString(s, to))
}

// TestMovedInterfaceFollowed: eth0 renamed to eth9, or moved to another
// netns and back, between setup and teardown. Teardown follows the
// interface by its identity and restores it exactly: its addresses,
// routes, neighbour and MAC come back (bridge, macvtap), netbridge's qdisc
// and filter leave it (tcfilter).
func TestMovedInterfaceFollowed(t *testing.T) {
	for _, how := range []string{"renamed", "moved"} {
		for _, model := range []string{modelTCFilter, modelBridge, modelMacvtap} {
			t.Run(how+"/"+model, func(t *testing.T) {
				_, pod := topology(t, 0)
				testnet.AddNeigh(t, pod, "eth0", "169.254.1.1", "02:00:5e:00:53:01")
				dir := t.TempDir()
				lib, logs := loggedManager(dir)
				ctx := context.Background()
				id := how + "-" + model
				t.Cleanup(func() { netbridge.New(dir, nil).Teardown(context.Background(), id) })
				before := testnet.Snapshot(t, pod)
				if _, err := lib.Setup(ctx, sandbox.Config{ID: id, Netns: pod.Path(), Model: sandbox.Model(model)}); err != nil {
					t.Fatal(err)
				}
				want := before
				switch how {
				case "renamed":
					testnet.Exec(t, pod, "ip", "link", "set", "eth0", "down")
					testnet.Exec(t, pod, "ip", "link", "set", "eth0", "name", "eth9")
					testnet.Exec(t, pod, "ip", "link", "set", "eth9", "up")
					want = renamedSnapshot(before, "eth0", "eth9")
				case "moved":
					away := testnet.NewNS(t)
					testnet.Exec(t, pod, "ip", "link", "set", "eth0", "netns", testnet.Name(away))
					testnet.Exec(t, away, "ip", "link", "set", "eth0", "netns", testnet.Name(pod))
					testnet.Exec(t, pod, "ip", "link", "set", "eth0", "up")
				}
				if model == modelTCFilter {
					// The tcfilter model changes nothing of eth0 but its
					// ingress qdisc: what the kernel flushed from it with
					// the rename (down) or the move is not netbridge's to
					// put back.
					want = qdiscFree.ReplaceAllString(withoutOurs(testnet.Snapshot(t, pod)), "")
				}
				if err := lib.Teardown(ctx, id); err != nil {
					t.Fatalf("teardown: %v\n%s", err, logs)
				}
				if d := testnet.Diff(sortedLines(want), sortedLines(testnet.Snapshot(t, pod))); d != "" {
					t.Errorf("teardown did not restore the interface exactly:\n%s\nlog:\n%s", d, logs)
				}
				if ents := testnet.DirNames(t, dir); len(ents) != 0 {
					t.Errorf("state dir: %v", ents)
				}
			})
		}
	}
}

// TestRestoreExact: an IPv4 address without a broadcast address, and a
// txqueuelen of 0 (which the kernel raises to 1000 when an ingress qdisc is
// added), come back exactly as they were in every model.
func TestRestoreExact(t *testing.T) {
	for _, model := range []string{modelTCFilter, modelBridge, modelMacvtap} {
		t.Run(model, func(t *testing.T) {
			node, pod := testnet.NewNS(t), testnet.NewNS(t)
			testnet.VethPair(t, node, pod, "veth0", "eth0", 0)
			testnet.Exec(t, pod, "ip", "link", "set", "eth0", "txqueuelen", "0")
			testnet.Exec(t, pod, "ip", "addr", "add", "198.51.100.2/24", "dev", "eth0")
			testnet.Exec(t, pod, "ip", "addr", "add", "198.51.100.3/24", "brd", "+", "dev", "eth0")
			testnet.AddRoute(t, pod, "eth0", "default", "198.51.100.1")
			dir := t.TempDir()
			ctx := context.Background()
			t.Cleanup(func() { netbridge.New(dir, nil).Teardown(ctx, "exact") })
			before := testnet.Snapshot(t, pod)
			if !strings.Contains(before, "txqlen=0") || !strings.Contains(before, "198.51.100.2/24 brd=-") {
				t.Fatalf("the snapshot does not show txqueuelen 0 and an address without broadcast:\n%s", before)
			}
			if _, err := netbridge.New(dir, nil).Setup(ctx, sandbox.Config{ID: "exact", Netns: pod.Path(), Model: sandbox.Model(model)}); err != nil {
				t.Fatal(err)
			}
			if err := netbridge.New(dir, nil).Teardown(ctx, "exact"); err != nil {
				t.Fatal(err)
			}
			if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
				t.Errorf("teardown did not restore exactly:\n%s", d)
			}
		})
	}
}

// recordFixture is test/e2e/testdata/records/NAME.fixture.json, written
// with the record NAME.json by test/recordgen at the previous release.
type recordFixture struct {
	Comment string     `json:"comment"`
	Node    [][]string `json:"node"`
	Pod     [][]string `json:"pod"`
	Setup   *struct {
		ID          string `json:"id"`
		Model       string `json:"model"`
		MacvtapMode string `json:"macvtap_mode"`
	} `json:"setup"`
	Attach []struct {
		ContainerID string `json:"container_id"`
		IfName      string `json:"ifname"`
		Network     string `json:"network"`
		Model       string `json:"model"`
	} `json:"attach"`
	Before string `json:"before"`
	Wired  string `json:"wired"`
}

// oldSnapshot turns a snapshot into what the previous release's snapshot
// showed: without the broadcast addresses.
var brdField = regexp.MustCompile(` brd=\S+`)

func oldSnapshot(s string) string { return brdField.ReplaceAllString(s, "") }

// upgradePod builds the pod of a fixture in new namespaces, as its
// commands say, and checks that it matches the fixture's snapshot.
func upgradePod(t *testing.T, f *recordFixture) ns.NetNS {
	t.Helper()
	node, pod := testnet.NewNS(t), testnet.NewNS(t)
	for _, side := range []struct {
		n    ns.NetNS
		cmds [][]string
	}{{node, f.Node}, {pod, f.Pod}} {
		for _, c := range side.cmds {
			args := make([]string, len(c))
			for i, a := range c {
				args[i] = strings.ReplaceAll(a, "{pod}", testnet.Name(pod))
			}
			testnet.Exec(t, side.n, args[0], args[1:]...)
		}
	}
	if d := testnet.Diff(f.Before, oldSnapshot(testnet.Snapshot(t, pod))); d != "" {
		t.Fatalf("the pod built from the fixture differs from the one the record was written in:\n%s", d)
	}
	return pod
}

// fixtureRecord returns the fixture's record made to apply to pod and the
// state directory dir, as if the previous release had written it there:
// the netns path and identity, the state directory in device paths, and
// the ifindexes of the interfaces and taps (by name) are those of the
// test's namespace; the rest is the previous release's bytes.
func fixtureRecord(t *testing.T, raw []byte, pod ns.NetNS, dir string) []byte {
	t.Helper()
	var old struct {
		Sandbox struct {
			ID    string `json:"id"`
			Netns string `json:"netns"`
			NICs  []struct {
				Device string `json:"device"`
			} `json:"nics"`
		} `json:"sandbox"`
	}
	if err := json.Unmarshal(raw, &old); err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(raw), `"`+old.Sandbox.Netns+`"`, `"`+pod.Path()+`"`)
	for _, nic := range old.Sandbox.NICs {
		if nic.Device != "" {
			text = strings.ReplaceAll(text, filepath.Dir(filepath.Dir(nic.Device)), dir)
		}
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(text), &rec); err != nil {
		t.Fatal(err)
	}
	n, err := netns.Open(pod.Path())
	if err != nil {
		t.Fatal(err)
	}
	rec["netns_id"] = n.ID()
	n.Close()
	index := func(name string) int { return testnet.LinkByName(t, pod, name).Attrs().Index }
	for _, v := range rec["sandbox"].(map[string]any)["nics"].([]any) {
		nic := v.(map[string]any)
		nic["index"] = index(nic["name"].(string))
		if _, ok := nic["tap_index"]; ok {
			nic["tap_index"] = index(nic["tap"].(string))
		}
	}
	out, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUpgradeRecordsOfPreviousRelease: a node upgrades netbridge while its
// pods run. For the record of every model and of the CNI plugin's attach
// mode, written by the previous release (testdata/records), the pod is
// built again as it was, wired as that release wired it (checked against
// the release's own snapshot of the wiring), and given that release's
// record. The new code checks it intact and tears it down exactly; for the
// bridge model it also leaves a replaced eth0 alone.
func TestUpgradeRecordsOfPreviousRelease(t *testing.T) {
	names, err := filepath.Glob("testdata/records/*.fixture.json")
	if err != nil || len(names) < 6 {
		t.Fatalf("fixtures: %v %v", names, err)
	}
	for _, fname := range names {
		name := strings.TrimSuffix(filepath.Base(fname), ".fixture.json")
		for _, attack := range []string{"", "replaced"} {
			if attack != "" && name != modelBridge {
				continue
			}
			t.Run(strings.TrimSuffix(name+"/"+attack, "/"), func(t *testing.T) {
				var f recordFixture
				b, err := os.ReadFile(fname)
				if err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(b, &f); err != nil {
					t.Fatal(err)
				}
				raw, err := os.ReadFile(filepath.Join("testdata/records", name+".json"))
				if err != nil {
					t.Fatal(err)
				}
				pod := upgradePod(t, &f)
				before := testnet.Snapshot(t, pod)
				dir := t.TempDir()
				lib, logs := loggedManager(dir)
				ctx := context.Background()
				var id string
				var ifaces []string
				if s := f.Setup; s != nil {
					id = s.ID
					cfg := sandbox.Config{ID: id, Netns: pod.Path(), Model: sandbox.Model(s.Model), MacvtapMode: sandbox.MacvtapMode(s.MacvtapMode)}
					if _, err := lib.Setup(ctx, cfg); err != nil {
						t.Fatal(err)
					}
				}
				for _, a := range f.Attach {
					id = a.ContainerID
					ifaces = append(ifaces, a.IfName)
					cfg := sandbox.Config{ID: id, Netns: pod.Path(), Model: sandbox.Model(a.Model), Network: a.Network, Interfaces: []string{a.IfName}}
					if _, err := lib.Attach(ctx, cfg); err != nil {
						t.Fatal(err)
					}
				}
				t.Cleanup(func() { netbridge.New(dir, nil).Teardown(context.Background(), id) })
				if d := testnet.Diff(f.Wired, oldSnapshot(testnet.Snapshot(t, pod))); d != "" {
					t.Fatalf("the wiring differs from the one the previous release made:\n%s", d)
				}
				if err := os.WriteFile(filepath.Join(dir, id+".json"), fixtureRecord(t, raw, pod, dir), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := lib.Check(ctx, id); err != nil {
					t.Errorf("check of the previous release's record: %v", err)
				}
				want := before
				if attack == "replaced" {
					node := testnet.NewNS(t)
					testnet.Exec(t, pod, "ip", "link", "del", "eth0")
					testnet.VethPair(t, node, pod, "veth9", "eth0", 0)
					testnet.AddAddr(t, pod, "eth0", "192.0.2.2/24")
					testnet.AddRoute(t, pod, "eth0", "default", "192.0.2.1")
					// net1 as before, eth0 as it is now.
					want = sortedLines(linesAbout(before, "eth0", false), linesAbout(withoutOurs(testnet.Snapshot(t, pod)), "eth0", true))
				}
				if ifaces == nil {
					err = lib.Teardown(ctx, id)
				} else {
					for i := len(ifaces) - 1; i >= 0 && err == nil; i-- {
						err = lib.Detach(ctx, id, ifaces[i]) // CNI DEL
					}
				}
				if err != nil {
					t.Fatalf("teardown of the previous release's record: %v\n%s", err, logs)
				}
				if d := testnet.Diff(sortedLines(want), sortedLines(testnet.Snapshot(t, pod))); d != "" {
					t.Errorf("teardown of the previous release's record did not restore exactly:\n%s\nlog:\n%s", d, logs)
				}
				if attack == "replaced" && !strings.Contains(logs.String(), "level=WARN") {
					t.Errorf("no warning about the replaced eth0:\n%s", logs)
				}
				if ents := testnet.DirNames(t, dir); len(ents) != 0 {
					t.Errorf("state dir: %v", ents)
				}
			})
		}
	}
}
