package netbridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"

	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/pkg/sandboxid"
	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/testnet"
)

// pod is a node netns and a pod netns joined by a veth: veth0 (node side,
// holding the gateways) and eth0 (pod side, configured the way CNI would).
type pod struct {
	node, pod ns.NetNS
	stateDir  string
}

func newPod(t *testing.T, mtu int) *pod {
	t.Helper()
	p := &pod{node: testnet.NewNS(t), pod: testnet.NewNS(t), stateDir: t.TempDir()}
	testnet.VethPair(t, p.node, p.pod, "veth0", "eth0", mtu)
	testnet.AddAddr(t, p.node, "veth0", "198.51.100.1/24")
	testnet.AddAddr(t, p.node, "veth0", "2001:db8:1::1/64")
	testnet.AddAddr(t, p.pod, "eth0", "198.51.100.2/24")
	testnet.AddAddr(t, p.pod, "eth0", "2001:db8:1::2/64")
	testnet.AddRoute(t, p.pod, "eth0", "0.0.0.0/0", "198.51.100.1")
	testnet.AddRoute(t, p.pod, "eth0", "::/0", "2001:db8:1::1")
	testnet.AddNeigh(t, p.pod, "eth0", "198.51.100.9", "02:00:00:00:00:09")
	return p
}

// lib returns the library on the pod's state directory.
func (p *pod) lib() *netbridge.Manager { return netbridge.New(p.stateDir, nil) }

func (p *pod) config(id string) sandbox.Config {
	return sandbox.Config{ID: id, Netns: p.pod.Path()}
}

func (p *pod) setup(t *testing.T, cfg sandbox.Config) *sandbox.Sandbox {
	t.Helper()
	sb, err := p.lib().Setup(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() {
		sb.Close()
		if err := p.lib().Teardown(context.Background(), cfg.ID); err != nil {
			t.Errorf("cleanup Teardown: %v", err)
		}
	})
	return sb
}

func teardown(t *testing.T, stateDir, id string) {
	t.Helper()
	if err := netbridge.New(stateDir, nil).Teardown(context.Background(), id); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
}

