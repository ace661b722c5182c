package e2e

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/fakeguest"
	"github.com/netbridge/netbridge/test/testnet"
)

// TestExistingTapIsPassedThrough puts a tap that netbridge did not make
// (like one a tap CNI plugin leaves, without vnet_hdr) next to the CNI
// veth. With every model the tap is handed to the guest as it is (model
// passthrough, nothing created or wired for it) and teardown leaves it; a
// fake guest on the queue setup opened (without vnet_hdr, as the tap was
// made) exchanges frames with the pod through it.
func TestExistingTapIsPassedThrough(t *testing.T) {
	for _, v := range allVariants {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			_, pod := topology(t, 0)
			testnet.Exec(t, pod, "ip", "tuntap", "add", "dev", "tap0", "mode", "tap")
			// An IPv4-only tap: no IPv6 link-local address and routes appear
			// when the guest attaches and the carrier comes up, so that
			// attaching changes nothing the snapshots compare.
			testnet.Sysctl(t, pod, "net.ipv6.conf.tap0.disable_ipv6", "1")
			testnet.SetMTU(t, pod, "tap0", 1400)
			testnet.LinkUp(t, pod, "tap0")
			testnet.AddAddr(t, pod, "tap0", "192.0.2.1/24")
			tapMAC := testnet.LinkByName(t, pod, "tap0").Attrs().HardwareAddr
			before := testnet.Snapshot(t, pod)
			dir := t.TempDir()

			// Only the tap: nothing at all changes in the netns.
			only := withVariant(sandbox.Config{ID: "e2e-pt-only", Netns: pod.Path(), Interfaces: []string{"tap0"}}, v)
			sb := mustSetup(t, dir, only)
			if len(sb.NICs) != 1 {
				t.Fatalf("NICs %+v, want tap0 only", sb.NICs)
			}
			nic := sb.NICs[0]
			if string(nic.Model) != modelPassthrough || nic.Kind != "tuntap" || nic.Tap != "tap0" || nic.MTU != 1400 ||
				nic.GuestMAC.String() != tapMAC.String() || nic.Why == "" || nic.Bridge != "" || nic.Device != "" || nic.HostMAC != nil {
				t.Errorf("NIC %+v, want tap0 passed through as it is", nic)
			}
			if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
				t.Errorf("passing an existing tap through changed the netns:\n%s", d)
			}
			if err := netbridge.New(dir, nil).Check(context.Background(), only.ID); err != nil {
				t.Errorf("Check: %v", err)
			}
			mustTeardown(t, dir, only.ID)
			if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
				t.Errorf("teardown touched the existing tap:\n%s", d)
			}

			// By default, next to eth0, in name order. Frames through the
			// queue setup opened: once (they do not depend on eth0's model,
			// and the tap's carrier going away again costs a second).
			frames := v == modelTCFilter
			cfg := withVariant(sandbox.Config{ID: "e2e-pt", Netns: pod.Path(), HoldFDs: frames}, v)
			sb = mustSetup(t, dir, cfg)
			if len(sb.NICs) != 2 || sb.NICs[0].Name != "eth0" || sb.NICs[1].Name != "tap0" {
				t.Fatalf("NICs %+v, want eth0 and tap0", sb.NICs)
			}
			if string(sb.NICs[0].Model) != wantModel(t, v) || sb.NICs[1].Model != modelPassthrough {
				t.Errorf("models %s, %s; want %s, passthrough", sb.NICs[0].Model, sb.NICs[1].Model, wantModel(t, v))
			}
			if err := netbridge.New(dir, nil).Check(context.Background(), cfg.ID); err != nil {
				t.Errorf("Check: %v", err)
			}
			nic = sb.NICs[1]
			if !frames {
				mustTeardown(t, dir, cfg.ID)
				if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
					t.Errorf("after teardown:\n%s", d)
				}
				return
			}
			if len(nic.Files) != 1 {
				t.Fatalf("tap0: %d queue files held, want 1", len(nic.Files))
			}
			// The guest must not use the pod's own address on the tap.
			guestIP := netip.MustParseAddr("192.0.2.2")
			g, err := fakeguest.New(nic.Files[0], net.HardwareAddr(nic.GuestMAC), []netip.Prefix{netip.MustParsePrefix("192.0.2.2/24")}, fakeguest.WithVnetHdr(false))
			sb.NICs[1].Files = nil
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { g.Close() })
			if err := g.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := testnet.Ping(pod, guestIP, 0, pingTimeout); err != nil || g.Stats().EchoRepliesSent == 0 {
				t.Errorf("pod -> guest on tap0: %v (guest replies %d)", err, g.Stats().EchoRepliesSent)
			}
			ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
			defer cancel()
			if err := g.Ping(ctx, netip.MustParseAddr("192.0.2.1"), 0); err != nil {
				t.Errorf("guest on tap0 -> pod: %v", err)
			}
			g.Close()
			sb.Close()
			mustTeardown(t, dir, cfg.ID)
			if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
				t.Errorf("after teardown:\n%s", d)
			}
		})
	}
}

