package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netbridge/netbridge/test/cni"
	"github.com/netbridge/netbridge/test/testnet"
)

// follower is a running `netbridge follow --output json`.
type follower struct {
	cmd    *exec.Cmd
	lines  chan followLine
	stderr *syncBuffer
	done   chan error
}

type followLine struct {
	Event      string   `json:"event"`
	Interface  string   `json:"interface"`
	Device     string   `json:"device"`
	Tap        string   `json:"tap"`
	GuestMAC   string   `json:"guest_mac"`
	Hotplugged bool     `json:"hotplugged"`
	Changed    []string `json:"changed"`
	ElapsedMS  *int64   `json:"elapsed_ms"`
	Error      string   `json:"error"`
}

// syncBuffer is a bytes.Buffer safe for a process writing while the test
// reads.
type syncBuffer struct {
	mu chan struct{}
	b  bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.String()
}

// startFollow starts follow for id; it is stopped (SIGTERM) at cleanup if
// still running.
func startFollow(t *testing.T, dir, id string, extra ...string) *follower {
	t.Helper()
	args := append([]string{"follow", "--id", id, "--state-dir", dir, "--output", "json"}, extra...)
	cmd := exec.Command(netbridgeBinary(t), args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	f := &follower{cmd: cmd, lines: make(chan followLine, 64), stderr: newSyncBuffer(), done: make(chan error, 1)}
	cmd.Stderr = f.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var l followLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				l = followLine{Event: "unparsable: " + sc.Text()}
			}
			f.lines <- l
		}
		close(f.lines)
		f.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-f.done:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				<-f.done
			}
		}
	})
	return f
}

// next returns the next event line; it fails the test when follow ends or
// stays silent for a minute (it is waiting for an event that never came).
func (f *follower) next(t *testing.T) followLine {
	t.Helper()
	select {
	case l, ok := <-f.lines:
		if !ok {
			t.Fatalf("follow ended; stderr:\n%s", f.stderr.String())
		}
		if l.ElapsedMS == nil {
			t.Errorf("event without elapsed_ms: %+v", l)
		}
		return l
	case <-time.After(time.Minute):
		t.Fatalf("no event from follow; stderr:\n%s", f.stderr.String())
	}
	return followLine{}
}

// expect returns the next event of interface ifname, skipping (and
// logging) changes of other interfaces, which a CNI plugin may cause.
func (f *follower) expect(t *testing.T, ifname string) followLine {
	t.Helper()
	for {
		l := f.next(t)
		if l.Interface == ifname || l.Event != "changed" {
			return l
		}
		t.Logf("skipped %+v", l)
	}
}

// wait waits for follow to exit and returns its exit code.
func (f *follower) wait(t *testing.T) int {
	t.Helper()
	for range f.lines {
	}
	select {
	case err := <-f.done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(time.Minute):
		t.Fatalf("follow did not exit; stderr:\n%s", f.stderr.String())
	}
	return -1
}

// addNet1 adds network net1 to the pod with the real CNI bridge plugin.
func addNet1(t *testing.T, node, pod ns.NetNS, ctr string) *cni.Attachment {
	t.Helper()
	conf := []byte(`{"cniVersion":"1.0.0","name":"follow-net1","type":"bridge","bridge":"nbfol0","isGateway":true,"ipMasq":false,` +
		`"ipam":{"type":"host-local","ranges":[[{"subnet":"192.0.2.0/24","gateway":"192.0.2.1"}]]}}`)
	return cni.Add(t, cni.Build(t), conf, node, pod, ctr, "net1")
}

func podMAC(t *testing.T, att *cni.Attachment, ifname string) string {
	t.Helper()
	for _, i := range att.Result.Interfaces {
		if i.Sandbox != "" && i.Name == ifname {
			return i.Mac
		}
	}
	t.Fatalf("CNI result without %s: %+v", ifname, att.Result)
	return ""
}

