package nodeinstall

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

const bridgeList = `{
  "cniVersion": "1.0.0",
  "name": "k8s-pod-network",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local", "subnet": "10.22.0.0/16"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`

const bridgeConf = `{"cniVersion": "0.4.0", "name": "mynet", "type": "bridge", "bridge": "cni0",
 "ipam": {"type": "host-local", "subnet": "10.22.0.0/16"}}
`

// node is a throwaway node layout: conf dir, bin dir, hooks dir and the
// two binaries to install.
type node struct {
	conf, bin, hooks string
	opts             Options
}

func newNode(t *testing.T, files map[string]string) *node {
	t.Helper()
	root := t.TempDir()
	n := &node{conf: filepath.Join(root, "net.d"), bin: filepath.Join(root, "bin"), hooks: filepath.Join(root, "hooks.d")}
	for _, d := range []string{n.conf, n.bin, filepath.Join(root, "dist")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(n.conf, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	plugin, cli := filepath.Join(root, "dist", "netbridge-cni"), filepath.Join(root, "dist", "netbridge")
	os.WriteFile(plugin, []byte("plugin binary"), 0o755)
	os.WriteFile(cli, []byte("cli binary"), 0o755)
	n.opts = Options{ConfDir: n.conf, BinDir: n.bin, Plugin: plugin, CLI: cli,
		HookEntries: func(binary, stage string) ([]byte, error) {
			return json.Marshal(map[string]any{"version": "1.0.0", "hook": map[string]any{"path": binary, "args": []string{"netbridge", "hook", stage}}, "stages": []string{stage}})
		}}
	return n
}

// tree returns every file under the node's directories with its content.
func (n *node) tree(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range []string{n.conf, n.bin, n.hooks} {
		filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				b, _ := os.ReadFile(p)
				out[p] = string(b)
			}
			return nil
		})
	}
	return out
}

func (n *node) plugins(t *testing.T, file string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.conf, file))
	if err != nil {
		t.Fatal(err)
	}
	var l struct {
		Plugins []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	return l.Plugins
}

func types(ps []map[string]any) string {
	var s []string
	for _, p := range ps {
		s = append(s, p["type"].(string))
	}
	return strings.Join(s, ",")
}

func diffTrees(a, b map[string]string) string {
	var d []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			d = append(d, "- "+k)
		} else if w != v {
			d = append(d, "~ "+k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "+ "+k)
		}
	}
	sort.Strings(d)
	return strings.Join(d, "\n")
}

func TestInstallConflistIdempotentUninstallExact(t *testing.T) {
	n := newNode(t, map[string]string{"10-bridge.conflist": bridgeList, "20-other.conflist": strings.ReplaceAll(bridgeList, "k8s-pod-network", "other")})
	n.opts.HooksDir, n.opts.PodAnnotation, n.opts.StateDir = n.hooks, "netbridge.io/vm", "/run/netbridge"
	before := n.tree(t)
	r, err := Install(n.opts)
	if err != nil {
		t.Fatal(err)
	}
	if r.ConfFile != filepath.Join(n.conf, "10-bridge.conflist") {
		t.Errorf("chained to %s, want the lexically first file", r.ConfFile)
	}
	ps := n.plugins(t, "10-bridge.conflist")
	if got := types(ps); got != "bridge,portmap,netbridge" {
		t.Fatalf("plugins %s, want netbridge last", got)
	}
	nb := ps[2]
	if nb["podAnnotation"] != "netbridge.io/vm" || nb["stateDir"] != "/run/netbridge" {
		t.Errorf("entry %v lacks the selector or the state dir", nb)
	}
	if caps, _ := nb["capabilities"].(map[string]any); caps[PodAnnotationsCapability] != true {
		t.Errorf("entry %v does not declare %s", nb, PodAnnotationsCapability)
	}
	if got := types(n.plugins(t, "20-other.conflist")); got != "bridge,portmap" {
		t.Errorf("the other network changed: %s", got)
	}
	for _, f := range []string{filepath.Join(n.bin, PluginType), filepath.Join(n.bin, HookBinary), filepath.Join(n.hooks, HookFile("prestart")), filepath.Join(n.hooks, HookFile("poststop"))} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("install did not write %s: %v", f, err)
		}
	}
	once := n.tree(t)
	r, err = Install(n.opts)
	if err != nil || len(r.Changes) != 0 {
		t.Errorf("second install changed %v (%v), want nothing", r.Changes, err)
	}
	if d := diffTrees(once, n.tree(t)); d != "" {
		t.Errorf("second install changed files:\n%s", d)
	}
	if _, err := Uninstall(n.opts); err != nil {
		t.Fatal(err)
	}
	after := n.tree(t)
	if d := diffTrees(before, after); d != "" {
		t.Errorf("after uninstall:\n%s", d)
	}
	if after[filepath.Join(n.conf, "10-bridge.conflist")] != bridgeList {
		t.Errorf("the conflist's bytes were not restored:\n%s", after[filepath.Join(n.conf, "10-bridge.conflist")])
	}
}

