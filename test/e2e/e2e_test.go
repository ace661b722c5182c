// Package e2e holds end-to-end tests: real frames through netbridge's
// wiring, as a library and as a separate process, on namespaces configured
// by hand and by the real CNI plugins.
package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/cni"
	"github.com/netbridge/netbridge/test/fakeguest"
	"github.com/netbridge/netbridge/test/testnet"
)

const pingTimeout = 5 * time.Second

// The models and macvtap modes by name, as the CLI and the CNI
// configuration take them (untyped: a test's variant names are strings).
const (
	modelTCFilter    = "tcfilter"
	modelBridge      = "bridge"
	modelMacvtap     = "macvtap"
	modelNone        = "none"
	modelAuto        = "auto"
	modelPassthrough = "passthrough"
	modePassthru     = "passthru"
)

var (
	nodeV4 = netip.MustParseAddr("198.51.100.1")
	podV4  = netip.MustParseAddr("198.51.100.2")
	nodeV6 = netip.MustParseAddr("2001:db8:1::1")
	podV6  = netip.MustParseAddr("2001:db8:1::2")
)

// topology is a node netns and a pod netns joined by veth0/eth0, the pod
// side configured the way a CNI plugin would leave it.
func topology(t *testing.T, mtu int) (node, pod ns.NetNS) {
	t.Helper()
	node, pod = testnet.NewNS(t), testnet.NewNS(t)
	testnet.VethPair(t, node, pod, "veth0", "eth0", mtu)
	testnet.AddAddr(t, node, "veth0", "198.51.100.1/24")
	testnet.AddAddr(t, node, "veth0", "2001:db8:1::1/64")
	testnet.AddAddr(t, pod, "eth0", "198.51.100.2/24")
	testnet.AddAddr(t, pod, "eth0", "2001:db8:1::2/64")
	testnet.AddRoute(t, pod, "eth0", "default", "198.51.100.1")
	testnet.AddRoute(t, pod, "eth0", "default", "2001:db8:1::1")
	return node, pod
}