func TestSetupTeardownRestoresSnapshot(t *testing.T) {
	p := newPod(t, 0)
	before := testnet.Snapshot(t, p.pod)
	cfg := p.config("sb-1")
	sb := p.setup(t, cfg)

	if len(sb.NICs) != 1 {
		t.Fatalf("got %d NICs, want 1: %+v", len(sb.NICs), sb.NICs)
	}
	nic := sb.NICs[0]
	eth0 := testnet.LinkByName(t, p.pod, "eth0")
	if nic.Name != "eth0" || nic.Kind != "veth" || nic.Tap != "nb-eth0" || nic.MTU != 1500 || nic.Queues != 1 {
		t.Errorf("NIC = %+v", nic)
	}
	if nic.GuestMAC.String() != eth0.Attrs().HardwareAddr.String() {
		t.Errorf("guest MAC %s, want the veth's original %s", nic.GuestMAC, eth0.Attrs().HardwareAddr)
	}
	if nic.TapMAC.String() == nic.GuestMAC.String() || nic.TapMAC[0]&2 == 0 || nic.TapMAC[0]&1 != 0 {
		t.Errorf("tap MAC %s must be locally administered unicast and differ from the guest's", nic.TapMAC)
	}
	wantAddrs := []string{"198.51.100.2/24", "2001:db8:1::2/64"}
	var gotAddrs []string
	for _, a := range nic.Addresses {
		gotAddrs = append(gotAddrs, a.String())
	}
	if !slices.Equal(gotAddrs, wantAddrs) {
		t.Errorf("addresses %v, want %v", gotAddrs, wantAddrs)
	}
	if len(nic.Routes) != 2 || len(nic.Neighbors) != 1 || !nic.Neighbors[0].Permanent {
		t.Errorf("routes %+v neighbours %+v, want two default routes and one permanent neighbour", nic.Routes, nic.Neighbors)
	}

	tap := testnet.LinkByName(t, p.pod, "nb-eth0")
	tt, ok := tap.(*netlink.Tuntap)
	if !ok || tt.Mode != netlink.TUNTAP_MODE_TAP || tt.Flags&netlink.TUNTAP_VNET_HDR == 0 || tt.Flags&netlink.TUNTAP_NO_PI == 0 || tt.NonPersist {
		t.Errorf("tap = %#v, want a persistent TAP with VNET_HDR|NO_PI", tap)
	}
	if tap.Attrs().Alias != "netbridge:sb-1" || tap.Attrs().MTU != 1500 || tap.Attrs().HardwareAddr.String() != nic.TapMAC.String() {
		t.Errorf("tap attrs alias %q mtu %d mac %s", tap.Attrs().Alias, tap.Attrs().MTU, tap.Attrs().HardwareAddr)
	}
	if err := p.lib().Check(context.Background(), "sb-1"); err != nil {
		t.Errorf("Check after Setup: %v", err)
	}

	// A second setup of the same id changes nothing and returns the same.
	wired := testnet.Snapshot(t, p.pod)
	again, err := p.lib().Setup(context.Background(), cfg)
	if err != nil {
		t.Fatalf("second Setup: %v", err)
	}
	if d := testnet.Diff(wired, testnet.Snapshot(t, p.pod)); d != "" {
		t.Errorf("second Setup changed the netns:\n%s", d)
	}
	a, _ := json.Marshal(sb)
	b, _ := json.Marshal(again)
	if string(a) != string(b) {
		t.Errorf("second Setup returned\n%s\nwant\n%s", b, a)
	}

	teardown(t, p.stateDir, "sb-1")
	if d := testnet.Diff(before, testnet.Snapshot(t, p.pod)); d != "" {
		t.Errorf("netns differs from its snapshot after teardown:\n%s", d)
	}
	teardown(t, p.stateDir, "sb-1")
	if d := testnet.Diff(before, testnet.Snapshot(t, p.pod)); d != "" {
		t.Errorf("second teardown changed the netns:\n%s", d)
	}
	if f := testnet.DirNames(t, p.stateDir); len(f) != 0 {
		t.Errorf("state dir holds %v after teardown", f)
	}
	if err := p.lib().Check(context.Background(), "sb-1"); !errors.Is(err, netbridge.ErrNotFound) {
		t.Errorf("Check after Teardown = %v, want ErrNotFound", err)
	}
}

func TestExistingIngressQdiscIsReusedAndKept(t *testing.T) {
	p := newPod(t, 0)
	testnet.Exec(t, p.pod, "tc", "qdisc", "add", "dev", "eth0", "ingress")
	testnet.Exec(t, p.pod, "tc", "filter", "add", "dev", "eth0", "parent", "ffff:", "prio", "7", "protocol", "ip", "u32", "match", "ip", "dst", "203.0.113.7/32", "flowid", "1:1")
	before := testnet.Snapshot(t, p.pod)
	p.setup(t, p.config("sb-q"))
	if err := p.lib().Check(context.Background(), "sb-q"); err != nil {
		t.Fatalf("Check: %v", err)
	}
	teardown(t, p.stateDir, "sb-q")
	if d := testnet.Diff(before, testnet.Snapshot(t, p.pod)); d != "" {
		t.Errorf("teardown did not restore the foreign qdisc and filter exactly:\n%s", d)
	}
}