func TestFollowCLIAddsChangesAndRemovesNICs(t *testing.T) {
	node, pod := topology(t, 0)
	before := testnet.Snapshot(t, pod)
	dir := t.TempDir()
	const id = "e2e-follow"
	run(t, "setup", "--netns", pod.Path(), "--id", id, "--state-dir", dir)
	t.Cleanup(func() { exec.Command(netbridgeBinary(t), "teardown", "--id", id, "--state-dir", dir).Run() })
	f := startFollow(t, dir, id)
	waitFollowing(t, f, dir, id)

	// One follow per id: a second one exits 1 naming the first's pid.
	out, err := exec.Command(netbridgeBinary(t), "follow", "--id", id, "--state-dir", dir).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), fmt.Sprint(f.cmd.Process.Pid)) {
		t.Errorf("second follow: %v, %q; want exit 1 naming pid %d", err, out, f.cmd.Process.Pid)
	}

	att := addNet1(t, node, pod, "follow-ctr")
	l := f.expect(t, "net1")
	if l.Event != "added" || l.Interface != "net1" || l.Tap == "" || l.GuestMAC != podMAC(t, att, "net1") || l.Hotplugged {
		t.Errorf("event after net1 was added: %+v", l)
	}
	if out := run(t, "render", "--id", id, "--for", "qemu", "--state-dir", dir); !strings.Contains(out, l.Tap) {
		t.Errorf("render lacks net1's tap %s:\n%s", l.Tap, out)
	}
	run(t, "check", "--id", id, "--state-dir", dir)

	testnet.AddAddr(t, pod, "eth0", "198.51.100.3/24")
	if l := f.expect(t, "eth0"); l.Event != "changed" || l.Interface != "eth0" || strings.Join(l.Changed, ",") != "addresses" {
		t.Errorf("event after an address was added to eth0: %+v", l)
	}
	if out := run(t, "render", "--id", id, "--for", "guest-json", "--state-dir", dir); !strings.Contains(out, "198.51.100.3") {
		t.Errorf("the guest document lacks the new address:\n%s", out)
	}

	tap := l.Tap
	if err := att.Del(); err != nil {
		t.Fatal(err)
	}
	if l := f.expect(t, "net1"); l.Event != "removed" || l.Interface != "net1" || l.Tap != tap {
		t.Errorf("event after net1's CNI DEL: %+v", l)
	}
	if _, _, err := testnet.HandleAndLink(pod, tap); err == nil {
		t.Errorf("tap %s of the removed net1 is still there", tap)
	}
	run(t, "check", "--id", id, "--state-dir", dir)

	run(t, "teardown", "--id", id, "--state-dir", dir)
	if code := f.wait(t); code != 0 {
		t.Errorf("follow exited %d after the teardown, want 0; stderr:\n%s", code, f.stderr.String())
	}
	if !strings.Contains(f.stderr.String(), "torn down") {
		t.Errorf("follow's stderr does not say the sandbox was torn down:\n%s", f.stderr.String())
	}
	h, eth0 := testnet.Handle(t, pod), testnet.LinkByName(t, pod, "eth0")
	a, err := netlink.ParseAddr("198.51.100.3/24")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrDel(eth0, a); err != nil {
		t.Fatal(err)
	}
	if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
		t.Errorf("pod netns after teardown differs from before setup:\n%s", d)
	}
}

