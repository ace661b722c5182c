// Package netns opens network namespaces by path and runs code inside them
// with the ns.Do discipline: the work runs on a fresh goroutine locked to its
// OS thread, and that thread is returned to the scheduler only after it has
// switched back to its original namespace. The host namespace is refused.
package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"
)

// initNetnsPath names init's namespace, the host's.
const initNetnsPath = "/proc/1/ns/net"

// startNetns is the namespace this process started in, read before any
// goroutine could enter another one. It is the host's for a hook or CLI,
// and the only one visible where /proc/1 cannot be read, as in some
// sandboxes. (/proc/self/ns/net would not do: it shows the main thread,
// which the Go scheduler may lend to a goroutine inside Do.)
var startNetns, startNetnsErr = PathID("/proc/thread-self/ns/net")

// ErrNotExist reports that a netns path does not exist.
var ErrNotExist = errors.New("network namespace does not exist")

// ErrNotNetns reports that a path exists but is not a network namespace.
var ErrNotNetns = errors.New("not a network namespace")

// ErrHostNetns reports that a path is the host's network namespace, which
// netbridge never modifies.
var ErrHostNetns = errors.New("refusing the host network namespace")

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

// refuseHost fails when id is init's namespace or the one this process
// started in, or when neither can be read to tell.
func refuseHost(path string, id ID) error {
	if startNetnsErr == nil && id == startNetns {
		return fmt.Errorf("opening netns %q: %w: it is the namespace netbridge runs in", path, ErrHostNetns)
	}
	host, err := PathID(initNetnsPath)
	if err == nil && id == host {
		return fmt.Errorf("opening netns %q: %w: it is the same namespace as %s", path, ErrHostNetns, initNetnsPath)
	}
	if err != nil && startNetnsErr != nil {
		return fmt.Errorf("opening netns %q: cannot tell whether it is the host namespace: %w", path, errors.Join(err, startNetnsErr))
	}
	return nil
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
