// Command recordgen writes state-record fixtures: the records a netbridge
// release writes, kept in test/e2e/testdata/records so that later releases
// test that they still check and tear them down exactly (an upgrade while
// pods run). Run it as root, at the release whose records are to be kept,
// from the module root:
//
//	go run ./test/recordgen -out test/e2e/testdata/records
//
// For each case it builds the same two-network pod in throwaway network
// namespaces (the topology commands are kept in the fixture, so that a test
// can build it again), wires it with that release (the library's Setup for
// the whole-sandbox models, the CNI plugin binary for the per-interface
// attach mode), and writes NAME.json, the state record exactly as that
// release wrote it, and NAME.fixture.json: how it was made, and the
// snapshots of the pod before setup and once wired.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/testnet"
)

// Fixture is what NAME.fixture.json holds.
type Fixture struct {
	// Comment says where the record comes from.
	Comment string `json:"comment"`
	// Node and Pod are the commands (ip ...) that build the node and pod
	// namespaces, run in that order in namespaces whose IPv6 duplicate
	// address detection is off; "{pod}" stands for the pod netns's name.
	Node [][]string `json:"node"`
	Pod  [][]string `json:"pod"`
	// Setup is the whole-sandbox setup that wrote the record, when it was
	// one.
	Setup *SetupCase `json:"setup,omitempty"`
	// Attach lists the CNI ADDs that wrote the record, in order, when it
	// was attached one interface at a time.
	Attach []AttachCase `json:"attach,omitempty"`
	// Before is the pod's snapshot before setup, Wired its snapshot once
	// wired, as the release's testnet.Snapshot wrote them.
	Before string `json:"before"`
	Wired  string `json:"wired"`
}

// SetupCase is a netbridge setup.
type SetupCase struct {
	ID          string              `json:"id"`
	Model       sandbox.Model       `json:"model"`
	MacvtapMode sandbox.MacvtapMode `json:"macvtap_mode,omitempty"`
}

// AttachCase is one ADD of the CNI plugin.
type AttachCase struct {
	ContainerID string        `json:"container_id"`
	IfName      string        `json:"ifname"`
	Network     string        `json:"network"`
	Model       sandbox.Model `json:"model"`
}

// The pod of every fixture: eth0 and net1, each with IPv4 and IPv6
// addresses (net1's IPv4 one without a broadcast address), a default route
// on each (net1's prepended the way the CNI plugins add routes, so both
// stay), a route with an MTU and a permanent neighbour.
var (
	nodeCmds = [][]string{
		{"ip", "link", "add", "name", "veth0", "address", "02:00:00:00:01:01", "type", "veth", "peer", "name", "eth0", "address", "02:00:00:00:01:02", "netns", "{pod}"},
		{"ip", "link", "add", "name", "veth1", "address", "02:00:00:00:02:01", "type", "veth", "peer", "name", "net1", "address", "02:00:00:00:02:02", "netns", "{pod}"},
		{"ip", "link", "set", "veth0", "up"},
		{"ip", "link", "set", "veth1", "up"},
		{"ip", "addr", "add", "198.51.100.1/24", "brd", "+", "dev", "veth0"},
		{"ip", "addr", "add", "203.0.113.1/24", "brd", "+", "dev", "veth1"},
	}
	podCmds = [][]string{
		{"ip", "link", "set", "eth0", "up"},
		{"ip", "link", "set", "net1", "up"},
		{"ip", "addr", "add", "198.51.100.2/24", "brd", "+", "dev", "eth0"},
		{"ip", "addr", "add", "2001:db8:1::2/64", "dev", "eth0", "nodad"},
		{"ip", "addr", "add", "203.0.113.2/24", "dev", "net1"},
		{"ip", "addr", "add", "2001:db8:2::2/64", "dev", "net1", "nodad"},
		{"ip", "route", "add", "default", "via", "198.51.100.1", "dev", "eth0"},
		{"ip", "-6", "route", "add", "default", "via", "2001:db8:1::1", "dev", "eth0"},
		{"ip", "route", "prepend", "default", "via", "203.0.113.1", "dev", "net1"},
		{"ip", "route", "add", "192.0.2.0/24", "via", "203.0.113.1", "dev", "net1", "mtu", "1400"},
		{"ip", "neigh", "add", "169.254.1.1", "lladdr", "02:00:00:00:01:01", "dev", "eth0", "nud", "permanent"},
	}
)

func main() {
	out := flag.String("out", "test/e2e/testdata/records", "directory the fixtures are written to")
	comment := flag.String("comment", "", "where the records come from (the release), kept in each fixture")
	flag.Parse()
	if err := run(*out, *comment); err != nil {
		fmt.Fprintln(os.Stderr, "recordgen:", err)
		os.Exit(1)
	}
}

