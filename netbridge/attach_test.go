package netbridge_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/testnet"
)

// newTwoNetPod is newPod with a second network: veth1 (node) - net1 (pod).
func newTwoNetPod(t *testing.T) *pod {
	t.Helper()
	p := newPod(t, 0)
	testnet.VethPair(t, p.node, p.pod, "veth1", "net1", 0)
	testnet.AddAddr(t, p.node, "veth1", "203.0.113.1/24")
	testnet.AddAddr(t, p.pod, "net1", "203.0.113.2/24")
	return p
}

// attach attaches ifname with model; the sandbox is torn down at cleanup.
func (p *pod) attach(t *testing.T, id, ifname string, model sandbox.Model) *sandbox.Sandbox {
	t.Helper()
	cfg := p.config(id)
	cfg.Interfaces, cfg.Model = []string{ifname}, model
	sb, err := p.lib().Attach(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Attach %s (%s): %v", ifname, model, err)
	}
	t.Cleanup(func() {
		if err := p.lib().Teardown(context.Background(), id); err != nil {
			t.Errorf("cleanup Teardown: %v", err)
		}
	})
	return sb
}

func detach(t *testing.T, p *pod, id, ifname string) {
	t.Helper()
	if err := p.lib().Detach(context.Background(), id, ifname); err != nil {
		t.Fatalf("Detach %s: %v", ifname, err)
	}
}

func nicNamed(t *testing.T, sb *sandbox.Sandbox, name string) sandbox.NIC {
	t.Helper()
	for _, n := range sb.NICs {
		if n.Name == name {
			return n
		}
	}
	t.Fatalf("sandbox %s has no NIC %s: %+v", sb.ID, name, sb.NICs)
	return sandbox.NIC{}
}

func TestAttachDetachOneByOne(t *testing.T) {
	p := newTwoNetPod(t)
	ctx := context.Background()
	const id = "sb-attach"
	before := testnet.Snapshot(t, p.pod)

	sb := p.attach(t, id, "eth0", sandbox.ModelTCFilter)
	if len(sb.NICs) != 1 || sb.Model != sandbox.ModelTCFilter {
		t.Fatalf("after eth0: model %q, NICs %+v", sb.Model, sb.NICs)
	}
	eth0 := sb.NICs[0]
	onlyEth0 := testnet.Snapshot(t, p.pod)

	sb = p.attach(t, id, "net1", sandbox.ModelBridge)
	if len(sb.NICs) != 2 || sb.Model != sandbox.ModelMixed {
		t.Fatalf("after net1: model %q, %d NICs", sb.Model, len(sb.NICs))
	}
	if got := nicNamed(t, sb, "eth0"); got.Tap != eth0.Tap || got.TapMAC.String() != eth0.TapMAC.String() || got.Model != sandbox.ModelTCFilter {
		t.Errorf("eth0 changed by attaching net1: %+v, was %+v", got, eth0)
	}
	if n := nicNamed(t, sb, "net1"); n.Model != sandbox.ModelBridge || n.Bridge == "" {
		t.Errorf("net1: %+v", n)
	}
	both := testnet.Snapshot(t, p.pod)

	// The same attach again changes nothing.
	p.attach(t, id, "eth0", sandbox.ModelTCFilter)
	if d := testnet.Diff(both, testnet.Snapshot(t, p.pod)); d != "" {
		t.Errorf("attaching eth0 again changed the netns:\n%s", d)
	}
	for _, ifname := range []string{"eth0", "net1"} {
		if err := p.lib().CheckInterface(ctx, id, ifname); err != nil {
			t.Errorf("CheckInterface %s: %v", ifname, err)
		}
	}
	if err := p.lib().CheckInterface(ctx, id, "net2"); !errors.Is(err, netbridge.ErrNotFound) {
		t.Errorf("CheckInterface net2 = %v, want ErrNotFound", err)
	}
	if err := p.lib().Check(ctx, id); err != nil {
		t.Errorf("Check: %v", err)
	}
	list, err := p.lib().List(context.Background())
	if err != nil || len(list) != 1 || !list[0].Attached || len(list[0].NICs) != 2 {
		t.Errorf("List = %+v, %v; want one attached sandbox with 2 NICs", list, err)
	}
	if loaded, err := p.lib().Load(context.Background(), id); err != nil || len(loaded.NICs) != 2 {
		t.Errorf("Load = %+v, %v", loaded, err)
	}

	detach(t, p, id, "net1")
	if d := testnet.Diff(onlyEth0, testnet.Snapshot(t, p.pod)); d != "" {
		t.Errorf("after detaching net1:\n%s", d)
	}
	if err := p.lib().CheckInterface(ctx, id, "eth0"); err != nil {
		t.Errorf("CheckInterface eth0 after detaching net1: %v", err)
	}
	detach(t, p, id, "net1") // again: nothing to do
	detach(t, p, id, "eth0")
	if d := testnet.Diff(before, testnet.Snapshot(t, p.pod)); d != "" {
		t.Errorf("after detaching both:\n%s", d)
	}
	if f := testnet.DirNames(t, p.stateDir); len(f) != 0 {
		t.Errorf("state left after the last detach: %v", f)
	}
	detach(t, p, id, "eth0")
	detach(t, p, "never-attached", "eth0")
}