// TestOtherKindIsSkippedOrStrict puts a vxlan link with an address next to
// the CNI veth (and one without address, which is of no concern): setup
// wires eth0 and warns naming vx0; under Strict it fails with
// ErrInvalidConfig naming vx0 and changes nothing. Naming vx0 is refused
// either way.
func TestOtherKindIsSkippedOrStrict(t *testing.T) {
	_, pod := topology(t, 0)
	testnet.Exec(t, pod, "ip", "link", "add", "vx0", "type", "vxlan", "id", "42", "dstport", "4789", "local", "198.51.100.2")
	testnet.Exec(t, pod, "ip", "link", "add", "vx1", "type", "vxlan", "id", "43", "dstport", "4790")
	testnet.LinkUp(t, pod, "vx0")
	testnet.AddAddr(t, pod, "vx0", "203.0.113.2/24")
	before := testnet.Snapshot(t, pod)
	dir := t.TempDir()

	ifs, err := netbridge.Discover(context.Background(), pod.Path(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Name == "vx0" && (i.Attach || !strings.Contains(i.Reason, `kind "vxlan" is not supported`)) {
			t.Errorf("Discover: vx0 = %+v, want not attached, saying vxlan is not supported", i)
		}
	}

	for _, v := range []string{modelTCFilter, modelBridge, modelAuto} {
		cfg := withVariant(sandbox.Config{ID: "e2e-kind", Netns: pod.Path()}, v)
		sb := mustSetup(t, dir, cfg)
		if len(sb.NICs) != 1 || sb.NICs[0].Name != "eth0" {
			t.Errorf("%s: NICs %+v, want eth0 only", v, sb.NICs)
		}
		if len(sb.Warnings) != 1 || !strings.Contains(sb.Warnings[0], "vx0") || !strings.Contains(sb.Warnings[0], "vxlan") {
			t.Errorf("%s: warnings %q, want one naming vx0 and its kind", v, sb.Warnings)
		}
		loaded, err := netbridge.New(dir, nil).Load(context.Background(), cfg.ID)
		if err != nil || len(loaded.Warnings) != 1 {
			t.Errorf("%s: the record lost the warning: %+v, %v", v, loaded, err)
		}
		mustTeardown(t, dir, cfg.ID)

		for _, c := range []struct {
			name string
			mod  func(*sandbox.Config)
		}{
			{"strict", func(c *sandbox.Config) { c.Strict = true }},
			{"named", func(c *sandbox.Config) { c.Interfaces = []string{"eth0", "vx0"} }},
		} {
			bad := cfg
			c.mod(&bad)
			sb, err := netbridge.New(dir, nil).Setup(context.Background(), bad)
			if err == nil {
				sb.Close()
				mustTeardown(t, dir, bad.ID)
				t.Errorf("%s/%s: Setup succeeded", v, c.name)
				continue
			}
			if !errors.Is(err, sandbox.ErrInvalidConfig) || !strings.Contains(err.Error(), `"vx0"`) {
				t.Errorf("%s/%s: Setup = %v, want ErrInvalidConfig naming vx0", v, c.name, err)
			}
			if e := testnet.DirNames(t, dir); len(e) != 0 {
				t.Errorf("%s/%s: the failed setup left %v", v, c.name, e)
			}
		}
		if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
			t.Errorf("%s: after teardown and refused setups:\n%s", v, d)
		}
	}
}
