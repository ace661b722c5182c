package testnet

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/moby/sys/mountinfo"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RunDir is the directory holding the bind mounts of named network
// namespaces; it is the directory `ip netns` uses (/var/run is a symlink to
// /run on the machines these tests target).
const RunDir = "/run/netns"

// namePrefix starts the name of every namespace created by [NewNS], so that
// leaked namespaces are easy to attribute.
const namePrefix = "nbtest-"

// RequireRoot skips the test unless it runs with effective uid 0. The
// helpers of this package create namespaces, links and raw sockets, which
// need CAP_SYS_ADMIN and CAP_NET_ADMIN/CAP_NET_RAW.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: test needs root (creates network namespaces, links and raw sockets)")
	}
}

type nsConfig struct {
	dad bool
}

// NSOption configures [NewNS].
type NSOption func(*nsConfig)

// WithDAD keeps the kernel's default IPv6 duplicate address detection in the
// new namespace. Without it, [NewNS] sets net.ipv6.conf.{all,default}.accept_dad
// to 0 inside the namespace so that IPv6 addresses are usable at once and are
// never reported as tentative.
func WithDAD() NSOption {
	return func(c *nsConfig) { c.dad = true }
}

// NewNS creates a fresh network namespace, bind-mounted at
// /run/netns/nbtest-<random> so that `ip netns exec <name>` works too, and
// returns it. The loopback link is brought up inside it and, unless
// [WithDAD] is given, IPv6 duplicate address detection is disabled for links
// created in it later. The namespace is closed and unmounted (and its mount
// point removed) in t.Cleanup; links inside it disappear with it once no
// process or open file keeps it alive.
//
// Like `ip netns add`, the first namespace of a process makes /run/netns a
// shared bind mount of itself unless it is a mount point already (see
// mountRunDir: otherwise a program doing it later hides the namespaces
// mounted before); the directory and that mount are left in place.
func NewNS(t testing.TB, opts ...NSOption) ns.NetNS {
	t.Helper()
	RequireRoot(t)
	var cfg nsConfig
	for _, o := range opts {
		o(&cfg)
	}
	n, err := CreateNS(namePrefix)
	if err != nil {
		t.Fatalf("creating network namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := DestroyNS(n); err != nil {
			t.Errorf("removing network namespace: %v", err)
		}
	})
	if err := initNS(n, cfg); err != nil {
		t.Fatalf("initialising network namespace %s: %v", Name(n), err)
	}
	return n
}

// Name returns the name under which `ip netns` knows n, that is the base
// name of its path (for namespaces made by [NewNS], the file in /run/netns).
func Name(n ns.NetNS) string {
	return filepath.Base(n.Path())
}

func randomName(prefix string) (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return prefix + hex.EncodeToString(b), nil
}

// CreateNS creates a fresh network namespace, bind-mounted at
// RunDir/<prefix><12 random hex digits> so that `ip netns` knows it by that
// name, brings its loopback link up and returns it, open. [DestroyNS]
// removes it. Nothing is left behind when CreateNS fails.
//
// It is the part of [NewNS] that needs no testing.TB, for the programs
// under test/ (benchmark drivers) that make their own namespaces; tests use
// NewNS. Like `ip netns add`, it makes RunDir a shared bind mount of itself
// first unless it is a mount point already; RunDir and that mount are
// left in place.
//
// The namespace is made by unshare(2) on a dedicated, locked OS thread,
// bind-mounted and the thread switched back. The thread is unlocked only
// when switching back succeeded; otherwise it stays locked and the Go
// runtime terminates it when the goroutine returns, so no other goroutine
// can ever run in the wrong namespace.
func CreateNS(prefix string) (ns.NetNS, error) {
	n, err := createNS(prefix)
	if err != nil {
		return nil, err
	}
	if err := linkUp(n, "lo"); err != nil {
		return nil, errors.Join(err, DestroyNS(n))
	}
	return n, nil
}

