package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/netbridge"
)

// TestExec runs a shell through `netbridge exec` and checks what it was
// given: the sandbox netns, the queues at fds 3, 4, ..., and the fd-form
// NIC arguments appended to its argv.
func TestExec(t *testing.T) {
	for _, c := range []struct {
		model  string
		queues int
		want   string // what the queue fds point at
	}{
		{modelTCFilter, 2, "/dev/net/tun"},
		{modelMacvtap, 1, ".dev/nbm-eth0"},
	} {
		t.Run(c.model, func(t *testing.T) {
			_, pod := topology(t, 0)
			dir := t.TempDir()
			id := "exec-" + c.model
			run(t, "setup", "--netns", pod.Path(), "--id", id, "--model", c.model, "--queues", fmt.Sprint(c.queues), "--state-dir", dir)
			t.Cleanup(func() { exec.Command(netbridgeBinary(t), "teardown", "--id", id, "--state-dir", dir).Run() })
			script := `for fd in 3 4 5; do [ -e /proc/self/fd/$fd ] && echo "fd $fd $(readlink /proc/self/fd/$fd)"; done; echo "netns $(readlink /proc/self/ns/net)"; echo "args $*"`
			out := run(t, "exec", "--id", id, "--state-dir", dir, "--", "/bin/sh", "-c", script, "sh")
			var st unix.Stat_t
			if err := unix.Stat(pod.Path(), &st); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, fmt.Sprintf("netns net:[%d]", st.Ino)) {
				t.Errorf("the command did not run in the pod netns (inode %d):\n%s", st.Ino, out)
			}
			for q := range c.queues {
				if !strings.Contains(out, fmt.Sprintf("fd %d ", 3+q)) || !strings.Contains(out, c.want) {
					t.Errorf("queue %d is not at fd %d pointing at %s:\n%s", q, 3+q, c.want, out)
				}
			}
			fds := "fds=3"
			if c.queues == 2 {
				fds = "fds=3:4"
			}
			if !strings.Contains(out, "args -netdev tap,id=net-eth0,"+fds) {
				t.Errorf("the NIC arguments were not appended:\n%s", out)
			}
			// The queues are released when the command exits: the single
			// queue of a tap can be opened again.
			sb, err := netbridge.New(dir, nil).OpenQueues(t.Context(), id)
			if err != nil {
				t.Fatalf("reopening the queues after exec: %v", err)
			}
			sb.Close()
		})
	}
	if out, err := exec.Command(netbridgeBinary(t), "exec", "--id", "nope", "--state-dir", t.TempDir(), "--", "true").CombinedOutput(); err == nil || !strings.Contains(string(out), "no such sandbox") {
		t.Errorf("exec of an unknown sandbox = %v %q", err, out)
	}
}
