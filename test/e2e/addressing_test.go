package e2e

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netbridge/netbridge/hypervisor/guest"
	"github.com/netbridge/netbridge/hypervisor/qemu"
	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/testnet"
)

// guestDoc renders and parses back the guest network document of sb.
func guestDoc(t *testing.T, sb *sandbox.Sandbox) guest.Document {
	t.Helper()
	b, err := guest.JSON(*sb)
	if err != nil {
		t.Fatalf("guest JSON: %v", err)
	}
	d, err := guest.ParseJSON(b)
	if err != nil {
		t.Fatalf("parsing the guest JSON back: %v\n%s", err, b)
	}
	return d
}

// guestIfc returns the document's interface of nic, by its guest MAC.
func guestIfc(t *testing.T, d guest.Document, nic sandbox.NIC) guest.Interface {
	t.Helper()
	ifc, ok := d.Interfaces[nic.GuestMAC.String()]
	if !ok {
		t.Fatalf("the guest document has no interface %s (%s): %+v", nic.GuestMAC, nic.Name, d)
	}
	return ifc
}

// TestIPv6OnlyThroughModels wires a pod whose interface has only IPv6
// addresses and routes with every wiring model, passes IPv6 frames both
// ways (the guest answering neighbour solicitations), and restores the
// snapshot.
func TestIPv6OnlyThroughModels(t *testing.T) {
	for _, v := range wiredVariants {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			node, pod := testnet.NewNS(t), testnet.NewNS(t)
			testnet.VethPair(t, node, pod, "veth0", "eth0", 0)
			testnet.AddAddr(t, node, "veth0", "2001:db8:1::1/64")
			testnet.AddAddr(t, pod, "eth0", "2001:db8:1::2/64")
			testnet.AddRoute(t, pod, "eth0", "default", "2001:db8:1::1")
			before := testnet.Snapshot(t, pod)
			dir := t.TempDir()
			cfg := withVariant(sandbox.Config{ID: "e2e-v6only", Netns: pod.Path(), HoldFDs: true}, v)
			sb := mustSetup(t, dir, cfg)
			nic := &sb.NICs[0]
			if len(nic.Addresses) != 1 || !nic.Addresses[0].Addr().Is6() || len(nic.Routes) != 1 || !nic.Routes[0].Gw.Is6() {
				t.Errorf("NIC addresses %v routes %+v, want one IPv6 address and the IPv6 default route", nic.Addresses, nic.Routes)
			}
			ifc := guestIfc(t, guestDoc(t, sb), *nic)
			if len(ifc.Addresses) != 1 || ifc.Addresses[0] != netip.MustParsePrefix("2001:db8:1::2/64") {
				t.Errorf("guest document addresses %v", ifc.Addresses)
			}
			g := startGuest(t, takeQueue(t, pod, nic), *nic)
			framesBothWays(t, node, g, 0, [2]netip.Addr{nodeV6, podV6})
			g.Close()
			sb.Close()
			mustTeardown(t, dir, cfg.ID)
			if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
				t.Errorf("after teardown:\n%s", d)
			}
		})
	}
}

