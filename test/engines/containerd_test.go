package engines

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netbridge/netbridge/test/testnet"
	"github.com/netbridge/netbridge/test/vm"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

// cniNet is a CNI network of one test: the bridge plugin with host-local
// IPAM (its data in the test's directory), chained with netbridge.
type cniNet struct {
	Name     string
	Bridge   string
	Subnet   string
	Gateway  string
	StateDir string // netbridge's state directory
	LogFile  string // netbridge-cni's log
	IPAMDir  string
	// Extra holds more keys of netbridge's entry.
	Extra map[string]any
	// NoNetbridge leaves netbridge out of the list (install adds it).
	NoNetbridge bool
}

// newCNINet returns a network named and addressed for one test, with its
// directories under dir.
func newCNINet(dir string) *cniNet {
	return &cniNet{
		Name:     "nbtest-" + randomHex(4),
		Bridge:   "nbcri0",
		Subnet:   "198.51.100.0/24",
		Gateway:  "198.51.100.1",
		StateDir: filepath.Join(dir, "nbstate"),
		LogFile:  filepath.Join(dir, "netbridge-cni.log"),
		IPAMDir:  filepath.Join(dir, "ipam"),
	}
}

// conflist returns the network's configuration list. Debian 12's plugins
// (1.1.1) accept cniVersion 1.0.0 at most.
func (n *cniNet) conflist() string {
	nb := map[string]any{"type": "netbridge", "stateDir": n.StateDir, "logFile": n.LogFile}
	for k, v := range n.Extra {
		nb[k] = v
	}
	plugins := []any{
		map[string]any{
			"type": "bridge", "bridge": n.Bridge, "isGateway": true, "ipMasq": false,
			"ipam": map[string]any{
				"type":    "host-local",
				"ranges":  [][]map[string]string{{{"subnet": n.Subnet, "gateway": n.Gateway}}},
				"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
				"dataDir": n.IPAMDir,
			},
		},
	}
	if !n.NoNetbridge {
		plugins = append(plugins, nb)
	}
	list := map[string]any{"cniVersion": "1.0.0", "name": n.Name, "plugins": plugins}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		panic(err)
	}
	return string(b)
}

// removeCNICache removes what libcni cached in /var/lib/cni for network
// name (containerd 1.6 keeps its results there; DEL removes them, so
// only a failed test leaves some).
func removeCNICache(t testing.TB, name string) {
	t.Cleanup(func() {
		files, _ := filepath.Glob(filepath.Join("/var/lib/cni/results", name+"-*"))
		for _, f := range files {
			if err := os.Remove(f); err != nil {
				t.Errorf("removing %s: %v", f, err)
			}
		}
	})
}

// criNode starts a node netns with containerd on the network n, with the
// netbridge CNI plugin in its bin dir, and returns both.
func criNode(t *testing.T, n *cniNet) (ns.NetNS, *Containerd) {
	t.Helper()
	node := testnet.NewNS(t)
	removeCNICache(t, n.Name)
	c := StartContainerd(t, node, map[string]string{"10-" + n.Name + ".conflist": n.conflist()})
	c.AddPlugin("netbridge", Build(t, "./cmd/netbridge-cni", "netbridge-cni"))
	return node, c
}

