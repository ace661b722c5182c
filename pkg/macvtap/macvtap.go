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

// MakeNode creates a character device node at path for dev, mode 0600,
// replacing a stale node of ours at the same path. Its directory is created
// with mode 0700.
func MakeNode(path string, dev Device) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	err := unix.Mknod(path, unix.S_IFCHR|0o600, int(unix.Mkdev(dev.Major, dev.Minor)))
	if errors.Is(err, unix.EEXIST) {
		if err := RemoveNode(path); err != nil {
			return err
		}
		err = unix.Mknod(path, unix.S_IFCHR|0o600, int(unix.Mkdev(dev.Major, dev.Minor)))
	}
	if err != nil {
		return fmt.Errorf("creating device node %s (%s): %w", path, dev, err)
	}
	return nil
}

// RemoveNode removes the character device node at path; a missing node is
// not an error, and anything but a character device is left alone.
func RemoveNode(path string) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		return fmt.Errorf("%s is not a character device; not removing it", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
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
