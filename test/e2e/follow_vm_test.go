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
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netbridge/netbridge/hypervisor/guest"
	"github.com/netbridge/netbridge/hypervisor/qemu"
	"github.com/netbridge/netbridge/hypervisor/qemu/hotplug"
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
	sock, qmpArgs := qmpSocket(t)
	netArgs = append(netArgs, qmpArgs...)
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

// settledCounts returns the fewest open fds and threads of process pid
// over half a second of samples: what it holds between reconcile passes
// (a pass, every resync, holds the netns, netlink and QMP sockets for a
// moment), so that only what stays open counts.
func settledCounts(t *testing.T, pid int) (fds, threads int) {
	t.Helper()
	fds, threads = procCounts(t, pid)
	for range 10 {
		time.Sleep(50 * time.Millisecond)
		f, th := procCounts(t, pid)
		fds, threads = min(fds, f), min(threads, th)
	}
	return fds, threads
}

// procCounts returns the open fds and threads of process pid.
func procCounts(t *testing.T, pid int) (fds, threads int) {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			fmt.Sscan(strings.TrimSpace(v), &threads)
		}
	}
	return len(ents), threads
}

// qemuNICs returns the NIC device ids QEMU holds.
func qemuNICs(t *testing.T, sock string) []string {
	t.Helper()
	ids, err := hotplug.NewVM(sock).Plugged(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

// podTaps counts the taps in the pod netns.
func podTaps(t *testing.T, pod ns.NetNS) int {
	t.Helper()
	links, err := testnet.Handle(t, pod).LinkList()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range links {
		if l.Type() == "tuntap" {
			n++
		}
	}
	return n
}

// TestVMFollowCyclesKillsAndQEMUGone runs 20 add/remove cycles of net1
// under follow --qmp against a real guest, counting follow's fds and
// threads, the pod's taps and QEMU's NICs; then SIGKILLs follow right
// after a CNI ADD and right after a CNI DEL, and checks that a new follow
// converges; then kills QEMU: follow keeps the wiring right, reports the
// failure and does not exit.
func TestVMFollowCyclesKillsAndQEMUGone(t *testing.T) {
	vm.Require(t)
	ctx := context.Background()
	node, pod := topology(t, 0)
	before := testnet.Snapshot(t, pod)
	dir := t.TempDir()
	const id = "e2e-follow-cycles"
	sb, err := netbridge.New(dir, nil).Setup(ctx, sandbox.Config{ID: id, Netns: pod.Path()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netbridge.New(dir, nil).Teardown(ctx, id) })
	cmdline, err := guest.Cmdline(sb.NICs)
	if err != nil {
		t.Fatal(err)
	}
	netArgs, err := qemu.ByName(sb.NICs, qemu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sock, qmpArgs := qmpSocket(t)
	netArgs = append(netArgs, qmpArgs...)
	g := vm.Boot(t, pod.Path(), netArgs, nil, cmdline+" nbtest.wait=170", vmLifetime)
	if _, err := g.WaitFor("NBTEST WAIT", vmMarkerTimeout); err != nil {
		t.Fatal(err)
	}
	bin := cni.Build(t)
	conf := []byte(`{"cniVersion":"1.0.0","name":"follow-cycles","type":"bridge","bridge":"nbfolcy0","isGateway":true,"ipMasq":false,` +
		`"ipam":{"type":"host-local","ranges":[[{"subnet":"192.0.2.0/24","gateway":"192.0.2.1"}]]}}`)
	add := func(i int) *cni.Attachment { return cni.Add(t, bin, conf, node, pod, fmt.Sprintf("ctr-%d", i), "net1") }

	f := startFollow(t, dir, id, "--qmp", sock)
	waitFollowing(t, f, dir, id)
	pid := f.cmd.Process.Pid
	var added, removed []int64
	var fds0, threads0 int
	const cycles = 20
	for i := range cycles {
		att := add(i)
		if l := f.expect(t, "net1"); l.Event != "added" || !l.Hotplugged {
			t.Fatalf("cycle %d: %+v; stderr:\n%s", i, l, f.stderr.String())
		} else {
			added = append(added, *l.ElapsedMS)
		}
		if err := att.Del(); err != nil {
			t.Fatal(err)
		}
		if l := f.expect(t, "net1"); l.Event != "removed" || !l.Hotplugged {
			t.Fatalf("cycle %d: %+v; stderr:\n%s", i, l, f.stderr.String())
		} else {
			removed = append(removed, *l.ElapsedMS)
		}
		if i == 0 {
			fds0, threads0 = settledCounts(t, pid)
		}
	}
	fds, threads := settledCounts(t, pid)
	t.Logf("%d cycles: follow fds %d after the first, %d after the last; threads %d, %d", cycles, fds0, fds, threads0, threads)
	if fds != fds0 {
		t.Errorf("follow's open fds went from %d to %d over %d cycles", fds0, fds, cycles)
	}
	if taps := podTaps(t, pod); taps != 1 {
		t.Errorf("%d taps in the pod after the cycles, want 1", taps)
	}
	if ids := qemuNICs(t, sock); !slices.Equal(ids, []string{"nic-eth0"}) {
		t.Errorf("QEMU holds %v after the cycles, want [nic-eth0]", ids)
	}
	pct := func(v []int64, p int) int64 {
		s := slices.Clone(v)
		slices.Sort(s)
		return s[(len(s)-1)*p/100]
	}
	t.Logf("netlink change to hot-plug done (device_add): median %d ms, p90 %d ms; to unplug done (DEVICE_DELETED): median %d ms, p90 %d ms",
		pct(added, 50), pct(added, 90), pct(removed, 50), pct(removed, 90))

	// SIGKILL right after a CNI ADD, then a new follow converges.
	att := add(100)
	if err := f.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	f.wait(t)
	f = startFollow(t, dir, id, "--qmp", sock)
	waitUntil(t, "QEMU holding nic-eth0 and nic-net1", func() bool {
		return slices.Equal(qemuNICs(t, sock), []string{"nic-eth0", "nic-net1"})
	})
	if err := netbridge.New(dir, nil).CheckInterface(ctx, id, "net1"); err != nil {
		t.Errorf("net1 after a follow killed right after its ADD and a new one: %v", err)
	}
	// SIGKILL right after the CNI DEL.
	if err := att.Del(); err != nil {
		t.Fatal(err)
	}
	if err := f.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	f.wait(t)
	f = startFollow(t, dir, id, "--qmp", sock)
	waitUntil(t, "QEMU holding only nic-eth0", func() bool { return slices.Equal(qemuNICs(t, sock), []string{"nic-eth0"}) })
	waitUntil(t, "one tap in the pod", func() bool { return podTaps(t, pod) == 1 })
	if err := netbridge.New(dir, nil).Check(ctx, id); err != nil {
		t.Errorf("check after a follow killed right after a DEL and a new one: %v", err)
	}

	f.drain(t) // the new follow's events of its convergence

	// QEMU gone: the wiring stays right, the failure is reported, follow
	// goes on.
	g.Kill()
	g.Wait(30 * time.Second)
	att = add(200)
	l := f.expect(t, "net1")
	if l.Event != "added" || l.Hotplugged || l.Error == "" {
		t.Errorf("event after net1 was added with QEMU gone: %+v", l)
	}
	if err := netbridge.New(dir, nil).Check(ctx, id); err != nil {
		t.Errorf("check with QEMU gone: %v", err)
	}
	if err := att.Del(); err != nil {
		t.Fatal(err)
	}
	if l := f.expect(t, "net1"); l.Event != "removed" || l.Hotplugged {
		t.Errorf("event after net1's DEL with QEMU gone: %+v", l)
	}
	if f.cmd.ProcessState != nil {
		t.Fatalf("follow exited with QEMU gone: %v", f.cmd.ProcessState)
	}
	if err := f.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := f.wait(t); code != 0 {
		t.Errorf("follow exited %d on SIGTERM; stderr:\n%s", code, f.stderr.String())
	}
	if n := strings.Count(f.stderr.String(), "\n"); n > 1 {
		t.Errorf("follow reported the lost QEMU %d times, want once:\n%s", n, f.stderr.String())
	}
	if err := netbridge.New(dir, nil).Teardown(ctx, id); err != nil {
		t.Fatal(err)
	}
	if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
		t.Errorf("pod netns after teardown:\n%s", d)
	}
}

// drain logs the events follow printed so far (it waits until follow is
// quiet for a second).
func (f *follower) drain(t *testing.T) {
	t.Helper()
	for {
		select {
		case l, ok := <-f.lines:
			if !ok {
				return
			}
			t.Logf("drained %+v", l)
		case <-time.After(time.Second):
			return
		}
	}
}