// netbridgeCLI runs the netbridge CLI and returns its stdout.
func netbridgeCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(Build(t, "./cmd/netbridge", "netbridge"), args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("netbridge %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// stateEntries returns the names in netbridge's state directory.
func stateEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// openPodNetns opens a pod netns path for inspection with testnet.
func openPodNetns(t *testing.T, path string) ns.NetNS {
	t.Helper()
	n, err := ns.GetNS(path)
	if err != nil {
		t.Fatalf("opening pod netns %s: %v", path, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// notWired checks that the pod netns holds only what the interface plugin
// made: no tap, no ingress qdisc on eth0.
func notWired(t *testing.T, pod ns.NetNS) {
	t.Helper()
	if out := testnet.Exec(t, pod, "ip", "-o", "link", "show"); strings.Contains(out, "nb-") {
		t.Errorf("the pod netns has a link of netbridge's:\n%s", out)
	}
	if out := testnet.Exec(t, pod, "tc", "qdisc", "show", "dev", "eth0", "ingress"); strings.Contains(out, "ingress") {
		t.Errorf("eth0 has an ingress qdisc:\n%s", out)
	}
}

// cachedResult returns the CNI result containerd (libcni) cached for the
// pod's eth0 on network name.
func cachedResult(t *testing.T, name, podID string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/var/lib/cni/results", name+"-"+podID+"-eth0"))
	if err != nil {
		t.Fatalf("reading the cached CNI result: %v", err)
	}
	return string(b)
}

// wiredTap checks that eth0 of the pod netns is wired to a tap by the
// tcfilter model and returns the tap's name.
func wiredTap(t *testing.T, pod ns.NetNS) string {
	t.Helper()
	tap := testnet.LinkByName(t, pod, "nb-eth0")
	if tap.Type() != "tuntap" {
		t.Fatalf("nb-eth0 is a %s, want a tap", tap.Type())
	}
	out := testnet.Exec(t, pod, "tc", "filter", "show", "dev", "eth0", "ingress")
	if !strings.Contains(out, "mirred") || !strings.Contains(out, "nb-eth0") {
		t.Fatalf("eth0 has no redirect to nb-eth0:\n%s", out)
	}
	return tap.Attrs().Name
}

// TestContainerdPodLifecycle runs a pod through containerd's CRI with the
// conflist bridge + host-local + netbridge: runp wires a tap, netbridge
// render reads what the plugin wired, stopp/rmp run DEL and leave the
// state dir empty and the netns gone.
func TestContainerdPodLifecycle(t *testing.T) {
	dir := t.TempDir()
	n := newCNINet(dir)
	_, c := criNode(t, n)

	start := time.Now()
	pod, err := c.RunPod(PodConfig{Name: "vm1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("runp: %v", time.Since(start))
	podNS := openPodNetns(t, pod.Netns)
	wiredTap(t, podNS)
	out, err := netbridgeCLI(t, "render", "--id", pod.ID, "--state-dir", n.StateDir, "--for", "qemu")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "ifname=nb-eth0") {
		t.Errorf("render --for qemu does not name nb-eth0:\n%s", out)
	}
	if err := c.StopPod(pod.ID); err != nil {
		t.Fatal(err)
	}
	if got := stateEntries(t, n.StateDir); len(got) != 0 {
		t.Errorf("state dir after rmp: %v, want empty", got)
	}
	if _, err := os.Lstat(pod.Netns); !os.IsNotExist(err) {
		t.Errorf("pod netns %s still exists after rmp (%v)", pod.Netns, err)
	}
}

// TestContainerdTwoPods runs two pods at once on one network: each gets
// its own tap, and both are undone.
func TestContainerdTwoPods(t *testing.T) {
	dir := t.TempDir()
	n := newCNINet(dir)
	_, c := criNode(t, n)
	pods := make([]*Pod, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range pods {
		wg.Go(func() { pods[i], errs[i] = c.RunPod(PodConfig{Name: fmt.Sprintf("vm%d", i)}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("pod %d: %v", i, err)
		}
	}
	for _, p := range pods {
		wiredTap(t, openPodNetns(t, p.Netns))
	}
	if got := stateEntries(t, n.StateDir); len(got) < 2 {
		t.Errorf("state dir holds %v, want a record per pod", got)
	}
	for _, p := range pods {
		if err := c.StopPod(p.ID); err != nil {
			t.Fatal(err)
		}
	}
	if got := stateEntries(t, n.StateDir); len(got) != 0 {
		t.Errorf("state dir after rmp: %v, want empty", got)
	}
}

// TestContainerdSandboxStartFails makes the sandbox container fail to
// start after CNI ADD ran (an unknown sysctl: runc refuses it): containerd
// runs DEL, and nothing of netbridge's is left.
func TestContainerdSandboxStartFails(t *testing.T) {
	dir := t.TempDir()
	n := newCNINet(dir)
	_, c := criNode(t, n)
	_, err := c.RunPod(PodConfig{Name: "broken", Sysctls: map[string]string{"net.netbridge.nosuch": "1"}})
	if err == nil {
		t.Fatal("runp with an unknown sysctl succeeded; the test needs it to fail after CNI ADD")
	}
	log, _ := os.ReadFile(n.LogFile)
	if !strings.Contains(string(log), `"cni_command":"ADD"`) || !strings.Contains(string(log), `"cni_command":"DEL"`) {
		t.Fatalf("netbridge-cni did not run ADD and then DEL; log:\n%s\nrunp: %v", log, err)
	}
	t.Logf("runp failed as it should: %v\nnetbridge-cni log:\n%s", err, log)
	if got := stateEntries(t, n.StateDir); len(got) != 0 {
		t.Errorf("state dir after the failed runp: %v, want empty", got)
	}
	if ids, err := c.Pods(); err != nil || len(ids) != 0 {
		t.Errorf("pods after the failed runp: %v (%v)", ids, err)
	}
}

// TestContainerdPodVM boots a real guest on a pod containerd wired: runp,
// then `netbridge render --for qemu` and `--for guest-cmdline` feed QEMU
// (TCG) started in the pod netns; the guest pings the node's gateway
// address on the CNI bridge and the node pings the guest; stopp/rmp leave
// no record and no netns.
func TestContainerdPodVM(t *testing.T) {
	vm.Require(t)
	dir := t.TempDir()
	n := newCNINet(dir)
	node, c := criNode(t, n)
	pod, err := c.RunPod(PodConfig{Name: "vm"})
	if err != nil {
		t.Fatal(err)
	}
	podNS := openPodNetns(t, pod.Netns)
	wiredTap(t, podNS)
	guestIP := podAddr(t, podNS)

	qemuArgs, err := netbridgeCLI(t, "render", "--id", pod.ID, "--state-dir", n.StateDir, "--for", "qemu")
	if err != nil {
		t.Fatal(err)
	}
	args := shellWords(t, qemuArgs)
	cmdline, err := netbridgeCLI(t, "render", "--id", pod.ID, "--state-dir", n.StateDir, "--for", "guest-cmdline")
	if err != nil {
		t.Fatal(err)
	}
	gw := netip.MustParseAddr(n.Gateway)
	g := vm.Boot(t, pod.Netns, args, nil, strings.TrimSpace(cmdline)+" nbtest.ping="+gw.String()+" nbtest.wait=30 nbtest.echoes=1,0", 3*time.Minute)
	if line, err := g.WaitFor("NBTEST PING "+gw.String()+" ", 90*time.Second); err != nil {
		t.Fatal(err)
	} else if !strings.HasSuffix(line, " OK") {
		t.Errorf("guest -> node %s: %s", gw, line)
	}
	if _, err := g.WaitFor("NBTEST WAIT", 90*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := testnet.Ping(node, guestIP, 0, 5*time.Second); err != nil {
		t.Errorf("node -> guest %s: %v", guestIP, err)
	}
	if line, err := g.WaitFor("NBTEST ECHOES", 90*time.Second); err != nil {
		t.Fatal(err)
	} else if !strings.HasPrefix(line, "NBTEST ECHOES v4=") || strings.HasPrefix(line, "NBTEST ECHOES v4=0 ") {
		t.Errorf("the guest answered no echo request of the node: %s", line)
	}
	if _, err := g.WaitFor("NBTEST DONE", 90*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := g.Wait(30 * time.Second); err != nil {
		t.Errorf("QEMU after the guest powered off: %v", err)
	}
	if err := c.StopPod(pod.ID); err != nil {
		t.Fatal(err)
	}
	if got := stateEntries(t, n.StateDir); len(got) != 0 {
		t.Errorf("state dir after rmp: %v, want empty", got)
	}
}

// podAddr returns the IPv4 address of eth0 in the pod netns.
func podAddr(t *testing.T, pod ns.NetNS) netip.Addr {
	t.Helper()
	out := testnet.Exec(t, pod, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
	f := strings.Fields(out)
	for i, w := range f {
		if w == "inet" && i+1 < len(f) {
			p, err := netip.ParsePrefix(f[i+1])
			if err != nil {
				t.Fatal(err)
			}
			return p.Addr()
		}
	}
	t.Fatalf("eth0 has no IPv4 address:\n%s", out)
	return netip.Addr{}
}

// shellWords splits s as the shell does when a user pastes it into a
// command line (netbridge render --for qemu quotes for the shell).
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	out, err := exec.Command("sh", "-c", `eval "set -- $1"; printf '%s\0' "$@"`, "sh", strings.TrimSpace(s)).Output()
	if err != nil {
		t.Fatalf("splitting %q: %v", s, err)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
}

// TestContainerdPodAnnotationSelector chains netbridge with a
// podAnnotation selector and the pod-annotations capability: of two pods
// through the same conflist, only the one with the annotation gets a tap;
// the other's netns and CNI result are the interface plugin's alone.
func TestContainerdPodAnnotationSelector(t *testing.T) {
	dir := t.TempDir()
	n := newCNINet(dir)
	n.Extra = map[string]any{
		"podAnnotation": "netbridge.io/vm",
		"capabilities":  map[string]bool{"io.kubernetes.cri.pod-annotations": true},
	}
	_, c := criNode(t, n)
	vmPod, err := c.RunPod(PodConfig{Name: "vm", Annotations: map[string]string{"netbridge.io/vm": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	plainPod, err := c.RunPod(PodConfig{Name: "plain", Annotations: map[string]string{"other": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	wiredTap(t, openPodNetns(t, vmPod.Netns))
	notWired(t, openPodNetns(t, plainPod.Netns))
	if res := cachedResult(t, n.Name, vmPod.ID); !strings.Contains(res, `"nb-eth0"`) {
		t.Errorf("the selected pod's result has no tap:\n%s", res)
	}
	if res := cachedResult(t, n.Name, plainPod.ID); strings.Contains(res, "nb-eth0") {
		t.Errorf("the other pod's result names a tap:\n%s", res)
	}
	if got := stateEntries(t, n.StateDir); containsPrefix(got, plainPod.ID) || !containsPrefix(got, vmPod.ID) {
		t.Errorf("state dir %v: want a record of %s only", got, vmPod.ID)
	}
	for _, p := range []*Pod{vmPod, plainPod} {
		if err := c.StopPod(p.ID); err != nil {
			t.Fatal(err)
		}
	}
	if got := stateEntries(t, n.StateDir); len(got) != 0 {
		t.Errorf("state dir after rmp: %v, want empty", got)
	}
}

// TestContainerdInstallUninstall runs `netbridge install` against a running
// node's conf and bin dirs: the next pod gets a tap; `netbridge uninstall`
// restores the conflist byte for byte and the next pod gets none.
func TestContainerdInstallUninstall(t *testing.T) {
	dir := t.TempDir()
	n := newCNINet(dir)
	n.NoNetbridge = true
	node := testnet.NewNS(t)
	removeCNICache(t, n.Name)
	confName := "10-" + n.Name + ".conflist"
	c := StartContainerd(t, node, map[string]string{confName: n.conflist()})
	c.WaitChain("bridge")
	before, err := os.ReadFile(filepath.Join(c.ConfDir, confName))
	if err != nil {
		t.Fatal(err)
	}
	plugin := Build(t, "./cmd/netbridge-cni", "netbridge-cni")
	flags := []string{"--cni-conf-dir", c.ConfDir, "--cni-bin-dir", c.BinDir, "--cni-plugin", plugin}
	if out, err := netbridgeCLI(t, append([]string{"install", "--state-dir", n.StateDir}, flags...)...); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("install:\n%s", out)
	}
	c.WaitChain("bridge,netbridge")
	pod, err := c.RunPod(PodConfig{Name: "after-install"})
	if err != nil {
		t.Fatal(err)
	}
	wiredTap(t, openPodNetns(t, pod.Netns))
	if err := c.StopPod(pod.ID); err != nil {
		t.Fatal(err)
	}
	if out, err := netbridgeCLI(t, append([]string{"uninstall"}, flags...)...); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("uninstall:\n%s", out)
	}
	if after, _ := os.ReadFile(filepath.Join(c.ConfDir, confName)); string(after) != string(before) {
		t.Errorf("conflist after uninstall:\n%s\nwant\n%s", after, before)
	}
	if _, err := os.Lstat(filepath.Join(c.BinDir, "netbridge")); !os.IsNotExist(err) {
		t.Errorf("the plugin is still in the bin dir (%v)", err)
	}
	c.WaitChain("bridge")
	pod, err = c.RunPod(PodConfig{Name: "after-uninstall"})
	if err != nil {
		t.Fatal(err)
	}
	notWired(t, openPodNetns(t, pod.Netns))
}
