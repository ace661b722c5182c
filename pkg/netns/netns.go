// Package netns opens network namespaces by path and runs code inside them
// with the ns.Do discipline: the work runs on a fresh goroutine locked to its
// OS thread, and that thread is returned to the scheduler only after it has
// switched back to its original namespace. The host namespace is refused.
package netns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// initNetnsPath names init's namespace, the host's.
const initNetnsPath = "/proc/1/ns/net"

// initNetIno is the inode number of the kernel's initial network
// namespace on kernels that number it statically (NET_NS_INIT_INO, Linux
// 6.18 and later). Earlier kernels number every namespace, the initial one
// included, from 0xF0000000 up, so no other namespace can have it.
const initNetIno = 0xEFFFFFF9

// startNetns is the namespace this process started in, read before any
// goroutine could enter another one: the host's for a hook or CLI run
// there. (/proc/self/ns/net would not do: it shows the main thread, which
// the Go scheduler may lend to a goroutine inside Do.) It is refused as
// well as the host's, but it never stands for the host's: netbridge may
// have been started inside another namespace.
var startNetns, startNetnsErr = PathID("/proc/thread-self/ns/net")

// hostSource is one way to learn the identity of the host's network
// namespace.
type hostSource struct {
	name string
	id   func() (ID, error)
}

// hostSources are the ways to learn the host's namespace: init's (by
// stat, or by readlink where stat is denied) and a kernel thread's (every
// kernel thread lives in the initial namespace). A namespace is refused
// when it is the one any source names. Tests replace them.
var hostSources = []hostSource{
	{"init's " + initNetnsPath, func() (ID, error) { return statOrLink(initNetnsPath) }},
	{"a kernel thread's /proc/PID/ns/net", kernelThreadNetns},
}

// ErrNotExist reports that a netns path does not exist.
var ErrNotExist = errors.New("network namespace does not exist")

// ErrNotNetns reports that a path exists but is not a network namespace.
var ErrNotNetns = errors.New("not a network namespace")

// ErrHostNetns reports that a path is the host's network namespace, which
// netbridge never modifies.
var ErrHostNetns = errors.New("refusing the host network namespace")

// ErrHostUnknown reports that netbridge could not learn which namespace is
// the host's, and so refuses every namespace rather than risk the host's.
var ErrHostUnknown = errors.New("cannot tell which network namespace is the host's")

// NS is an open network namespace.
type NS struct {
	ns   ns.NetNS
	path string
	id   ID
}

// ID identifies a namespace by the device and inode of its nsfs file. Two
// paths name the same namespace exactly when their IDs are equal.
type ID struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
}

// String returns "dev:ino".
func (id ID) String() string { return fmt.Sprintf("%d:%d", id.Dev, id.Ino) }

// Open opens the network namespace at path. It fails with an error wrapping
// ErrNotExist, ErrNotNetns or ErrHostNetns when the path is missing, is not
// a netns, or is the host's netns.
func Open(path string) (*NS, error) {
	if ownNetnsPath(path) {
		// Whatever thread these name right now, they mean "this process's
		// namespace": the host's for a hook or CLI. (The main thread may
		// be inside another namespace at this instant, lent to a Do.)
		return nil, fmt.Errorf("opening netns %q: %w: it names netbridge's own namespace", path, ErrHostNetns)
	}
	n, err := ns.GetNS(path)
	if err != nil {
		var notExist ns.NSPathNotExistErr
		var notNS ns.NSPathNotNSErr
		switch {
		case errors.As(err, &notExist):
			return nil, fmt.Errorf("opening netns %q: %w", path, ErrNotExist)
		case errors.As(err, &notNS):
			return nil, fmt.Errorf("opening netns %q: %w (want an nsfs file such as /run/netns/NAME or /proc/PID/ns/net)", path, ErrNotNetns)
		}
		return nil, fmt.Errorf("opening netns %q: %w", path, err)
	}
	if t, err := unix.IoctlRetInt(int(n.Fd()), unix.NS_GET_NSTYPE); err != nil || t != unix.CLONE_NEWNET {
		n.Close()
		return nil, fmt.Errorf("opening netns %q: %w (it is a namespace file of another type, or not one at all)", path, ErrNotNetns)
	}
	id, err := fdID(int(n.Fd()))
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("reading netns %q: %w", path, err)
	}
	if err := refuseHost(path, id); err != nil {
		n.Close()
		return nil, err
	}
	return &NS{ns: n, path: path, id: id}, nil
}

