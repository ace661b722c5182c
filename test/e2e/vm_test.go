package e2e

// End-to-end tests with a real guest: QEMU (TCG) boots Debian's cloud
// kernel with a busybox initramfs (package test/vm) on netbridge's wiring.
// The guest configures its NICs only from guest.Cmdline's netbridge.nic=
// parameters, pings the node, then answers the node's pings; its own ICMP
// counters prove that it, not the pod netns, answered.

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netbridge/netbridge/hypervisor/guest"
	"github.com/netbridge/netbridge/hypervisor/qemu"
	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/testnet"
	"github.com/netbridge/netbridge/test/vm"
)

const (
	// vmLifetime bounds each QEMU process: it is killed after that.
	vmLifetime = 3 * time.Minute
	// vmMarkerTimeout bounds the wait for each serial console marker
	// (boot under TCG takes about 3 s on an idle machine).
	vmMarkerTimeout = 90 * time.Second
	// vmWaitSeconds is how long the guest stays up at most to be pinged;
	// it powers off as soon as it has answered every expected ping.
	vmWaitSeconds = 30
)

// vmModels are the models a real guest is booted on.
var vmModels = []string{modelTCFilter, modelBridge, modelMacvtap}

// vmPair is an address of the node and the guest address it pings.
type vmPair struct{ node, guest netip.Addr }

// TestVMGuest boots a guest on each model with one dual-stack NIC: the
// guest pings the node's gateway addresses (IPv4 and IPv6), the node pings
// the guest, and teardown restores the pod netns exactly.
func TestVMGuest(t *testing.T) {
	vm.Require(t)
	for _, model := range vmModels {
		t.Run(model, func(t *testing.T) {
			node, pod := topology(t, 0)
			if _, d := vmRun(t, model, node, pod, 1, vmPair{nodeV4, podV4}, vmPair{nodeV6, podV6}); d != "" {
				t.Errorf("pod netns after teardown:\n%s", d)
			}
		})
	}
}

// TestVMGuestTwoNICs adds a second network (node veth1 203.0.113.1/24, pod
// net1 203.0.113.2/24): the guest reaches both, and the node reaches the
// guest on both.
func TestVMGuestTwoNICs(t *testing.T) {
	vm.Require(t)
	node2, pod2 := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.2")
	for _, model := range vmModels {
		t.Run(model, func(t *testing.T) {
			node, pod := topology(t, 0)
			testnet.VethPair(t, node, pod, "veth1", "net1", 0)
			testnet.AddAddr(t, node, "veth1", node2.String()+"/24")
			testnet.AddAddr(t, pod, "net1", pod2.String()+"/24")
			if _, d := vmRun(t, model, node, pod, 2, vmPair{nodeV4, podV4}, vmPair{nodeV6, podV6}, vmPair{node2, pod2}); d != "" {
				t.Errorf("pod netns after teardown:\n%s", d)
			}
		})
	}
}