// createNS is CreateNS without bringing lo up.
func createNS(prefix string) (ns.NetNS, error) {
	runDir.Do(func() { runDir.err = mountRunDir() })
	if runDir.err != nil {
		return nil, runDir.err
	}
	name, err := randomName(prefix)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(RunDir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return nil, fmt.Errorf("creating mount point: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("creating mount point: %w", err)
	}

	type outcome struct {
		mounted bool
		err     error
	}
	done := make(chan outcome, 1)
	go func() {
		runtime.LockOSThread()
		var o outcome
		defer func() { done <- o }()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			o.err = fmt.Errorf("opening current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			o.err = fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
			return
		}
		if err := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, ""); err != nil {
			o.err = fmt.Errorf("bind-mounting new netns on %s: %w", path, err)
		} else {
			o.mounted = true
		}
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Stay locked: the runtime kills this thread when we return.
			o.err = errors.Join(o.err, fmt.Errorf("switching thread back to original netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
	}()
	o := <-done
	if o.err == nil {
		n, err := ns.GetNS(path)
		if err == nil {
			return n, nil
		}
		o.err = fmt.Errorf("opening %s: %w", path, err)
	}
	if o.mounted {
		_ = unix.Unmount(path, unix.MNT_DETACH)
	}
	_ = os.Remove(path)
	return nil, o.err
}

// DestroyNS closes n, a namespace made by [CreateNS], unmounts it and
// removes its mount point, and returns every error on the way. The kernel
// frees the namespace, and the links in it, once no process or open file
// keeps it alive.
func DestroyNS(n ns.NetNS) error {
	path := n.Path()
	var errs []error
	if err := n.Close(); err != nil {
		errs = append(errs, fmt.Errorf("closing %s: %w", path, err))
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
		errs = append(errs, fmt.Errorf("unmounting %s: %w", path, err))
	}
	if err := os.Remove(path); err != nil {
		errs = append(errs, fmt.Errorf("removing %s: %w", path, err))
	}
	return errors.Join(errs...)
}

// runDir makes RunDir a mount point once per process.
var runDir struct {
	sync.Once
	err error
}

// runDirLock serializes, across processes, the making of RunDir into a
// mount point.
const runDirLock = "/run/netns.nbtest.lock"

// mountRunDir makes RunDir a shared bind mount of itself unless it is a
// mount point already, as `ip netns add` and podman do on their first
// namespace. It must happen before the first namespace is mounted in it:
// when another program does it later, its new mount covers every
// namespace mounted in the directory before, whose mount points then
// cannot be unmounted or removed (EBUSY), and concurrent test processes
// (go test runs packages in parallel; the podman tests) would leave them
// behind. RunDir stays a mount point afterwards, as after `ip netns add`.
func mountRunDir() error {
	if err := os.MkdirAll(RunDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", RunDir, err)
	}
	lock, err := os.OpenFile(runDirLock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("opening %s: %w", runDirLock, err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("locking %s: %w", runDirLock, err)
	}
	mounted, err := mountinfo.Mounted(RunDir)
	if err != nil || mounted {
		return err
	}
	if err := unix.Mount(RunDir, RunDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind-mounting %s on itself: %w", RunDir, err)
	}
	if err := unix.Mount("", RunDir, "none", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("making %s a shared mount: %w", RunDir, err)
	}
	return nil
}

// linkUp brings the link name of n up.
func linkUp(n ns.NetNS, name string) error {
	h, l, err := HandleAndLink(n, name)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("bringing %s up in netns %s: %w", name, Name(n), err)
	}
	return nil
}

// initNS applies cfg to n, made by CreateNS (lo is up already): it turns
// IPv6 duplicate address detection off unless cfg.dad.
func initNS(n ns.NetNS, cfg nsConfig) error {
	if cfg.dad {
		return nil
	}
	for _, key := range []string{"net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"} {
		if err := WriteSysctl(n, key, "0"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// NewHandle returns a netlink handle whose socket lives in n, so that its
// methods act on n from any goroutine. It does not redirect operations that
// are not netlink messages, such as creating a tun/tap device.
func NewHandle(n ns.NetNS) (*netlink.Handle, error) {
	h, err := netlink.NewHandleAt(netns.NsHandle(int(n.Fd())))
	if err != nil {
		return nil, fmt.Errorf("netlink handle in netns %s: %w", n.Path(), err)
	}
	return h, nil
}

// Handle returns a netlink handle bound to n (see [NewHandle]) that is
// closed in t.Cleanup.
func Handle(t testing.TB, n ns.NetNS) *netlink.Handle {
	t.Helper()
	h, err := NewHandle(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// RunIn starts cmd (cmd.Start, not Run) so that the new process runs inside
// n; the caller waits for it with cmd.Wait as usual.
//
// Why this works: a network namespace belongs to an OS thread, and a child
// process inherits the namespaces of the thread that forked it. RunIn calls
// cmd.Start inside n.Do, which runs the function on a fresh goroutine locked
// to its OS thread after setns(2) moved that thread into n; Go's fork/exec
// runs clone(2) on the calling thread, so the child starts in n. Goroutines
// that os/exec starts for copying I/O run elsewhere, which does not matter
// because they only copy bytes. After Start returns, n.Do moves the thread
// back (or lets the runtime discard it if that fails).
//
// Do not set cmd.SysProcAttr.Pdeathsig: the kernel delivers it when the
// forking thread exits, and that thread belongs to the Go runtime.
func RunIn(n ns.NetNS, cmd *exec.Cmd) error {
	err := n.Do(func(ns.NetNS) error { return cmd.Start() })
	if err != nil {
		return fmt.Errorf("starting %s in netns %s: %w", cmd.Path, n.Path(), err)
	}
	return nil
}

// Exec runs the command name with args inside n, waits for it and returns
// its combined output; a failure to start or a non-zero exit fails the test.
// It is meant for diagnostics such as `ip -d link` or `tc filter show`.
func Exec(t testing.TB, n ns.NetNS, name string, args ...string) string {
	t.Helper()
	out, err := Output(n, name, args...)
	if err != nil {
		t.Fatalf("%s %s in netns %s: %v\n%s", name, strings.Join(args, " "), Name(n), err, out)
	}
	return out
}

// Output runs the command name with args inside n (see [RunIn]) and returns
// its combined stdout and stderr.
func Output(n ns.NetNS, name string, args ...string) (string, error) {
	var buf bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	if err := RunIn(n, cmd); err != nil {
		return "", err
	}
	if err := cmd.Wait(); err != nil {
		return buf.String(), fmt.Errorf("%s: %w", name, err)
	}
	return buf.String(), nil
}

func sysctlPath(key string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
}

// WriteSysctl sets the sysctl key (dotted, such as "net.ipv4.ip_forward")
// inside n. /proc/sys/net resolves to the network namespace of the thread
// that opens the file, so the write happens on a thread locked inside n.
func WriteSysctl(n ns.NetNS, key, value string) error {
	err := n.Do(func(ns.NetNS) error {
		return os.WriteFile(sysctlPath(key), []byte(value), 0o644)
	})
	if err != nil {
		return fmt.Errorf("setting %s=%s in netns %s: %w", key, value, n.Path(), err)
	}
	return nil
}

// ReadSysctl returns the value of the sysctl key inside n, without the
// trailing newline.
func ReadSysctl(n ns.NetNS, key string) (string, error) {
	var b []byte
	err := n.Do(func(ns.NetNS) error {
		var err error
		b, err = os.ReadFile(sysctlPath(key))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("reading %s in netns %s: %w", key, n.Path(), err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Sysctl sets the sysctl key to value inside n and fails the test on error.
func Sysctl(t testing.TB, n ns.NetNS, key, value string) {
	t.Helper()
	if err := WriteSysctl(n, key, value); err != nil {
		t.Fatal(err)
	}
}

// retryDump calls f until it returns an error other than
// netlink.ErrDumpInterrupted, at most a few times. Netlink dumps return that
// error, with partial data, when the kernel state changed during the dump.
func retryDump[T any](f func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for range 10 {
		v, err = f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
	}
	return v, err
}
