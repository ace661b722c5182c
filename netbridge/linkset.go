package netbridge

import (
	"fmt"
	"hash/fnv"
	"net"

	"github.com/vishvananda/netlink/nl"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/pkg/netns"
)

// ownerGroup is the link group (IFLA_GROUP) of the links netbridge makes
// for sandbox id: a hash of the id with the top bit set, away from the
// small numbers administrators use and from 0, the default group. It lets
// teardown delete all of a sandbox's links with one request, which the
// kernel does in one batch: one wait for the RCU grace periods instead of
// one per link.
func ownerGroup(id string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(id))
	return h.Sum32() | 1<<31
}

// linkSettings are link attributes set in one RTM_NEWLINK request.
type linkSettings struct {
	alias string
	group uint32
	mac   net.HardwareAddr // unchanged when nil
	mtu   int              // unchanged when 0
	up    bool
	// index, when set, selects the link by ifindex, and name renames it.
	index int
}

// setLink applies s to the link called name (with s.index, to the link of
// that index, which it names name), in one round trip instead of one per
// attribute, through sock: a netlink route socket opened in the
// sandbox netns (a txn's).
func setLink(sock map[int]*nl.SocketHandle, name string, s linkSettings) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
	req.Sockets = sock
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(s.index)
	if s.up {
		msg.Flags, msg.Change = unix.IFF_UP, unix.IFF_UP
	}
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFALIAS, []byte(s.alias)))
	req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(s.group)))
	if s.mac != nil {
		req.AddData(nl.NewRtAttr(unix.IFLA_ADDRESS, []byte(s.mac)))
	}
	if s.mtu > 0 {
		req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(s.mtu))))
	}
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// routeSocket opens a netlink route socket in the netns of the calling
// thread, for raw requests (setLink) that the netlink handle has no call
// for.
func routeSocket() (map[int]*nl.SocketHandle, error) {
	sock, err := nl.GetNetlinkSocketAt(vnetns.None(), vnetns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("opening a netlink socket: %w", err)
	}
	return map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: sock}}, nil
}

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