// TestVMGuestCalicoStyle gives the pod the shape Calico leaves: a /32
// address, an on-link route to 169.254.1.1, the default route through it
// with a permanent neighbour entry for it (the node veth's MAC
// ee:ee:ee:ee:ee:ee), and a route with an MTU. The guest must apply all of
// it from netbridge.nic= alone: it reaches the node's address behind the
// gateway, and the node reaches the guest by a host route. (The route's
// MTU is applied without error, but busybox cannot print route metrics, so
// its value is not read back.)
func TestVMGuestCalicoStyle(t *testing.T) {
	vm.Require(t)
	const gwMAC = "ee:ee:ee:ee:ee:ee"
	nodeIP, guestIP := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("192.0.2.7")
	for _, model := range vmModels {
		t.Run(model, func(t *testing.T) {
			node, pod := testnet.NewNS(t), testnet.NewNS(t)
			testnet.VethPair(t, node, pod, "veth0", "eth0", 0)
			testnet.SetMAC(t, node, "veth0", vmMustMAC(t, gwMAC))
			testnet.AddAddr(t, node, "lo", nodeIP.String()+"/32")
			testnet.AddRoute(t, node, "veth0", guestIP.String()+"/32", "")
			testnet.AddAddr(t, pod, "eth0", guestIP.String()+"/32")
			testnet.AddRoute(t, pod, "eth0", "169.254.1.1/32", "")
			testnet.AddRoute(t, pod, "eth0", "default", "169.254.1.1")
			testnet.AddNeigh(t, pod, "eth0", "169.254.1.1", gwMAC)
			eth0 := testnet.LinkByName(t, pod, "eth0")
			err := testnet.Handle(t, pod).RouteAdd(&netlink.Route{
				LinkIndex: eth0.Attrs().Index,
				Dst:       &net.IPNet{IP: net.IPv4(203, 0, 113, 0).To4(), Mask: net.CIDRMask(24, 32)},
				Gw:        net.IPv4(169, 254, 1, 1),
				MTU:       1400,
			})
			if err != nil {
				t.Fatal(err)
			}
			g, d := vmRun(t, model, node, pod, 1, vmPair{nodeIP, guestIP})
			// The kernel drops the permanent neighbour when the bridge and
			// macvtap models change eth0's MAC or remove its addresses;
			// teardown must have put it back.
			if d != "" {
				t.Errorf("pod netns after teardown:\n%s", d)
			}
			if !slices.ContainsFunc(g.Lines("169.254.1.1 "), func(l string) bool {
				return strings.Contains(l, "lladdr "+gwMAC) && strings.Contains(l, "PERMANENT")
			}) {
				t.Errorf("the guest has no permanent neighbour 169.254.1.1 %s", gwMAC)
			}
			for _, route := range []string{"default via 169.254.1.1 dev eth0", "169.254.1.1 dev eth0 scope link", "203.0.113.0/24 via 169.254.1.1 dev eth0"} {
				if len(g.Lines(route)) == 0 {
					t.Errorf("the guest has no route %q", route)
				}
			}
		})
	}
}

func vmMustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	hw, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return hw
}