func TestAttachWithAnotherModelRewires(t *testing.T) {
	p := newTwoNetPod(t)
	const id = "sb-rewire"
	before := testnet.Snapshot(t, p.pod)
	p.attach(t, id, "eth0", sandbox.ModelTCFilter)
	p.attach(t, id, "net1", sandbox.ModelTCFilter)
	sb := p.attach(t, id, "eth0", sandbox.ModelMacvtap)
	if n := nicNamed(t, sb, "eth0"); n.Model != sandbox.ModelMacvtap || n.Device == "" {
		t.Errorf("eth0 after re-attaching with macvtap: %+v", n)
	}
	if err := p.lib().Check(context.Background(), id); err != nil {
		t.Errorf("Check: %v", err)
	}
	teardown(t, p.stateDir, id)
	if d := testnet.Diff(before, testnet.Snapshot(t, p.pod)); d != "" {
		t.Errorf("after teardown:\n%s", d)
	}
}

func TestAttachFailureKeepsTheOtherInterfaces(t *testing.T) {
	p := newTwoNetPod(t)
	ctx := context.Background()
	const id = "sb-attach-fail"
	p.attach(t, id, "eth0", sandbox.ModelTCFilter)
	wired := testnet.Snapshot(t, p.pod)

	cfg := p.config(id)
	cfg.Interfaces = []string{"nosuch"}
	if _, err := p.lib().Attach(ctx, cfg); !errors.Is(err, sandbox.ErrInvalidConfig) {
		t.Errorf("Attach of a missing interface = %v, want ErrInvalidConfig", err)
	}
	// A tap name taken by eth0's tap fails half-way through net1's wiring
	// (bridge model: after the bridge and the veth's changes).
	cfg.Interfaces, cfg.Model, cfg.TapName = []string{"net1"}, sandbox.ModelBridge, "nb-eth0"
	if _, err := p.lib().Attach(ctx, cfg); err == nil || !strings.Contains(err.Error(), `"nb-eth0"`) {
		t.Errorf("Attach with a taken tap name = %v, want an error naming it", err)
	} else {
		t.Log(err)
	}
	if d := testnet.Diff(wired, testnet.Snapshot(t, p.pod)); d != "" {
		t.Errorf("failed attaches changed the netns:\n%s", d)
	}
	if err := p.lib().Check(ctx, id); err != nil {
		t.Errorf("Check after the failed attaches: %v", err)
	}
	sb, err := p.lib().Load(context.Background(), id)
	if err != nil || len(sb.NICs) != 1 {
		t.Errorf("Load = %+v, %v; want eth0 only", sb, err)
	}
}

