package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/test/testnet"
)

// hostProcess starts a process in the namespace this test runs in, the
// host's, and returns its /proc/PID/ns/net: what `/proc/$$/ns/net` of a
// shell on the host names. The process is killed at the end of the test.
func hostProcess(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	p := fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)
	got, err := netns.PathID(p)
	if err != nil {
		t.Fatal(err)
	}
	// Every kernel thread lives in the host's namespace: kthreadd's is it.
	host, err := netns.PathID("/proc/2/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if got != host {
		t.Skipf("this test runs in netns %v, not the host's (%v): it needs to run on the host", got, host)
	}
	return p
}

// bindMountFile bind-mounts src on a new file in a temporary directory,
// unmounted at the end of the test.
func bindMountFile(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "hostns")
	if err := os.WriteFile(dst, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind-mounting %s on %s: %v", src, dst, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dst, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", dst, err)
		}
	})
	return dst
}

// runInside runs the netbridge binary with args inside netns in (so the
// namespace it starts in is not the host's), with extra open files from
// fd 3 on, and returns its exit status and output.
func runInside(t *testing.T, in ns.NetNS, extra []*os.File, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command("nsenter", append([]string{"--net=" + in.Path(), "--", netbridgeBinary(t)}, args...)...)
	cmd.ExtraFiles = extra
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if cmd.ProcessState == nil {
		t.Fatalf("running netbridge in %s: %v", in.Path(), err)
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// TestHostNetnsRefusedFromInsideAPod is the host guard under attack:
// netbridge started inside a pod's namespace (`ip netns exec pod netbridge
// ...`), where the namespace it starts in is not the host's and, on this
// machine, init's /proc/1/ns/net cannot be read, is pointed at the host's
// namespace through another process's /proc path, a bind mount of it, and
// an inherited file descriptor. Every command that enters a namespace must
// refuse with the host-netns usage error (exit 2) and change nothing: the
// pod, the state directory.
func TestHostNetnsRefusedFromInsideAPod(t *testing.T) {
	pod := testnet.NewNS(t)
	hostPath := hostProcess(t)
	mounted := bindMountFile(t, hostPath)
	fd, err := os.Open(hostPath)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	names := map[string]string{"proc": hostPath, "bind-mount": mounted, "fd": "/dev/fd/3"}

	before := testnet.Snapshot(t, pod)
	for _, name := range []string{"proc", "bind-mount", "fd"} {
		path := names[name]
		for _, c := range []struct {
			cmd  string
			args []string
		}{
			{"discover", []string{"discover", "--netns", path}},
			{"setup", []string{"setup", "--netns", path, "--id", "attack", "--interfaces", "nb-absent0", "--cni-cache-dir", ""}},
		} {
			t.Run(c.cmd+"_"+name, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "state")
				args := c.args
				if c.cmd == "setup" {
					args = append(args, "--state-dir", dir)
				}
				code, out := runInside(t, pod, []*os.File{fd}, args...)
				t.Logf("exit %d: %s", code, strings.TrimSpace(out))
				if code != 2 || !strings.Contains(out, netns.ErrHostNetns.Error()) {
					t.Errorf("netbridge %s inside a pod netns, given the host's as %s: exit %d, want 2 with %q:\n%s", c.cmd, path, code, netns.ErrHostNetns, out)
				}
				if names := testnet.DirNames(t, dir); len(names) > 0 {
					t.Errorf("state dir holds %q, want nothing", names)
				}
			})
		}
	}
	if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
		t.Errorf("pod changed:\n%s", d)
	}
}
