package netbridge

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/pkg/netns"
)

// openHandle opens a netlink handle whose sockets live in n. The sockets are
// created on a thread inside n (ns.Do discipline) rather than through
// netlink.NewHandleAt, whose namespace switch unlocks its thread even when
// switching back failed. Once open, the handle works from any thread.
func openHandle(n *netns.NS) (*netlink.Handle, error) {
	var h *netlink.Handle
	err := n.Do(func() error {
		var err error
		h, err = newRouteHandle()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("opening netlink in netns %q: %w", n.Path(), err)
	}
	return h, nil
}

// newRouteHandle opens a netlink handle with a route socket only (netbridge
// needs no other family) in the netns of the calling thread.
func newRouteHandle() (*netlink.Handle, error) { return netlink.NewHandle(unix.NETLINK_ROUTE) }
