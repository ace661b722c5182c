package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/test/testnet"
)

// nobodyUID is the uid of the unprivileged user planting files.
const nobodyUID = 65534

// nbRun runs the netbridge binary and returns its exit status, stdout and
// stderr, and its peak resident memory in bytes.
func nbRun(t *testing.T, args ...string) (code int, stdout, stderr string, maxRSS int64) {
	t.Helper()
	cmd := exec.Command(netbridgeBinary(t), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if cmd.ProcessState == nil {
		t.Fatalf("netbridge %s: %v", strings.Join(args, " "), err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		maxRSS = ru.Maxrss * 1024
	}
	t.Logf("netbridge %s: exit %d\n%s%s", strings.Join(args, " "), cmd.ProcessState.ExitCode(), o.String(), e.String())
	return cmd.ProcessState.ExitCode(), o.String(), e.String(), maxRSS
}

// victimNode makes a root-owned character device node (of /dev/null's
// number, harmless) alone in a directory of its own, outside any state
// directory: what a planted record points teardown at.
func victimNode(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "devices")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "victim")
	if err := unix.Mknod(p, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustExist(t *testing.T, p, what string) {
	t.Helper()
	if _, err := os.Lstat(p); err != nil {
		t.Errorf("%s %s: %v, want it left alone", what, p, err)
	}
}

func mustBeGone(t *testing.T, p, what string) {
	t.Helper()
	if _, err := os.Lstat(p); err == nil {
		t.Errorf("%s %s still exists", what, p)
	}
}

// plantRecord writes the record of sandbox id in dir: a sandbox of netns
// pod (with its true identity) whose journal holds steps.
func plantRecord(t *testing.T, dir, id string, pod ns.NetNS, steps ...map[string]any) string {
	t.Helper()
	nid, err := netns.PathID(pod.Path())
	if err != nil {
		t.Fatal(err)
	}
	rec := map[string]any{
		"version": 1, "phase": "ready", "created": "2024-01-01T00:00:00Z",
		"netns_id": nid, "request": map[string]any{"model": "macvtap"},
		"sandbox": map[string]any{"id": id, "netns": pod.Path(), "model": "macvtap", "nics": []any{}},
		"journal": steps,
	}
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, id+".json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPlantedRecordCannotDeleteDevices is the record attack: a record
// whose create-device step names a root-owned device node elsewhere, in a
// state dir another user controls or in netbridge's own. Teardown, with the
// record's netns alive or gone, must never delete the node or its parent.
func TestPlantedRecordCannotDeleteDevices(t *testing.T) {
	pod := testnet.NewNS(t)

	t.Run("world-writable dir of nobody", func(t *testing.T) {
		victim := victimNode(t)
		dir := filepath.Join(t.TempDir(), "S")
		if err := os.Mkdir(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(dir, 0o777)
		if err := os.Chown(dir, nobodyUID, nobodyUID); err != nil {
			t.Fatal(err)
		}
		// As nobody: plant evil.json.
		rec := plantRecord(t, dir, "evil", pod, map[string]any{"op": "create-device", "path": victim, "done": true})
		if err := os.Chown(rec, nobodyUID, nobodyUID); err != nil {
			t.Fatal(err)
		}
		code, _, stderr, _ := nbRun(t, "teardown", "--id", "evil", "--state-dir", dir)
		if code == 0 || !strings.Contains(stderr, "owned by uid 65534") {
			t.Errorf("teardown in a state dir of nobody's: exit %d, want a refusal naming the owner:\n%s", code, stderr)
		}
		mustExist(t, victim, "the victim node")
		mustExist(t, rec, "the planted record")
	})

	for _, c := range []struct {
		name string
		path func(dir, victim string) string
	}{
		{"absolute path elsewhere", func(_, victim string) string { return victim }},
		{"escape from the node dir", func(dir, victim string) string {
			rel, _ := filepath.Rel(filepath.Join(dir, "evil.dev"), victim)
			return dir + "/evil.dev/" + rel // not cleaned: .. climbs out
		}},
		{"another sandbox's node dir", func(dir, victim string) string { return filepath.Join(dir, "other.dev", "nbm-eth0") }},
	} {
		for _, netnsState := range []string{"alive", "gone"} {
			t.Run(c.name+" netns "+netnsState, func(t *testing.T) {
				victim := victimNode(t)
				dir := filepath.Join(t.TempDir(), "S")
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				if c.name == "another sandbox's node dir" {
					// A real node of sandbox "other" in the state dir.
					if err := os.Mkdir(filepath.Join(dir, "other.dev"), 0o700); err != nil {
						t.Fatal(err)
					}
					victim = filepath.Join(dir, "other.dev", "nbm-eth0")
					if err := unix.Mknod(victim, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
						t.Fatal(err)
					}
				}
				plantRecord(t, dir, "evil", pod, map[string]any{"op": "create-device", "path": c.path(dir, victim), "devnum": "1:3", "done": true})
				if netnsState == "gone" {
					// A record of a netns that no longer exists: an
					// identity no namespace has.
					rewriteNetnsID(t, filepath.Join(dir, "evil.json"))
				}
				code, _, stderr, _ := nbRun(t, "teardown", "--id", "evil", "--state-dir", dir)
				if code == 0 || !strings.Contains(stderr, "not touching it") {
					t.Errorf("teardown of a record naming %s: exit %d, want a refusal:\n%s", c.path(dir, victim), code, stderr)
				}
				mustExist(t, victim, "the victim node")
				mustExist(t, filepath.Dir(victim), "the victim's directory")
			})
		}
	}
}

// rewriteNetnsID gives the record at p a netns identity no namespace has.
func rewriteNetnsID(t *testing.T, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	rec["netns_id"] = map[string]any{"dev": 4, "ino": 1}
	if b, err = json.Marshal(rec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestMacvtapNodeOnlyInItsOwnDir: a symbolic link planted as the sandbox's
// node directory (STATE/ID.dev) is never followed: setup fails and rolls
// back, and no node appears where the link points. A node whose number is
// not the recorded one is left alone by teardown.
func TestMacvtapNodeOnlyInItsOwnDir(t *testing.T) {
	_, pod := topology(t, 0)
	before := testnet.Snapshot(t, pod)
	dir := t.TempDir()
	elsewhere := t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(dir, "mvt.dev")); err != nil {
		t.Fatal(err)
	}
	code, _, stderr, _ := nbRun(t, "setup", "--netns", pod.Path(), "--id", "mvt", "--model", "macvtap", "--state-dir", dir, "--cni-cache-dir", "")
	t.Cleanup(func() { exec.Command(netbridgeBinary(t), "teardown", "--id", "mvt", "--state-dir", dir).Run() })
	if code == 0 {
		t.Errorf("setup with a symlinked node dir succeeded:\n%s", stderr)
	}
	if names := testnet.DirNames(t, elsewhere); len(names) > 0 {
		t.Errorf("setup made %q where the symbolic link points", names)
	}
	if names := testnet.DirNames(t, dir); !slices.Equal(names, []string{"mvt.dev"}) {
		t.Errorf("state dir holds %q after the failed setup, want only the planted link", names)
	}
	if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
		t.Errorf("pod not rolled back:\n%s", d)
	}

	// Without the link: set up, then swap the node for one of another
	// number. Teardown undoes the rest and leaves that node.
	os.Remove(filepath.Join(dir, "mvt.dev"))
	if code, _, stderr, _ := nbRun(t, "setup", "--netns", pod.Path(), "--id", "mvt", "--model", "macvtap", "--state-dir", dir, "--cni-cache-dir", ""); code != 0 {
		t.Fatalf("setup: exit %d\n%s", code, stderr)
	}
	node := filepath.Join(dir, "mvt.dev", "nbm-eth0")
	mustExist(t, node, "the macvtap node")
	os.Remove(node)
	if err := unix.Mknod(node, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr, _ := nbRun(t, "teardown", "--id", "mvt", "--state-dir", dir); code == 0 || !strings.Contains(stderr, "not the recorded") {
		t.Errorf("teardown with a swapped node: exit %d, want a refusal naming the number:\n%s", code, stderr)
	}
	mustExist(t, node, "the swapped node")
	os.Remove(node)
	if code, _, stderr, _ := nbRun(t, "teardown", "--id", "mvt", "--state-dir", dir); code != 0 {
		t.Errorf("teardown once the swapped node is gone: exit %d\n%s", code, stderr)
	}
	if names := testnet.DirNames(t, dir); len(names) > 0 {
		t.Errorf("state dir holds %q after teardown, want nothing", names)
	}
	if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
		t.Errorf("after teardown:\n%s", d)
	}
}

// TestStateDirModeTightened: a pre-created state dir of root's with mode
// 0755 is tightened to 0700, as the README promises.
func TestStateDirModeTightened(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "S")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	if code, _, stderr, _ := nbRun(t, "status", "--state-dir", dir); code != 0 {
		t.Fatalf("status: exit %d\n%s", code, stderr)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode after use = %v, %v; want 0700", fi.Mode().Perm(), err)
	}
}

// startIn starts a long sleep inside n and returns it; it is killed at the
// end of the test.
func startIn(t *testing.T, n ns.NetNS) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := testnet.RunIn(n, cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// TestTeardownFindsTheNetnsWhereverItLives: setup through a path that no
// longer names the namespace at teardown (a process's /proc path after it
// exited, a bind mount that now holds another namespace) while the
// namespace lives on elsewhere. Teardown must find it by its recorded
// identity and undo everything, leaving any other namespace alone.
func TestTeardownFindsTheNetnsWhereverItLives(t *testing.T) {
	t.Run("process exited", func(t *testing.T) {
		_, pod := topology(t, 0)
		before := testnet.Snapshot(t, pod)
		dir := t.TempDir()
		p := startIn(t, pod)
		path := fmt.Sprintf("/proc/%d/ns/net", p.Process.Pid)
		if code, _, stderr, _ := nbRun(t, "setup", "--netns", path, "--id", "gone-proc", "--state-dir", dir, "--cni-cache-dir", ""); code != 0 {
			t.Fatalf("setup: exit %d\n%s", code, stderr)
		}
		t.Cleanup(func() { netbridgeTeardownIn(t, pod, dir, "gone-proc") })
		p.Process.Kill()
		p.Wait()
		if code, _, stderr, _ := nbRun(t, "teardown", "--id", "gone-proc", "--state-dir", dir); code != 0 {
			t.Fatalf("teardown: exit %d\n%s", code, stderr)
		}
		if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
			t.Errorf("after teardown (the netns lives on at %s):\n%s", pod.Path(), d)
		}
		if names := testnet.DirNames(t, dir); len(names) > 0 {
			t.Errorf("state dir holds %q, want nothing", names)
		}
	})
	t.Run("bind mount now names another netns", func(t *testing.T) {
		_, pod := topology(t, 0)
		other := testnet.NewNS(t)
		before, otherBefore := testnet.Snapshot(t, pod), testnet.Snapshot(t, other)
		dir := t.TempDir()
		path := filepath.Join(t.TempDir(), "netns")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		mount := func(src string) {
			if err := unix.Mount(src, path, "", unix.MS_BIND, ""); err != nil {
				t.Fatal(err)
			}
		}
		mount(pod.Path())
		t.Cleanup(func() { unix.Unmount(path, unix.MNT_DETACH) })
		if code, _, stderr, _ := nbRun(t, "setup", "--netns", path, "--id", "moved", "--state-dir", dir, "--cni-cache-dir", ""); code != 0 {
			t.Fatalf("setup: exit %d\n%s", code, stderr)
		}
		t.Cleanup(func() { netbridgeTeardownIn(t, pod, dir, "moved") })
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
			t.Fatal(err)
		}
		mount(other.Path())
		if code, _, stderr, _ := nbRun(t, "teardown", "--id", "moved", "--state-dir", dir); code != 0 {
			t.Fatalf("teardown: exit %d\n%s", code, stderr)
		}
		if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
			t.Errorf("after teardown (the netns lives on at %s):\n%s", pod.Path(), d)
		}
		if d := testnet.Diff(otherBefore, testnet.Snapshot(t, other)); d != "" {
			t.Errorf("the namespace now at the recorded path changed:\n%s", d)
		}
	})
}

// TestTeardownNeverTakesAReusedInode: the kernel reuses the inode number
// of a freed namespace, so a namespace found elsewhere with the recorded
// inode is taken only when its cookie is the recorded one. Here the
// recorded path is gone and the record's cookie is another namespace's:
// teardown must treat the recorded namespace as gone and leave the one
// with that inode alone.
func TestTeardownNeverTakesAReusedInode(t *testing.T) {
	_, pod := topology(t, 0)
	dir := t.TempDir()
	path := filepath.Join(t.TempDir(), "netns")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(pod.Path(), path, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(path, unix.MNT_DETACH) })
	if code, _, stderr, _ := nbRun(t, "setup", "--netns", path, "--id", "reused", "--state-dir", dir, "--cni-cache-dir", ""); code != 0 {
		t.Fatalf("setup: exit %d\n%s", code, stderr)
	}
	t.Cleanup(func() { netbridgeTeardownIn(t, pod, dir, "reused") })
	wired := testnet.Snapshot(t, pod)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "reused.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if c, _ := rec["netns_cookie"].(float64); c == 0 {
		t.Fatalf("the record has no netns cookie: %s", b)
	}
	rec["netns_cookie"] = 1 // the first namespace's, long gone
	if b, err = json.Marshal(rec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr, _ := nbRun(t, "teardown", "--id", "reused", "--state-dir", dir); code != 0 {
		t.Fatalf("teardown: exit %d\n%s", code, stderr)
	}
	if d := testnet.Diff(wired, testnet.Snapshot(t, pod)); d != "" {
		t.Errorf("teardown changed the namespace that only shares the recorded inode:\n%s", d)
	}
	// The tap left in the pod goes with the pod at the end of the test.
}

