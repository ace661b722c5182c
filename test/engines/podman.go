package engines

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// Podman runs podman for one test inside a network namespace of the test,
// with its own storage (vfs), run and temporary directories, the runc
// runtime and a hooks directory of the test. There is no daemon: each
// command is a podman process.
type Podman struct {
	t testing.TB
	// Dir holds everything of this podman.
	Dir string
	// HooksDir is the hooks.d directory podman reads.
	HooksDir string
	// Rootfs is a busybox root filesystem for --rootfs.
	Rootfs string
	// CgroupParent is the cgroup its containers go under.
	CgroupParent string

	node ns.NetNS
	base []string
}

// RequirePodman skips the test (fails it under CI) unless podman, runc,
// conmon and the static busybox are installed.
func RequirePodman(t testing.TB) {
	t.Helper()
	require(t, "podman", "runc", "conmon", "nsenter", BusyboxPath)
}

// NewPodman prepares podman to run inside node. Every container is removed
// in t.Cleanup, with what podman leaves behind.
func NewPodman(t testing.TB, node ns.NetNS) *Podman {
	t.Helper()
	RequirePodman(t)
	p := &Podman{t: t, node: node}
	p.Dir = shortTempDir(t, "nbpod-")
	p.HooksDir = filepath.Join(p.Dir, "hooks.d")
	p.Rootfs = filepath.Join(p.Dir, "rootfs")
	p.CgroupParent = "/nbtest-" + randomHex(6)
	for _, d := range []string{p.HooksDir, p.Rootfs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteRootfs(p.Rootfs); err != nil {
		t.Fatal(err)
	}
	p.base = []string{
		"--root", filepath.Join(p.Dir, "root"),
		"--runroot", filepath.Join(p.Dir, "runroot"),
		"--tmpdir", filepath.Join(p.Dir, "tmp"),
		"--storage-driver", "vfs",
		"--cgroup-manager", "cgroupfs",
		"--events-backend", "file",
		"--hooks-dir", p.HooksDir,
		"--runtime", "runc",
	}
	t.Cleanup(p.cleanup)
	return p
}

// RunArgs are the arguments of `podman run` every container of these tests
// needs here: explicit ulimits (podman's defaults exceed what it may set
// without CAP_SYS_RESOURCE), its cgroup parent and the busybox rootfs.
func (p *Podman) RunArgs() []string {
	return []string{
		"--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768",
		"--cgroup-parent", p.CgroupParent,
		"--rootfs", p.Rootfs,
	}
}

// Podman runs podman with args inside the node netns and returns its
// stdout; the error carries its stderr.
func (p *Podman) Podman(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	full := append([]string{"--net=" + p.node.Path(), "podman"}, p.base...)
	cmd := exec.CommandContext(ctx, "nsenter", append(full, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("podman %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// cleanup removes every container, then what podman leaves: conmon
// processes of ours, mounts under Dir, cgroups.
func (p *Podman) cleanup() {
	t := p.t
	if out, err := p.Podman("ps", "-aq"); err == nil {
		for _, id := range strings.Fields(out) {
			if _, err := p.Podman("rm", "-f", "-t", "0", id); err != nil {
				t.Errorf("cleanup: removing container %s: %v", id, err)
			}
		}
	}
	for _, pid := range processesContaining(p.Dir) {
		killTree(pid)
		waitGone(pid, 5*time.Second)
	}
	removeCgroup(t, p.CgroupParent)
}

// processesContaining returns the pids of processes one of whose
// arguments contains s.
func processesContaining(s string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(b, []byte(s)) {
			continue
		}
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}
