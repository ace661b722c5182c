package fakeguest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/netbridge/netbridge/test/testnet"
	"github.com/vishvananda/netlink"
)

var guestPrefixes = []netip.Prefix{
	netip.MustParsePrefix("198.51.100.2/24"),
	netip.MustParsePrefix("2001:db8:1::2/64"),
}

// configureHostSide gives the kernel side of the tap its addresses and MTU
// and brings it up.
func configureHostSide(t *testing.T, n ns.NetNS, tap string, mtu int) {
	t.Helper()
	testnet.SetMTU(t, n, tap, mtu)
	testnet.AddAddr(t, n, tap, "198.51.100.1/24")
	testnet.AddAddr(t, n, tap, "2001:db8:1::1/64") // IFA_F_NODAD
	testnet.LinkUp(t, n, tap)
}

func startOnTap(t *testing.T, tap *os.File, opts ...Option) *Guest {
	t.Helper()
	opts = append([]Option{WithGateway(hostV4), WithGateway(hostV6)}, opts...)
	g, err := New(tap, guestMAC, guestPrefixes, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("closing guest: %v", err)
		}
	})
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return g
}

// pingBothWays pings the guest from the namespace and the host side from
// the guest, over IPv4 and IPv6, with IP packets of size bytes.
func pingBothWays(t *testing.T, n ns.NetNS, g *Guest, size int) {
	t.Helper()
	for _, dst := range []netip.Addr{guestV4, guestV6} {
		if err := testnet.Ping(n, dst, size, 10*time.Second); err != nil {
			t.Errorf("node -> guest: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, dst := range []netip.Addr{hostV4, hostV6} {
		if err := g.Ping(ctx, dst, size); err != nil {
			t.Errorf("guest -> node %s size %d: %v", dst, size, err)
		}
	}
}

// TestGuestOnTap proves the fake guest on its own, with no netbridge: a tap
// with vnet_hdr in a fresh netns, the node side addressed, the guest
// attached to the tap's queue.
func TestGuestOnTap(t *testing.T) {
	for _, mtu := range []int{1500, 9000} {
		t.Run(fmt.Sprintf("mtu%d", mtu), func(t *testing.T) {
			n := testnet.NewNS(t)
			tap, err := CreateTap(n, "tap0", true)
			if err != nil {
				t.Fatal(err)
			}
			g := startOnTap(t, tap)
			configureHostSide(t, n, "tap0", mtu)

			pingBothWays(t, n, g, 0)
			pingBothWays(t, n, g, mtu)
			s := g.Stats()
			t.Logf("guest stats: %+v", s)
			if s.ARPRepliesSent == 0 || s.NeighborAdvertsSent == 0 || s.EchoRepliesSent < 4 || s.EchoRepliesReceived < 4 || s.BadChecksums != 0 {
				t.Errorf("unexpected stats %+v", s)
			}
			// One byte more than the MTU must not get through.
			if err := testnet.Ping(n, guestV4, mtu+1, time.Second); err == nil {
				t.Errorf("ping of %d bytes over a %d MTU succeeded", mtu+1, mtu)
			}
		})
	}
}

// TestGuestWithoutVnetHdr runs the same check on a tap without IFF_VNET_HDR.
func TestGuestWithoutVnetHdr(t *testing.T) {
	n := testnet.NewNS(t)
	tap, err := CreateTap(n, "tap0", false)
	if err != nil {
		t.Fatal(err)
	}
	g := startOnTap(t, tap, WithVnetHdr(false))
	configureHostSide(t, n, "tap0", 1500)
	pingBothWays(t, n, g, 0)
}

func TestNewRejectsVnetHdrMismatch(t *testing.T) {
	n := testnet.NewNS(t)
	tap, err := CreateTap(n, "tap0", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(tap, guestMAC, guestPrefixes, WithVnetHdr(true)); err == nil {
		t.Error("guest accepted a tap without IFF_VNET_HDR while configured with it")
	}
}

// createPersistentTap creates a persistent tap the way a separate process
// (netbridge) would, and closes its file descriptors.
func createPersistentTap(t *testing.T, n ns.NetNS, name string, flags netlink.TuntapFlag) {
	t.Helper()
	err := n.Do(func(ns.NetNS) error {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = name
		tt := &netlink.Tuntap{LinkAttrs: attrs, Mode: netlink.TUNTAP_MODE_TAP, Flags: flags}
		// /dev/net/tun must be opened from a thread inside n: hence n.Do.
		return netlink.LinkAdd(tt)
	})
	if err != nil {
		t.Fatalf("creating tap %s: %v", name, err)
	}
	t.Cleanup(func() {
		h, err := testnet.NewHandle(n)
		if err != nil {
			t.Error(err)
			return
		}
		defer h.Close()
		if l, err := h.LinkByName(name); err == nil {
			if err := h.LinkDel(l); err != nil {
				t.Errorf("deleting tap %s: %v", name, err)
			}
		}
	})
}

func TestOpenPersistentTap(t *testing.T) {
	n := testnet.NewNS(t)
	createPersistentTap(t, n, "tap-persist", netlink.TUNTAP_NO_PI|netlink.TUNTAP_VNET_HDR)
	if _, err := OpenTapQueues(n, "tap-persist", true, 2); err == nil {
		t.Error("attached two queues to a single-queue tap")
	}
	tap, err := OpenTap(n, "tap-persist", true)
	if err != nil {
		t.Fatal(err)
	}
	g := startOnTap(t, tap)
	configureHostSide(t, n, "tap-persist", 1500)
	pingBothWays(t, n, g, 0)
	if _, err := OpenTap(n, "no-such-tap", true); err == nil {
		t.Error("OpenTap of a missing device succeeded")
	}
	if _, err := OpenTap(n, "lo", true); err == nil {
		t.Error("OpenTap of lo succeeded")
	}
}

func TestOpenMultiQueueTap(t *testing.T) {
	n := testnet.NewNS(t)
	createPersistentTap(t, n, "tap-mq", netlink.TUNTAP_NO_PI|netlink.TUNTAP_VNET_HDR|netlink.TUNTAP_MULTI_QUEUE)
	qs, err := OpenTapQueues(n, "tap-mq", true, 4)
	if err != nil {
		t.Fatal(err)
	}
	g := startOnTap(t, qs[0], WithQueues(qs[1:]...))
	configureHostSide(t, n, "tap-mq", 1500)
	pingBothWays(t, n, g, 0)
}

func TestGuestSeesTapDeletion(t *testing.T) {
	n := testnet.NewNS(t)
	createPersistentTap(t, n, "tap-gone", netlink.TUNTAP_NO_PI|netlink.TUNTAP_VNET_HDR)
	tap, err := OpenTap(n, "tap-gone", true)
	if err != nil {
		t.Fatal(err)
	}
	g := startOnTap(t, tap)
	h := testnet.Handle(t, n)
	if err := h.LinkDel(testnet.LinkByName(t, n, "tap-gone")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for g.Err() == nil {
		if time.Now().After(deadline) {
			t.Fatal("guest did not notice the deleted tap")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("reader error after deletion: %v", g.Err())
}