func TestInstallConvertsConfAndUninstallRestoresIt(t *testing.T) {
	n := newNode(t, map[string]string{"05-mynet.conf": bridgeConf})
	before := n.tree(t)
	r, err := Install(n.opts)
	if err != nil {
		t.Fatal(err)
	}
	if r.ConfFile != filepath.Join(n.conf, "05-mynet.conflist") {
		t.Errorf("conf file %s, want the .conflist", r.ConfFile)
	}
	if _, err := os.Stat(filepath.Join(n.conf, "05-mynet.conf")); !os.IsNotExist(err) {
		t.Errorf("the .conf is still there beside the .conflist (%v): the runtime would read it first", err)
	}
	ps := n.plugins(t, "05-mynet.conflist")
	if got := types(ps); got != "bridge,netbridge" {
		t.Fatalf("plugins %s", got)
	}
	if _, ok := ps[0]["cniVersion"]; ok {
		t.Errorf("the plugin entry kept the list-level cniVersion: %v", ps[0])
	}
	b, _ := os.ReadFile(filepath.Join(n.conf, "05-mynet.conflist"))
	var top map[string]any
	json.Unmarshal(b, &top)
	if top["cniVersion"] != "0.4.0" || top["name"] != "mynet" {
		t.Errorf("list header %v, want the .conf's version and name", top)
	}
	if _, err := Uninstall(n.opts); err != nil {
		t.Fatal(err)
	}
	if d := diffTrees(before, n.tree(t)); d != "" {
		t.Errorf("after uninstall:\n%s", d)
	}
}

func TestInstallByNetworkName(t *testing.T) {
	n := newNode(t, map[string]string{"10-a.conflist": bridgeList, "20-b.conflist": strings.ReplaceAll(bridgeList, "k8s-pod-network", "vms")})
	n.opts.Network = "vms"
	r, err := Install(n.opts)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(r.ConfFile) != "20-b.conflist" || types(n.plugins(t, "10-a.conflist")) != "bridge,portmap" {
		t.Errorf("chained to %s", r.ConfFile)
	}
	n.opts.Network = "nosuch"
	if _, err := Install(n.opts); !errors.Is(err, ErrNoNetwork) || !strings.Contains(err.Error(), "vms") {
		t.Errorf("unknown network: %v, want ErrNoNetwork listing the names", err)
	}
}

func TestInstallEmptyConfDir(t *testing.T) {
	n := newNode(t, nil)
	os.WriteFile(filepath.Join(n.conf, "README"), []byte("x"), 0o644)
	_, err := Install(n.opts)
	if !errors.Is(err, ErrNoNetwork) {
		t.Fatalf("got %v, want ErrNoNetwork", err)
	}
}

func TestInstallLeavesForeignNetbridgeEntry(t *testing.T) {
	list := strings.Replace(bridgeList, `{"type": "portmap", "capabilities": {"portMappings": true}}`, `{"type": "netbridge", "model": "bridge"}`, 1)
	n := newNode(t, map[string]string{"10.conflist": list})
	r, err := Install(n.opts)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(n.conf, "10.conflist")); string(b) != list || len(r.Notes) == 0 {
		t.Errorf("a hand-written netbridge entry was changed, or not reported (notes %v)", r.Notes)
	}
	if _, err := Uninstall(n.opts); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(n.conf, "10.conflist")); string(b) != list {
		t.Errorf("uninstall removed a netbridge entry install did not add")
	}
}

// A provider that appends a plugin after netbridge's entry: install puts
// netbridge back at the end; uninstall keeps the provider's new plugin.
func TestInstallMovesOurEntryLast(t *testing.T) {
	n := newNode(t, map[string]string{"10.conflist": bridgeList})
	if _, err := Install(n.opts); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(n.conf, "10.conflist")
	b, _ := os.ReadFile(path)
	var top map[string]any
	json.Unmarshal(b, &top)
	top["plugins"] = append(top["plugins"].([]any), map[string]any{"type": "bandwidth"})
	b, _ = json.Marshal(top)
	os.WriteFile(path, b, 0o644)
	if _, err := Install(n.opts); err != nil {
		t.Fatal(err)
	}
	if got := types(n.plugins(t, "10.conflist")); got != "bridge,portmap,bandwidth,netbridge" {
		t.Fatalf("plugins %s", got)
	}
	if _, err := Uninstall(n.opts); err != nil {
		t.Fatal(err)
	}
	if got := types(n.plugins(t, "10.conflist")); got != "bridge,portmap,bandwidth" {
		t.Fatalf("after uninstall: %s", got)
	}
}

func TestWatchPutsNetbridgeBack(t *testing.T) {
	n := newNode(t, map[string]string{"10.conflist": bridgeList})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	passes := make(chan Result, 16)
	done := make(chan error, 1)
	go func() { done <- Watch(ctx, n.opts, func(r Result, err error) { passes <- r }) }()
	select {
	case <-passes:
	case <-time.After(10 * time.Second):
		t.Fatal("no first pass")
	}
	// The provider rewrites its file, without netbridge.
	if err := WriteAtomic(filepath.Join(n.conf, "10.conflist"), []byte(bridgeList), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for types(n.plugins(t, "10.conflist")) != "bridge,portmap,netbridge" {
		select {
		case <-passes:
		case <-deadline:
			t.Fatalf("netbridge was not put back: %s", types(n.plugins(t, "10.conflist")))
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestDetectBinDir(t *testing.T) {
	root := t.TempDir()
	opt, deb := filepath.Join(root, "opt"), filepath.Join(root, "deb")
	os.MkdirAll(opt, 0o755)
	os.MkdirAll(deb, 0o755)
	os.WriteFile(filepath.Join(deb, "bridge"), nil, 0o755)
	if d, err := DetectBinDir([]string{opt, deb}); err != nil || d != deb {
		t.Errorf("got %q %v, want the directory with plugins %s", d, err, deb)
	}
	if _, err := DetectBinDir([]string{filepath.Join(root, "none")}); err == nil {
		t.Error("no directory: want an error")
	}
}
