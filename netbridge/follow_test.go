package netbridge_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/cni"
	"github.com/netbridge/netbridge/test/testnet"
)

// fakeVM is a HotPlugger that keeps the NICs it holds by interface name.
type fakeVM struct {
	mu      sync.Mutex
	nics    []string
	plugs   []string // every Plug, in order
	unplugs []string
	failing error // when set, every call fails with it
}

func (f *fakeVM) DeviceID(ifname string) string { return "nic-" + ifname }

func (f *fakeVM) Plugged(context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing != nil {
		return nil, f.failing
	}
	var ids []string
	for _, n := range f.nics {
		ids = append(ids, f.DeviceID(n))
	}
	return ids, nil
}

func (f *fakeVM) Plug(_ context.Context, nic sandbox.NIC) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing != nil {
		return f.failing
	}
	if len(nic.Files) != nic.Queues {
		return errors.New("plugged without its queue files")
	}
	if slices.Contains(f.nics, nic.Name) {
		return errors.New("duplicate device " + nic.Name)
	}
	f.nics = append(f.nics, nic.Name)
	f.plugs = append(f.plugs, nic.Name)
	return nil
}

func (f *fakeVM) Unplug(_ context.Context, id string) error {
	ifname := strings.TrimPrefix(id, "nic-")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing != nil {
		return f.failing
	}
	f.nics = slices.DeleteFunc(f.nics, func(n string) bool { return n == ifname })
	f.unplugs = append(f.unplugs, ifname)
	return nil
}

// reconcile runs Reconcile and returns its events, failing on an error.
func reconcile(t *testing.T, p *pod, id string, hp netbridge.HotPlugger) []netbridge.Event {
	t.Helper()
	var events []netbridge.Event
	if err := p.lib().Reconcile(context.Background(), id, hp, func(e netbridge.Event) { events = append(events, e) }); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	return events
}

func kinds(events []netbridge.Event) []string {
	var s []string
	for _, e := range events {
		what := e.Interface
		if what == "" {
			what = "device " + e.Device
		}
		s = append(s, string(e.Kind)+" "+what)
	}
	return s
}

// addNet1 adds a second network net1 to the pod with the real CNI bridge
// plugin, as the Multus dynamic networks controller does.
func addNet1(t *testing.T, p *pod) *cni.Attachment {
	t.Helper()
	conf := []byte(`{"cniVersion":"1.0.0","name":"follow-net1","type":"bridge","bridge":"nbfol0","isGateway":true,"ipMasq":false,` +
		`"ipam":{"type":"host-local","ranges":[[{"subnet":"192.0.2.0/24","gateway":"192.0.2.1"}]]}}`)
	return cni.Add(t, cni.Build(t), conf, p.node, p.pod, "follow-ctr", "net1")
}

func TestReconcileFollowsAnInterfaceAddedAndRemoved(t *testing.T) {
	p := newPod(t, 0)
	before := testnet.Snapshot(t, p.pod)
	const id = "follow-1"
	sb := p.setup(t, p.config(id))
	vm := &fakeVM{nics: []string{"eth0"}} // booted with eth0

	if ev := reconcile(t, p, id, vm); len(ev) != 0 {
		t.Fatalf("Reconcile of an unchanged sandbox: events %v, want none", kinds(ev))
	}
	att := addNet1(t, p)
	ev := reconcile(t, p, id, vm)
	if got := kinds(ev); !slices.Equal(got, []string{"added net1"}) {
		t.Fatalf("events after net1 was added: %v, want [added net1]", got)
	}
	e := ev[0]
	if e.Tap == "" || !e.Hotplugged || e.Err != nil || e.NIC.Name != "net1" || e.GuestMAC != att.Result.Interfaces[2].Mac {
		t.Errorf("added event = %+v (result interfaces %+v)", e, att.Result.Interfaces)
	}
	if !slices.Equal(vm.plugs, []string{"net1"}) {
		t.Errorf("plugged %v, want [net1]", vm.plugs)
	}
	if err := p.lib().Check(context.Background(), id); err != nil {
		t.Fatalf("Check after the follow wired net1: %v", err)
	}
	loaded, err := p.lib().Load(context.Background(), id)
	if err != nil || len(loaded.NICs) != 2 || loaded.NICs[1].Name != "net1" {
		t.Fatalf("Load = %+v, %v; want eth0 and net1", loaded, err)
	}
	if ev := reconcile(t, p, id, vm); len(ev) != 0 {
		t.Fatalf("second Reconcile: events %v, want none (level-triggered)", kinds(ev))
	}

	tap := e.Tap
	if err := att.Del(); err != nil {
		t.Fatal(err)
	}
	ev = reconcile(t, p, id, vm)
	if got := kinds(ev); !slices.Equal(got, []string{"removed net1"}) || !ev[0].Hotplugged {
		t.Fatalf("events after net1 was deleted: %+v, want [removed net1], hot-unplugged", ev)
	}
	if !slices.Equal(vm.nics, []string{"eth0"}) {
		t.Errorf("the VM holds %v, want [eth0]", vm.nics)
	}
	if _, _, err := testnet.HandleAndLink(p.pod, tap); err == nil {
		t.Errorf("tap %s of the removed net1 is still there", tap)
	}
	if err := p.lib().Check(context.Background(), id); err != nil {
		t.Fatalf("Check after net1 went: %v", err)
	}
	if ev := reconcile(t, p, id, vm); len(ev) != 0 {
		t.Fatalf("Reconcile after the removal: events %v, want none", kinds(ev))
	}
	_ = sb
	teardown(t, p.stateDir, id)
	if d := testnet.Diff(before, testnet.Snapshot(t, p.pod)); d != "" {
		t.Errorf("pod netns after teardown differs from before setup:\n%s", d)
	}
}

