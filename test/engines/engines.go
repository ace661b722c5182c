// Package engines runs real container engines for netbridge's end-to-end
// tests: containerd with its CRI plugin (driven by crictl) and podman with
// netbridge's hooks.d entries, each inside a network namespace the test
// made, so that CNI's host side lands there and never in the host's
// namespace. Everything an engine writes lives under a temporary directory
// of the test, and the cleanup removes what the engines leave elsewhere
// (pod netns mounts, cgroups, CNI's result cache, shim processes).
//
// Tests skip when an engine is missing, and fail instead when the CI
// environment variable is set: in CI a skip would hide the engine tests.
package engines

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"

	"github.com/netbridge/netbridge/test/cni"
)

// Packages is the Debian install line of what this package needs.
const Packages = "containerd podman runc containernetworking-plugins busybox-static"

// require skips the test, or fails it when CI is set, unless it runs as
// root and every binary of names is installed.
func require(t testing.TB, names ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root")
	}
	var missing []string
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if _, serr := os.Stat(n); serr != nil {
				missing = append(missing, n)
			}
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("missing %s (Debian: apt-get install -y %s)", strings.Join(missing, ", "), Packages)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip("skipping: " + msg)
}

var builds struct {
	sync.Mutex
	dir  string
	done map[string]string
}

// Build builds the package pkg of this module, or of a tool module that
// go.mod pins with a tool directive, into a directory shared by the tests
// of this test binary, as name, and returns the binary's path. A binary is
// built once per test binary; the directory is removed by Cleanup.
func Build(t testing.TB, pkg, name string) string {
	t.Helper()
	builds.Lock()
	defer builds.Unlock()
	if p, ok := builds.done[name]; ok {
		return p
	}
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "netbridge-engines-bin-")
		if err != nil {
			t.Fatal(err)
		}
		builds.dir, builds.done = dir, map[string]string{}
	}
	mod, err := cni.ModuleDir(cni.GoCommand())
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(builds.dir, name)
	cmd := exec.Command(cni.GoCommand(), "build", "-o", out, pkg)
	cmd.Dir = mod
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	builds.done[name] = out
	return out
}

// Cleanup removes the binaries Build made. TestMain calls it.
func Cleanup() {
	builds.Lock()
	defer builds.Unlock()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
		builds.dir, builds.done = "", nil
	}
}

// shortTempDir makes a directory under /tmp with a short path (unix
// socket paths are limited to 108 bytes) and removes it, after
// unmounting anything left mounted under it, in t.Cleanup.
func shortTempDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unmountUnder(t, dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing %s: %v", dir, err)
		}
	})
	return dir
}

// mountsUnder returns the mount points at or under dir, in the order of
// /proc/self/mountinfo (deepest last).
func mountsUnder(dir string) []string {
	infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil
	}
	out := make([]string, len(infos))
	for i, info := range infos {
		out[i] = info.Mountpoint
	}
	return out
}

// unmountUnder lazily unmounts every mount at or under dir, deepest first.
func unmountUnder(t testing.TB, dir string) {
	mps := mountsUnder(dir)
	slices.Reverse(mps)
	for _, mp := range mps {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			t.Errorf("unmounting %s: %v", mp, err)
		}
	}
}

// processesWith returns the pids of the processes whose command line
// holds every one of args, among all processes.
func processesWith(args ...string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		words := strings.Split(string(b), "\x00")
		if slices.ContainsFunc(args, func(a string) bool { return !slices.Contains(words, a) }) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// children returns the pids whose parent is pid.
func children(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parens.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, c)
		}
	}
	return out
}

// killTree kills pid and every descendant of it with SIGKILL, children
// first found while the parent still lives.
func killTree(pid int) {
	var all []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		all = append(all, p)
		queue = append(queue, children(p)...)
	}
	for _, p := range all {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
}

// waitGone waits up to timeout for pid to exit (it may be a child of
// another process, so it is polled).
func waitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err == nil {
			s := string(b)
			if i := strings.LastIndexByte(s, ')'); i >= 0 && strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z") {
				return true // a zombie: exited, waiting for its parent
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// removeCgroup removes the cgroup directory rel (relative to each
// hierarchy's root) and everything below it from every cgroup hierarchy
// mounted under /sys/fs/cgroup, deepest first. Cgroups hold no files to
// delete: rmdir is all.
func removeCgroup(t testing.TB, rel string) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	roots = append(roots, "/sys/fs/cgroup")
	for _, root := range roots {
		top := filepath.Join(root, rel)
		if _, err := os.Stat(top); err != nil {
			continue
		}
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		slices.Reverse(dirs)
		for _, d := range dirs {
			var err error
			for range 50 { // a cgroup empties shortly after its last task exits
				if err = os.Remove(d); err == nil || errors.Is(err, os.ErrNotExist) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("removing cgroup %s: %v", d, err)
			}
		}
	}
}
