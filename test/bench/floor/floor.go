// Package floor is the performance floor of netbridge's tcfilter model: it
// does the kernel work that model does for each interface, and nothing
// else. No state record, no lock, no discovery, no MAC collision check, no
// ownership tag (alias), no matchall probe, no rollback.
//
// For each interface IF of a sandbox netns, Setup
//
//   - looks IF up (index and MTU),
//   - creates the tap TapName(IF) with TUNSETIFF
//     (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR|IFF_TUN_EXCL) and makes it persistent
//     (TUNSETPERSIST), then closes its queue,
//   - sets the tap's MAC, MTU (IF's), link group (Group) and brings it up,
//     in one RTM_NEWLINK request, as netbridge does,
//   - looks the tap up (its index),
//   - adds an ingress qdisc to IF and to the tap,
//   - adds a u32 match-all filter at priority 20034 with a mirred egress
//     redirect each way (IF to tap, tap to IF).
//
// Teardown deletes every tap the floor made in the netns with one
// RTM_DELLINK for their link group (their qdiscs and filters go with them;
// the kernel then waits for the RCU grace periods once, not once per tap),
// as netbridge does, and each named interface's ingress qdisc (with its
// filter).
//
// Both run on a goroutine locked to an OS thread that enters the netns and
// switches back afterwards, through netlink sockets opened in the netns.
// Benchmarks and the nbfloor command compare netbridge against this.
package floor

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/pkg/linkname"
	"github.com/netbridge/netbridge/pkg/tcredirect"
)

// FilterPriority is the tc priority of the redirect filters, netbridge's.
const FilterPriority = tcredirect.Priority

// TapPrefix starts the name of every tap the floor creates, like
// netbridge's taps.
const TapPrefix = "nb-"

// TapName returns the name of the tap made for the interface ifname:
// TapPrefix+ifname, cut between characters to the kernel's 15 bytes.
func TapName(ifname string) string {
	return linkname.Cut(TapPrefix+ifname, linkname.MaxLen)
}

// TapMAC returns the MAC the floor gives ifname's tap in the netns at
// netnsPath: a locally administered unicast address hashed from both.
func TapMAC(netnsPath, ifname string) net.HardwareAddr {
	h := fnv.New64a()
	h.Write([]byte(netnsPath + "/" + ifname))
	s := h.Sum64()
	return net.HardwareAddr{0x02, byte(s >> 32), byte(s >> 24), byte(s >> 16), byte(s >> 8), byte(s)}
}

// Group returns the link group of the taps the floor makes in the netns at
// netnsPath: a hash of the path with the top bit set (never 0, the
// default group).
func Group(netnsPath string) uint32 {
	h := fnv.New32a()
	h.Write([]byte("nbfloor:" + netnsPath))
	return h.Sum32() | 1<<31
}

// RedirectTarget returns the ifindex that f, a u32 or matchall filter such
// as the floor's and netbridge's, redirects to (a mirred egress redirect
// among its actions), or 0 when it redirects nowhere.
func RedirectTarget(f netlink.Filter) int {
	to, _ := tcredirect.Target(f)
	return to
}

// Setup wires each named interface of the netns at netnsPath to a new tap
// (see the package documentation). It stops at the first error and leaves
// what it made so far; Teardown removes it.
func Setup(netnsPath string, ifnames []string) error {
	return in(netnsPath, func(h *netlink.Handle, raw map[int]*nl.SocketHandle) error {
		for _, ifname := range ifnames {
			if err := setupOne(h, raw, netnsPath, ifname); err != nil {
				return fmt.Errorf("floor setup of %s in %s: %w", ifname, netnsPath, err)
			}
		}
		return nil
	})
}

