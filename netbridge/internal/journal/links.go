package journal

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/pkg/netns"
)

// This file holds what makes a link netbridge's: the tag (alias) and the
// link group of its sandbox, given in the request that creates it, and the
// raw netlink requests that set them and delete a sandbox's links at once.

// aliasPrefix starts the alias netbridge gives the links it creates.
const aliasPrefix = "netbridge:"

// OwnerTag is the alias of the links netbridge makes for sandbox id.
func OwnerTag(id string) string { return aliasPrefix + id }

// OwnerOf returns the sandbox id of the netbridge tag (alias) of link.
func OwnerOf(link netlink.Link) (string, bool) {
	return strings.CutPrefix(link.Attrs().Alias, aliasPrefix)
}

// OwnerGroup is the link group (IFLA_GROUP) of the links netbridge makes
// for sandbox id: a hash of the id with the top bit set, away from the
// small numbers administrators use and from 0, the default group. It lets
// teardown delete all of a sandbox's links with one request, which the
// kernel does in one batch: one wait for the RCU grace periods instead of
// one per link.
func OwnerGroup(id string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(id))
	return h.Sum32() | 1<<31
}

// LinkSettings are link attributes set in one RTM_NEWLINK request.
type LinkSettings struct {
	Alias string
	Group uint32
	MAC   net.HardwareAddr // unchanged when nil
	MTU   int              // unchanged when 0
	Up    bool
	// Index, when set, selects the link by ifindex, and the name renames
	// it.
	Index int
}

// SetLink applies s to the link called name (with s.Index, to the link of
// that index, which it names name), in one round trip instead of one per
// attribute.
func (k *Netns) SetLink(name string, s LinkSettings) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
	req.Sockets = k.Sock
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(s.Index)
	if s.Up {
		msg.Flags, msg.Change = unix.IFF_UP, unix.IFF_UP
	}
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFALIAS, []byte(s.Alias)))
	req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(s.Group)))
	if s.MAC != nil {
		req.AddData(nl.NewRtAttr(unix.IFLA_ADDRESS, []byte(s.MAC)))
	}
	if s.MTU > 0 {
		req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(s.MTU))))
	}
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// CreateLink creates link (a bridge or macvtap) in the link group of the
// sandbox and tags it as its own, as one journaled step of op.
func (s Scope) CreateLink(ctx context.Context, op Op, link netlink.Link) error {
	id := s.tx.rec.Sandbox.ID
	name := link.Attrs().Name
	link.Attrs().Group = OwnerGroup(id) // in the group from the start: our proof
	k := s.tx.k
	return s.Do(ctx, Planned{Step: Step{Op: op, Link: name}, Make: func() error {
		if err := k.H.LinkAdd(link); err != nil {
			return err
		}
		if err := k.SetLink(name, LinkSettings{Alias: OwnerTag(id), Group: OwnerGroup(id)}); err != nil {
			if l, lerr := k.H.LinkByName(name); lerr == nil {
				_ = k.H.LinkDel(l)
			}
			return fmt.Errorf("configuring the new link %q: %w", name, err)
		}
		return nil
	}, Made: func(st *Step) {
		st.Ref = &LinkRef{Index: link.Attrs().Index, Kind: op.LinkKind(), Parent: link.Attrs().ParentIndex}
	}})
}

// routeSocket opens a netlink route socket in the netns of the calling
// thread, for raw requests (SetLink) that the netlink handle has no call
// for.
func routeSocket() (map[int]*nl.SocketHandle, error) {
	sock, err := nl.GetNetlinkSocketAt(vnetns.None(), vnetns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("opening a netlink socket: %w", err)
	}
	return map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: sock}}, nil
}

// OpenHandle opens a netlink handle whose sockets live in n. The sockets are
// created on a thread inside n (ns.Do discipline) rather than through
// netlink.NewHandleAt, whose namespace switch unlocks its thread even when
// switching back failed. Once open, the handle works from any thread.
func OpenHandle(n *netns.NS) (*netlink.Handle, error) {
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

// deleteGroup deletes every link of group in n with one RTM_DELLINK.
func deleteGroup(n *netns.NS, group uint32) error {
	return n.Do(func() error {
		req := nl.NewNetlinkRequest(unix.RTM_DELLINK, unix.NLM_F_ACK)
		req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
		req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(group)))
		return execInNetns(n, req)
	})
}

// execInNetns executes req on a new netlink socket of the calling thread,
// after checking that the thread is in n.
func execInNetns(n *netns.NS, req *nl.NetlinkRequest) error {
	cur, err := netns.Current()
	if err != nil {
		return fmt.Errorf("checking the thread's netns: %w", err)
	}
	if cur != n.ID() {
		return fmt.Errorf("refusing a netlink request from a thread in netns %s, not the sandbox's (%s)", cur, n.ID())
	}
	_, err = req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// IgnoreNotFound turns the kernel's "already gone" answers into success.
func IgnoreNotFound(err error) error {
	if err == nil || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil
	}
	return err
}