// calico builds a Calico-style pod: a /32 address, an on-link route to
// the 169.254.1.1 gateway and a default route through it, and a permanent
// ARP entry for the gateway with the node veth's MAC. The node routes the
// pod's /32 to its veth and answers ARP for 169.254.1.1 by proxy ARP, which
// needs forwarding and a route to the gateway address through another
// link (here up0, standing for the node's uplink). The node's own address
// is 192.0.2.1 on lo.
func calico(t *testing.T) (node, pod ns.NetNS, nodeMAC net.HardwareAddr) {
	t.Helper()
	node, pod = testnet.NewNS(t), testnet.NewNS(t)
	testnet.VethPair(t, node, pod, "veth0", "eth0", 0)
	testnet.VethPair(t, node, node, "up0", "up1", 0)
	nodeMAC = testnet.LinkByName(t, node, "veth0").Attrs().HardwareAddr
	testnet.AddAddr(t, pod, "eth0", "198.51.100.7/32")
	testnet.AddRoute(t, pod, "eth0", "169.254.1.1/32", "")
	testnet.AddRoute(t, pod, "eth0", "default", "169.254.1.1")
	testnet.AddNeigh(t, pod, "eth0", "169.254.1.1", nodeMAC.String())

	testnet.AddAddr(t, node, "lo", "192.0.2.1/32")
	testnet.AddRoute(t, node, "veth0", "198.51.100.7/32", "")
	testnet.Exec(t, node, "ip", "route", "add", "default", "dev", "up0")
	testnet.Sysctl(t, node, "net.ipv4.ip_forward", "1")
	testnet.Sysctl(t, node, "net.ipv4.conf.veth0.proxy_arp", "1")
	testnet.Sysctl(t, node, "net.ipv4.neigh.veth0.proxy_delay", "0")
	return node, pod, nodeMAC
}

// TestCalicoStyleAddressing wires a Calico-style pod with tcfilter and
// bridge: the /32 address, the on-link gateway route, the default route and
// the permanent neighbour reach the NIC and the guest document; the fake
// guest, whose gateway 169.254.1.1 is outside its /32, reaches the node
// through it (proxy ARP answering), and the node reaches the guest.
// Teardown restores the pod netns exactly, the permanent ARP entry included.
func TestCalicoStyleAddressing(t *testing.T) {
	podIP, nodeIP, gw := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("169.254.1.1")
	for _, v := range []string{modelTCFilter, modelBridge} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			node, pod, nodeMAC := calico(t)
			before := testnet.Snapshot(t, pod)
			dir := t.TempDir()
			cfg := withVariant(sandbox.Config{ID: "e2e-calico", Netns: pod.Path(), HoldFDs: true}, v)
			sb := mustSetup(t, dir, cfg)
			nic := &sb.NICs[0]
			wantRoutes := []sandbox.Route{
				{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: gw},
				{Dst: netip.MustParsePrefix("169.254.1.1/32")},
			}
			routes := slices.Clone(nic.Routes)
			slices.SortFunc(routes, func(a, b sandbox.Route) int { return a.Dst.Addr().Compare(b.Dst.Addr()) })
			if !slices.Equal(routes, wantRoutes) {
				t.Errorf("NIC routes %+v, want %+v", nic.Routes, wantRoutes)
			}
			if len(nic.Addresses) != 1 || nic.Addresses[0] != netip.PrefixFrom(podIP, 32) {
				t.Errorf("NIC addresses %v, want %s/32", nic.Addresses, podIP)
			}
			if len(nic.Neighbors) != 1 || nic.Neighbors[0].IP != gw || nic.Neighbors[0].MAC.String() != nodeMAC.String() || !nic.Neighbors[0].Permanent {
				t.Errorf("NIC neighbours %+v, want the permanent %s -> %s", nic.Neighbors, gw, nodeMAC)
			}
			ifc := guestIfc(t, guestDoc(t, sb), *nic)
			if len(ifc.Neighbors) != 1 || ifc.Neighbors[0].IP != gw || !ifc.Neighbors[0].Permanent || len(ifc.Routes) != 2 {
				t.Errorf("guest document %+v lacks the gateway route or neighbour", ifc)
			}
			g := startGuest(t, takeQueue(t, pod, nic), *nic)
			framesBothWays(t, node, g, 0, [2]netip.Addr{nodeIP, podIP})
			g.Close()
			sb.Close()
			mustTeardown(t, dir, cfg.ID)
			if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
				t.Errorf("after teardown:\n%s", d)
			}
		})
	}
}

