package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/testutils"
	"golang.org/x/sys/unix"
)

// newNS makes a throwaway network namespace, removed at the end of the
// test.
func newNS(t *testing.T) string {
	t.Helper()
	n, err := testutils.NewNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(); testutils.UnmountNS(n) })
	return n.Path()
}

// withHostSources replaces the ways the host's namespace is learnt, and
// the namespace netbridge pretends to have started in, for one test.
func withHostSources(t *testing.T, start ID, sources ...hostSource) {
	t.Helper()
	oldSources, oldStart, oldErr := hostSources, startNetns, startNetnsErr
	hostSources, startNetns, startNetnsErr = sources, start, nil
	t.Cleanup(func() { hostSources, startNetns, startNetnsErr = oldSources, oldStart, oldErr })
}

func failing(name string) hostSource {
	return hostSource{name, func() (ID, error) { return ID{}, fmt.Errorf("%w (injected)", os.ErrPermission) }}
}

func fixed(name string, id ID) hostSource {
	return hostSource{name, func() (ID, error) { return id, nil }}
}

// bindMount bind-mounts the namespace file src on a new file in a
// temporary directory, unmounted at the end of the test.
func bindMount(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "netns")
	if err := os.WriteFile(dst, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind-mounting %s: %v", src, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dst, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", dst, err)
		}
	})
	return dst
}

// hostNetnsPath returns a /proc path of the host's namespace that is not
// this process's: a kernel thread's.
func hostNetnsPath(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/2/stat")
	if err != nil || !kernelThread(string(b)) {
		t.Fatalf("PID 2 is not a kernel thread here (%v): the test needs the host's PID namespace", err)
	}
	return "/proc/2/ns/net"
}

// TestOpenRefusesHostByAnyNameWhereverStarted is the guard under attack:
// netbridge started inside a pod's namespace (so the namespace it started
// in is not the host's) where init's /proc/1/ns/net cannot be read, asked
// for the host's namespace through a /proc path, a bind mount and a file
// descriptor. Each must be refused.
func TestOpenRefusesHostByAnyNameWhereverStarted(t *testing.T) {
	requireRoot(t)
	host := hostNetnsPath(t)
	pod := newNS(t)
	podID, err := PathID(pod)
	if err != nil {
		t.Fatal(err)
	}
	// Started in the pod; init unreadable; the kernel threads as they are.
	withHostSources(t, podID, failing("init's /proc/1/ns/net"), hostSources[1])

	f, err := os.Open(host)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range []string{
		host,
		bindMount(t, host),
		fmt.Sprintf("/proc/self/fd/%d", f.Fd()),
		fmt.Sprintf("/dev/fd/%d", f.Fd()),
	} {
		n, err := Open(p)
		if !errors.Is(err, ErrHostNetns) {
			t.Errorf("Open(%q) = %v, want ErrHostNetns", p, err)
		}
		if n != nil {
			n.Close()
		}
	}
	// The pod itself is refused as the namespace netbridge runs in, and a
	// third namespace is fine.
	if _, err := Open(pod); !errors.Is(err, ErrHostNetns) {
		t.Errorf("Open(pod) = %v, want ErrHostNetns (netbridge runs in it)", err)
	}
	other := newNS(t)
	n, err := Open(other)
	if err != nil {
		t.Fatalf("Open(another netns) = %v", err)
	}
	n.Close()
}

