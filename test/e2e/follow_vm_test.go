package e2e

// A real guest under `netbridge follow --qmp`: QEMU boots with eth0 and a
// QMP socket; the real CNI bridge plugin adds a second network net1 to the
// running pod, as the Multus dynamic networks controller does; follow wires
// it and hot-plugs it; the guest configures it and pings net1's gateway,
// the node pings the guest through it; CNI DEL of net1 makes follow unplug
// it (DEVICE_DELETED) and unwire it.

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netbridge/netbridge/hypervisor/guest"
	"github.com/netbridge/netbridge/hypervisor/qemu"
	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/cni"
	"github.com/netbridge/netbridge/test/testnet"
	"github.com/netbridge/netbridge/test/vm"
)

func TestVMFollowHotplugsANetworkAddedToTheRunningPod(t *testing.T) {
	vm.Require(t)
	ctx := context.Background()
	node, pod := topology(t, 0)
	before := testnet.Snapshot(t, pod)
	dir := t.TempDir()
	const id = "e2e-follow-vm"
	sb, err := netbridge.New(dir, nil).Setup(ctx, sandbox.Config{ID: id, Netns: pod.Path()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netbridge.New(dir, nil).Teardown(ctx, id) })

	// net1's MAC and address are fixed (CNI_ARGS MAC, a one-address
	// range), so that the guest's netbridge.nic= parameters can carry its
	// configuration from boot: the guest learns nothing at hot-plug time.
	const net1MAC = "02:00:00:00:0f:01"
	net1Gw, net1Addr := netip.MustParseAddr("192.0.2.1"), netip.MustParsePrefix("192.0.2.2/24")
	hw, _ := net.ParseMAC(net1MAC)
	net1 := sandbox.NIC{Name: "net1", GuestMAC: sandbox.MAC(hw), MTU: 1500, Addresses: []netip.Prefix{net1Addr}}
	cmdline, err := guest.Cmdline(append(sb.NICs, net1))
	if err != nil {
		t.Fatal(err)
	}
	netArgs, err := qemu.ByName(sb.NICs, qemu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sockDir, err := os.MkdirTemp("", "nbqmp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "qmp.sock")
	netArgs = append(netArgs, "-qmp", "unix:"+strings.ReplaceAll(sock, ",", ",,")+",server=on,wait=off")
	actions := fmt.Sprintf("nbtest.hotplug=%d nbtest.late=%s nbtest.ping=%s,%s nbtest.wait=%d nbtest.echoes=2,0 nbtest.powerdown=%d",
		hotplugGuestWait, net1MAC, nodeV4, net1Gw, hotplugGuestWait, hotplugGuestWait)
	g := vm.Boot(t, pod.Path(), netArgs, nil, cmdline+" "+actions, vmLifetime)
	if _, err := g.WaitFor("NBTEST HOTPLUG WAIT", vmMarkerTimeout); err != nil {
		t.Fatal(err)
	}

	f := startFollow(t, dir, id, "--qmp", sock)
	waitFollowing(t, f, dir, id)
	conf := []byte(`{"cniVersion":"1.0.0","name":"follow-vm-net1","type":"bridge","bridge":"nbfolvm0","isGateway":true,"ipMasq":false,` +
		`"ipam":{"type":"host-local","ranges":[[{"subnet":"192.0.2.0/24","rangeStart":"192.0.2.2","rangeEnd":"192.0.2.2","gateway":"192.0.2.1"}]]}}`)
	start := time.Now()
	att, err := cni.TryAddArgs(t, cni.Build(t), conf, node, pod, "follow-vm", "net1", [][2]string{{"IgnoreUnknown", "1"}, {"MAC", net1MAC}})
	if err != nil {
		t.Fatal(err)
	}
	l := f.expect(t, "net1")
	if l.Event != "added" || !l.Hotplugged || l.GuestMAC != net1MAC || l.Device != "nic-net1" {
		t.Fatalf("event after net1 was added: %+v; follow's stderr:\n%s", l, f.stderr.String())
	}
	if _, err := g.WaitFor("NBTEST HOTPLUG "+net1MAC+" ", vmMarkerTimeout); err != nil {
		t.Fatal(err)
	}
	t.Logf("CNI ADD of net1 to the guest seeing its NIC: %.2f s (follow: %d ms from the netlink change to the hot-plug)",
		time.Since(start).Seconds(), *l.ElapsedMS)
	if line, err := g.WaitFor("NBTEST NET ", vmMarkerTimeout); err != nil {
		t.Fatal(err)
	} else if line != "NBTEST NET OK" {
		t.Errorf("guest network configuration after the hot-plug: %s", line)
	}
	for _, ip := range []netip.Addr{nodeV4, net1Gw} {
		line, err := g.WaitFor("NBTEST PING "+ip.String()+" ", vmMarkerTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(line, " OK") {
			t.Errorf("guest -> %s: %s", ip, line)
		}
	}
	if _, err := g.WaitFor("NBTEST WAIT", vmMarkerTimeout); err != nil {
		t.Fatal(err)
	}
	for _, ip := range []netip.Addr{podV4, net1Addr.Addr()} {
		if err := testnet.Ping(node, ip, 0, pingTimeout); err != nil {
			t.Errorf("node -> guest %s: %v", ip, err)
		}
	}
	if _, err := g.WaitFor("NBTEST ECHOES", vmMarkerTimeout); err != nil {
		t.Fatal(err)
	}
	if !hotplugHasDevice(t, sock, "nic-net1") {
		t.Errorf("QEMU does not list nic-net1 after the hot-plug")
	}

	// CNI DEL of net1: follow unplugs it (the guest releases it) and
	// unwires it.
	if err := att.Del(); err != nil {
		t.Fatal(err)
	}
	if l := f.expect(t, "net1"); l.Event != "removed" || !l.Hotplugged || l.Tap == "" {
		t.Errorf("event after net1's CNI DEL: %+v; follow's stderr:\n%s", l, f.stderr.String())
	} else if _, _, err := testnet.HandleAndLink(pod, l.Tap); err == nil {
		t.Errorf("tap %s of the removed net1 is still there", l.Tap)
	}
	if _, err := g.WaitFor("NBTEST NIC GONE "+net1MAC, vmMarkerTimeout); err != nil {
		t.Fatal(err)
	}
	if hotplugHasDevice(t, sock, "nic-net1") {
		t.Errorf("QEMU still lists nic-net1 after the CNI DEL")
	}
	if !hotplugHasDevice(t, sock, "nic-eth0") {
		t.Errorf("QEMU lost nic-eth0")
	}
	if err := netbridge.New(dir, nil).Check(ctx, id); err != nil {
		t.Errorf("check after net1 went: %v", err)
	}

	if err := f.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := f.wait(t); code != 0 {
		t.Errorf("follow exited %d on SIGTERM; stderr:\n%s", code, f.stderr.String())
	}
	hotplugQMP(t, sock, "system_powerdown", nil)
	if _, err := g.WaitFor("NBTEST DONE", vmMarkerTimeout); err != nil {
		t.Fatal(err)
	}
	if err := g.Wait(30 * time.Second); err != nil {
		t.Errorf("QEMU after the guest powered off: %v", err)
	}
	if l := g.Lines("NBTEST ERROR"); len(l) > 0 {
		t.Errorf("guest init errors:\n%s", strings.Join(l, "\n"))
	}
	t.Logf("guest markers:\n%s", strings.Join(g.Lines("NBTEST "), "\n"))
	if err := netbridge.New(dir, nil).Teardown(ctx, id); err != nil {
		t.Fatal(err)
	}
	if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
		t.Errorf("pod netns after teardown:\n%s", d)
	}
}
