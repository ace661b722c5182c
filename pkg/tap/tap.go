// Package tap creates and opens tap devices for virtual machines through the
// /dev/net/tun ioctls (TUNSETIFF and friends).
//
// The tun driver creates or looks up the device in the network namespace of
// the thread that opens /dev/net/tun, so every function here must run on a
// thread locked inside the target namespace (see pkg/netns).
package tap

import (
	"fmt"

	"github.com/netbridge/netbridge/pkg/linkname"
)

// MaxQueues is the most queues a tap takes (MAX_TAP_QUEUES of the tun
// driver).
const MaxQueues = 256

// Config describes a tap device to create.
type Config struct {
	// Name is the device name, at most 15 bytes.
	Name string
	// Queues is the number of queues; more than one makes a multi-queue tap
	// (IFF_MULTI_QUEUE). Zero means one.
	Queues int
	// VnetHdr sets IFF_VNET_HDR: every frame carries a virtio_net_hdr, as
	// QEMU, Cloud Hypervisor and Firecracker expect.
	VnetHdr bool
	// Owner and Group, when non-nil, restrict who may attach to the tap
	// (TUNSETOWNER, TUNSETGROUP). Nil leaves the kernel default: anyone
	// with CAP_NET_ADMIN.
	Owner, Group *uint32
	// Persist keeps the device after its last queue is closed
	// (TUNSETPERSIST); it then lives until deleted.
	Persist bool
}

func (c Config) queues() int {
	if c.Queues < 1 {
		return 1
	}
	return c.Queues
}

// Validate reports whether the configuration can be applied.
func (c Config) Validate() error {
	if err := linkname.Check(c.Name); err != nil {
		return fmt.Errorf("tap %w", err)
	}
	if c.Queues > MaxQueues {
		return fmt.Errorf("tap %q: %d queues is more than the kernel's %d", c.Name, c.Queues, MaxQueues)
	}
	return nil
}