// Teardown deletes every tap the floor made in the netns at netnsPath (by
// their link group) and each named interface's ingress qdisc. It goes on
// after an error and returns them all; with no tap left it fails (ENODEV).
func Teardown(netnsPath string, ifnames []string) error {
	return in(netnsPath, func(h *netlink.Handle, raw map[int]*nl.SocketHandle) error {
		var errs []error
		req := nl.NewNetlinkRequest(unix.RTM_DELLINK, unix.NLM_F_ACK)
		req.Sockets = raw
		req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
		req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(Group(netnsPath))))
		if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
			errs = append(errs, fmt.Errorf("floor teardown in %s: deleting the taps of group %#x: %w", netnsPath, Group(netnsPath), err))
		}
		for _, ifname := range ifnames {
			if err := delIngress(h, ifname); err != nil {
				errs = append(errs, fmt.Errorf("floor teardown of %s in %s: %w", ifname, netnsPath, err))
			}
		}
		return errors.Join(errs...)
	})
}

func setupOne(h *netlink.Handle, raw map[int]*nl.SocketHandle, netnsPath, ifname string) error {
	link, err := h.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("looking up %s: %w", ifname, err)
	}
	name := TapName(ifname)
	if err := createTap(name); err != nil {
		return err
	}
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
	req.Sockets = raw
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Flags, msg.Change = unix.IFF_UP, unix.IFF_UP
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	req.AddData(nl.NewRtAttr(unix.IFLA_ADDRESS, []byte(TapMAC(netnsPath, ifname))))
	req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(link.Attrs().MTU))))
	req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(Group(netnsPath))))
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return fmt.Errorf("setting the MAC, MTU and group of %s and bringing it up: %w", name, err)
	}
	tap, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("looking up tap %s: %w", name, err)
	}
	for _, l := range []netlink.Link{link, tap} {
		if err := h.QdiscAdd(tcredirect.Ingress(l.Attrs().Index)); err != nil {
			return fmt.Errorf("adding the ingress qdisc of %s: %w", l.Attrs().Name, err)
		}
	}
	for _, dir := range [][2]netlink.Link{{link, tap}, {tap, link}} {
		src, dst := dir[0], dir[1]
		if err := h.FilterAdd(tcredirect.Filter(tcredirect.U32, src.Attrs().Index, dst.Attrs().Index)); err != nil {
			return fmt.Errorf("adding the redirect %s -> %s: %w", src.Attrs().Name, dst.Attrs().Name, err)
		}
	}
	return nil
}

// createTap creates a persistent tap called name in the calling thread's
// netns, the way netbridge does: exclusively, with a virtio-net header.
func createTap(name string) error {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening /dev/net/tun: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("tap name %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR | unix.IFF_TUN_EXCL)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return fmt.Errorf("creating tap %s (TUNSETIFF): %w", name, err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1); err != nil {
		return fmt.Errorf("making tap %s persistent (TUNSETPERSIST): %w", name, err)
	}
	return nil
}

func delIngress(h *netlink.Handle, ifname string) error {
	link, err := h.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("looking up %s: %w", ifname, err)
	}
	if err := h.QdiscDel(tcredirect.Ingress(link.Attrs().Index)); err != nil {
		return fmt.Errorf("deleting the ingress qdisc of %s: %w", ifname, err)
	}
	return nil
}

// in runs fn with a netlink handle in the netns at path, and a netlink
// socket there for raw requests (req.Sockets), on a goroutine locked to an
// OS thread inside that netns: tun creates its device in the netns of the
// opening thread. The thread returns to the scheduler only
// after it switched back; if that fails it stays locked and the runtime
// ends it with the goroutine.
func in(path string, fn func(*netlink.Handle, map[int]*nl.SocketHandle) error) error {
	target, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening netns: %w", err)
	}
	defer target.Close()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("opening the current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("entering netns %s: %w", path, err)
			return
		}
		err = func() error {
			h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
			if err != nil {
				return fmt.Errorf("opening netlink in %s: %w", path, err)
			}
			defer h.Close()
			s, err := nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_ROUTE)
			if err != nil {
				return fmt.Errorf("opening netlink in %s: %w", path, err)
			}
			defer s.Close()
			return fn(h, map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: s}})
		}()
		if serr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); serr != nil {
			// Stay locked: the runtime discards this thread.
			done <- errors.Join(err, fmt.Errorf("switching back from netns %s: %w", path, serr))
			return
		}
		runtime.UnlockOSThread()
		done <- err
	}()
	return <-done
}