// startGuest attaches a fake guest to the NIC's tap, with the NIC's guest
// MAC and addresses, and gateways taken from its default routes.
func startGuest(t *testing.T, tap *os.File, nic sandbox.NIC) *fakeguest.Guest {
	t.Helper()
	var opts []fakeguest.Option
	for _, r := range nic.Routes {
		if r.Dst.Bits() == 0 && r.Gw.IsValid() {
			opts = append(opts, fakeguest.WithGateway(r.Gw))
		}
	}
	g, err := fakeguest.New(tap, net.HardwareAddr(nic.GuestMAC), nic.Addresses, opts...)
	if err != nil {
		t.Fatalf("starting the fake guest on %s: %v", nic.Tap, err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// pingBothWays pings the guest from the node, and the node from the guest,
// for every address pair given. The pod netns holds the same addresses as
// the guest, so a node ping counts only if the fake guest itself answered
// it: a reply from the pod's kernel would mean the redirect is missing.
func pingBothWays(t *testing.T, node ns.NetNS, g *fakeguest.Guest, size int, pairs ...[2]netip.Addr) {
	t.Helper()
	for _, p := range pairs {
		nodeIP, guestIP := p[0], p[1]
		sent := g.Stats().EchoRepliesSent
		if err := testnet.Ping(node, guestIP, size, pingTimeout); err != nil {
			t.Errorf("node -> guest %s (%d bytes): %v", guestIP, size, err)
		} else if g.Stats().EchoRepliesSent == sent {
			t.Errorf("node -> guest %s (%d bytes): answered, but not by the guest", guestIP, size)
		}
		ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
		err := g.Ping(ctx, nodeIP, size)
		cancel()
		if err != nil {
			t.Errorf("guest -> node %s (%d bytes): %v", nodeIP, size, err)
		}
	}
}

// TestRealFramesThroughLibrary wires the pod with each model, holding the
// queue fds, and has a fake guest on them answer the node (IPv4, IPv6, and
// one full-size frame at MTU 1500 and 9000). The pod netns is compared with
// its snapshot after teardown.
func TestRealFramesThroughLibrary(t *testing.T) {
	for _, model := range []string{modelTCFilter, modelBridge, modelMacvtap, modelMacvtap + "-passthru"} {
		for _, mtu := range []int{1500, 9000} {
			t.Run(fmt.Sprintf("%s/mtu%d", model, mtu), func(t *testing.T) {
				node, pod := topology(t, mtu)
				before := testnet.Snapshot(t, pod)
				dir := t.TempDir()
				cfg := sandbox.Config{ID: "e2e-lib", Netns: pod.Path(), HoldFDs: true, Model: sandbox.Model(model)}
				if m, ok := strings.CutSuffix(model, "-passthru"); ok {
					cfg.Model, cfg.MacvtapMode = sandbox.Model(m), sandbox.MacvtapPassthru
				}
				sb, err := netbridge.New(dir, nil).Setup(context.Background(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { sb.Close(); netbridge.New(dir, nil).Teardown(context.Background(), "e2e-lib") })
				nic := sb.NICs[0]
				if nic.MTU != mtu || testnet.LinkByName(t, pod, nic.Tap).Attrs().MTU != mtu {
					t.Errorf("NIC MTU %d, %s MTU %d, want %d", nic.MTU, nic.Tap, testnet.LinkByName(t, pod, nic.Tap).Attrs().MTU, mtu)
				}
				if err := netbridge.New(dir, nil).Check(context.Background(), "e2e-lib"); err != nil {
					t.Errorf("Check: %v", err)
				}
				g := startGuest(t, nic.Files[0], nic)
				sb.NICs[0].Files = nil // the guest owns the queue now

				pingBothWays(t, node, g, 0, [2]netip.Addr{nodeV4, podV4}, [2]netip.Addr{nodeV6, podV6})
				// One full-size frame each way: an IP packet of exactly the MTU.
				pingBothWays(t, node, g, mtu, [2]netip.Addr{nodeV4, podV4})

				g.Close()
				if err := netbridge.New(dir, nil).Teardown(context.Background(), "e2e-lib"); err != nil {
					t.Fatal(err)
				}
				if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
					t.Errorf("after teardown:\n%s", d)
				}
			})
		}
	}
}

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// netbridgeBinary builds cmd/netbridge once per test run.
func netbridgeBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "netbridge-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "netbridge")
		out, err := exec.Command("go", "build", "-o", binary, "github.com/netbridge/netbridge/cmd/netbridge").CombinedOutput()
		if err != nil {
			buildErr = err
			binary = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building netbridge: %v\n%s", buildErr, binary)
	}
	return binary
}

func TestMain(m *testing.M) {
	// runc runs this binary as a hook of TestRuncHookNewNetns (runc_test.go):
	// then it is a stand-in CNI plugin, not a test run.
	if os.Getenv(envHookRole) == hookRoleCNI {
		os.Exit(cniHookMain())
	}
	code := m.Run()
	if binary != "" && buildErr == nil {
		os.RemoveAll(filepath.Dir(binary))
	}
	os.Exit(code)
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(netbridgeBinary(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("netbridge %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestRealFramesThroughCLIProcess(t *testing.T) {
	node, pod := topology(t, 0)
	before := testnet.Snapshot(t, pod)
	dir := t.TempDir()
	out := run(t, "setup", "--netns", pod.Path(), "--id", "e2e-cli", "--state-dir", dir)
	if !strings.Contains(out, "-netdev tap,id=net-eth0,ifname=nb-eth0,script=no,downscript=no") {
		t.Errorf("setup output lacks the QEMU arguments:\n%s", out)
	}
	t.Cleanup(func() { exec.Command(netbridgeBinary(t), "teardown", "--id", "e2e-cli", "--state-dir", dir).Run() })
	sb, err := netbridge.New(dir, nil).Load(context.Background(), "e2e-cli")
	if err != nil {
		t.Fatal(err)
	}
	// The process has exited; the persistent tap is opened the way QEMU
	// opens it by name.
	tap, err := fakeguest.OpenTap(pod, sb.NICs[0].Tap, true)
	if err != nil {
		t.Fatal(err)
	}
	g := startGuest(t, tap, sb.NICs[0])
	pingBothWays(t, node, g, 0, [2]netip.Addr{nodeV4, podV4}, [2]netip.Addr{nodeV6, podV6})
	run(t, "check", "--id", "e2e-cli", "--state-dir", dir)
	g.Close()
	run(t, "teardown", "--id", "e2e-cli", "--state-dir", dir)
	run(t, "teardown", "--id", "e2e-cli", "--state-dir", dir)
	if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
		t.Errorf("after teardown:\n%s", d)
	}
}

// TestRealCNIBridgePlugin lets the real CNI bridge plugin with host-local
// IPAM configure the pod netns, then wires it and pings through the tap.
func TestRealCNIBridgePlugin(t *testing.T) {
	bin := cni.Build(t)
	for _, c := range []struct {
		name string
		conf string
	}{
		{"ipv4", `{"cniVersion":"1.0.0","name":"nbe2e","type":"bridge","bridge":"nbe2e0","isGateway":true,"ipMasq":false,
			"ipam":{"type":"host-local","ranges":[[{"subnet":"198.51.100.0/24","gateway":"198.51.100.1"}]],"routes":[{"dst":"0.0.0.0/0"}]}}`},
		{"dual-stack", `{"cniVersion":"1.0.0","name":"nbe2e6","type":"bridge","bridge":"nbe2e1","isGateway":true,"ipMasq":false,
			"ipam":{"type":"host-local","ranges":[[{"subnet":"203.0.113.0/24","gateway":"203.0.113.1"}],[{"subnet":"2001:db8:5::/64","gateway":"2001:db8:5::1"}]],
			"routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0"}]}}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			node, pod := testnet.NewNS(t), testnet.NewNS(t)
			att := cni.Add(t, bin, []byte(c.conf), node, pod, "e2e-cni-"+c.name, "eth0")
			before := testnet.Snapshot(t, pod)
			dir := t.TempDir()
			sb, err := netbridge.New(dir, nil).Setup(context.Background(), sandbox.Config{ID: "e2e-cni", Netns: pod.Path(), HoldFDs: true})
			if err != nil {
				t.Fatal(err)
			}
			nic := sb.NICs[0]
			var pairs [][2]netip.Addr
			for _, ipc := range att.Result.IPs {
				addr, _ := netip.AddrFromSlice(ipc.Address.IP)
				gw, _ := netip.AddrFromSlice(ipc.Gateway)
				pairs = append(pairs, [2]netip.Addr{gw.Unmap(), addr.Unmap()})
				want, _ := netip.ParsePrefix(ipc.Address.String())
				found := false
				for _, a := range nic.Addresses {
					found = found || a == want
				}
				if !found {
					t.Errorf("NIC addresses %v lack the CNI address %s", nic.Addresses, want)
				}
			}
			if len(pairs) != strings.Count(c.name, "-")+1 {
				t.Fatalf("CNI gave %d IPs: %+v", len(pairs), att.Result.IPs)
			}
			if nic.GuestMAC.String() != att.Result.Interfaces[len(att.Result.Interfaces)-1].Mac {
				t.Errorf("guest MAC %s, want the CNI interface's %s", nic.GuestMAC, att.Result.Interfaces[len(att.Result.Interfaces)-1].Mac)
			}
			g := startGuest(t, nic.Files[0], nic)
			sb.NICs[0].Files = nil
			pingBothWays(t, node, g, 0, pairs...)

			g.Close()
			if err := netbridge.New(dir, nil).Teardown(context.Background(), "e2e-cni"); err != nil {
				t.Fatal(err)
			}
			if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
				t.Errorf("after teardown:\n%s", d)
			}
			if err := att.Del(); err != nil {
				t.Errorf("CNI DEL after teardown: %v", err)
			}
		})
	}
}
