package e2e

// A real guest that gets its NIC by QMP hot-plug: QEMU boots with no NIC
// and a QMP socket, `netbridge hotplug` hands the tap queues over with
// getfd and adds the device; the guest (test/vm's init with
// nbtest.hotplug) configures the NIC as it would at boot, traffic flows
// both ways, `netbridge hotplug --unplug` removes the NIC again through
// the guest's ACPI PCI hot-plug (acpiphp), and QMP system_powerdown ends
// the guest.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netbridge/netbridge/hypervisor/guest"
	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/pkg/qmp"
	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/testnet"
	"github.com/netbridge/netbridge/test/vm"
)

const (
	// hotplugGuestWait bounds, in seconds, each of the guest's waits: for
	// the NIC to appear, to be pinged, for the NIC to go, for the power
	// button.
	hotplugGuestWait = 60
	// hotplugCLITimeout bounds each `netbridge hotplug` run.
	hotplugCLITimeout = 60 * time.Second
	// hotplugDevice is the QEMU device id netbridge gives eth0's NIC.
	hotplugDevice = "nic-eth0"
)

// TestVMHotplug boots a guest without NICs on each model, hot-plugs the
// pod's NIC with the CLI, checks traffic both ways (IPv4 and IPv6; the
// guest's echo counters prove it answered), unplugs the NIC, checks that
// both the guest and QEMU no longer have it, powers the guest off, tears
// down and compares the pod netns with its state before setup.
func TestVMHotplug(t *testing.T) {
	vm.Require(t)
	for _, model := range []string{modelTCFilter, modelMacvtap, modelBridge} {
		t.Run(model, func(t *testing.T) {
			node, pod := topology(t, 0)
			if d := hotplugRun(t, model, node, pod); d != "" {
				t.Errorf("pod netns after teardown:\n%s", d)
			}
		})
	}
}