func TestReconcileRecordsChangedAddressesAndMTU(t *testing.T) {
	p := newPod(t, 0)
	const id = "follow-2"
	p.setup(t, p.config(id))
	testnet.AddAddr(t, p.pod, "eth0", "198.51.100.3/24")
	testnet.SetMTU(t, p.pod, "eth0", 1400)
	ev := reconcile(t, p, id, nil)
	if len(ev) != 1 || ev[0].Kind != netbridge.EventChanged || !slices.Equal(ev[0].Changed, []string{"addresses", "mtu"}) {
		t.Fatalf("events = %+v, want eth0 changed (addresses, mtu)", ev)
	}
	sb, err := p.lib().Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	nic := sb.NICs[0]
	if nic.MTU != 1400 || !slices.Contains(nic.Addresses, netip.MustParsePrefix("198.51.100.3/24")) {
		t.Errorf("recorded NIC = MTU %d, addresses %v; want 1400 and 198.51.100.3/24", nic.MTU, nic.Addresses)
	}
	if mtu := testnet.LinkByName(t, p.pod, nic.Tap).Attrs().MTU; mtu != 1400 {
		t.Errorf("tap MTU = %d, want 1400", mtu)
	}
	if err := p.lib().Check(context.Background(), id); err != nil {
		t.Errorf("Check after the change: %v", err)
	}
	if ev := reconcile(t, p, id, nil); len(ev) != 0 {
		t.Errorf("second Reconcile: events %v, want none", kinds(ev))
	}
}

// TestReconcileCompletesAnInterruptedWiring kills a follow (as SIGKILL
// would) after it journaled the wiring of net1 and before it recorded the
// NIC: the next Reconcile undoes the half-made steps and wires net1 again,
// with no leaked tap and no duplicate device in the VM.
func TestReconcileCompletesAnInterruptedWiring(t *testing.T) {
	p := newPod(t, 0)
	before := testnet.Snapshot(t, p.pod)
	const id = "follow-3"
	p.setup(t, p.config(id))
	vm := &fakeVM{nics: []string{"eth0"}}
	addNet1(t, p)
	reconcile(t, p, id, nil) // wired, not plugged: killed before the hot-plug
	interrupt(t, p.stateDir, id, func(rec map[string]any) {
		sb := rec["sandbox"].(map[string]any)
		nics := sb["nics"].([]any)
		sb["nics"] = nics[:1] // net1's NIC not recorded yet
	})
	ev := reconcile(t, p, id, vm)
	if got := kinds(ev); !slices.Equal(got, []string{"added net1"}) {
		t.Fatalf("events = %v, want [added net1]", got)
	}
	if err := p.lib().Check(context.Background(), id); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if !slices.Equal(vm.nics, []string{"eth0", "net1"}) {
		t.Errorf("the VM holds %v, want [eth0 net1]", vm.nics)
	}
	h := testnet.Handle(t, p.pod)
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	taps := 0
	for _, l := range links {
		if l.Type() == "tuntap" {
			taps++
		}
	}
	if taps != 2 {
		t.Errorf("%d taps in the pod, want 2 (eth0's and net1's)", taps)
	}
	if ev := reconcile(t, p, id, vm); len(ev) != 0 {
		t.Errorf("second Reconcile: events %v, want none", kinds(ev))
	}
	teardown(t, p.stateDir, id)
	// net1 is still there (its CNI DEL runs at cleanup): compare eth0 only.
	after := testnet.Snapshot(t, p.pod)
	for _, line := range splitLines(before) {
		if !slices.Contains(splitLines(after), line) {
			t.Errorf("after teardown, %q is missing", line)
		}
	}
}