func TestAttachUndoesAnInterruptedAttach(t *testing.T) {
	p := newTwoNetPod(t)
	const id = "sb-attach-crash"
	p.attach(t, id, "eth0", sandbox.ModelTCFilter)
	onlyEth0 := testnet.Snapshot(t, p.pod)
	p.attach(t, id, "net1", sandbox.ModelBridge)

	// Make the record look like the process died while attaching net1:
	// its last step not done, no NIC yet, the phase setting-up.
	interrupt(t, p.stateDir, id, func(rec map[string]any) {
		sb := rec["sandbox"].(map[string]any)
		sb["nics"] = sb["nics"].([]any)[:1]
	})
	if err := p.lib().CheckInterface(context.Background(), id, "eth0"); err != nil {
		t.Errorf("CheckInterface eth0 during the interrupted attach of net1: %v", err)
	}

	p.attach(t, id, "eth0", sandbox.ModelTCFilter)
	if d := testnet.Diff(onlyEth0, testnet.Snapshot(t, p.pod)); d != "" {
		t.Errorf("net1's leftovers after the next attach:\n%s", d)
	}
	if err := p.lib().Check(context.Background(), id); err != nil {
		t.Errorf("Check: %v", err)
	}
}

func TestAttachAndSetupDoNotMix(t *testing.T) {
	p := newTwoNetPod(t)
	ctx := context.Background()
	cfg := p.config("sb-whole")
	p.setup(t, cfg)
	cfg.Interfaces = []string{"eth0"}
	if _, err := p.lib().Attach(ctx, cfg); !errors.Is(err, sandbox.ErrInvalidConfig) {
		t.Errorf("Attach to a sandbox set up whole = %v, want ErrInvalidConfig", err)
	}
	if err := p.lib().Detach(ctx, cfg.ID, "eth0"); !errors.Is(err, sandbox.ErrInvalidConfig) {
		t.Errorf("Detach from a sandbox set up whole = %v, want ErrInvalidConfig", err)
	}
	if err := p.lib().Check(ctx, cfg.ID); err != nil {
		t.Errorf("Check after the refused calls: %v", err)
	}
}

func TestAttachTapName(t *testing.T) {
	p := newTwoNetPod(t)
	ctx := context.Background()
	sb := func() *sandbox.Sandbox {
		cfg := p.config("sb-tapname")
		cfg.Interfaces, cfg.TapName = []string{"net1"}, "vm-net1"
		sb, err := p.lib().Attach(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { teardown(t, p.stateDir, cfg.ID) })
		return sb
	}()
	if sb.NICs[0].Tap != "vm-net1" {
		t.Errorf("tap %q, want vm-net1", sb.NICs[0].Tap)
	}
	testnet.LinkByName(t, p.pod, "vm-net1")
	for _, c := range []struct {
		ifs []string
		tap string
	}{
		{[]string{"eth0", "net1"}, "tap0"},
		{nil, "tap0"},
		{[]string{"eth0"}, "bad/name"},
		{[]string{"eth0"}, "a-name-too-long-for-linux"},
		{[]string{"eth0"}, "eth0"},
	} {
		cfg := p.config("sb-tapname-bad")
		cfg.Interfaces, cfg.TapName = c.ifs, c.tap
		if _, err := p.lib().Attach(ctx, cfg); !errors.Is(err, sandbox.ErrInvalidConfig) {
			t.Errorf("Attach(interfaces %v, tap %q) = %v, want ErrInvalidConfig", c.ifs, c.tap, err)
		}
	}
}