func TestFollowCLIStopsOnSignalAndNetnsGone(t *testing.T) {
	node, pod := topology(t, 0)
	dir := t.TempDir()
	const id = "e2e-follow-sig"
	run(t, "setup", "--netns", pod.Path(), "--id", id, "--state-dir", dir)
	t.Cleanup(func() { exec.Command(netbridgeBinary(t), "teardown", "--id", id, "--state-dir", dir).Run() })
	f := startFollow(t, dir, id)
	waitFollowing(t, f, dir, id)
	if err := f.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := f.wait(t); code != 0 {
		t.Errorf("follow exited %d on SIGTERM, want 0; stderr:\n%s", code, f.stderr.String())
	}
	run(t, "check", "--id", id, "--state-dir", dir) // the wiring is left as it is

	gone, err := testnet.CreateNS("nbfolgone")
	if err != nil {
		t.Fatal(err)
	}
	destroyed := false
	t.Cleanup(func() {
		if !destroyed {
			_ = testnet.DestroyNS(gone)
		}
	})
	testnet.VethPair(t, node, gone, "vgone", "eth0", 0)
	testnet.AddAddr(t, gone, "eth0", "203.0.113.2/24")
	run(t, "setup", "--netns", gone.Path(), "--id", "e2e-follow-gone", "--state-dir", dir)
	t.Cleanup(func() {
		exec.Command(netbridgeBinary(t), "teardown", "--id", "e2e-follow-gone", "--state-dir", dir).Run()
	})
	g := startFollow(t, dir, "e2e-follow-gone")
	waitFollowing(t, g, dir, "e2e-follow-gone")
	destroyed = true
	if err := testnet.DestroyNS(gone); err != nil {
		t.Fatal(err)
	}
	if code := g.wait(t); code != 0 {
		t.Errorf("follow exited %d when the netns went, want 0; stderr:\n%s", code, g.stderr.String())
	}
	if s := strings.TrimSpace(g.stderr.String()); strings.Count(s, "\n") != 0 || !strings.Contains(s, "netns") || !strings.Contains(s, "gone") {
		t.Errorf("follow's stderr when the netns went: %q, want one line saying so", s)
	}
}

func TestFollowCLIBadInput(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		args []string
		code int
	}{
		{[]string{"follow", "--id", "../x", "--state-dir", dir}, 2},
		{[]string{"follow", "--state-dir", dir}, 2},
		{[]string{"follow", "--id", "x", "--output", "xml", "--state-dir", dir}, 2},
		{[]string{"follow", "--id", "nope", "--state-dir", dir}, 1},
	} {
		out, err := exec.Command(netbridgeBinary(t), tt.args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != tt.code || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
			t.Errorf("netbridge %v: %v, %q; want exit %d and one line", tt.args, err, out, tt.code)
		}
	}
}

// waitFollowing waits until follow f holds the follow lock of id.
func waitFollowing(t *testing.T, f *follower, dir, id string) {
	t.Helper()
	want := fmt.Sprint(f.cmd.Process.Pid)
	waitUntil(t, "follow holding its lock", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "."+id+".follow"))
		return strings.TrimSpace(string(b)) == want
	})
}

// waitUntil polls cond until it holds; it fails the test after a minute
// (a process start under load can take seconds).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestFollowCLIQMPSocketNotQEMU: follow with a --qmp socket whose server
// is not QEMU keeps the wiring right, reports the failure once and goes on.
func TestFollowCLIQMPSocketNotQEMU(t *testing.T) {
	node, pod := topology(t, 0)
	dir := t.TempDir()
	const id = "e2e-follow-notqemu"
	run(t, "setup", "--netns", pod.Path(), "--id", id, "--state-dir", dir)
	t.Cleanup(func() { exec.Command(netbridgeBinary(t), "teardown", "--id", id, "--state-dir", dir).Run() })
	sockDir, err := os.MkdirTemp("", "nbnotqmp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("HTTP/1.0 200 OK\r\n\r\nnot QMP\n"))
			c.Close()
		}
	}()
	f := startFollow(t, dir, id, "--qmp", sock)
	waitFollowing(t, f, dir, id)
	att := addNet1(t, node, pod, "notqemu")
	if l := f.expect(t, "net1"); l.Event != "added" || l.Hotplugged || l.Error == "" {
		t.Errorf("event after net1 was added: %+v", l)
	}
	run(t, "check", "--id", id, "--state-dir", dir)
	if err := att.Del(); err != nil {
		t.Fatal(err)
	}
	if l := f.expect(t, "net1"); l.Event != "removed" || l.Hotplugged {
		t.Errorf("event after net1's DEL: %+v", l)
	}
	if f.cmd.ProcessState != nil {
		t.Fatalf("follow exited: %v", f.cmd.ProcessState)
	}
	if err := f.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := f.wait(t); code != 0 {
		t.Errorf("follow exited %d on SIGTERM", code)
	}
	if n := strings.Count(f.stderr.String(), "\n"); n > 1 {
		t.Errorf("follow reported the failure %d times, want once:\n%s", n, f.stderr.String())
	}
}