// TestReconcileReportsHotplugFailuresAndKeepsTheWiring: a VM that fails
// every call does not stop the wiring; the failure is in the event.
func TestReconcileReportsHotplugFailuresAndKeepsTheWiring(t *testing.T) {
	p := newPod(t, 0)
	const id = "follow-4"
	p.setup(t, p.config(id))
	addNet1(t, p)
	vm := &fakeVM{failing: errors.New("connection reset")}
	var events []netbridge.Event
	err := p.lib().Reconcile(context.Background(), id, vm, func(e netbridge.Event) { events = append(events, e) })
	if err == nil {
		t.Fatal("Reconcile with a failing VM returned nil")
	}
	if len(events) != 1 || events[0].Interface != "net1" || events[0].Hotplugged || events[0].Err == nil {
		t.Fatalf("events = %+v, want net1 added, not hot-plugged, with the error", events)
	}
	if err := p.lib().Check(context.Background(), id); err != nil {
		t.Errorf("Check: %v", err)
	}
}

// TestReconcileDetachesAVanishedAttachedInterface: an interface attached by
// Attach (the CNI plugin) that vanished without a DEL is detached, and the
// record goes with the last one.
func TestReconcileDetachesAVanishedAttachedInterface(t *testing.T) {
	p := newTwoNetPod(t)
	const id = "follow-5"
	p.attach(t, id, "eth0", sandbox.ModelTCFilter)
	p.attach(t, id, "net1", sandbox.ModelTCFilter)
	h := testnet.Handle(t, p.pod)
	if err := h.LinkDel(testnet.LinkByName(t, p.pod, "net1")); err != nil {
		t.Fatal(err)
	}
	if got := kinds(reconcile(t, p, id, nil)); !slices.Equal(got, []string{"removed net1"}) {
		t.Fatalf("events = %v, want [removed net1]", got)
	}
	if err := p.lib().Check(context.Background(), id); err != nil {
		t.Errorf("Check: %v", err)
	}
	if err := h.LinkDel(testnet.LinkByName(t, p.pod, "eth0")); err != nil {
		t.Fatal(err)
	}
	reconcile(t, p, id, nil)
	if _, err := p.lib().Load(context.Background(), id); !errors.Is(err, netbridge.ErrNotFound) {
		t.Errorf("Load after the last interface went = %v, want ErrNotFound", err)
	}
}

func TestReconcileBadInput(t *testing.T) {
	p := newPod(t, 0)
	err := p.lib().Reconcile(context.Background(), "nope", nil, nil)
	if !errors.Is(err, netbridge.ErrNotFound) {
		t.Errorf("Reconcile of an unknown id = %v, want ErrNotFound", err)
	}
	if err := p.lib().Reconcile(context.Background(), "../bad", nil, nil); !errors.Is(err, sandbox.ErrInvalidConfig) {
		t.Errorf("Reconcile of a bad id = %v, want ErrInvalidConfig", err)
	}
	gone, err := testnet.CreateNS("nbfollow")
	if err != nil {
		t.Fatal(err)
	}
	destroyed := false
	t.Cleanup(func() {
		if !destroyed {
			_ = testnet.DestroyNS(gone)
		}
	})
	testnet.VethPair(t, p.node, gone, "vgone", "eth0", 0)
	testnet.AddAddr(t, gone, "eth0", "203.0.113.2/24")
	cfg := sandbox.Config{ID: "follow-gone", Netns: gone.Path()}
	if _, err := p.lib().Setup(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.lib().Teardown(context.Background(), cfg.ID) })
	destroyed = true
	if err := testnet.DestroyNS(gone); err != nil {
		t.Fatal(err)
	}
	if err := p.lib().Reconcile(context.Background(), cfg.ID, nil, nil); !errors.Is(err, netbridge.ErrNetnsGone) {
		t.Errorf("Reconcile of a sandbox whose netns is gone = %v, want ErrNetnsGone", err)
	}
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// TestReconcileConvergesTheVMWithTheRecord: a follow killed after it
// unwired net1 and before it unplugged it left the VM with a device the
// record does not have, and one killed before it plugged eth0 left eth0
// out: the next Reconcile unplugs the one and plugs the other, once.
func TestReconcileConvergesTheVMWithTheRecord(t *testing.T) {
	p := newPod(t, 0)
	const id = "follow-6"
	p.setup(t, p.config(id))
	vm := &fakeVM{nics: []string{"net1"}}
	ev := reconcile(t, p, id, vm)
	if got := kinds(ev); !slices.Equal(got, []string{"removed device nic-net1", "added eth0"}) {
		t.Fatalf("events = %v, want [removed device nic-net1, added eth0]", got)
	}
	if !slices.Equal(vm.nics, []string{"eth0"}) || !slices.Equal(vm.unplugs, []string{"net1"}) {
		t.Errorf("the VM holds %v after unplugging %v; want [eth0] after [net1]", vm.nics, vm.unplugs)
	}
	if ev := reconcile(t, p, id, vm); len(ev) != 0 {
		t.Errorf("second Reconcile: events %v, want none", kinds(ev))
	}
}