// refuseHost fails when id is the host's namespace, or the one this
// process started in, or when the host's cannot be learnt at all (fail
// closed). The host's is recognised by identity, however path names it: a
// /proc path, a bind mount, a file descriptor.
func refuseHost(path string, id ID) error {
	if id.Ino == initNetIno {
		return fmt.Errorf("opening netns %q: %w: it is the kernel's initial network namespace", path, ErrHostNetns)
	}
	if startNetnsErr == nil && id == startNetns {
		return fmt.Errorf("opening netns %q: %w: it is the namespace netbridge runs in", path, ErrHostNetns)
	}
	hosts, err := hostIDs()
	if err != nil {
		return fmt.Errorf("opening netns %q: %w", path, err)
	}
	for _, h := range hosts {
		if id == h.id {
			return fmt.Errorf("opening netns %q: %w: it is the host's (the same as %s)", path, ErrHostNetns, h.name)
		}
	}
	return nil
}

// hostID is the host's namespace as one source names it.
type hostID struct {
	id   ID
	name string
}

// hostIDs returns the host's namespace as each source that could tell
// names it. When none could, it fails with an error wrapping
// ErrHostUnknown that says what to do.
func hostIDs() ([]hostID, error) {
	var ids []hostID
	var errs []error
	for _, s := range hostSources {
		id, err := s.id()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
			continue
		}
		ids = append(ids, hostID{id, s.name})
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w, so every namespace is refused (%w); run netbridge where /proc shows the host's processes: "+
			"in the host's PID namespace (a container needs the host's PID namespace and /proc), as root allowed to read %s or a kernel thread's ns/net link",
			ErrHostUnknown, errors.Join(errs...), initNetnsPath)
	}
	return ids, nil
}

// kernelThreadNetns returns the namespace of a kernel thread: kthreadd's
// (PID 2) in the host's PID namespace, else the first kernel thread /proc
// lists. There is none in another PID namespace.
func kernelThreadNetns() (ID, error) {
	id, err := threadNetns("2")
	if err == nil {
		return id, nil
	}
	ents, rerr := os.ReadDir("/proc")
	if rerr != nil {
		return ID{}, errors.Join(err, rerr)
	}
	for _, e := range ents {
		if e.Name() == "2" || !isPID(e.Name()) {
			continue
		}
		if id, terr := threadNetns(e.Name()); terr == nil {
			return id, nil
		}
	}
	return ID{}, fmt.Errorf("no kernel thread in /proc whose ns/net can be read (PID 2: %w)", err)
}

// threadNetns returns the namespace of process pid when it is a kernel
// thread.
func threadNetns(pid string) (ID, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return ID{}, err
	}
	if !kernelThread(string(b)) {
		return ID{}, fmt.Errorf("process %s is not a kernel thread", pid)
	}
	return statOrLink("/proc/" + pid + "/ns/net")
}

// statOrLink returns the ID of the namespace link at path, read by stat,
// else by readlink.
func statOrLink(path string) (ID, error) {
	id, err := PathID(path)
	if err == nil {
		return id, nil
	}
	if id, lerr := LinkID(path); lerr == nil {
		return id, nil
	}
	return ID{}, err
}

// Task flags of /proc/PID/stat (include/linux/sched.h).
const (
	pfIOWorker   = 0x00000010
	pfUserWorker = 0x00004000
	pfKthread    = 0x00200000
)

// kernelThread reports whether stat, the text of /proc/PID/stat, is a
// kernel thread's: PF_KTHREAD set, and not a worker thread of a user
// process (those share its namespaces).
func kernelThread(stat string) bool {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return false
	}
	// After the command: state, ppid, pgrp, session, tty_nr, tpgid, flags.
	f := strings.Fields(stat[i+1:])
	if len(f) < 7 {
		return false
	}
	flags, err := strconv.ParseUint(f[6], 10, 64)
	return err == nil && flags&pfKthread != 0 && flags&(pfIOWorker|pfUserWorker) == 0
}