func TestCollectDetachesOnlyItsNetworksStaleInterfaces(t *testing.T) {
	p := newTwoNetPod(t)
	ctx := context.Background()
	before := testnet.Snapshot(t, p.pod)
	attachIn := func(id, ifname, network string) {
		cfg := p.config(id)
		cfg.Interfaces, cfg.Network = []string{ifname}, network
		if _, err := p.lib().Attach(ctx, cfg); err != nil {
			t.Fatalf("Attach %s/%s: %v", id, ifname, err)
		}
		t.Cleanup(func() { teardown(t, p.stateDir, id) })
	}
	attachIn("sb-gc", "eth0", "net-a")
	attachIn("sb-gc", "net1", "net-b")
	whole := p.config("sb-gc-whole") // set up as a whole: never collected
	other := newPod(t, 0)
	whole.Netns = other.pod.Path()
	p.setup(t, whole)

	gone, err := p.lib().Collect(ctx, "net-a", func(id, ifname string) bool { return false })
	if err != nil || len(gone) != 1 || gone[0] != "sb-gc/eth0" {
		t.Fatalf("Collect net-a = %v, %v; want [sb-gc/eth0]", gone, err)
	}
	sb, err := p.lib().Load(context.Background(), "sb-gc")
	if err != nil || len(sb.NICs) != 1 || sb.NICs[0].Name != "net1" || sb.NICs[0].Network != "net-b" {
		t.Fatalf("after collecting net-a: %+v, %v", sb, err)
	}
	if err := p.lib().Check(ctx, whole.ID); err != nil {
		t.Errorf("the sandbox set up whole after Collect: %v", err)
	}
	gone, err = p.lib().Collect(ctx, "net-b", func(id, ifname string) bool { return id == "sb-gc" && ifname == "net1" })
	if err != nil || len(gone) != 0 {
		t.Fatalf("Collect net-b keeping sb-gc/net1 = %v, %v", gone, err)
	}
	if _, err = p.lib().Collect(ctx, "net-b", func(string, string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if d := testnet.Diff(before, testnet.Snapshot(t, p.pod)); d != "" {
		t.Errorf("after collecting both networks:\n%s", d)
	}
	if _, err := p.lib().Load(context.Background(), "sb-gc"); !errors.Is(err, netbridge.ErrNotFound) {
		t.Errorf("Load after the last interface was collected = %v, want ErrNotFound", err)
	}
}

// A foreign link that happens to sit in the sandbox's link group is not
// deleted with the sandbox's links: teardown sees that the group holds
// more than its links and deletes them one by one.
func TestForeignLinkInOurGroupSurvivesTeardown(t *testing.T) {
	p := newTwoNetPod(t)
	cfg := p.config("sb-group")
	sb := p.setup(t, cfg)
	h := testnet.Handle(t, p.pod)
	tap, err := h.LinkByName(sb.NICs[0].Tap)
	if err != nil {
		t.Fatal(err)
	}
	group := tap.Attrs().Group
	if group == 0 {
		t.Fatalf("tap %s is in the default link group", sb.NICs[0].Tap)
	}
	if len(sb.NICs) < 2 {
		t.Fatalf("%d NICs; the group is used for two or more", len(sb.NICs))
	}
	foreign := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "foreign0", Group: group}}
	if err := h.LinkAdd(foreign); err != nil {
		t.Fatal(err)
	}
	teardown(t, p.stateDir, cfg.ID)
	l, err := h.LinkByName("foreign0")
	if err != nil {
		t.Fatalf("the foreign link in the sandbox's group went with the teardown: %v", err)
	}
	for _, nic := range sb.NICs {
		if _, err := h.LinkByName(nic.Tap); err == nil {
			t.Errorf("tap %s left after teardown", nic.Tap)
		}
	}
	if err := h.LinkDel(l); err != nil {
		t.Error(err)
	}
}

// TestDetachRecordedSaysWhetherThereWasSomethingToUndo: DetachRecorded is
// true for an attached interface (and leaves the pod as it was before the
// attach), false for one the record does not have and for an id with no
// record at all, which change nothing.
func TestDetachRecordedSaysWhetherThereWasSomethingToUndo(t *testing.T) {
	p := newTwoNetPod(t)
	ctx := context.Background()
	const id = "sb-detach-recorded"
	before := testnet.Snapshot(t, p.pod)
	p.attach(t, id, "eth0", sandbox.ModelTCFilter)
	t.Cleanup(func() { teardown(t, p.stateDir, id) })
	if recorded, err := p.lib().DetachRecorded(ctx, id, "net1"); err != nil || recorded {
		t.Errorf("DetachRecorded of net1, never attached = %v, %v; want false, nil", recorded, err)
	}
	if recorded, err := p.lib().DetachRecorded(ctx, "sb-no-such-record", "eth0"); err != nil || recorded {
		t.Errorf("DetachRecorded of an id with no record = %v, %v; want false, nil", recorded, err)
	}
	if recorded, err := p.lib().DetachRecorded(ctx, id, "eth0"); err != nil || !recorded {
		t.Errorf("DetachRecorded of the attached eth0 = %v, %v; want true, nil", recorded, err)
	}
	if d := testnet.Diff(before, testnet.Snapshot(t, p.pod)); d != "" {
		t.Errorf("the pod after detaching eth0 differs from before the attach:\n%s", d)
	}
	if recorded, err := p.lib().DetachRecorded(ctx, id, "eth0"); err != nil || recorded {
		t.Errorf("DetachRecorded of eth0 again = %v, %v; want false, nil", recorded, err)
	}
}
