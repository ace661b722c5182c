package floor_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/test/bench/floor"
	"github.com/netbridge/netbridge/test/fakeguest"
	"github.com/netbridge/netbridge/test/testnet"
)

// TestSetupTeardown wires a pod's eth0 with the floor, checks the tap, the
// qdiscs and both redirect filters, has a fake guest on the tap answer the
// node's ping and ping the node, and checks that teardown gives back the
// pod netns exactly as it was.
func TestSetupTeardown(t *testing.T) {
	node, pod := testnet.NewNS(t), testnet.NewNS(t)
	testnet.VethPair(t, node, pod, "veth0", "eth0", 0)
	testnet.AddAddr(t, node, "veth0", "198.51.100.1/24")
	testnet.AddAddr(t, pod, "eth0", "198.51.100.2/24")
	before := testnet.Snapshot(t, pod)

	if err := floor.Setup(pod.Path(), []string{"eth0"}); err != nil {
		t.Fatal(err)
	}
	tapName := floor.TapName("eth0")
	checkWiring(t, pod, "eth0", tapName)

	// Real frames: the node's ARP request and echo request enter eth0 and
	// must come out of the tap; the guest's answers take the other way.
	f, err := fakeguest.OpenTap(pod, tapName, true)
	if err != nil {
		t.Fatal(err)
	}
	eth0 := testnet.LinkByName(t, pod, "eth0")
	g, err := fakeguest.New(f, eth0.Attrs().HardwareAddr, []netip.Prefix{netip.MustParsePrefix("198.51.100.2/24")})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := testnet.Ping(node, netip.MustParseAddr("198.51.100.2"), 0, 5*time.Second); err != nil {
		t.Errorf("node -> guest: %v", err)
	} else if g.Stats().EchoRepliesSent == 0 {
		t.Error("node -> guest: answered, but not by the guest")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := g.Ping(ctx, netip.MustParseAddr("198.51.100.1"), 0); err != nil {
		t.Errorf("guest -> node: %v", err)
	}
	cancel()
	if err := g.Close(); err != nil {
		t.Errorf("closing the guest: %v", err)
	}

	if err := floor.Teardown(pod.Path(), []string{"eth0"}); err != nil {
		t.Fatal(err)
	}
	if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
		t.Errorf("pod netns after teardown differs from before setup:\n%s", d)
	}
}

// TestSeveral wires four interfaces in one call and tears them down.
func TestSeveral(t *testing.T) {
	node, pod := testnet.NewNS(t), testnet.NewNS(t)
	ifnames := []string{"eth0", "eth1", "eth2", "net-with-a-long"}
	for i, ifname := range ifnames {
		testnet.VethPair(t, node, pod, fmt.Sprintf("veth%d", i), ifname, 1400+i)
	}
	before := testnet.Snapshot(t, pod)
	if err := floor.Setup(pod.Path(), ifnames); err != nil {
		t.Fatal(err)
	}
	for _, ifname := range ifnames {
		checkWiring(t, pod, ifname, floor.TapName(ifname))
	}
	if err := floor.Teardown(pod.Path(), ifnames); err != nil {
		t.Fatal(err)
	}
	if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
		t.Errorf("pod netns after teardown differs from before setup:\n%s", d)
	}
	if err := floor.Teardown(pod.Path(), ifnames[:1]); err == nil {
		t.Error("a second teardown succeeded; want an error (no tap in the group, no ingress qdisc)")
	}
}

// checkWiring checks ifname's tap (persistent, vnet_hdr, MAC, MTU, up) and
// the ingress qdisc and redirect filter on both.
func checkWiring(t *testing.T, pod ns.NetNS, ifname, tapName string) {
	t.Helper()
	h := testnet.Handle(t, pod)
	link := testnet.LinkByName(t, pod, ifname)
	l := testnet.LinkByName(t, pod, tapName)
	tap, ok := l.(*netlink.Tuntap)
	switch {
	case !ok || tap.Mode != netlink.TUNTAP_MODE_TAP:
		t.Fatalf("%s is a %s, want a tap", tapName, l.Type())
	case tap.Flags&netlink.TUNTAP_VNET_HDR == 0 || tap.Flags&netlink.TUNTAP_NO_PI == 0:
		t.Errorf("%s flags %v, want vnet_hdr and no_pi", tapName, tap.Flags)
	}
	if tap.NonPersist {
		t.Errorf("%s is not persistent", tapName)
	}
	if got, want := tap.Attrs().HardwareAddr.String(), floor.TapMAC(pod.Path(), ifname).String(); got != want {
		t.Errorf("%s MAC %s, want %s", tapName, got, want)
	}
	if got, want := tap.Attrs().MTU, link.Attrs().MTU; got != want {
		t.Errorf("%s MTU %d, want %s's %d", tapName, got, ifname, want)
	}
	if got, want := tap.Attrs().Group, floor.Group(pod.Path()); got != want {
		t.Errorf("%s in link group %#x, want %#x", tapName, got, want)
	}
	if tap.Attrs().Flags&unix.IFF_UP == 0 {
		t.Errorf("%s is down", tapName)
	}
	for _, dir := range [][2]netlink.Link{{link, tap}, {tap, link}} {
		src, dst := dir[0], dir[1]
		qs, err := h.QdiscList(src)
		if err != nil {
			t.Fatal(err)
		}
		ingress := false
		for _, q := range qs {
			if _, ok := q.(*netlink.Ingress); ok {
				ingress = true
			}
		}
		if !ingress {
			t.Errorf("%s has no ingress qdisc", src.Attrs().Name)
		}
		fs, err := h.FilterList(src, netlink.MakeHandle(0xffff, 0))
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, f := range fs {
			if _, ok := f.(*netlink.U32); ok && f.Attrs().Priority == floor.FilterPriority && f.Attrs().Protocol == unix.ETH_P_ALL &&
				floor.RedirectTarget(f) == dst.Attrs().Index {
				found = true
			}
		}
		if !found {
			t.Errorf("no u32 filter at prio %d on %s redirecting to %s; filters: %v", floor.FilterPriority, src.Attrs().Name, dst.Attrs().Name, fs)
		}
	}
}
