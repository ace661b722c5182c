package e2e

// Tests of the chained CNI plugin, cmd/netbridge-cni, built and installed
// as "netbridge" next to the reference plugins, driven by libcni or
// invoked directly the way a runtime does, with every plugin process in a
// node netns and the pods in netns of their own.
//
// How netbridge's own undo is checked: in a conflist, libcni runs the
// interface plugin and netbridge back to back, so the pod's state between
// them cannot be observed, and DEL of the list removes the pod interface
// too. So each case runs twice: once as a whole conflist through libcni
// (ADD, CHECK, the cached result, frames, render, DEL twice; after DEL the
// pod netns must equal its snapshot from before ADD, that is be empty),
// and once split at the plugin boundary (runUndo): libcni ADDs a conflist
// of the interface plugin alone, the pod netns is snapshotted, and the
// netbridge binary is invoked directly with that real result as
// prevResult, exactly what libcni would give it; after netbridge's DEL
// the pod netns (interface MAC, addresses, routes, qdiscs) and the node
// netns must equal their snapshots, and netbridge's result must be the
// previous one, byte for byte as JSON, plus the tap.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	types040 "github.com/containernetworking/cni/pkg/types/040"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/cni"
	"github.com/netbridge/netbridge/test/testnet"
)

// cniBins is the CNI path: the reference plugins and netbridge.
func cniBins(t *testing.T) string {
	t.Helper()
	return cni.Build(t) + string(filepath.ListSeparator) + cni.BuildNetbridge(t)
}

// nameserver is the DNS server host-local reads from the resolv.conf
// chainIPAM points it at, so that results carry DNS.
const nameserver = "192.0.2.53"

// chainIPAM is a dual-stack host-local section on the /24 v4 (three
// octets) and the /64 v6, with default routes, and DNS read from resolv.
func chainIPAM(v4, v6, resolv string) string {
	return fmt.Sprintf(`"ipam":{"type":"host-local","ranges":[[{"subnet":"%s.0/24","gateway":"%[1]s.1"}],[{"subnet":"%s::/64","gateway":"%[2]s::1"}]],`+
		`"routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0"}],"resolvConf":%q}`, v4, v6, resolv)
}

// nbEntry is netbridge's plugin entry in a conflist.
func nbEntry(variant, stateDir, logFile string) string {
	model, mode := variant, ""
	if variant == macvtapPassthru {
		model, mode = modelMacvtap, modePassthru
	}
	return fmt.Sprintf(`{"type":"netbridge","model":%q,"macvtapMode":%q,"stateDir":%q,"logFile":%q}`, model, mode, stateDir, logFile)
}

// chainCase is an interface plugin, the model netbridge chained after it
// uses, and the spec version of the conflist.
type chainCase struct {
	plugin cniPlugin
	model  string
	ver    string
}

func (c chainCase) String() string { return c.plugin.name + "/" + c.model + "/" + c.ver }

// id is the case's container id.
func (c chainCase) id(prefix string) string {
	return prefix + "-" + strings.NewReplacer("/", "-").Replace(c.String())
}

// chainPod is a pod netns on a node for a chain case, with what it needs.
type chainPod struct {
	c                chainCase
	n                cniNode
	pod              ns.NetNS
	stateDir, logDir string
	resolv           string
	v4, v6           string
}

