package tap

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// CloneDevice is the tun/tap clone device every tap queue is opened from.
const CloneDevice = "/dev/net/tun"

// ErrExists reports that a device of the requested name already exists.
var ErrExists = errors.New("device already exists")

func (c Config) flags() uint16 {
	f := uint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if c.VnetHdr {
		f |= unix.IFF_VNET_HDR
	}
	if c.queues() > 1 {
		f |= unix.IFF_MULTI_QUEUE
	}
	return f
}

// Create creates a new tap device and returns its open queues, one file per
// queue. It fails with ErrExists if a device of that name exists already,
// so it never attaches to someone else's tap. When it fails, nothing is
// left behind.
//
// Equivalent to: ip tuntap add dev NAME mode tap vnet_hdr [multi_queue]
// [user U] [group G], except that the queues stay open for the caller.
// Close every file when done; a tap created without Persist disappears with
// its last queue.
func Create(c Config) ([]*os.File, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	files := make([]*os.File, 0, c.queues())
	fail := func(err error) ([]*os.File, error) {
		for _, f := range files {
			f.Close()
		}
		return nil, err
	}
	for i := 0; i < c.queues(); i++ {
		flags := c.flags()
		if i == 0 {
			flags |= unix.IFF_TUN_EXCL
		}
		f, err := attach(c.Name, flags)
		if err != nil {
			if i == 0 && errors.Is(err, unix.EBUSY) {
				err = fmt.Errorf("%w (%w)", ErrExists, err)
			}
			return fail(fmt.Errorf("creating tap %q queue %d: %w", c.Name, i, err))
		}
		files = append(files, f)
	}
	fd := int(files[0].Fd())
	if c.Owner != nil {
		if err := unix.IoctlSetInt(fd, unix.TUNSETOWNER, int(*c.Owner)); err != nil {
			return fail(fmt.Errorf("setting owner %d of tap %q: %w", *c.Owner, c.Name, err))
		}
	}
	if c.Group != nil {
		if err := unix.IoctlSetInt(fd, unix.TUNSETGROUP, int(*c.Group)); err != nil {
			return fail(fmt.Errorf("setting group %d of tap %q: %w", *c.Group, c.Name, err))
		}
	}
	if c.Persist {
		if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1); err != nil {
			return fail(fmt.Errorf("making tap %q persistent: %w", c.Name, err))
		}
	}
	return files, nil
}

// Open attaches queues to an existing tap device, as a hypervisor does. The
// flags must match those the tap was created with (vnetHdr, and
// multi-queue when queues > 1), or the kernel answers EINVAL.
//
// A single-queue tap accepts one attached file at a time (EBUSY otherwise).
func Open(name string, queues int, vnetHdr bool) ([]*os.File, error) {
	c := Config{Name: name, Queues: queues, VnetHdr: vnetHdr}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	files := make([]*os.File, 0, c.queues())
	for i := 0; i < c.queues(); i++ {
		f, err := attach(name, c.flags())
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, fmt.Errorf("opening queue %d of tap %q: %w", i, name, err)
		}
		files = append(files, f)
	}
	return files, nil
}

// attach opens /dev/net/tun and binds the file to the named device.
func attach(name string, flags uint16) (*os.File, error) {
	fd, err := unix.Open(CloneDevice, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", CloneDevice, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF: %w", err)
	}
	return os.NewFile(uintptr(fd), CloneDevice), nil
}

// Flags returns the IFF_* flags of an open tap queue (TUNGETIFF).
func Flags(f *os.File) (uint16, error) {
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(int(f.Fd()), unix.TUNGETIFF, ifr); err != nil {
		return 0, fmt.Errorf("TUNGETIFF: %w", err)
	}
	return ifr.Uint16(), nil
}
