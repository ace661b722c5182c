// Package macvtap finds the character device of a macvtap link and makes a
// private device node for it.
//
// The kernel names a macvtap's device /dev/tap<ifindex>, by the ifindex
// inside the link's network namespace, so two sandboxes can have the same
// name; and devtmpfs creates it in the host's /dev. netbridge never uses
// that node: it reads the device number from sysfs as seen from the
// sandbox netns and creates its own node under the state directory.
package macvtap

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/pkg/sysfs"
)

// Device is a character device number.
type Device struct {
	Major, Minor uint32
}

// String returns "major:minor".
func (d Device) String() string { return fmt.Sprintf("%d:%d", d.Major, d.Minor) }

// ParseDevice parses the "major:minor" text of a sysfs dev file.
func ParseDevice(s string) (Device, error) {
	maj, min, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return Device{}, fmt.Errorf("device number %q: want major:minor", s)
	}
	a, err := strconv.ParseUint(maj, 10, 32)
	if err != nil {
		return Device{}, fmt.Errorf("device number %q: %w", s, err)
	}
	b, err := strconv.ParseUint(min, 10, 32)
	if err != nil {
		return Device{}, fmt.Errorf("device number %q: %w", s, err)
	}
	return Device{Major: uint32(a), Minor: uint32(b)}, nil
}

// Lookup returns the device number of the macvtap link with the given name
// and ifindex in the network namespace open as netnsFd, read from
// <link>/macvtap/tap<ifindex>/dev in a sysfs of that namespace.
func Lookup(netnsFd int, name string, ifindex int) (Device, error) {
	var dev Device
	err := sysfs.Do(netnsFd, false, func(root string) error {
		b, err := os.ReadFile(filepath.Join(root, "class", "net", name, "macvtap", "tap"+strconv.Itoa(ifindex), "dev"))
		if err != nil {
			return err
		}
		dev, err = ParseDevice(string(b))
		return err
	})
	if err != nil {
		return Device{}, fmt.Errorf("reading the device number of macvtap %q: %w", name, err)
	}
	return dev, nil
}

// ErrNotOurNode reports a path netbridge will not create or remove a node
// at: its directory is a symbolic link, not a directory, or not the
// caller's alone, or the file there is not the character device expected.
var ErrNotOurNode = errors.New("not netbridge's device node")

// MakeNode creates a character device node at path for dev, mode 0600,
// replacing a stale character device at the same path. Its directory is
// created with mode 0700 when missing (its parent must exist); an existing
// one must be a real directory of the caller's that no one else may write:
// a symbolic link in its place is refused (ErrNotOurNode), never followed.
func MakeNode(path string, dev Device) error {
	// No trailing slash: it would make open(2) follow a symbolic link.
	dir, name := filepath.Dir(path), filepath.Base(path)
	if err := unix.Mkdir(dir, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	fd, err := openDir(dir)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	mode, rdev := uint32(unix.S_IFCHR|0o600), int(unix.Mkdev(dev.Major, dev.Minor))
	err = unix.Mknodat(fd, name, mode, rdev)
	if errors.Is(err, unix.EEXIST) {
		if err := removeAt(fd, path, name, func(Device) error { return nil }); err != nil {
			return err
		}
		err = unix.Mknodat(fd, name, mode, rdev)
	}
	if err != nil {
		return fmt.Errorf("creating device node %s (%s): %w", path, dev, err)
	}
	return nil
}

// RemoveNode removes the character device node at path; a missing node is
// not an error, and anything but a character device is left alone. Its
// directory must be a real directory of the caller's that no one else may
// write (ErrNotOurNode otherwise).
func RemoveNode(path string) error {
	return RemoveNodeIf(path, func(Device) error { return nil })
}

// RemoveNodeOf is RemoveNode for the node of device dev only: a character
// device of another number at path is left alone (ErrNotOurNode).
func RemoveNodeOf(path string, dev Device) error {
	return RemoveNodeIf(path, func(got Device) error {
		if got != dev {
			return fmt.Errorf("it is device %s, not %s", got, dev)
		}
		return nil
	})
}

// RemoveNodeIf is RemoveNode for a node whose device number check accepts;
// a node it rejects is left alone (ErrNotOurNode, with check's reason).
func RemoveNodeIf(path string, check func(Device) error) error {
	// No trailing slash: it would make open(2) follow a symbolic link.
	dir, name := filepath.Dir(path), filepath.Base(path)
	fd, err := openDir(dir)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return removeAt(fd, path, name, check)
}

// removeAt removes the character device node name in the directory open
// as fd (path names it in errors) when check accepts its number.
func removeAt(fd int, path, name string, check func(Device) error) error {
	var st unix.Stat_t
	if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("checking device node %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		return fmt.Errorf("%s: %w: not a character device; not removing it", path, ErrNotOurNode)
	}
	got := Device{Major: unix.Major(st.Rdev), Minor: unix.Minor(st.Rdev)}
	if err := check(got); err != nil {
		return fmt.Errorf("%s: %w: %w; not removing it", path, ErrNotOurNode, err)
	}
	if err := unix.Unlinkat(fd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("removing device node %s: %w", path, err)
	}
	return nil
}

// RemoveDir removes dir, the directory of device nodes, when it is empty;
// a missing directory is fine, a non-empty one is kept. A symbolic link in
// its place is left alone (ErrNotOurNode).
func RemoveDir(dir string) error {
	err := unix.Rmdir(dir)
	switch {
	case err == nil, errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTEMPTY), errors.Is(err, unix.EEXIST):
		return nil
	case errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("%s: %w: not a directory; not removing it", dir, ErrNotOurNode)
	}
	return fmt.Errorf("removing %s: %w", dir, err)
}

// openDir opens dir, which must be a real directory of the caller's that
// group and others cannot write, and returns its descriptor.
func openDir(dir string) (int, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return -1, fmt.Errorf("%s: %w: not a directory (a symbolic link is never followed)", dir, ErrNotOurNode)
	}
	if err != nil {
		return -1, fmt.Errorf("opening %s: %w", dir, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("checking %s: %w", dir, err)
	}
	if euid := os.Geteuid(); int(st.Uid) != euid || st.Mode&0o022 != 0 {
		unix.Close(fd)
		return -1, fmt.Errorf("%s: %w: owned by uid %d with mode %04o; want a directory of uid %d's that no one else may write", dir, ErrNotOurNode, st.Uid, st.Mode&0o7777, euid)
	}
	return fd, nil
}

// Major returns the major number of macvtap character devices, from
// /proc/devices; false when the kernel has none (macvtap not loaded).
func Major() (uint32, bool, error) {
	b, err := os.ReadFile("/proc/devices")
	if err != nil {
		return 0, false, err
	}
	return majorOf(string(b), "macvtap")
}

// majorOf returns the major number of the character device driver name in
// the text of /proc/devices.
func majorOf(devices, name string) (uint32, bool, error) {
	chars, _, _ := strings.Cut(devices, "Block devices:")
	for line := range strings.Lines(chars) {
		f := strings.Fields(line)
		if len(f) == 2 && f[1] == name {
			n, err := strconv.ParseUint(f[0], 10, 32)
			if err != nil {
				return 0, false, fmt.Errorf("/proc/devices: %q: %w", line, err)
			}
			return uint32(n), true, nil
		}
	}
	return 0, false, nil
}

// NodeDevice returns the device number of the character device at path.
func NodeDevice(path string) (Device, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return Device{}, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		return Device{}, fmt.Errorf("%s is not a character device", path)
	}
	return Device{Major: unix.Major(st.Rdev), Minor: unix.Minor(st.Rdev)}, nil
}