func run(out, comment string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	plugin, err := buildPlugin()
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Dir(plugin))
	cases := map[string]Fixture{
		"tcfilter":         {Setup: &SetupCase{ID: "upgrade-tcfilter", Model: sandbox.ModelTCFilter}},
		"bridge":           {Setup: &SetupCase{ID: "upgrade-bridge", Model: sandbox.ModelBridge}},
		"macvtap":          {Setup: &SetupCase{ID: "upgrade-macvtap", Model: sandbox.ModelMacvtap}},
		"macvtap-passthru": {Setup: &SetupCase{ID: "upgrade-passthru", Model: sandbox.ModelMacvtap, MacvtapMode: sandbox.MacvtapPassthru}},
		"none":             {Setup: &SetupCase{ID: "upgrade-none", Model: sandbox.ModelNone}},
		"attach": {Attach: []AttachCase{
			{ContainerID: "upgrade-attach", IfName: "eth0", Network: "net-a", Model: sandbox.ModelTCFilter},
			{ContainerID: "upgrade-attach", IfName: "net1", Network: "net-b", Model: sandbox.ModelBridge},
		}},
	}
	for name, f := range cases {
		f.Comment = comment
		f.Node, f.Pod = nodeCmds, podCmds
		if err := generate(out, name, f, plugin); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Println("wrote", name)
	}
	return nil
}

// buildPlugin builds the CNI plugin of this checkout into a temporary
// directory.
func buildPlugin() (string, error) {
	dir, err := os.MkdirTemp("", "recordgen-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "netbridge")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/netbridge-cni").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("building the CNI plugin: %w\n%s", err, out)
	}
	return bin, nil
}

func generate(out, name string, f Fixture, plugin string) (err error) {
	node, err := testnet.CreateNS("nbgen-")
	if err != nil {
		return err
	}
	defer testnet.DestroyNS(node)
	pod, err := testnet.CreateNS("nbgen-")
	if err != nil {
		return err
	}
	defer testnet.DestroyNS(pod)
	for _, n := range []ns.NetNS{node, pod} {
		for _, k := range []string{"net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"} {
			if err := testnet.WriteSysctl(n, k, "0"); err != nil {
				return err
			}
		}
	}
	if err := runAll(node, f.Node, pod); err != nil {
		return err
	}
	if err := runAll(pod, f.Pod, pod); err != nil {
		return err
	}
	if f.Before, err = testnet.ReadSnapshot(pod); err != nil {
		return err
	}
	stateDir, err := os.MkdirTemp("", "recordgen-state-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stateDir)
	var id string
	if s := f.Setup; s != nil {
		id = s.ID
		cfg := sandbox.Config{ID: s.ID, Netns: pod.Path(), Model: s.Model, MacvtapMode: s.MacvtapMode}
		if _, err := netbridge.New(stateDir, nil).Setup(context.Background(), cfg); err != nil {
			return err
		}
		defer netbridge.New(stateDir, nil).Teardown(context.Background(), s.ID)
	}
	for _, a := range f.Attach {
		id = a.ContainerID
		if err := cniAdd(plugin, pod, stateDir, a); err != nil {
			return err
		}
		defer netbridge.New(stateDir, nil).Detach(context.Background(), a.ContainerID, a.IfName)
	}
	if f.Wired, err = testnet.ReadSnapshot(pod); err != nil {
		return err
	}
	rec, err := os.ReadFile(filepath.Join(stateDir, id+".json"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, name+".json"), rec, 0o644); err != nil {
		return err
	}
	meta, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, name+".fixture.json"), append(meta, '\n'), 0o644)
}

// runAll runs cmds in n, with "{pod}" replaced by pod's name.
func runAll(n ns.NetNS, cmds [][]string, pod ns.NetNS) error {
	for _, c := range cmds {
		args := make([]string, len(c))
		for i, a := range c {
			args[i] = strings.ReplaceAll(a, "{pod}", testnet.Name(pod))
		}
		if out, err := testnet.Output(n, args[0], args[1:]...); err != nil {
			return fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// cniAdd runs the plugin's ADD for a, with a previous result naming the
// interface and its addresses.
func cniAdd(plugin string, pod ns.NetNS, stateDir string, a AttachCase) error {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       a.Network,
		"type":       "netbridge",
		"model":      a.Model,
		"stateDir":   stateDir,
		"prevResult": map[string]any{
			"cniVersion": "1.0.0",
			"interfaces": []map[string]any{{"name": a.IfName, "sandbox": pod.Path()}},
		},
	}
	stdin, err := json.Marshal(conf)
	if err != nil {
		return err
	}
	cmd := exec.Command(plugin)
	cmd.Env = append(os.Environ(), "CNI_COMMAND=ADD", "CNI_CONTAINERID="+a.ContainerID, "CNI_NETNS="+pod.Path(),
		"CNI_IFNAME="+a.IfName, "CNI_PATH="+filepath.Dir(plugin))
	cmd.Stdin = strings.NewReader(string(stdin))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("CNI ADD of %s: %w\n%s", a.IfName, err, out)
	}
	return nil
}