// TestRefuseHostByEachSource checks that a namespace any source names as
// the host's is refused, with a namespace that is not the kernel's initial
// one standing in for the host.
func TestRefuseHostByEachSource(t *testing.T) {
	requireRoot(t)
	stand := newNS(t)
	standID, err := PathID(stand)
	if err != nil {
		t.Fatal(err)
	}
	start, err := PathID(newNS(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, sources := range [][]hostSource{
		{fixed("init", standID), failing("kthread")},
		{failing("init"), fixed("kthread", standID)},
		{fixed("init", ID{Dev: standID.Dev, Ino: 1}), fixed("kthread", standID)},
	} {
		withHostSources(t, start, sources...)
		n, err := Open(stand)
		if !errors.Is(err, ErrHostNetns) {
			t.Errorf("with sources %s, %s: Open = %v, want ErrHostNetns", sources[0].name, sources[1].name, err)
		}
		if n != nil {
			n.Close()
		}
	}
}

// TestOpenFailsClosedWhenHostUnknown: when no source can tell which
// namespace is the host's, every namespace is refused with an error that
// says how to proceed.
func TestOpenFailsClosedWhenHostUnknown(t *testing.T) {
	requireRoot(t)
	pod := newNS(t)
	start, err := PathID(newNS(t))
	if err != nil {
		t.Fatal(err)
	}
	withHostSources(t, start, failing("init's /proc/1/ns/net"), failing("a kernel thread's /proc/PID/ns/net"))
	n, err := Open(pod)
	if n != nil {
		n.Close()
	}
	if !errors.Is(err, ErrHostUnknown) {
		t.Fatalf("Open = %v, want ErrHostUnknown", err)
	}
	if errors.Is(err, ErrHostNetns) {
		t.Errorf("Open = %v: an unknown host is not a refusal of the host", err)
	}
	for _, want := range []string{"host's PID namespace", "/proc/1/ns/net", "injected"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := Find(pod, start, 1); !errors.Is(err, ErrHostUnknown) {
		t.Errorf("Find = %v, want ErrHostUnknown", err)
	}
}

// TestHostSourcesNameTheKernelThreadsNamespace checks the real sources on
// this machine: at least one can tell, and each that can names the
// namespace of kthreadd (PID 2).
func TestHostSourcesNameTheKernelThreadsNamespace(t *testing.T) {
	requireRoot(t)
	want, err := statOrLink(hostNetnsPath(t))
	if err != nil {
		t.Fatal(err)
	}
	ids, err := hostIDs()
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range ids {
		if h.id != want {
			t.Errorf("%s names %v, want %v", h.name, h.id, want)
		}
	}
	if got, err := kernelThreadNetns(); err != nil || got != want {
		t.Errorf("kernelThreadNetns() = %v, %v; want %v", got, err, want)
	}
	// readlink gives the same identity as stat.
	pod := newNS(t)
	byStat, err := PathID(pod)
	if err != nil {
		t.Fatal(err)
	}
	self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
	if _, err := LinkID(self); err != nil {
		t.Fatal(err)
	}
	if byLink, err := LinkID(hostNetnsPath(t)); err != nil || byLink != want {
		t.Errorf("LinkID(host) = %v, %v; want %v", byLink, err, want)
	}
	if _, err := LinkID(pod); err == nil {
		t.Errorf("LinkID(%s) of a bind mount, not a link: no error (stat gives %v)", pod, byStat)
	}
}

func TestKernelThread(t *testing.T) {
	for _, c := range []struct {
		stat string
		want bool
	}{
		{"2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0", true},
		{"1 (systemd) S 0 1 1 0 -1 4194560 1 2 3", false},
		{"77 (evil) S 0 0 0 0 -1 2129984 (x) S 1 1 1 0 -1 4194560 0", false}, // a command holding ") S ..."
		{"90 (iou-wrk-89) S 1 89 89 0 -1 2097232 0", false},                  // PF_KTHREAD|PF_IO_WORKER never both, but be strict
		{"91 (vhost-90) S 1 90 90 0 -1 2113600 0", false},                    // a user worker
		{"bad", false},
		{"5 (x) S 0", false},
	} {
		if got := kernelThread(c.stat); got != c.want {
			t.Errorf("kernelThread(%q) = %v, want %v", c.stat, got, c.want)
		}
	}
}

func TestNsfsMounts(t *testing.T) {
	info := `22 1 0:21 / /proc rw,nosuid - proc proc rw
540 28 0:4 net:[4026532500] /run/netns/a rw - nsfs nsfs rw
541 28 0:4 net:[4026532501] /run/netns/b rw - nsfs nsfs rw
542 28 0:4 net:[4026532500] /tmp/with\040space/ns rw shared:1 - nsfs nsfs rw
543 28 0:4 mnt:[4026532500] /tmp/mnt rw - nsfs nsfs rw
`
	got := nsfsMounts(strings.NewReader(info), "net:[4026532500]")
	want := []string{"/run/netns/a", "/tmp/with space/ns"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("nsfsMounts = %q, want %q", got, want)
	}
}

// cookieOf returns the cookie of the namespace at path.
func cookieOf(t *testing.T, path string) (ID, uint64) {
	t.Helper()
	n, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c, err := n.Cookie()
	if err != nil || c == 0 {
		t.Fatalf("Cookie() = %d, %v; this kernel has cookies (Linux 5.14 and later)", c, err)
	}
	return n.ID(), c
}

// TestFindFollowsTheNamespaceWhereverItLives: a namespace opened by one
// path is found by its identity and cookie when that path is gone or names
// another namespace, through another bind mount or a process inside it;
// only a namespace that nothing holds is reported gone. A namespace with
// the recorded inode but another cookie (an inode number the kernel reused)
// is never taken, and without a cookie only the path is looked at.
func TestFindFollowsTheNamespaceWhereverItLives(t *testing.T) {
	requireRoot(t)
	target := newNS(t)
	id, cookie := cookieOf(t, target)
	other := newNS(t)
	otherID, otherCookie := cookieOf(t, other)
	if cookie == otherCookie {
		t.Fatalf("two namespaces share cookie %d", cookie)
	}
	const gone = "/run/netns/nb-gone-for-good"

	// The recorded path now names another namespace; the target is
	// mounted elsewhere.
	n, err := Find(other, id, cookie)
	if err != nil {
		t.Fatalf("Find(other path) = %v", err)
	}
	if n.ID() != id || n.Path() == other {
		t.Errorf("Find found %v at %s, want %v (mounted at %s)", n.ID(), n.Path(), id, target)
	}
	n.Close()

	// The recorded path is gone.
	if n, err = Find(gone, id, cookie); err != nil {
		t.Fatalf("Find(gone path) = %v", err)
	}
	n.Close()

	// At its path, it is found with or without a cookie.
	for _, c := range []uint64{cookie, 0} {
		if n, err = Find(target, id, c); err != nil {
			t.Fatalf("Find(its own path, cookie %d) = %v", c, err)
		}
		n.Close()
	}

	// A namespace held only by a process.
	held, heldCookie := heldByProcess(t)
	if n, err = Find(gone, held, heldCookie); err != nil {
		t.Fatalf("Find(namespace of a process) = %v", err)
	}
	if n.ID() != held {
		t.Errorf("Find found %v, want %v", n.ID(), held)
	}
	n.Close()

	// The inode of one namespace with the cookie of another: what a
	// reused inode number looks like. Never taken, at the path or
	// elsewhere.
	for _, p := range []string{other, gone} {
		if n, err := Find(p, otherID, cookie); !errors.Is(err, ErrNotExist) {
			t.Errorf("Find(%s, inode of other, cookie of target) = %v, want ErrNotExist", p, err)
			if n != nil {
				n.Close()
			}
		}
	}
	// Without a cookie, only the path is looked at.
	if _, err := Find(gone, id, 0); !errors.Is(err, ErrNotExist) {
		t.Errorf("Find(gone path, no cookie) = %v, want ErrNotExist", err)
	}
	// A namespace nothing holds any more is gone.
	if _, err := Find(gone, ID{Dev: id.Dev, Ino: 1}, 1); !errors.Is(err, ErrNotExist) {
		t.Errorf("Find(unknown id) = %v, want ErrNotExist", err)
	}
}

// heldByProcess starts a process in a namespace of its own, which nothing
// else holds, and returns that namespace's identity and cookie. The
// process is killed at the end of the test.
func heldByProcess(t *testing.T) (ID, uint64) {
	t.Helper()
	cmd := exec.Command("unshare", "--net", "sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	self, err := PathID("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	p := fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)
	for range 1000 { // until unshare(1) has unshared, then exec'd sleep
		id, err := PathID(p)
		if err == nil && id != self {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid)); err == nil && string(b) == "sleep\n" {
				_, cookie := cookieOf(t, p)
				return id, cookie
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("process %d never got a namespace of its own", cmd.Process.Pid)
	return ID{}, 0
}
