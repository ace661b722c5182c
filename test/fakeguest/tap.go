package fakeguest

import (
	"errors"
	"fmt"
	"os"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// OpenTap attaches to the existing tap device name in network namespace n,
// the way a VMM does, and returns its queue file: it opens /dev/net/tun and
// calls TUNSETIFF with IFF_TAP|IFF_NO_PI, plus IFF_VNET_HDR when vnetHdr is
// set and IFF_MULTI_QUEUE when the device is multi-queue. The attach flags
// become the device's flags, so vnetHdr also switches the device's virtio-net
// header on or off. The file is non-blocking (it supports deadlines).
//
// /dev/net/tun binds a file to the network namespace of the thread that
// opens it, and TUNSETIFF looks the name up there, so both happen on a
// thread locked inside n (n.Do). Callers holding a namespace path use
// ns.GetNS(path) first.
func OpenTap(n ns.NetNS, name string, vnetHdr bool) (*os.File, error) {
	fs, err := OpenTapQueues(n, name, vnetHdr, 1)
	if err != nil {
		return nil, err
	}
	return fs[0], nil
}

// OpenTapQueues is like [OpenTap] but attaches count queues; a count above 1
// needs a multi-queue tap.
func OpenTapQueues(n ns.NetNS, name string, vnetHdr bool, count int) ([]*os.File, error) {
	if count < 1 {
		return nil, fmt.Errorf("fakeguest: opening tap %s: queue count %d", name, count)
	}
	h, err := netlink.NewHandleAt(netns.NsHandle(int(n.Fd())))
	if err != nil {
		return nil, fmt.Errorf("fakeguest: netlink handle in %s: %w", n.Path(), err)
	}
	l, err := h.LinkByName(name)
	h.Close()
	if err != nil {
		return nil, fmt.Errorf("fakeguest: opening tap %s in %s: %w", name, n.Path(), err)
	}
	tt, ok := l.(*netlink.Tuntap)
	if !ok || tt.Mode != netlink.TUNTAP_MODE_TAP {
		return nil, fmt.Errorf("fakeguest: %s in %s is a %s, not a tap", name, n.Path(), l.Type())
	}
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if vnetHdr {
		flags |= unix.IFF_VNET_HDR
	}
	if tt.Flags&netlink.TUNTAP_MULTI_QUEUE != 0 {
		flags |= unix.IFF_MULTI_QUEUE
	} else if count > 1 {
		return nil, fmt.Errorf("fakeguest: %s in %s is single-queue, cannot attach %d queues", name, n.Path(), count)
	}
	return tunSetIff(n, name, flags, count)
}

// CreateTap creates a new, non-persistent tap device called name in n and
// returns its queue file, opened with IFF_TAP|IFF_NO_PI (and IFF_VNET_HDR
// when vnetHdr is set) and IFF_TUN_EXCL, so it fails if the name exists. The
// device is down and disappears when the file is closed (for instance by
// [Guest.Close]).
func CreateTap(n ns.NetNS, name string, vnetHdr bool) (*os.File, error) {
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_TUN_EXCL)
	if vnetHdr {
		flags |= unix.IFF_VNET_HDR
	}
	fs, err := tunSetIff(n, name, flags, 1)
	if err != nil {
		return nil, err
	}
	return fs[0], nil
}

// tunSetIff opens /dev/net/tun count times on a thread inside n and calls
// TUNSETIFF(name, flags) on each file.
func tunSetIff(n ns.NetNS, name string, flags uint16, count int) ([]*os.File, error) {
	var files []*os.File
	err := n.Do(func(ns.NetNS) error {
		for range count {
			fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
			if err != nil {
				return fmt.Errorf("opening /dev/net/tun: %w", err)
			}
			ifr, err := unix.NewIfreq(name)
			if err != nil {
				unix.Close(fd)
				return fmt.Errorf("interface name %q: %w", name, err)
			}
			ifr.SetUint16(flags)
			if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
				unix.Close(fd)
				return fmt.Errorf("TUNSETIFF %s flags %#x: %w", name, flags, err)
			}
			files = append(files, os.NewFile(uintptr(fd), "/dev/net/tun:"+name))
		}
		return nil
	})
	if err != nil {
		var errs []error
		for _, f := range files {
			errs = append(errs, f.Close())
		}
		return nil, fmt.Errorf("fakeguest: tap %s in %s: %w", name, n.Path(), errors.Join(append([]error{err}, errs...)...))
	}
	return files, nil
}