func TestSelectsInterfaces(t *testing.T) {
	p := newPod(t, 0)
	testnet.VethPair(t, p.node, p.pod, "veth1", "net1", 9000)
	testnet.AddAddr(t, p.pod, "net1", "203.0.113.2/24")
	testnet.VethPair(t, p.node, p.pod, "veth2", "net2", 0) // no address: not attached

	ifs, err := netbridge.Discover(context.Background(), p.pod.Path(), nil)
	if err != nil {
		t.Fatal(err)
	}
	attach := map[string]bool{}
	for _, i := range ifs {
		attach[i.Name] = i.Attach
		if i.Name == "net2" && (i.Attach || i.Reason != "has no address") {
			t.Errorf("net2 = %+v, want not attached for having no address", i)
		}
	}
	if len(attach) != 3 || !attach["eth0"] || !attach["net1"] || attach["net2"] {
		t.Errorf("Discover attach = %v, want eth0 and net1 of eth0, net1, net2", attach)
	}

	sb := p.setup(t, p.config("sb-multi"))
	if len(sb.NICs) != 2 || sb.NICs[0].Name != "eth0" || sb.NICs[1].Name != "net1" {
		t.Fatalf("NICs %+v, want eth0 and net1 in name order", sb.NICs)
	}
	if sb.NICs[1].MTU != 9000 || testnet.LinkByName(t, p.pod, "nb-net1").Attrs().MTU != 9000 {
		t.Errorf("net1 MTU %d / tap MTU %d, want 9000", sb.NICs[1].MTU, testnet.LinkByName(t, p.pod, "nb-net1").Attrs().MTU)
	}
	if sb.NICs[0].TapMAC.String() == sb.NICs[1].TapMAC.String() || sb.NICs[0].Tap == sb.NICs[1].Tap {
		t.Errorf("two NICs share a tap name or MAC: %+v", sb.NICs)
	}

	// Naming an interface attaches exactly it, even without an address;
	// a second sandbox id in the same netns leaves the first one alone.
	only := p.config("sb-only")
	only.Interfaces = []string{"net2"}
	sb2, err := p.lib().Setup(context.Background(), only)
	if err != nil {
		t.Fatalf("Setup of net2 only: %v", err)
	}
	if len(sb2.NICs) != 1 || sb2.NICs[0].Name != "net2" || sb2.NICs[0].Tap != "nb-net2" {
		t.Errorf("NICs %+v, want net2 only", sb2.NICs)
	}
	teardown(t, p.stateDir, "sb-only")
	if err := p.lib().Check(context.Background(), "sb-multi"); err != nil {
		t.Errorf("tearing down sb-only broke sb-multi: %v", err)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	p := newPod(t, 0)
	before := testnet.Snapshot(t, p.pod)
	notNetns := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notNetns, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		mod  func(*sandbox.Config)
		want error
	}{
		{"missing netns", func(c *sandbox.Config) { c.Netns = "/run/netns/does-not-exist-nb" }, netns.ErrNotExist},
		{"file not netns", func(c *sandbox.Config) { c.Netns = notNetns }, netns.ErrNotNetns},
		{"mount ns", func(c *sandbox.Config) { c.Netns = "/proc/self/ns/mnt" }, netns.ErrNotNetns},
		{"host netns", func(c *sandbox.Config) { c.Netns = "/proc/self/ns/net" }, netns.ErrHostNetns},
		{"id with slash", func(c *sandbox.Config) { c.ID = "a/b" }, sandboxid.ErrInvalid},
		{"id with dotdot", func(c *sandbox.Config) { c.ID = "a..b" }, sandboxid.ErrInvalid},
		{"id too long", func(c *sandbox.Config) { c.ID = strings.Repeat("x", 129) }, sandboxid.ErrInvalid},
		{"absent interface", func(c *sandbox.Config) { c.Interfaces = []string{"eth7"} }, sandbox.ErrInvalidConfig},
		{"unknown model", func(c *sandbox.Config) { c.Model = "carrier-pigeon" }, sandbox.ErrInvalidConfig},
		{"bad queues", func(c *sandbox.Config) { c.Queues = 1000 }, sandbox.ErrInvalidConfig},
		{"bad vhost", func(c *sandbox.Config) { c.Vhost = "maybe" }, sandbox.ErrInvalidConfig},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := p.config("sb-bad")
			c.mod(&cfg)
			sb, err := p.lib().Setup(context.Background(), cfg)
			if err == nil {
				sb.Close()
				p.lib().Teardown(context.Background(), cfg.ID)
				t.Fatal("Setup succeeded")
			}
			if !errors.Is(err, c.want) || !errors.Is(err, sandbox.ErrInvalidConfig) && c.want != sandboxid.ErrInvalid {
				t.Errorf("Setup = %v, want %v", err, c.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			if d := testnet.Diff(before, testnet.Snapshot(t, p.pod)); d != "" {
				t.Errorf("bad input changed the netns:\n%s", d)
			}
			if f := testnet.DirNames(t, p.stateDir); len(f) != 0 {
				t.Errorf("bad input left %v in the state dir", f)
			}
		})
	}
}

