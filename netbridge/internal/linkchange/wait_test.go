package linkchange

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/test/testnet"
)

// TestWaitForDADEndsWithTheContext: the wait for an IPv6 address to leave
// duplicate address detection, which a restore of addresses makes, ends
// when its context does, not only after its own limit.
func TestWaitForDADEndsWithTheContext(t *testing.T) {
	node, pod := testnet.NewNS(t, testnet.WithDAD()), testnet.NewNS(t, testnet.WithDAD())
	testnet.VethPair(t, node, pod, "veth0", "eth0", 0)
	testnet.Sysctl(t, pod, "net.ipv6.conf.eth0.dad_transmits", "30") // tentative for 30 s
	h, link := testnet.Handle(t, pod), testnet.LinkByName(t, pod, "eth0")
	ip, ipnet, _ := net.ParseCIDR("2001:db8::2/64")
	ipnet.IP = ip
	if err := h.AddrAdd(link, &netlink.Addr{IPNet: ipnet}); err != nil {
		t.Fatal(err)
	}
	tentative := func() bool {
		addrs, err := h.AddrList(link, netlink.FAMILY_V6)
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(addrs, func(a netlink.Addr) bool { return a.Flags&unix.IFA_F_TENTATIVE != 0 })
	}
	if !tentative() {
		t.Fatal("the new address is not tentative: the test cannot wait for it")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := waitNotTentative(ctx, h, link, time.Minute)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("wait with a cancelled context = %v, want context.Canceled", err)
	}
	if !tentative() {
		t.Error("the wait returned only once the address left DAD, not when its context ended")
	}
}