func newChainPod(t *testing.T, c chainCase) *chainPod {
	t.Helper()
	p := &chainPod{c: c, n: newCNINode(t, "203.0.113", "2001:db8:3"), pod: testnet.NewNS(t),
		stateDir: t.TempDir(), logDir: t.TempDir(), v4: "198.51.100", v6: "2001:db8:1"}
	if c.plugin.onLAN {
		p.v4, p.v6 = "203.0.113", "2001:db8:3"
	}
	p.resolv = filepath.Join(p.logDir, "resolv.conf")
	if err := os.WriteFile(p.resolv, []byte("nameserver "+nameserver+"\nsearch example.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// list is the conflist: the interface plugin, then netbridge unless
// withNetbridge is false.
func (p *chainPod) list(name string, withNetbridge bool) []byte {
	dns := ""
	if p.c.plugin.name == cniMacvlan.name {
		// macvlan reports the netconf's DNS, not the IPAM's.
		dns = `,"dns":{"nameservers":["` + nameserver + `"],"search":["example.test"]}`
	}
	plugins := "{" + p.c.plugin.conf + "," + chainIPAM(p.v4, p.v6, p.resolv) + dns + "}"
	if withNetbridge {
		plugins += "," + nbEntry(p.c.model, p.stateDir, filepath.Join(p.logDir, "netbridge.log"))
	}
	disable := ""
	if withNetbridge && p.c.model != modelTCFilter {
		// bridge and macvtap give the interface a derived MAC and move
		// its addresses to the guest, so the interface plugin's own
		// CHECK fails: the README tells users to disable CHECK for the
		// list (netbridge's own CHECK is tested by runUndo).
		disable = `,"disableCheck":true`
	}
	return []byte(fmt.Sprintf(`{"cniVersion":%q,"name":%q%s,"plugins":[%s]}`, p.c.ver, name, disable, plugins))
}

// resultPairs returns the (gateway, address) pairs of a result's IPs.
func resultPairs(res *current.Result) [][2]netip.Addr {
	var pairs [][2]netip.Addr
	for _, ipc := range res.IPs {
		addr, _ := netip.AddrFromSlice(ipc.Address.IP)
		gw, _ := netip.AddrFromSlice(ipc.Gateway)
		pairs = append(pairs, [2]netip.Addr{gw.Unmap(), addr.Unmap()})
	}
	return pairs
}

// loadNIC returns the recorded NIC of interface ifname of sandbox id.
func loadNIC(t *testing.T, stateDir, id, ifname string) sandbox.NIC {
	t.Helper()
	sb, err := netbridge.New(stateDir, nil).Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, nic := range sb.NICs {
		if nic.Name == ifname {
			return nic
		}
	}
	t.Fatalf("sandbox %s has no NIC %s: %+v", id, ifname, sb.NICs)
	return sandbox.NIC{}
}

// checkChained checks a result (of spec version ver, converted) of
// netbridge chained after an interface plugin for ifname in pod: the last
// interface is the tap, with its real MAC and MTU (results before 1.0.0
// have no MTU), in the pod's netns; the pod interface keeps its entry (the
// guest's MAC), every IP still names it, and every IP is the NIC's.
func checkChained(t *testing.T, res *current.Result, ver string, pod ns.NetNS, nic sandbox.NIC, ifname string) {
	t.Helper()
	if len(res.Interfaces) < 2 {
		t.Fatalf("result interfaces %+v: want the pod interface and the tap", res.Interfaces)
	}
	tapIdx := len(res.Interfaces) - 1
	tap := res.Interfaces[tapIdx]
	link := testnet.LinkByName(t, pod, nic.Tap)
	want := current.Interface{Name: nic.Tap, Mac: link.Attrs().HardwareAddr.String(), Mtu: link.Attrs().MTU, Sandbox: pod.Path()}
	if strings.HasPrefix(ver, "0.") {
		want.Mtu = 0
	}
	if *tap != want {
		t.Errorf("tap entry %+v, want %+v", *tap, want)
	}
	if tap.Mac != nic.TapMAC.String() {
		t.Errorf("tap entry MAC %s, the record's %s", tap.Mac, nic.TapMAC)
	}
	ifIdx := slices.IndexFunc(res.Interfaces, func(i *current.Interface) bool { return i.Name == ifname && i.Sandbox == pod.Path() })
	if ifIdx < 0 || ifIdx == tapIdx {
		t.Fatalf("result interfaces %+v lack %s in %s", res.Interfaces, ifname, pod.Path())
	}
	if m := res.Interfaces[ifIdx].Mac; m != nic.GuestMAC.String() {
		t.Errorf("%s entry MAC %s, the guest's is %s", ifname, m, nic.GuestMAC)
	}
	for _, i := range res.Interfaces[:tapIdx] {
		if i.Name == nic.Tap {
			t.Errorf("the tap is listed twice: %+v", res.Interfaces)
		}
	}
	if len(res.IPs) == 0 {
		t.Fatal("result without IPs")
	}
	for _, ipc := range res.IPs {
		if ipc.Interface == nil || *ipc.Interface != ifIdx {
			t.Errorf("IP %s names interface %v, want %d (%s)", ipc.Address.String(), ipc.Interface, ifIdx, ifname)
		}
		p, _ := netip.ParsePrefix(ipc.Address.String())
		if !slices.Contains(nic.Addresses, p) {
			t.Errorf("result IP %s is not among the NIC's addresses %v", p, nic.Addresses)
		}
	}
}

// checkParses checks that raw is a result of spec version ver, and that
// its JSON parses with that version's result type and lists the tap.
func checkParses(t *testing.T, raw types.Result, ver, tap string) {
	t.Helper()
	if raw.Version() != ver {
		t.Errorf("result version %s, want %s", raw.Version(), ver)
	}
	b, err := json.Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	var head struct {
		CNIVersion string `json:"cniVersion"`
	}
	if err := json.Unmarshal(b, &head); err != nil || head.CNIVersion != ver {
		t.Errorf("result JSON says cniVersion %q (%v), want %s: %s", head.CNIVersion, err, ver, b)
	}
	var names []string
	if strings.HasPrefix(ver, "0.") {
		r, err := types040.NewResult(b)
		if err != nil {
			t.Fatalf("result does not parse as %s: %v\n%s", ver, err, b)
		}
		for _, i := range r.(*types040.Result).Interfaces {
			names = append(names, i.Name)
		}
	} else {
		r, err := current.NewResult(b)
		if err != nil {
			t.Fatalf("result does not parse as %s: %v\n%s", ver, err, b)
		}
		for _, i := range r.(*current.Result).Interfaces {
			names = append(names, i.Name)
		}
	}
	if len(names) == 0 || names[len(names)-1] != tap {
		t.Errorf("%s result interfaces %q do not end with the tap %s", ver, names, tap)
	}
}

// guestFrames attaches a fake guest to the NIC's tap, as a VMM opens it
// by name (or the macvtap's device node), and passes frames both ways for
// pairs, the node resolving the guest afresh.
func guestFrames(t *testing.T, pod, peer ns.NetNS, nic sandbox.NIC, pairs ...[2]netip.Addr) {
	t.Helper()
	g := startGuest(t, takeQueue(t, pod, &nic), nic)
	framesBothWays(t, peer, g, 0, pairs...)
	if err := g.Close(); err != nil {
		t.Errorf("fake guest: %v", err)
	}
}

func cniErrorOf(t *testing.T, err error) *types.Error {
	t.Helper()
	var e *types.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v carries no CNI error", err)
	}
	return e
}

// runChain takes a whole conflist (interface plugin, netbridge) through
// libcni: ADD, the result, frames through the tap, CHECK, the cached
// result, render, DEL back to the empty pod, DEL again.
func runChain(t *testing.T, bins string, c chainCase) {
	p := newChainPod(t, c)
	id := c.id("chain")
	before := testnet.Snapshot(t, p.pod)
	att := cni.Add(t, bins, p.list("nbchain", true), p.n.node, p.pod, id, "eth0")

	nic := loadNIC(t, p.stateDir, id, "eth0")
	if string(nic.Model) != wantModel(t, c.model) || nic.Network != "nbchain" {
		t.Errorf("NIC model %s, network %q; want %s, nbchain", nic.Model, nic.Network, wantModel(t, c.model))
	}
	checkParses(t, att.Raw, c.ver, nic.Tap)
	checkChained(t, att.Result, c.ver, p.pod, nic, "eth0")
	if dns := att.Result.DNS.Nameservers; !slices.Equal(dns, []string{nameserver}) {
		t.Errorf("result DNS %v, want the IPAM's %s", dns, nameserver)
	}
	if sb, err := netbridge.New(p.stateDir, nil).Load(context.Background(), id); err != nil || len(sb.DNS.Nameservers) != 1 || sb.DNS.Nameservers[0].String() != nameserver {
		t.Errorf("recorded DNS %+v (%v), want the prevResult's %s", sb.DNS, err, nameserver)
	}
	if c.model == modelTCFilter {
		// tcfilter leaves the interface as the plugin made it.
		if mac := testnet.LinkByName(t, p.pod, "eth0").Attrs().HardwareAddr.String(); mac != nic.GuestMAC.String() {
			t.Errorf("eth0 MAC %s, want the CNI interface's %s", mac, nic.GuestMAC)
		}
	}

	guestFrames(t, p.pod, p.n.peer(c.plugin), nic, resultPairs(att.Result)...)

	if c.ver != "0.3.0" && c.ver != "0.3.1" { // CHECK came with 0.4.0
		if err := att.Check(); err != nil {
			t.Error(err)
		}
	}
	cached, err := att.CachedResult()
	if err != nil || cached == nil {
		t.Fatalf("libcni's cached result: %v, %v", cached, err)
	}
	got, _ := json.Marshal(cached)
	want, _ := json.Marshal(att.Raw)
	if string(got) != string(want) {
		t.Errorf("cached result\n%s\nADD result\n%s", got, want)
	}

	out := run(t, "render", "--id", id, "--state-dir", p.stateDir, "--for", "qemu")
	netdev := "-netdev tap,id=net-eth0,ifname=" + nic.Tap + ",script=no,downscript=no"
	if nic.Device != "" {
		netdev = "-netdev tap,id=net-eth0,fds=3"
	}
	if !strings.Contains(out, netdev) || !strings.Contains(out, "mac="+nic.GuestMAC.String()) {
		t.Errorf("netbridge render --for qemu lacks %q with mac=%s:\n%s", netdev, nic.GuestMAC, out)
	}

	if err := att.Del(); err != nil {
		t.Fatal(err)
	}
	if d := testnet.Diff(before, testnet.Snapshot(t, p.pod)); d != "" {
		t.Errorf("pod netns after DEL:\n%s", d)
	}
	if e := testnet.DirNames(t, p.stateDir); len(e) != 0 {
		t.Errorf("DEL left %v in the state directory", e)
	}
	if err := att.DelAgain(); err != nil {
		t.Errorf("second DEL: %v", err)
	}
	if e := testnet.DirNames(t, p.stateDir); len(e) != 0 {
		t.Errorf("the second DEL left %v in the state directory", e)
	}
	log, err := os.ReadFile(filepath.Join(p.logDir, "netbridge.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"ADD", "DEL"} {
		if !strings.Contains(string(log), `"cni_command":"`+cmd+`"`) {
			t.Errorf("logFile has no %s line:\n%s", cmd, log)
		}
	}
}

// jsonMap decodes a JSON object.
func jsonMap(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return m
}

// checkAppended checks that netbridge's output is prev, member for
// member as JSON, with one interface appended, and returns that
// interface.
func checkAppended(t *testing.T, prev, out []byte) map[string]any {
	t.Helper()
	pm, om := jsonMap(t, prev), jsonMap(t, out)
	ifs, _ := om["interfaces"].([]any)
	if len(ifs) == 0 {
		t.Fatalf("output has no interfaces: %s", out)
	}
	tap, _ := ifs[len(ifs)-1].(map[string]any)
	if len(ifs) == 1 {
		delete(om, "interfaces")
	} else {
		om["interfaces"] = ifs[:len(ifs)-1]
	}
	if !reflect.DeepEqual(pm, om) {
		t.Errorf("netbridge changed the previous result:\nprevResult %s\noutput     %s", prev, out)
	}
	return tap
}

// nbConf is netbridge's configuration as a runtime hands it to the
// plugin: the list's name and version injected, and prevResult (raw
// JSON, or "" for none).
func nbConf(ver, name, model, stateDir, prev string) []byte {
	s := fmt.Sprintf(`{"cniVersion":%q,"name":%q,"type":"netbridge","model":%q,"stateDir":%q`, ver, name, model, stateDir)
	if prev != "" {
		s += `,"prevResult":` + prev
	}
	return []byte(s + "}")
}

// invokeNB runs the netbridge plugin binary directly in node.
func invokeNB(t *testing.T, bins string, node ns.NetNS, command string, stdin []byte, id, netnsPath, ifname string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return cni.Invoke(ctx, bins, cni.NetbridgePlugin, node, command, stdin, id, netnsPath, ifname)
}

// runUndo splits the chain at the plugin boundary (see the top of the
// file): the interface plugin through libcni, then netbridge invoked with
// its result. netbridge's result is the previous one plus the tap; CHECK
// passes with it and fails without the tap; frames pass; DEL restores the
// pod and node netns exactly; DEL again succeeds.
func runUndo(t *testing.T, bins string, c chainCase) {
	p := newChainPod(t, c)
	id := c.id("undo")
	att := cni.Add(t, bins, p.list("nbundo", false), p.n.node, p.pod, id, "eth0")
	prev, err := json.Marshal(att.Raw)
	if err != nil {
		t.Fatal(err)
	}
	podBefore, nodeBefore := testnet.Snapshot(t, p.pod), testnet.Snapshot(t, p.n.node)
	model := c.model
	out, err := invokeNB(t, bins, p.n.node, "ADD", nbConf(c.ver, "nbundo", model, p.stateDir, string(prev)), id, p.pod.Path(), "eth0")
	t.Cleanup(func() {
		if _, err := invokeNB(t, bins, p.n.node, "DEL", nbConf(c.ver, "nbundo", model, p.stateDir, ""), id, p.pod.Path(), "eth0"); err != nil {
			t.Errorf("cleanup DEL: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("netbridge ADD: %v", err)
	}
	nic := loadNIC(t, p.stateDir, id, "eth0")
	tap := checkAppended(t, prev, out)
	// A runtime retrying ADD (its first call timed out after the plugin
	// did its work) gets the same result and the same wiring.
	wired := testnet.Snapshot(t, p.pod)
	again, err := invokeNB(t, bins, p.n.node, "ADD", nbConf(c.ver, "nbundo", model, p.stateDir, string(prev)), id, p.pod.Path(), "eth0")
	if err != nil || string(again) != string(out) {
		t.Errorf("second ADD = %s, %v; want the first's %s", again, err, out)
	}
	if d := testnet.Diff(wired, testnet.Snapshot(t, p.pod)); d != "" {
		t.Errorf("a second ADD changed the wiring:\n%s", d)
	}
	res := mustResult(t, c.ver, out)
	checkParses(t, res, c.ver, nic.Tap)
	cur, err := current.NewResultFromResult(res)
	if err != nil {
		t.Fatal(err)
	}
	if tap["name"] != nic.Tap || tap["sandbox"] != p.pod.Path() {
		t.Errorf("appended interface %v, want %s in %s", tap, nic.Tap, p.pod.Path())
	}
	checkChained(t, cur, c.ver, p.pod, nic, "eth0")

	if _, err := invokeNB(t, bins, p.n.node, "CHECK", nbConf(c.ver, "nbundo", model, p.stateDir, string(out)), id, p.pod.Path(), "eth0"); err != nil {
		t.Errorf("CHECK with netbridge's result: %v", err)
	}
	_, err = invokeNB(t, bins, p.n.node, "CHECK", nbConf(c.ver, "nbundo", model, p.stateDir, string(prev)), id, p.pod.Path(), "eth0")
	if err == nil || !strings.Contains(err.Error(), nic.Tap) {
		t.Errorf("CHECK with a prevResult without the tap = %v, want an error naming %s", err, nic.Tap)
	}

	guestFrames(t, p.pod, p.n.peer(c.plugin), nic, resultPairs(att.Result)...)

	for i := range 2 {
		if _, err := invokeNB(t, bins, p.n.node, "DEL", nbConf(c.ver, "nbundo", model, p.stateDir, string(out)), id, p.pod.Path(), "eth0"); err != nil {
			t.Fatalf("DEL %d: %v", i+1, err)
		}
		if d := testnet.Diff(podBefore, testnet.Snapshot(t, p.pod)); d != "" {
			t.Errorf("pod netns after DEL %d, against the interface plugin's:\n%s", i+1, d)
		}
		if d := testnet.Diff(nodeBefore, testnet.Snapshot(t, p.n.node)); d != "" {
			t.Errorf("node netns after DEL %d:\n%s", i+1, d)
		}
		if e := testnet.DirNames(t, p.stateDir); len(e) != 0 {
			t.Errorf("DEL %d left %v in the state directory", i+1, e)
		}
	}
	// The interface plugin's CHECK and DEL are as before netbridge.
	if c.ver != "0.3.0" && c.ver != "0.3.1" {
		if err := att.Check(); err != nil {
			t.Errorf("the interface plugin's CHECK after netbridge's DEL: %v", err)
		}
	}
}

// chainCases are the plugin, model and spec version combinations.
var chainCases = []chainCase{
	{cniBridge, modelTCFilter, "0.3.0"},
	{cniBridge, modelTCFilter, "0.3.1"},
	{cniBridge, modelTCFilter, "0.4.0"},
	{cniBridge, modelTCFilter, "1.0.0"},
	{cniBridge, modelTCFilter, "1.1.0"},
	{cniPtp, modelTCFilter, "1.0.0"},
	{cniPtp, modelTCFilter, "0.4.0"},
	{cniMacvlan, modelTCFilter, "1.0.0"},
	{cniMacvlan, modelTCFilter, "1.1.0"},
	{cniBridge, modelBridge, "1.0.0"},
	{cniPtp, modelMacvtap, "1.0.0"},
}

// TestCNIPluginChain runs every chain case as a whole conflist through
// libcni.
func TestCNIPluginChain(t *testing.T) {
	bins := cniBins(t)
	for _, c := range chainCases {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			runChain(t, bins, c)
		})
	}
}

// TestCNIPluginUndo runs every chain case split at the plugin boundary,
// to compare the netns with the interface plugin's own state after DEL.
func TestCNIPluginUndo(t *testing.T) {
	bins := cniBins(t)
	for _, c := range chainCases {
		if c.ver == "0.3.0" || c.ver == "0.3.1" {
			continue // the results of 0.3.x and 0.4.0 are the same type
		}
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			runUndo(t, bins, c)
		})
	}
}

// onlyLinesOf reports the lines of diff that are not removals of lines
// keep accepts.
func onlyLinesOf(diff string, keep func(line string) bool) []string {
	var bad []string
	for _, l := range strings.Split(strings.TrimSuffix(diff, "\n"), "\n") {
		if l == "" {
			continue
		}
		if !strings.HasPrefix(l, "-") || !keep(l[1:]) {
			bad = append(bad, l)
		}
	}
	return bad
}

// TestCNIPluginStatusAndGC (spec 1.1.0): STATUS through libcni, and GC in
// the Multus case: one pod (c1) with two networks, nbgc-a on eth0 (bridge)
// and nbgc-b on net1 (ptp), each chaining netbridge, and another pod (c2)
// on nbgc-a. GC of nbgc-a with every attachment valid changes nothing;
// after the runtime lost c1/eth0 (its cached result removed, so libcni
// does not DEL it and netbridge's own GC must find it), GC of nbgc-a
// listing only c2/eth0 detaches c1/eth0 and nothing else: c1's net1,
// although not listed (it is another network's), and c2 stay wired.
// Then GC with nothing valid DELs the rest through libcni.
func TestCNIPluginStatusAndGC(t *testing.T) {
	bins := cniBins(t)
	node := testnet.NewNS(t)
	podA, podB := testnet.NewNS(t), testnet.NewNS(t)
	stateDir, tmp := t.TempDir(), t.TempDir()
	nb := func(network string) string {
		return nbEntry(modelTCFilter, stateDir, filepath.Join(tmp, network+".log"))
	}
	netA := []byte(`{"cniVersion":"1.1.0","name":"nbgc-a","plugins":[{"type":"bridge","bridge":"nbgca0","isGateway":true,"ipMasq":false,` +
		`"ipam":{"type":"host-local","ranges":[[{"subnet":"198.51.100.0/24","gateway":"198.51.100.1"}],[{"subnet":"2001:db8:1::/64","gateway":"2001:db8:1::1"}]],` +
		`"routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0"}]}},` + nb("nbgc-a") + `]}`)
	netB := []byte(`{"cniVersion":"1.1.0","name":"nbgc-b","plugins":[{"type":"ptp","ipMasq":false,` +
		`"ipam":{"type":"host-local","ranges":[[{"subnet":"192.0.2.0/24","gateway":"192.0.2.1"}],[{"subnet":"2001:db8:2::/64","gateway":"2001:db8:2::1"}]]}},` + nb("nbgc-b") + `]}`)

	if err := cni.Status(t, bins, netA, node); err != nil {
		t.Errorf("STATUS: %v", err)
	}
	file := filepath.Join(tmp, "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := []byte(strings.Replace(string(netA), fmt.Sprintf("%q", stateDir), fmt.Sprintf("%q", file), 1))
	if err := cni.Status(t, bins, bad, node); err == nil || cniErrorOf(t, err).Code != types.ErrPluginNotAvailable {
		t.Errorf("STATUS with a file as state directory = %v, want code %d", err, types.ErrPluginNotAvailable)
	}

	a1 := cni.Add(t, bins, netA, node, podA, "c1", "eth0")
	b1 := cni.Add(t, bins, netB, node, podA, "c1", "net1")
	a2 := cni.Add(t, bins, netA, node, podB, "c2", "eth0")
	checkParses(t, a1.Raw, "1.1.0", "nb-eth0")
	checkParses(t, b1.Raw, "1.1.0", "nb-net1")
	sb, err := netbridge.New(stateDir, nil).Load(context.Background(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	var nets []string
	for _, nic := range sb.NICs {
		nets = append(nets, nic.Name+"@"+nic.Network)
	}
	if !slices.Equal(nets, []string{"eth0@nbgc-a", "net1@nbgc-b"}) {
		t.Fatalf("c1's NICs %v, want eth0 of nbgc-a and net1 of nbgc-b", nets)
	}
	check := func(what string, want map[string]bool) {
		t.Helper()
		for att, wired := range want {
			id, ifname, _ := strings.Cut(att, "/")
			err := netbridge.New(stateDir, nil).CheckInterface(context.Background(), id, ifname)
			if wired && err != nil {
				t.Errorf("%s: %s: %v", what, att, err)
			}
			if !wired && !errors.Is(err, netbridge.ErrNotFound) {
				t.Errorf("%s: %s is still attached (CheckInterface = %v)", what, att, err)
			}
		}
	}
	allValid := []types.GCAttachment{{ContainerID: "c1", IfName: "eth0"}, {ContainerID: "c1", IfName: "net1"}, {ContainerID: "c2", IfName: "eth0"}}
	snapA, snapB := testnet.Snapshot(t, podA), testnet.Snapshot(t, podB)
	if err := cni.GC(t, bins, netA, node, allValid); err != nil {
		t.Fatal(err)
	}
	check("GC of nbgc-a, all valid", map[string]bool{"c1/eth0": true, "c1/net1": true, "c2/eth0": true})
	if d := testnet.Diff(snapA, testnet.Snapshot(t, podA)) + testnet.Diff(snapB, testnet.Snapshot(t, podB)); d != "" {
		t.Errorf("GC with every attachment valid changed the pods:\n%s", d)
	}

	if err := a1.ForgetCache(); err != nil {
		t.Fatal(err)
	}
	if err := cni.GC(t, bins, netA, node, []types.GCAttachment{{ContainerID: "c2", IfName: "eth0"}}); err != nil {
		t.Fatal(err)
	}
	check("GC of nbgc-a, only c2/eth0 valid", map[string]bool{"c1/eth0": false, "c1/net1": true, "c2/eth0": true})
	// c1's eth0 is as the bridge plugin made it (the runtime lost it, so
	// nobody DELs it): only nb-eth0 and eth0's redirect are gone.
	d := testnet.Diff(snapA, testnet.Snapshot(t, podA))
	if bad := onlyLinesOf(d, func(l string) bool {
		return strings.Contains(l, "nb-eth0") || strings.HasPrefix(l, "qdisc eth0 ") || strings.HasPrefix(l, "filter eth0 ")
	}); len(bad) > 0 || d == "" {
		t.Errorf("GC of c1/eth0 changed more than netbridge's objects of eth0 (%q):\n%s", bad, d)
	}
	if d := testnet.Diff(snapB, testnet.Snapshot(t, podB)); d != "" {
		t.Errorf("GC of c1/eth0 changed c2's pod:\n%s", d)
	}
	if err := b1.Check(); err != nil {
		t.Errorf("nbgc-b's CHECK of c1/net1 after GC of nbgc-a: %v", err)
	}
	if err := a2.Check(); err != nil {
		t.Errorf("CHECK of c2/eth0 after GC: %v", err)
	}
	if sb, err := netbridge.New(stateDir, nil).Load(context.Background(), "c1"); err != nil || len(sb.NICs) != 1 || sb.NICs[0].Name != "net1" {
		t.Errorf("c1 after GC: %+v, %v; want net1 only", sb, err)
	}

	// Nothing valid: libcni DELs what it has cached, the plugins' GC
	// finds nothing more.
	if err := cni.GC(t, bins, netB, node, nil); err != nil {
		t.Fatal(err)
	}
	if err := cni.GC(t, bins, netA, node, nil); err != nil {
		t.Fatal(err)
	}
	check("GC with nothing valid", map[string]bool{"c1/eth0": false, "c1/net1": false, "c2/eth0": false})
	if e := testnet.DirNames(t, stateDir); len(e) != 0 {
		t.Errorf("GC left %v in the state directory", e)
	}
	if l, err := testnet.Handle(t, podA).LinkByName("nb-net1"); err == nil {
		t.Errorf("nb-net1 is still in c1's pod: %+v", l.Attrs())
	}
}

// ciliumPod is a pod configured by hand as Cilium's plugin leaves it:
// several addresses of each family on eth0, default routes via the node.
func ciliumPod(t *testing.T) (node, pod ns.NetNS, pairs [][2]netip.Addr) {
	t.Helper()
	node, pod = testnet.NewNS(t), testnet.NewNS(t)
	testnet.VethPair(t, node, pod, "veth0", "eth0", 0)
	testnet.AddAddr(t, node, "veth0", "198.51.100.1/24")
	testnet.AddAddr(t, node, "veth0", "2001:db8:1::1/64")
	for _, a := range []string{"198.51.100.2/24", "198.51.100.3/24", "2001:db8:1::2/64", "2001:db8:1::3/64"} {
		testnet.AddAddr(t, pod, "eth0", a)
		p := netip.MustParsePrefix(a)
		gw := netip.MustParseAddr("198.51.100.1")
		if p.Addr().Is6() {
			gw = netip.MustParseAddr("2001:db8:1::1")
		}
		pairs = append(pairs, [2]netip.Addr{gw, p.Addr()})
	}
	testnet.AddRoute(t, pod, "eth0", "default", "198.51.100.1")
	testnet.AddRoute(t, pod, "eth0", "default", "2001:db8:1::1")
	return node, pod, pairs
}

// ciliumResult is a previous result of spec version ver with IPs that
// name no interface: hostIface adds an interfaces list with a host-side
// interface only, otherwise there is none.
func ciliumResult(ver string, hostIface bool) string {
	ifs := ""
	if hostIface {
		ifs = `"interfaces":[{"name":"lxc0123456789ab","mac":"02:00:00:00:00:01"}],`
	}
	v4, v6 := "", ""
	if strings.HasPrefix(ver, "0.") {
		v4, v6 = `"version":"4",`, `"version":"6",`
	}
	return fmt.Sprintf(`{"cniVersion":%q,%s"ips":[{%s"address":"198.51.100.2/32","gateway":"198.51.100.1"},{%[3]s"address":"198.51.100.3/32"},`+
		`{%s"address":"2001:db8:1::2/128","gateway":"2001:db8:1::1"},{%[4]s"address":"2001:db8:1::3/128"}],`+
		`"routes":[{"dst":"0.0.0.0/0","gw":"198.51.100.1"},{"dst":"::/0","gw":"2001:db8:1::1"}],"dns":{"nameservers":["%s","2001:db8::53"]}}`,
		ver, ifs, v4, v6, nameserver)
}

// TestCNIPluginPrevResultWithoutInterfaces: a previous result without
// interface indexes (Cilium style), with or without an interfaces list,
// dual stack with two addresses per family, in three spec versions: ADD
// appends the tap and changes nothing else, frames reach every address,
// CHECK passes, DEL restores the pod, DEL again succeeds.
func TestCNIPluginPrevResultWithoutInterfaces(t *testing.T) {
	bins := cniBins(t)
	for _, c := range []struct {
		ver       string
		hostIface bool
	}{{"0.4.0", false}, {"1.0.0", true}, {"1.1.0", false}, {"1.1.0", true}} {
		t.Run(fmt.Sprintf("%s/interfaces=%v", c.ver, c.hostIface), func(t *testing.T) {
			t.Parallel()
			node, pod, pairs := ciliumPod(t)
			stateDir := t.TempDir()
			id := "cilium-" + strings.ReplaceAll(c.ver, ".", "")
			prev := ciliumResult(c.ver, c.hostIface)
			before := testnet.Snapshot(t, pod)
			out, err := invokeNB(t, bins, node, "ADD", nbConf(c.ver, "cilium", modelTCFilter, stateDir, prev), id, pod.Path(), "eth0")
			t.Cleanup(func() {
				if _, err := invokeNB(t, bins, node, "DEL", nbConf(c.ver, "cilium", modelTCFilter, stateDir, ""), id, pod.Path(), "eth0"); err != nil {
					t.Errorf("cleanup DEL: %v", err)
				}
			})
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			// The input as netbridge reads it, re-encoded: the same members.
			canon, err := json.Marshal(jsonMap(t, []byte(prev)))
			if err != nil {
				t.Fatal(err)
			}
			tap := checkAppended(t, canon, out)
			nic := loadNIC(t, stateDir, id, "eth0")
			if tap["name"] != nic.Tap || tap["sandbox"] != pod.Path() || tap["mac"] != nic.TapMAC.String() {
				t.Errorf("appended interface %v, want %s (%s) in %s", tap, nic.Tap, nic.TapMAC, pod.Path())
			}
			checkParses(t, mustResult(t, c.ver, out), c.ver, nic.Tap)
			if len(nic.Addresses) != 4 {
				t.Errorf("NIC addresses %v, want the four of eth0", nic.Addresses)
			}
			if sb, err := netbridge.New(stateDir, nil).Load(context.Background(), id); err != nil || len(sb.DNS.Nameservers) != 2 {
				t.Errorf("recorded DNS %+v (%v), want the prevResult's two nameservers", sb.DNS, err)
			}
			guestFrames(t, pod, node, nic, pairs...)
			if _, err := invokeNB(t, bins, node, "CHECK", nbConf(c.ver, "cilium", modelTCFilter, stateDir, string(out)), id, pod.Path(), "eth0"); err != nil {
				t.Errorf("CHECK: %v", err)
			}
			for i := range 2 {
				if _, err := invokeNB(t, bins, node, "DEL", nbConf(c.ver, "cilium", modelTCFilter, stateDir, string(out)), id, pod.Path(), "eth0"); err != nil {
					t.Fatalf("DEL %d: %v", i+1, err)
				}
			}
			if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
				t.Errorf("pod netns after DEL:\n%s", d)
			}
			if e := testnet.DirNames(t, stateDir); len(e) != 0 {
				t.Errorf("DEL left %v in the state directory", e)
			}
		})
	}
}

// mustResult parses a plugin's output as a result of spec version ver.
func mustResult(t *testing.T, ver string, out []byte) types.Result {
	t.Helper()
	var r types.Result
	var err error
	if strings.HasPrefix(ver, "0.") {
		r, err = types040.NewResult(out)
	} else {
		r, err = current.NewResult(out)
	}
	if err != nil {
		t.Fatalf("output does not parse as %s: %v\n%s", ver, err, out)
	}
	return r
}

// TestCNIPluginWithoutPrevResult: netbridge alone in a conflist (libcni
// gives the first plugin no prevResult), or invoked so in each spec
// version, fails ADD with code 7 saying it is a chained plugin, and
// changes nothing: the pod netns equals its snapshot, and no state is
// written. CHECK without prevResult fails the same way.
func TestCNIPluginWithoutPrevResult(t *testing.T) {
	bins := cniBins(t)
	node, pod := topology(t, 0)
	stateDir := filepath.Join(t.TempDir(), "state")
	before := testnet.Snapshot(t, pod)
	want := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s succeeded", what)
			return
		}
		e := cniErrorOf(t, err)
		if e.Code != types.ErrInvalidNetworkConfig || !strings.Contains(e.Msg, "prevResult") || !strings.Contains(e.Msg, "chained") {
			t.Errorf("%s: code %d %q, want %d saying netbridge is chained and needs a prevResult", what, e.Code, e.Msg, types.ErrInvalidNetworkConfig)
		}
	}
	alone := []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"nbalone","plugins":[{"type":"netbridge","stateDir":%q}]}`, stateDir))
	_, err := cni.TryAdd(t, bins, alone, node, pod, "alone", "eth0")
	want("libcni ADD of netbridge alone", err)
	for _, ver := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		for _, cmd := range []string{"ADD", "CHECK"} {
			_, err := invokeNB(t, bins, node, cmd, nbConf(ver, "nbalone", modelTCFilter, stateDir, ""), "alone", pod.Path(), "eth0")
			if cmd == "CHECK" && strings.HasPrefix(ver, "0.3.") {
				// skel refuses CHECK before 0.4.0 itself.
				if err == nil || cniErrorOf(t, err).Code != types.ErrIncompatibleCNIVersion {
					t.Errorf("%s CHECK = %v, want code %d", ver, err, types.ErrIncompatibleCNIVersion)
				}
				continue
			}
			want(ver+" "+cmd, err)
		}
	}
	if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
		t.Errorf("a refused ADD changed the pod netns:\n%s", d)
	}
	if e := testnet.DirNames(t, stateDir); len(e) != 0 {
		t.Errorf("a refused ADD left %v in the state directory", e)
	}
}

// procNetns starts a process in a new netns of its own and returns that
// netns by its /proc path, which disappears with the process, and a
// function that ends the process (the netns goes when nothing else holds
// it). The cleanup ends it too.
func procNetns(t *testing.T) (string, func()) {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting a process in a new netns: %v", err)
	}
	done := false
	kill := func() {
		if done {
			return
		}
		done = true
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	t.Cleanup(kill)
	return fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid), kill
}

// TestCNIPluginDelWithoutPrevResult: DEL needs neither a prevResult nor
// the netns. With the netns there, DEL without prevResult undoes the
// wiring exactly; with the netns gone (its process ended), DEL succeeds
// and forgets the state; DEL again succeeds too.
func TestCNIPluginDelWithoutPrevResult(t *testing.T) {
	bins := cniBins(t)
	prev := `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"%s"}],"ips":[{"interface":0,"address":"198.51.100.2/24","gateway":"198.51.100.1"}]}`

	t.Run("netns-present", func(t *testing.T) {
		t.Parallel()
		node, pod := topology(t, 0)
		stateDir := t.TempDir()
		before := testnet.Snapshot(t, pod)
		if _, err := invokeNB(t, bins, node, "ADD", nbConf("1.0.0", "nbdel", modelTCFilter, stateDir, fmt.Sprintf(prev, pod.Path())), "del1", pod.Path(), "eth0"); err != nil {
			t.Fatalf("ADD: %v", err)
		}
		for i := range 2 {
			if _, err := invokeNB(t, bins, node, "DEL", nbConf("1.0.0", "nbdel", modelTCFilter, stateDir, ""), "del1", pod.Path(), "eth0"); err != nil {
				t.Fatalf("DEL %d without prevResult: %v", i+1, err)
			}
		}
		if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
			t.Errorf("pod netns after DEL without prevResult:\n%s", d)
		}
		if e := testnet.DirNames(t, stateDir); len(e) != 0 {
			t.Errorf("DEL left %v in the state directory", e)
		}
	})

	t.Run("netns-gone", func(t *testing.T) {
		t.Parallel()
		node := testnet.NewNS(t)
		path, end := procNetns(t)
		pod, err := ns.GetNS(path)
		if err != nil {
			t.Fatal(err)
		}
		// Build the pod with handles that are closed at once: nothing of
		// the test may keep the netns alive once its process ends.
		la := netlink.NewLinkAttrs()
		la.Name = "veth0"
		err = testnet.Handle(t, node).LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(pod.Fd())), PeerTxQLen: -1})
		if err != nil {
			pod.Close()
			t.Fatal(err)
		}
		testnet.LinkUp(t, node, "veth0")
		testnet.LinkUp(t, pod, "eth0")
		testnet.AddAddr(t, pod, "eth0", "198.51.100.2/24")
		pod.Close()
		stateDir := t.TempDir()
		if _, err := invokeNB(t, bins, node, "ADD", nbConf("1.0.0", "nbdel", modelTCFilter, stateDir, fmt.Sprintf(prev, path)), "del2", path, "eth0"); err != nil {
			t.Fatalf("ADD: %v", err)
		}
		if nic := loadNIC(t, stateDir, "del2", "eth0"); nic.Tap == "" {
			t.Fatalf("NIC %+v", nic)
		}
		end()
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the netns path is still there after its process ended: %v", err)
		}
		for i := range 2 {
			if _, err := invokeNB(t, bins, node, "DEL", nbConf("1.0.0", "nbdel", modelTCFilter, stateDir, ""), "del2", path, "eth0"); err != nil {
				t.Fatalf("DEL %d with the netns gone and without prevResult: %v", i+1, err)
			}
		}
		if e := testnet.DirNames(t, stateDir); len(e) != 0 {
			t.Errorf("DEL left %v in the state directory", e)
		}
		if _, err := netbridge.New(stateDir, nil).Load(context.Background(), "del2"); !errors.Is(err, netbridge.ErrNotFound) {
			t.Errorf("Load after DEL = %v, want ErrNotFound", err)
		}
	})
}

// TestCNIPluginConcurrentNetworks: two networks of one container attached
// and detached by concurrent plugin processes (the record of the
// container is shared): both interfaces end up recorded and wired, each
// with its network, and both DELs leave the pod as it was.
func TestCNIPluginConcurrentNetworks(t *testing.T) {
	bins := cniBins(t)
	node, pod := topology(t, 0)
	testnet.VethPair(t, node, pod, "veth1", "net1", 0)
	testnet.AddAddr(t, node, "veth1", "203.0.113.1/24")
	testnet.AddAddr(t, pod, "net1", "203.0.113.2/24")
	stateDir := t.TempDir()
	before := testnet.Snapshot(t, pod)
	prev := map[string]string{
		"eth0": `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"ips":[{"interface":0,"address":"198.51.100.2/24"}]}`,
		"net1": `{"cniVersion":"1.0.0","interfaces":[{"name":"net1"}],"ips":[{"interface":0,"address":"203.0.113.2/24"}]}`,
	}
	network := map[string]string{"eth0": "nbcc-a", "net1": "nbcc-b"}
	both := func(command string, withPrev bool) {
		t.Helper()
		errs := make(chan error, 2)
		for ifname := range prev {
			p := ""
			if withPrev {
				p = prev[ifname]
			}
			go func() {
				_, err := invokeNB(t, bins, node, command, nbConf("1.0.0", network[ifname], modelTCFilter, stateDir, p), "cc", pod.Path(), ifname)
				if err != nil {
					err = fmt.Errorf("%s %s: %w", command, ifname, err)
				}
				errs <- err
			}()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(func() { both("DEL", false) })
	for round := range 3 {
		both("ADD", true)
		sb, err := netbridge.New(stateDir, nil).Load(context.Background(), "cc")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, nic := range sb.NICs {
			got = append(got, nic.Name+"@"+nic.Network)
		}
		if !slices.Equal(got, []string{"eth0@nbcc-a", "net1@nbcc-b"}) {
			t.Fatalf("round %d: NICs %v after concurrent ADDs, want eth0@nbcc-a and net1@nbcc-b", round, got)
		}
		if err := netbridge.New(stateDir, nil).Check(context.Background(), "cc"); err != nil {
			t.Errorf("round %d: %v", round, err)
		}
		both("DEL", false)
		if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
			t.Fatalf("round %d: pod netns after concurrent DELs:\n%s", round, d)
		}
		if e := testnet.DirNames(t, stateDir); len(e) != 0 {
			t.Fatalf("round %d: concurrent DELs left %v", round, e)
		}
	}
}