// vmRun wires pod with model, boots a guest on it and checks traffic both
// ways for every pair, then shuts the guest down, tears down and compares
// the pod netns with its state before setup. It returns the finished
// guest, for more checks of its serial console, and the difference of the
// pod netns from before setup (testnet.Diff; "" when teardown restored it).
func vmRun(t *testing.T, model string, node, pod ns.NetNS, wantNICs int, pairs ...vmPair) (*vm.Guest, string) {
	t.Helper()
	ctx := context.Background()
	id := "e2e-vm-" + model
	before := testnet.Snapshot(t, pod)
	dir := t.TempDir()
	// Only a macvtap needs its queues held: QEMU opens taps by name.
	holdFDs := model == modelMacvtap
	sb, err := netbridge.New(dir, nil).Setup(ctx, sandbox.Config{ID: id, Netns: pod.Path(), Model: sandbox.Model(model), HoldFDs: holdFDs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close(); netbridge.New(dir, nil).Teardown(ctx, id) })
	if len(sb.NICs) != wantNICs {
		t.Fatalf("setup attached %d NICs, want %d: %+v", len(sb.NICs), wantNICs, sb.NICs)
	}

	var (
		netArgs []string
		files   []*os.File
	)
	if holdFDs {
		netArgs, files, err = qemu.ByFD(sb.NICs, qemu.Options{}, 3)
	} else {
		netArgs, err = qemu.ByName(sb.NICs, qemu.Options{})
	}
	if err != nil {
		t.Fatal(err)
	}
	cmdline, err := guest.Cmdline(sb.NICs)
	if err != nil {
		t.Fatal(err)
	}
	// The CLI renders the same from the record (for a macvtap, the fd
	// form numbered from 3).
	if got := vmRenderCLI(t, dir, id, "qemu"); got != qemu.Quote(netArgs) {
		t.Errorf("netbridge render --for qemu:\n%s\nwant\n%s", got, qemu.Quote(netArgs))
	}
	if got := vmRenderCLI(t, dir, id, "guest-cmdline"); got != cmdline {
		t.Errorf("netbridge render --for guest-cmdline:\n%s\nwant\n%s", got, cmdline)
	}

	var nodeIPs []string
	var want4, want6 int
	for _, p := range pairs {
		nodeIPs = append(nodeIPs, p.node.String())
		if p.guest.Is4() {
			want4++
		} else {
			want6++
		}
	}
	actions := fmt.Sprintf("nbtest.ping=%s nbtest.wait=%d nbtest.echoes=%d,%d", strings.Join(nodeIPs, ","), vmWaitSeconds, want4, want6)
	g := vm.Boot(t, pod.Path(), netArgs, files, cmdline+" "+actions, vmLifetime)

	if line, err := g.WaitFor("NBTEST NET ", vmMarkerTimeout); err != nil {
		t.Fatal(err)
	} else if line != "NBTEST NET OK" {
		t.Errorf("guest network configuration: %s", line)
	}
	for _, p := range pairs {
		line, err := g.WaitFor("NBTEST PING "+p.node.String()+" ", vmMarkerTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(line, " OK") {
			t.Errorf("guest -> node %s: %s", p.node, line)
		}
	}
	if d, ok := g.FirstReply(); ok {
		t.Logf("model %s, %d NIC(s): boot to first reply %.2f s", model, wantNICs, d.Seconds())
	}
	if _, err := g.WaitFor("NBTEST WAIT", vmMarkerTimeout); err != nil {
		t.Fatal(err)
	}
	for _, p := range pairs {
		if err := testnet.Ping(node, p.guest, 0, pingTimeout); err != nil {
			t.Errorf("node -> guest %s: %v", p.guest, err)
		}
	}
	line, err := g.WaitFor("NBTEST ECHOES", vmMarkerTimeout)
	if err != nil {
		t.Fatal(err)
	}
	var got4, got6 int
	if _, err := fmt.Sscanf(line, "NBTEST ECHOES v4=%d v6=%d", &got4, &got6); err != nil {
		t.Errorf("parsing %q: %v", line, err)
	} else if got4 < want4 || got6 < want6 {
		t.Errorf("the guest answered %d IPv4 and %d IPv6 echo requests, want at least %d and %d: the node's replies came from elsewhere", got4, got6, want4, want6)
	}
	if _, err := g.WaitFor("NBTEST DONE", vmMarkerTimeout); err != nil {
		t.Fatal(err)
	}
	if err := g.Wait(30 * time.Second); err != nil {
		t.Errorf("QEMU after the guest powered off: %v", err)
	}
	if l := g.Lines("NBTEST ERROR"); len(l) > 0 {
		t.Errorf("guest init errors:\n%s", strings.Join(l, "\n"))
	}
	if l := g.Lines("NBTEST WARN"); len(l) > 0 {
		t.Logf("guest init warnings:\n%s", strings.Join(l, "\n"))
	}

	sb.Close()
	if err := netbridge.New(dir, nil).Teardown(ctx, id); err != nil {
		t.Fatal(err)
	}
	return g, testnet.Diff(before, testnet.Snapshot(t, pod))
}

// vmRenderCLI returns the stdout of `netbridge render --for what` for the
// sandbox recorded in dir, without the trailing newline.
func vmRenderCLI(t *testing.T, dir, id, what string) string {
	t.Helper()
	cmd := exec.Command(netbridgeBinary(t), "render", "--id", id, "--state-dir", dir, "--for", what)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("netbridge render --for %s: %v\n%s", what, err, stderr.String())
	}
	return strings.TrimSuffix(string(out), "\n")
}