func TestVhostOnFailsWithoutVhostNet(t *testing.T) {
	if _, err := os.Stat("/dev/vhost-net"); err == nil {
		t.Skip("this machine has /dev/vhost-net")
	}
	p := newPod(t, 0)
	cfg := p.config("sb-vhost")
	cfg.Vhost = sandbox.VhostOn
	_, err := p.lib().Setup(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "/dev/vhost-net") {
		t.Fatalf("Setup with vhost on = %v, want an error naming /dev/vhost-net", err)
	}
	if !errors.Is(err, netbridge.ErrNoVhost) || strings.Contains(err.Error(), "--") {
		t.Errorf("Setup with vhost on = %v, want ErrNoVhost, naming no flag", err)
	}
	cfg.Vhost = sandbox.VhostAuto
	sb := p.setup(t, cfg)
	if sb.NICs[0].Vhost {
		t.Error("vhost auto chose vhost without /dev/vhost-net")
	}
}

func TestConcurrentSetupsOfOneIDEndInOneWiring(t *testing.T) {
	p := newPod(t, 0)
	cfg := p.config("sb-race")
	var wg sync.WaitGroup
	results := make([]*sandbox.Sandbox, 10)
	errs := make([]error, 10)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = p.lib().Setup(context.Background(), cfg)
		}()
	}
	wg.Wait()
	t.Cleanup(func() { teardown(t, p.stateDir, cfg.ID) })
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Setup %d: %v", i, err)
		}
		if results[i].NICs[0].Tap != "nb-eth0" {
			t.Errorf("Setup %d: tap %q", i, results[i].NICs[0].Tap)
		}
	}
	links, err := testnet.Handle(t, p.pod).LinkList()
	if err != nil {
		t.Fatal(err)
	}
	taps := 0
	for _, l := range links {
		if l.Type() == "tuntap" {
			taps++
		}
	}
	if taps != 1 {
		t.Errorf("%d taps after 10 concurrent setups, want 1", taps)
	}
	if err := p.lib().Check(context.Background(), cfg.ID); err != nil {
		t.Error(err)
	}
}

func TestCheckFindsDamageAndSetupRepairs(t *testing.T) {
	p := newPod(t, 0)
	before := testnet.Snapshot(t, p.pod)
	cfg := p.config("sb-dmg")
	p.setup(t, cfg)
	testnet.Exec(t, p.pod, "tc", "filter", "del", "dev", "eth0", "parent", "ffff:", "prio", "20034")
	testnet.Exec(t, p.pod, "ip", "link", "set", "nb-eth0", "down")
	err := p.lib().Check(context.Background(), cfg.ID)
	var ce *netbridge.CheckError
	if !errors.As(err, &ce) || len(ce.Problems) != 2 {
		t.Fatalf("Check = %v, want a CheckError with 2 problems (filter, down)", err)
	}
	if _, err := p.lib().Setup(context.Background(), cfg); err != nil {
		t.Fatalf("Setup over damaged wiring: %v", err)
	}
	if err := p.lib().Check(context.Background(), cfg.ID); err != nil {
		t.Errorf("Check after repair: %v", err)
	}
	teardown(t, p.stateDir, cfg.ID)
	if d := testnet.Diff(before, testnet.Snapshot(t, p.pod)); d != "" {
		t.Errorf("after repair and teardown:\n%s", d)
	}
}

func TestInterruptedSetupIsRedone(t *testing.T) {
	p := newPod(t, 0)
	before := testnet.Snapshot(t, p.pod)
	cfg := p.config("sb-crash")
	p.setup(t, cfg)
	// Make the record look like the process died half-way: the last two
	// journal steps not done, the phase still setting-up.
	interrupt(t, p.stateDir, cfg.ID, nil)
	if err := p.lib().Check(context.Background(), cfg.ID); err == nil {
		t.Error("Check of an interrupted setup = nil")
	}
	if _, err := p.lib().Setup(context.Background(), cfg); err != nil {
		t.Fatalf("Setup after the interruption: %v", err)
	}
	if err := p.lib().Check(context.Background(), cfg.ID); err != nil {
		t.Errorf("Check after redo: %v", err)
	}
	teardown(t, p.stateDir, cfg.ID)
	if d := testnet.Diff(before, testnet.Snapshot(t, p.pod)); d != "" {
		t.Errorf("after redo and teardown:\n%s", d)
	}
}