// TestMTUAndRouteMTUReachGuest wires a pod with link MTU 9000 and routes
// whose MTU is smaller (IPv4 1400, IPv6 1280): the tap (or macvtap) gets
// the link MTU, the NIC, the guest document and the QEMU arguments carry
// both, and teardown puts the routes back with their MTU.
func TestMTUAndRouteMTUReachGuest(t *testing.T) {
	for _, v := range []string{modelTCFilter, modelBridge, modelMacvtap, macvtapPassthru, modelNone} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			_, pod := topology(t, 9000)
			testnet.Exec(t, pod, "ip", "route", "add", "203.0.113.0/24", "via", "198.51.100.1", "mtu", "1400")
			testnet.Exec(t, pod, "ip", "-6", "route", "add", "2001:db8:9::/48", "via", "2001:db8:1::1", "mtu", "1280")
			before := testnet.Snapshot(t, pod)
			dir := t.TempDir()
			cfg := withVariant(sandbox.Config{ID: "e2e-mtu", Netns: pod.Path()}, v)
			sb := mustSetup(t, dir, cfg)
			nic := sb.NICs[0]
			if got := testnet.LinkByName(t, pod, nic.Tap).Attrs().MTU; nic.MTU != 9000 || got != 9000 {
				t.Errorf("NIC MTU %d, %s MTU %d, want 9000", nic.MTU, nic.Tap, got)
			}
			wantMTU := map[string]int{"203.0.113.0/24": 1400, "2001:db8:9::/48": 1280, "0.0.0.0/0": 0, "::/0": 0}
			check := func(where string, dst netip.Prefix, mtu int) {
				want, ok := wantMTU[dst.String()]
				if !ok || mtu != want {
					t.Errorf("%s: route %s with MTU %d, want %d (known %t)", where, dst, mtu, want, ok)
				}
				delete(wantMTU, dst.String())
			}
			for _, r := range nic.Routes {
				check("NIC", r.Dst, r.MTU)
			}
			if len(wantMTU) != 0 {
				t.Errorf("NIC routes %+v lack %v", nic.Routes, wantMTU)
			}
			ifc := guestIfc(t, guestDoc(t, sb), nic)
			if ifc.MTU != 9000 {
				t.Errorf("guest document MTU %d, want 9000", ifc.MTU)
			}
			wantMTU = map[string]int{"203.0.113.0/24": 1400, "2001:db8:9::/48": 1280, "0.0.0.0/0": 0, "::/0": 0}
			for _, r := range ifc.Routes {
				check("guest document", r.Dst, r.MTU)
			}
			if len(wantMTU) != 0 {
				t.Errorf("guest document routes %+v lack %v", ifc.Routes, wantMTU)
			}
			var args []string
			var err error
			if nic.Device != "" {
				args, err = qemu.FDLayout(sb.NICs, qemu.Options{}, 3)
			} else {
				args, err = qemu.ByName(sb.NICs, qemu.Options{})
			}
			if err != nil || !strings.Contains(strings.Join(args, " "), "host_mtu=9000") {
				t.Errorf("QEMU arguments %q (%v) lack host_mtu=9000", args, err)
			}
			mustTeardown(t, dir, cfg.ID)
			if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
				t.Errorf("after teardown:\n%s", d)
			}
		})
	}
}

// TestTeardownRestoresPermanentNeighbors wires, with every model, a pod
// whose interface has permanent neighbour entries (IPv4 and IPv6, as CNI
// plugins and Calico leave them) and checks that teardown puts them back.
// The kernel drops an interface's neighbour entries, permanent ones
// included, when its MAC changes (both families) and when its last IPv4
// address goes (IPv4), which the bridge and macvtap models do.
func TestTeardownRestoresPermanentNeighbors(t *testing.T) {
	for _, v := range allVariants {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			_, pod := topology(t, 0)
			testnet.AddNeigh(t, pod, "eth0", "198.51.100.9", "02:00:00:00:00:09")
			testnet.AddNeigh(t, pod, "eth0", "2001:db8:1::9", "02:00:00:00:00:0a")
			before := testnet.Snapshot(t, pod)
			dir := t.TempDir()
			cfg := withVariant(sandbox.Config{ID: "e2e-neigh", Netns: pod.Path()}, v)
			sb := mustSetup(t, dir, cfg)
			if n := sb.NICs[0].Neighbors; len(n) != 2 || !n[0].Permanent || !n[1].Permanent {
				t.Errorf("NIC neighbours %+v, want the two permanent entries", n)
			}
			mustTeardown(t, dir, cfg.ID)
			if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
				t.Errorf("after teardown:\n%s", d)
			}
		})
	}
}