// hotplugRun runs the whole hot-plug cycle on pod wired with model and
// returns the difference of the pod netns after teardown from before setup
// ("" when teardown restored it).
func hotplugRun(t *testing.T, model string, node, pod ns.NetNS) string {
	ctx := context.Background()
	id := "e2e-hotplug-" + model
	before := testnet.Snapshot(t, pod)
	dir := t.TempDir()
	// No queues held: `netbridge hotplug` opens them itself, as a runtime
	// adding a NIC to a running VM would.
	sb, err := netbridge.New(dir, nil).Setup(ctx, sandbox.Config{ID: id, Netns: pod.Path(), Model: sandbox.Model(model)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netbridge.New(dir, nil).Teardown(ctx, id) })
	if len(sb.NICs) != 1 {
		t.Fatalf("setup attached %d NICs, want 1: %+v", len(sb.NICs), sb.NICs)
	}
	mac := sb.NICs[0].GuestMAC.String()
	cmdline, err := guest.Cmdline(sb.NICs)
	if err != nil {
		t.Fatal(err)
	}

	sock, qmpArgs := qmpSocket(t)
	actions := fmt.Sprintf("nbtest.hotplug=%d nbtest.ping=%s,%s nbtest.wait=%d nbtest.echoes=1,1 nbtest.powerdown=%d",
		hotplugGuestWait, nodeV4, nodeV6, hotplugGuestWait, hotplugGuestWait)
	// The guest starts with no NIC but the netbridge.nic= parameters of the
	// one it will get. QEMU runs in the pod netns like the other VM tests,
	// although with fds passed over QMP its netns does not matter.
	g := vm.Boot(t, pod.Path(), qmpArgs, nil, cmdline+" "+actions, vmLifetime)

	if _, err := g.WaitFor("NBTEST HOTPLUG WAIT", vmMarkerTimeout); err != nil {
		t.Fatal(err)
	}
	if l := g.Lines("NBTEST NIC "); len(l) > 0 {
		t.Fatalf("the guest has a NIC before the hot-plug: %s", strings.Join(l, "; "))
	}
	if hotplugHasDevice(t, sock, hotplugDevice) {
		t.Fatalf("QEMU has device %s before the hot-plug", hotplugDevice)
	}

	// Hot-plug.
	netbridgeBinary(t) // built before the clock starts
	start := time.Now()
	out := hotplugCLI(t, "hotplug", "--id", id, "--state-dir", dir, "--qmp", sock)
	t.Logf("netbridge hotplug (%.2f s): %s", time.Since(start).Seconds(), out)
	if _, err := g.WaitFor("NBTEST HOTPLUG "+mac+" ", vmMarkerTimeout); err != nil {
		t.Fatal(err)
	}
	appeared := time.Since(start)
	if line, err := g.WaitFor("NBTEST NET ", vmMarkerTimeout); err != nil {
		t.Fatal(err)
	} else if line != "NBTEST NET OK" {
		t.Errorf("guest network configuration after the hot-plug: %s", line)
	}
	var firstReply time.Duration
	for _, ip := range []string{nodeV4.String(), nodeV6.String()} {
		line, err := g.WaitFor("NBTEST PING "+ip+" ", vmMarkerTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(line, " OK") {
			t.Errorf("guest -> node %s: %s", ip, line)
		} else if firstReply == 0 {
			firstReply = time.Since(start)
		}
	}
	if !hotplugHasDevice(t, sock, hotplugDevice) {
		t.Errorf("QEMU does not list device %s after the hot-plug", hotplugDevice)
	}
	if _, err := g.WaitFor("NBTEST WAIT", vmMarkerTimeout); err != nil {
		t.Fatal(err)
	}
	var nodeReply time.Duration
	for _, ip := range []netip.Addr{podV4, podV6} {
		if err := testnet.Ping(node, ip, 0, pingTimeout); err != nil {
			t.Errorf("node -> guest %s: %v", ip, err)
		} else if nodeReply == 0 {
			nodeReply = time.Since(start)
		}
	}
	t.Logf("model %s: hotplug to NIC in the guest %.2f s, to the guest's first reply %.2f s, to the node's first reply %.2f s",
		model, appeared.Seconds(), firstReply.Seconds(), nodeReply.Seconds())
	line, err := g.WaitFor("NBTEST ECHOES", vmMarkerTimeout)
	if err != nil {
		t.Fatal(err)
	}
	var got4, got6 int
	if _, err := fmt.Sscanf(line, "NBTEST ECHOES v4=%d v6=%d", &got4, &got6); err != nil {
		t.Errorf("parsing %q: %v", line, err)
	} else if got4 < 1 || got6 < 1 {
		t.Errorf("the guest answered %d IPv4 and %d IPv6 echo requests, want at least 1 each: the node's replies came from elsewhere", got4, got6)
	}

	// Unplug: the CLI returns once QEMU reported DEVICE_DELETED, that is
	// once the guest released the device.
	start = time.Now()
	out = hotplugCLI(t, "hotplug", "--id", id, "--state-dir", dir, "--qmp", sock, "--unplug")
	t.Logf("netbridge hotplug --unplug (%.2f s): %s", time.Since(start).Seconds(), out)
	if _, err := g.WaitFor("NBTEST NIC GONE "+mac, vmMarkerTimeout); err != nil {
		t.Fatal(err)
	}
	// The guest now waits for the power button, so QEMU still answers.
	if _, err := g.WaitFor("NBTEST POWERDOWN WAIT", vmMarkerTimeout); err != nil {
		t.Fatal(err)
	}
	if hotplugHasDevice(t, sock, hotplugDevice) {
		t.Errorf("QEMU still lists device %s after the unplug", hotplugDevice)
	}
	// The wiring is untouched by the unplug.
	if err := netbridge.New(dir, nil).Check(ctx, id); err != nil {
		t.Errorf("netbridge check after the unplug: %v", err)
	}

	// Shut down: the ACPI power button.
	hotplugQMP(t, sock, "system_powerdown", nil)
	for _, m := range []string{"NBTEST POWER BUTTON", "NBTEST DONE"} {
		if _, err := g.WaitFor(m, vmMarkerTimeout); err != nil {
			t.Fatal(err)
		}
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
	t.Logf("guest markers:\n%s", strings.Join(g.Lines("NBTEST "), "\n"))

	if err := netbridge.New(dir, nil).Teardown(ctx, id); err != nil {
		t.Fatal(err)
	}
	return testnet.Diff(before, testnet.Snapshot(t, pod))
}

// hotplugCLI runs the netbridge binary with args, bounded by
// hotplugCLITimeout, and returns its trimmed output.
func hotplugCLI(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hotplugCLITimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, netbridgeBinary(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("netbridge %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// hotplugQMP runs one QMP command on its own connection (QEMU serves one
// client at a time on a socket, so none is kept open while the CLI runs).
func hotplugQMP(t *testing.T, sock, command string, arguments any) json.RawMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := qmp.Dial(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ret, err := q.Execute(ctx, command, arguments)
	if err != nil {
		t.Fatalf("QMP %s: %v", command, err)
	}
	return ret
}

// hotplugHasDevice reports whether QEMU has device id, checking that
// qom-list /machine/peripheral and query-pci agree.
func hotplugHasDevice(t *testing.T, sock, id string) bool {
	t.Helper()
	type property struct {
		Name string `json:"name"`
		Type string `json:"type"` // child<virtio-net-pci> for a device
	}
	var props []property
	if err := json.Unmarshal(hotplugQMP(t, sock, "qom-list", map[string]any{"path": "/machine/peripheral"}), &props); err != nil {
		t.Fatalf("qom-list: %v", err)
	}
	inQOM := slices.ContainsFunc(props, func(p property) bool {
		return p.Name == id && strings.HasPrefix(p.Type, "child<")
	})
	var buses []struct {
		Devices []struct {
			QdevID string `json:"qdev_id"`
		} `json:"devices"`
	}
	if err := json.Unmarshal(hotplugQMP(t, sock, "query-pci", nil), &buses); err != nil {
		t.Fatalf("query-pci: %v", err)
	}
	var inPCI bool
	for _, b := range buses {
		for _, d := range b.Devices {
			inPCI = inPCI || d.QdevID == id
		}
	}
	if inQOM != inPCI {
		t.Errorf("device %s: in qom-list /machine/peripheral %v, in query-pci %v", id, inQOM, inPCI)
	}
	return inQOM || inPCI
}

// qmpSocket returns the path of a QMP socket for a guest, in a short
// temporary directory (a unix socket path has at most 107 bytes) removed
// at cleanup, and QEMU's arguments that serve QMP there.
func qmpSocket(t *testing.T) (sock string, args []string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "nbqmp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock = filepath.Join(dir, "qmp.sock")
	return sock, []string{"-qmp", "unix:" + strings.ReplaceAll(sock, ",", ",,") + ",server=on,wait=off"}
}