func TestTeardownAfterNetnsIsGone(t *testing.T) {
	p := newPod(t, 0)
	dir := p.stateDir
	victim, err := testutils.NewNS()
	if err != nil {
		t.Fatal(err)
	}
	destroy := func() { victim.Close(); testutils.UnmountNS(victim) }
	t.Cleanup(destroy)
	testnet.VethPair(t, p.node, victim, "vethv", "eth0", 0)
	testnet.AddAddr(t, victim, "eth0", "192.0.2.2/24")
	sb, err := netbridge.New(dir, nil).Setup(context.Background(), sandbox.Config{ID: "sb-gone", Netns: victim.Path()})
	if err != nil {
		t.Fatal(err)
	}
	sb.Close()
	destroy()
	if err := netbridge.New(dir, nil).Teardown(context.Background(), "sb-gone"); err != nil {
		t.Fatalf("Teardown with the netns gone: %v", err)
	}
	if f := testnet.DirNames(t, dir); len(f) != 0 {
		t.Errorf("state left: %v", f)
	}
	if err := netbridge.New(dir, nil).Teardown(context.Background(), "never-seen"); err != nil {
		t.Errorf("Teardown of an unknown id: %v", err)
	}
}

func TestHoldFDs(t *testing.T) {
	p := newPod(t, 0)
	cfg := p.config("sb-fds")
	cfg.HoldFDs = true
	cfg.Queues = 2
	sb := p.setup(t, cfg)
	nic := sb.NICs[0]
	if len(nic.Files) != 2 || nic.Queues != 2 {
		t.Fatalf("NIC holds %d files for %d queues, want 2 and 2", len(nic.Files), nic.Queues)
	}
	if l := testnet.LinkByName(t, p.pod, nic.Tap).(*netlink.Tuntap); l.Flags&netlink.TUNTAP_MULTI_QUEUE == 0 {
		t.Errorf("tap flags %v lack MULTI_QUEUE", l.Flags)
	}
	// The queues are held: a second setup of the same id reopens more
	// queues of the multi-queue tap.
	again, err := p.lib().Setup(context.Background(), cfg)
	if err != nil {
		t.Fatalf("second Setup holding fds: %v", err)
	}
	if len(again.NICs[0].Files) != 2 {
		t.Errorf("second Setup returned %d files", len(again.NICs[0].Files))
	}
	again.Close()
	if err := sb.Close(); err != nil {
		t.Error(err)
	}
	// Persistent: closing every queue keeps the tap.
	testnet.LinkByName(t, p.pod, nic.Tap)
}

func TestStatusAndLoad(t *testing.T) {
	p := newPod(t, 0)
	p.setup(t, p.config("sb-b"))
	all, err := p.lib().List(context.Background())
	if err != nil || len(all) != 1 || all[0].ID != "sb-b" || all[0].Phase != "ready" {
		t.Fatalf("List = %+v, %v", all, err)
	}
	sb, err := p.lib().Load(context.Background(), "sb-b")
	if err != nil || sb.NICs[0].Addresses[0] != netip.MustParsePrefix("198.51.100.2/24") {
		t.Fatalf("Load = %+v, %v", sb, err)
	}
	if _, err := p.lib().Load(context.Background(), "nope"); !errors.Is(err, netbridge.ErrNotFound) {
		t.Errorf("Load of an unknown id = %v, want ErrNotFound", err)
	}
}

// interrupt makes the record of id look like its process died half-way:
// the phase setting-up, the last journal step not done; edit, when not
// nil, changes the decoded record further.
func interrupt(t *testing.T, stateDir, id string, edit func(rec map[string]any)) {
	t.Helper()
	path := filepath.Join(stateDir, id+".json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	rec["phase"] = "setting-up"
	j := rec["journal"].([]any)
	j[len(j)-1].(map[string]any)["done"] = false
	if edit != nil {
		edit(rec)
	}
	if b, err = json.Marshal(rec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