// TestTeardownRestoresPtpStyleRoutes reproduces by hand what the ptp CNI
// plugin leaves: the kernel's prefix route of the pod address deleted and
// replaced by a route to the subnet via the gateway, and a host route to
// the gateway, both with the pod address as preferred source (IPv4 and
// IPv6). Models that move the addresses to the guest must put exactly that
// back: re-adding an address makes the kernel create its prefix route
// again, and deleting an IPv6 address clears the preferred source of the
// routes that used it (the routes themselves stay). The "with-dad" case
// has IPv6 duplicate address detection on, as a pod netns has by default:
// a re-added IPv6 address is tentative for a while, and the kernel refuses
// a route with it as source meanwhile.
func TestTeardownRestoresPtpStyleRoutes(t *testing.T) {
	for _, v := range append(slices.Clone(allVariants), modelBridge+"-with-dad") {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			model, dad := strings.CutSuffix(v, "-with-dad")
			var opts []testnet.NSOption
			if dad {
				opts = append(opts, testnet.WithDAD())
			}
			node, pod := testnet.NewNS(t), testnet.NewNS(t, opts...)
			testnet.VethPair(t, node, pod, "veth0", "eth0", 0)
			testnet.AddAddr(t, node, "veth0", "198.51.100.1/24")
			testnet.AddAddr(t, node, "veth0", "2001:db8:1::1/64")
			for _, c := range [][]string{
				{"ip", "-4", "addr", "add", "198.51.100.2/24", "dev", "eth0"},
				{"ip", "-6", "addr", "add", "2001:db8:1::2/64", "dev", "eth0"}, // DAD as the netns says
			} {
				testnet.Exec(t, pod, c[0], c[1:]...)
			}
			testnet.Snapshot(t, pod) // waits for DAD to finish
			for _, c := range [][]string{
				{"ip", "-4", "route", "del", "198.51.100.0/24", "dev", "eth0"},
				{"ip", "-4", "route", "add", "198.51.100.1/32", "dev", "eth0", "scope", "link", "src", "198.51.100.2"},
				{"ip", "-4", "route", "add", "198.51.100.0/24", "via", "198.51.100.1", "dev", "eth0", "src", "198.51.100.2"},
				{"ip", "-4", "route", "add", "default", "via", "198.51.100.1", "dev", "eth0"},
				{"ip", "-6", "route", "del", "2001:db8:1::/64", "dev", "eth0"},
				{"ip", "-6", "route", "add", "2001:db8:1::1/128", "dev", "eth0", "src", "2001:db8:1::2"},
				{"ip", "-6", "route", "add", "2001:db8:1::/64", "via", "2001:db8:1::1", "dev", "eth0", "src", "2001:db8:1::2"},
			} {
				testnet.Exec(t, pod, c[0], c[1:]...)
			}
			before := testnet.Snapshot(t, pod)
			dir := t.TempDir()
			cfg := withVariant(sandbox.Config{ID: "e2e-ptpstyle", Netns: pod.Path()}, model)
			mustSetup(t, dir, cfg)
			if err := netbridge.New(dir, nil).Teardown(context.Background(), cfg.ID); err != nil {
				t.Errorf("Teardown: %v", err)
			}
			if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
				t.Errorf("after teardown:\n%s", d)
			}
		})
	}
}