func isPID(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// Find opens the network namespace whose identity is id and whose cookie
// is cookie, both read (ID, Cookie) when it was opened from path before.
// It tries path first. When path is gone or names another namespace now,
// the namespace may still live on, held by a bind mount or by a process:
// Find then looks for it among the nsfs mounts of this mount namespace
// (/proc/self/mountinfo) and the namespaces of the processes in /proc.
//
// Inode numbers are reused once a namespace is freed, cookies never: a
// namespace found elsewhere is taken only when its cookie is cookie. With
// no cookie (0: recorded by an older netbridge, or a kernel before 5.14)
// Find looks at path only. It fails with an error wrapping ErrNotExist
// only when the namespace is nowhere to be found, and never opens the
// host's.
func Find(path string, id ID, cookie uint64) (*NS, error) {
	n, err := Open(path)
	switch {
	case err == nil && n.ID() == id && sameCookie(n, cookie):
		return n, nil
	case err == nil:
		n.Close()
	case errors.Is(err, ErrHostUnknown):
		return nil, err
	}
	if cookie != 0 {
		match := func(n *NS) bool { return n.ID() == id && sameCookie(n, cookie) }
		if found := findMounted(id, match); found != nil {
			return found, nil
		}
		if found := findInProcesses(id, match); found != nil {
			return found, nil
		}
	}
	if err != nil && !errors.Is(err, ErrNotExist) && !errors.Is(err, ErrNotNetns) && !errors.Is(err, ErrHostNetns) {
		// The namespace may be at path, unreadable: do not call it gone.
		return nil, fmt.Errorf("looking for netns %s: %w", id, err)
	}
	where := "not at that path, not mounted anywhere in this mount namespace, and no process is in it"
	if cookie == 0 {
		where = "not at that path (with no cookie recorded, it is looked for there only)"
	}
	return nil, fmt.Errorf("looking for netns %s (opened as %q before): %w: %s", id, path, ErrNotExist, where)
}

// sameCookie reports whether n's cookie is cookie; any cookie matches 0.
func sameCookie(n *NS, cookie uint64) bool {
	if cookie == 0 {
		return true
	}
	got, err := n.Cookie()
	return err == nil && got == cookie
}

// Cookie returns the namespace's cookie (SO_NETNS_COOKIE of a socket made
// inside it): a number the kernel gives no other namespace, ever, unlike
// inode numbers, which it reuses once a namespace is freed. It is 0 and no
// error on kernels without cookies (before Linux 5.14).
func (n *NS) Cookie() (uint64, error) {
	var cookie uint64
	err := n.Do(func() error {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		cookie, err = unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
		if errors.Is(err, unix.ENOPROTOOPT) {
			cookie, err = 0, nil
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("reading the cookie of netns %q: %w", n.path, err)
	}
	return cookie, nil
}

// findMounted opens an nsfs mount of namespace id listed in
// /proc/self/mountinfo that match accepts, if there is one.
func findMounted(id ID, match func(*NS) bool) *NS {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	for _, point := range nsfsMounts(f, fmt.Sprintf("net:[%d]", id.Ino)) {
		if n := openIf(point, match); n != nil {
			return n
		}
	}
	return nil
}

// nsfsMounts returns the mount points of the nsfs mounts in mountinfo
// (the format of /proc/self/mountinfo) whose root is root ("net:[INODE]").
func nsfsMounts(r io.Reader, root string) []string {
	infos, err := mountinfo.GetMountsFromReader(r, func(i *mountinfo.Info) (skip, stop bool) {
		return i.FSType != "nsfs" || i.Root != root, false
	})
	if err != nil {
		return nil
	}
	points := make([]string, len(infos))
	for i, info := range infos {
		points[i] = info.Mountpoint
	}
	return points
}

// findInProcesses opens namespace id through a process that is in it,
// when match accepts it.
func findInProcesses(id ID, match func(*NS) bool) *NS {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	for _, e := range ents {
		if !isPID(e.Name()) {
			continue
		}
		p := "/proc/" + e.Name() + "/ns/net"
		if got, err := statOrLink(p); err != nil || got != id {
			continue
		}
		if n := openIf(p, match); n != nil {
			return n
		}
	}
	return nil
}

// openIf opens path when match accepts the namespace there, else returns
// nil.
func openIf(path string, match func(*NS) bool) *NS {
	n, err := Open(path)
	if err != nil {
		return nil
	}
	if !match(n) {
		n.Close()
		return nil
	}
	return n
}

// ownNetnsPath reports whether path names the calling process's own netns
// through /proc: /proc/self/..., /proc/thread-self/... or /proc/<our pid>/....
func ownNetnsPath(path string) bool {
	p := filepath.Clean(path)
	if !strings.HasSuffix(p, "/ns/net") {
		return false // another namespace type: Open says it is not a netns
	}
	for _, prefix := range []string{"/proc/self/", "/proc/thread-self/", "/proc/" + strconv.Itoa(os.Getpid()) + "/"} {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

// PathID returns the ID of the namespace file at path.
func PathID(path string) (ID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return ID{}, err
	}
	return ID{Dev: st.Dev, Ino: st.Ino}, nil
}

// LinkID returns the ID of the namespace a /proc/PID/ns/net link points
// to, read with readlink, which some systems allow where stat is denied. The
// device is nsfs's, the one every namespace file has.
func LinkID(path string) (ID, error) {
	target, err := os.Readlink(path)
	if err != nil {
		return ID{}, err
	}
	num, ok := strings.CutPrefix(target, "net:[")
	num, ok2 := strings.CutSuffix(num, "]")
	if !ok || !ok2 {
		return ID{}, fmt.Errorf("%s links to %q, not a network namespace", path, target)
	}
	ino, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return ID{}, fmt.Errorf("%s links to %q: %w", path, target, err)
	}
	dev, err := nsfsDev()
	if err != nil {
		return ID{}, err
	}
	return ID{Dev: dev, Ino: ino}, nil
}

// nsfsDev returns the device of nsfs, shared by every namespace file.
func nsfsDev() (uint64, error) {
	if startNetnsErr == nil {
		return startNetns.Dev, nil
	}
	id, err := PathID(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		return 0, fmt.Errorf("reading the device of nsfs: %w", err)
	}
	return id.Dev, nil
}

func fdID(fd int) (ID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return ID{}, err
	}
	return ID{Dev: st.Dev, Ino: st.Ino}, nil
}

// Path returns the path the namespace was opened from.
func (n *NS) Path() string { return n.path }

// ID returns the namespace's identity.
func (n *NS) ID() ID { return n.id }

// Fd returns the namespace's file descriptor, valid until Close.
func (n *NS) Fd() int { return int(n.ns.Fd()) }

// Do runs fn on an OS thread that has entered the namespace. Goroutines that
// fn starts run elsewhere, in the caller's namespace. The calling goroutine's
// thread is never moved: if switching back fails, the worker thread is
// discarded by the Go runtime instead of being reused.
func (n *NS) Do(fn func() error) error {
	return n.ns.Do(func(ns.NetNS) error { return fn() })
}

// Close releases the namespace handle.
func (n *NS) Close() error { return n.ns.Close() }

// Current returns the ID of the calling thread's network namespace. Tests
// use it to prove that a thread's namespace never changes.
func Current() (ID, error) {
	return PathID(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
}

// lockPoll bounds the wait between two tries of Lock.
const lockPoll = 20 * time.Millisecond

// Lock takes an exclusive flock on the namespace n (its own inode,
// whichever path named it), which every netbridge wiring that netns takes,
// whatever its sandbox and state directory: deciding that an interface is
// free and wiring it are then one step, and two sandboxes cannot both take
// one interface. Closing n releases it. It waits until ctx is done. A
// kernel that cannot lock the namespace file leaves it unlocked.
func (n *NS) Lock(ctx context.Context) error {
	delay := time.Millisecond
	for {
		err := unix.Flock(n.Fd(), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil || !errors.Is(err, unix.EWOULDBLOCK) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for another netbridge setting up in netns %q: %w", n.Path(), ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, lockPoll)
	}
}