// netbridgeTeardownIn is a test's last resort: when the test failed before
// its teardown, it removes what a setup left in pod through the pod's own
// path, so that the namespace goes clean.
func netbridgeTeardownIn(t *testing.T, pod ns.NetNS, dir, id string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, id+".json"))
	if err != nil {
		return // torn down
	}
	var rec map[string]any
	if json.Unmarshal(b, &rec) == nil {
		if sb, ok := rec["sandbox"].(map[string]any); ok {
			sb["netns"] = pod.Path()
		}
		if b, err = json.Marshal(rec); err == nil {
			os.WriteFile(filepath.Join(dir, id+".json"), b, 0o600)
		}
	}
	exec.Command(netbridgeBinary(t), "teardown", "--id", id, "--state-dir", dir).Run()
}

// TestMacvtapNodeRemovedWhenNetnsGone: when the sandbox netns is gone, the
// macvtap went with it but its device node, a file on the host, did not;
// teardown removes it (a node left behind would open whichever device
// gets its number next).
func TestMacvtapNodeRemovedWhenNetnsGone(t *testing.T) {
	node := testnet.NewNS(t)
	pod, err := testnet.CreateNS("nbtest-")
	if err != nil {
		t.Fatal(err)
	}
	destroyed := false
	t.Cleanup(func() {
		if !destroyed {
			testnet.DestroyNS(pod)
		}
	})
	testnet.VethPair(t, node, pod, "veth0", "eth0", 0)
	testnet.AddAddr(t, pod, "eth0", "198.51.100.2/24")
	dir := t.TempDir()
	if code, _, stderr, _ := nbRun(t, "setup", "--netns", pod.Path(), "--id", "mvt-gone", "--model", "macvtap", "--state-dir", dir, "--cni-cache-dir", ""); code != 0 {
		t.Fatalf("setup: exit %d\n%s", code, stderr)
	}
	devNode := filepath.Join(dir, "mvt-gone.dev", "nbm-eth0")
	mustExist(t, devNode, "the macvtap node")
	if err := testnet.DestroyNS(pod); err != nil {
		t.Fatal(err)
	}
	destroyed = true
	if code, _, stderr, _ := nbRun(t, "teardown", "--id", "mvt-gone", "--state-dir", dir); code != 0 {
		t.Fatalf("teardown: exit %d\n%s", code, stderr)
	}
	mustBeGone(t, devNode, "the macvtap node")
	if names := testnet.DirNames(t, dir); len(names) > 0 {
		t.Errorf("state dir holds %q after teardown, want nothing", names)
	}
}

// TestNoLeftoverFiles: the temporary file of a record write killed before
// its rename, and the lock file of an id whose record was refused (a
// symbolic link), do not outlive the next command for that id.
func TestNoLeftoverFiles(t *testing.T) {
	_, pod := topology(t, 0)
	dir := t.TempDir()
	if code, _, stderr, _ := nbRun(t, "setup", "--netns", pod.Path(), "--id", "tmpl", "--state-dir", dir, "--cni-cache-dir", ""); code != 0 {
		t.Fatalf("setup: exit %d\n%s", code, stderr)
	}
	// What a SIGKILL between writing and renaming leaves.
	if err := os.WriteFile(filepath.Join(dir, ".tmpl.tmp"), []byte(`{"version":1`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr, _ := nbRun(t, "teardown", "--id", "tmpl", "--state-dir", dir); code != 0 {
		t.Fatalf("teardown: exit %d\n%s", code, stderr)
	}
	if names := testnet.DirNames(t, dir); len(names) > 0 {
		t.Errorf("state dir holds %q after teardown, want nothing", names)
	}

	if err := os.Symlink("/etc/hostname", filepath.Join(dir, "sym.json")); err != nil {
		t.Fatal(err)
	}
	if code, _, _, _ := nbRun(t, "teardown", "--id", "sym", "--state-dir", dir); code == 0 {
		t.Error("teardown of a symlinked record succeeded")
	}
	if names := testnet.DirNames(t, dir); !slices.Equal(names, []string{"sym.json"}) {
		t.Errorf("state dir holds %q after the refusal, want only the planted link", names)
	}
}

// TestGarbageRecordDoesNotHideOthers: one unreadable record (garbage, or
// far too large) is reported by status, which still lists the others and
// shows any other one asked for by id. A huge record is refused unread.
func TestGarbageRecordDoesNotHideOthers(t *testing.T) {
	dir := t.TempDir()
	for _, id := range []string{"aa", "zz"} {
		_, pod := topology(t, 0)
		if code, _, stderr, _ := nbRun(t, "setup", "--netns", pod.Path(), "--id", id, "--model", "none", "--state-dir", dir, "--cni-cache-dir", ""); code != 0 {
			t.Fatalf("setup %s: exit %d\n%s", id, code, stderr)
		}
		t.Cleanup(func() { exec.Command(netbridgeBinary(t), "teardown", "--id", id, "--state-dir", dir).Run() })
	}
	if err := os.WriteFile(filepath.Join(dir, "mm.json"), []byte(`{"version":1,"journal":[{`), 0o600); err != nil {
		t.Fatal(err)
	}
	// 64 MiB of valid JSON: a reader that reads it whole grows by as much.
	huge, err := os.Create(filepath.Join(dir, "hh.json"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(huge, `{"version":1,"sandbox":{"id":"hh","warnings":["`)
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	for range 64 {
		huge.Write(chunk)
	}
	fmt.Fprint(huge, `"]}}`)
	if err := huge.Close(); err != nil {
		t.Fatal(err)
	}

	// A child's peak RSS (ru_maxrss) counts what it shared with this
	// process when forked, so the bound allows this process's own RSS.
	limit := max(48<<20, selfRSS(t)+24<<20)
	code, stdout, stderr, rss := nbRun(t, "status", "--state-dir", dir)
	if code != 1 {
		t.Errorf("status with unreadable records: exit %d, want 1", code)
	}
	for _, id := range []string{"aa", "zz"} {
		if !strings.Contains(stdout, "sandbox "+id+":") {
			t.Errorf("status does not list %s:\n%s", id, stdout)
		}
	}
	for _, want := range []string{"mm.json", "hh.json", "more than"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("status does not report %q:\n%s", want, stderr)
		}
	}
	if rss > limit {
		t.Errorf("status peaked at %d MiB of memory with a 64 MiB record: it read the record", rss>>20)
	}

	code, stdout, _, _ = nbRun(t, "status", "--state-dir", dir, "--output", "json")
	var all []map[string]any
	if err := json.Unmarshal([]byte(stdout), &all); code != 1 || err != nil || len(all) != 2 {
		t.Errorf("status --output json: exit %d, %d sandboxes (%v), want exit 1 and the 2 readable ones", code, len(all), err)
	}
	if code, stdout, _, _ := nbRun(t, "status", "--state-dir", dir, "--id", "zz"); code != 0 || !strings.Contains(stdout, "sandbox zz:") {
		t.Errorf("status --id zz: exit %d, want 0 and its status:\n%s", code, stdout)
	}
	if code, _, stderr, _ := nbRun(t, "status", "--state-dir", dir, "--id", "mm"); code != 1 || !strings.Contains(stderr, "mm.json") {
		t.Errorf("status --id mm: exit %d, want 1 naming its record:\n%s", code, stderr)
	}
}

// TestOldMacvtapRecordTornDown: a macvtap record as the code before device
// numbers and cookies wrote it (no devnum, no netns_cookie; a node path
// relative to the working directory of a relative --state-dir) is still
// torn down whole, its node included.
func TestOldMacvtapRecordTornDown(t *testing.T) {
	_, pod := topology(t, 0)
	before := testnet.Snapshot(t, pod)
	dir := t.TempDir()
	if code, _, stderr, _ := nbRun(t, "setup", "--netns", pod.Path(), "--id", "old", "--model", "macvtap", "--state-dir", dir, "--cni-cache-dir", ""); code != 0 {
		t.Fatalf("setup: exit %d\n%s", code, stderr)
	}
	t.Cleanup(func() { exec.Command(netbridgeBinary(t), "teardown", "--id", "old", "--state-dir", dir).Run() })
	p := filepath.Join(dir, "old.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	delete(rec, "netns_cookie")
	devices := 0
	for _, s := range rec["journal"].([]any) {
		s := s.(map[string]any)
		if s["op"] == "create-device" {
			delete(s, "devnum")
			s["path"] = filepath.Join("state", "old.dev", filepath.Base(s["path"].(string)))
			devices++
		}
	}
	if devices != 1 {
		t.Fatalf("the record has %d device steps, want 1: %s", devices, b)
	}
	if b, err = json.Marshal(rec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr, _ := nbRun(t, "teardown", "--id", "old", "--state-dir", dir); code != 0 {
		t.Fatalf("teardown of an old record: exit %d\n%s", code, stderr)
	}
	if names := testnet.DirNames(t, dir); len(names) > 0 {
		t.Errorf("state dir holds %q after teardown, want nothing", names)
	}
	if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
		t.Errorf("after teardown:\n%s", d)
	}
}

// selfRSS returns this process's resident set size (VmRSS), in bytes.
func selfRSS(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err != nil {
				t.Fatalf("parsing VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}
