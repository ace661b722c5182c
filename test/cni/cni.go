// Package cni runs the reference CNI plugins (bridge, ptp, macvlan, ipvlan,
// host-local), built from the version pinned in go.mod, against network
// namespaces created by the testnet package. The plugin processes run inside
// a "node" namespace, never in the namespace of the test process, so a
// bridge plugin creates its bridge, and enables forwarding, in the node
// namespace only.
package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/netbridge/netbridge/test/testnet"
)

// BinEnv names an environment variable that, when set, is the directory
// [Build] builds the plugins into (and reuses them from).
const BinEnv = "NETBRIDGE_CNI_BIN"

const pluginsModule = "github.com/containernetworking/plugins"

// Plugins lists the plugins [Build] builds, as package paths of the plugins
// module; the binaries are named after the last path element.
var Plugins = []string{
	pluginsModule + "/plugins/main/bridge",
	pluginsModule + "/plugins/main/ptp",
	pluginsModule + "/plugins/main/macvlan",
	pluginsModule + "/plugins/main/ipvlan",
	pluginsModule + "/plugins/ipam/host-local",
}

// pluginTimeout bounds one ADD or DEL of a whole configuration.
const pluginTimeout = 2 * time.Minute

var build struct {
	sync.Mutex
	dir string
}

// goTool returns the go command: the one in $GOROOT/bin when go test set
// GOROOT, else the one on $PATH.
func goTool() string {
	if root := os.Getenv("GOROOT"); root != "" {
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "go"
}

// moduleDir returns the root directory of the module the test runs in (a
// test runs in its package directory).
func moduleDir(goBin string) (string, error) {
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module; cannot build the pinned plugins")
	}
	return filepath.Dir(gomod), nil
}

// pluginsVersion returns the version of the plugins module that go.mod
// selects. (Test binaries carry no dependency build information.)
func pluginsVersion(goBin, modDir string) (string, error) {
	cmd := exec.Command(goBin, "list", "-m", "-f", "{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}", pluginsModule)
	cmd.Dir = modDir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %w", pluginsModule, err)
	}
	v := strings.TrimSpace(string(out))
	if v == "" {
		v = "local"
	}
	return v, nil
}

// Build builds the plugins listed in [Plugins] with `go build` from this
// module (so at the version go.mod pins) and returns the directory holding
// the binaries. It builds at most once per test binary; the directory is
// $NETBRIDGE_CNI_BIN if set, otherwise <user cache dir>/netbridge-cni-<plugins
// version>-<go version>, and binaries already there are reused. The binaries
// are built in a temporary directory and renamed into place, so concurrent
// test binaries never see a half-written plugin. Build fails the test if the
// go command is missing or the build fails.
func Build(t testing.TB) string {
	t.Helper()
	build.Lock()
	defer build.Unlock()
	if build.dir != "" {
		return build.dir
	}
	goBin := goTool()
	modDir, err := moduleDir(goBin)
	if err != nil {
		t.Fatalf("building CNI plugins: %v", err)
	}
	dir := os.Getenv(BinEnv)
	if dir == "" {
		version, err := pluginsVersion(goBin, modDir)
		if err != nil {
			t.Fatalf("building CNI plugins: %v", err)
		}
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir = filepath.Join(cache, fmt.Sprintf("netbridge-cni-%s-%s", version, runtime.Version()))
	}
	if !allPresent(dir) {
		if err := buildInto(goBin, modDir, dir); err != nil {
			t.Fatalf("building CNI plugins: %v", err)
		}
	}
	build.dir = dir
	return dir
}

func allPresent(dir string) bool {
	for _, p := range Plugins {
		fi, err := os.Stat(filepath.Join(dir, filepath.Base(p)))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

func buildInto(goBin, modDir, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return fmt.Errorf("creating build directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command(goBin, append([]string{"build", "-o", tmp + string(filepath.Separator)}, Plugins...)...)
	cmd.Dir = modDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	for _, p := range Plugins {
		name := filepath.Base(p)
		if err := os.Rename(filepath.Join(tmp, name), filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("installing %s: %w", name, err)
		}
	}
	return nil
}

// nsExec is a libcni invoke.Exec that starts plugins inside a network
// namespace with [testnet.RunIn].
type nsExec struct {
	netns ns.NetNS
	logf  func(format string, args ...any)
}

var _ invoke.Exec = (*nsExec)(nil)

// ExecPlugin runs the plugin at pluginPath inside e.netns with the given
// stdin and environment and returns its stdout. Delegated plugins (IPAM) are
// started by the plugin itself and so run in the same namespace.
func (e *nsExec) ExecPlugin(ctx context.Context, pluginPath string, stdinData []byte, environ []string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, pluginPath)
	cmd.Env = environ
	cmd.Stdin = bytes.NewReader(stdinData)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := testnet.RunIn(e.netns, cmd); err != nil {
		return nil, err
	}
	err := cmd.Wait()
	if stderr.Len() > 0 && e.logf != nil {
		e.logf("%s (%s) stderr: %s", filepath.Base(pluginPath), cniCommand(environ), stderr.String())
	}
	if err != nil {
		return nil, pluginError(pluginPath, err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

func cniCommand(environ []string) string {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "CNI_COMMAND="); ok {
			return v
		}
	}
	return "?"
}

// pluginError turns a failed plugin run into an error: the CNI error object
// the plugin printed on stdout when there is one, otherwise stderr.
func pluginError(path string, err error, stdout, stderr []byte) error {
	var e types.Error
	if len(stdout) > 0 && json.Unmarshal(stdout, &e) == nil && (e.Msg != "" || e.Code != 0) {
		return fmt.Errorf("plugin %s: %w (exit: %w)", filepath.Base(path), &e, err)
	}
	return fmt.Errorf("plugin %s: %w; stderr: %q; stdout: %q", filepath.Base(path), err, stderr, stdout)
}

// FindInPath implements invoke.Exec.
func (e *nsExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

// Decode implements invoke.Exec.
func (e *nsExec) Decode(jsonBytes []byte) (version.PluginInfo, error) {
	return (&version.PluginDecoder{}).Decode(jsonBytes)
}

// Attachment is one pod interface added by [Add].
type Attachment struct {
	// Result is the ADD result, converted to the 1.0.0 result types.
	Result *current.Result

	cfg     *libcni.CNIConfig
	list    *libcni.NetworkConfigList
	rt      *libcni.RuntimeConf
	once    sync.Once
	err     error
	dataDir string // host-local dataDir injected by Add
	release func()
}

// Del runs the configuration's DEL now, in reverse plugin order, instead of
// at cleanup. Later calls (and the cleanup) return the first call's result.
func (a *Attachment) Del() error {
	a.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), pluginTimeout)
		defer cancel()
		if err := a.cfg.DelNetworkList(ctx, a.list, a.rt); err != nil {
			a.err = fmt.Errorf("CNI DEL %s (container %s, %s): %w", a.list.Name, a.rt.ContainerID, a.rt.IfName, err)
		}
		a.release()
	})
	return a.err
}

// nodeDirs holds, per node namespace, the host-local data directory and
// the libcni cache directory, so that all attachments on one node share IP
// allocations, as pods on a real node do, whichever test or subtest adds
// them. A directory is removed when its last attachment is deleted.
var nodeDirs struct {
	sync.Mutex
	base string
	refs map[string]int
}

// acquireNodeDir returns the state directory for nodeNS and a function
// that releases it.
func acquireNodeDir(nodeNS ns.NetNS) (string, func(), error) {
	nodeDirs.Lock()
	defer nodeDirs.Unlock()
	if nodeDirs.base == "" {
		base, err := os.MkdirTemp("", "netbridge-cni-state-")
		if err != nil {
			return "", nil, fmt.Errorf("creating CNI state directory: %w", err)
		}
		nodeDirs.base = base
		nodeDirs.refs = make(map[string]int)
	}
	key := testnet.Name(nodeNS)
	dir := filepath.Join(nodeDirs.base, key)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, fmt.Errorf("creating CNI state directory: %w", err)
	}
	nodeDirs.refs[key]++
	var once sync.Once
	release := func() {
		once.Do(func() {
			nodeDirs.Lock()
			defer nodeDirs.Unlock()
			nodeDirs.refs[key]--
			if nodeDirs.refs[key] > 0 {
				return
			}
			delete(nodeDirs.refs, key)
			_ = os.RemoveAll(dir)
			if len(nodeDirs.refs) == 0 {
				_ = os.RemoveAll(nodeDirs.base)
				nodeDirs.base = ""
			}
		})
	}
	return dir, release, nil
}

// Add runs CNI ADD for the configuration conf (a single plugin's netconf or
// a conflist, as JSON) on interface ifname of the pod namespace podNS,
// with the plugin processes running inside nodeNS. binDir is the plugin
// directory, usually from [Build]; it may list several directories joined
// with the OS path-list separator, for instance to add a netbridge binary.
//
// For every plugin whose "ipam" section is of type host-local and sets no
// "dataDir", Add sets one in a temporary directory per node namespace, so
// nothing is written under /var/lib/cni and pods added to the same node
// namespace (even from different subtests) get distinct addresses; libcni's
// result cache lives there too. The directory is removed after the node's
// last DEL. Add registers DEL in t.Cleanup (use [Attachment.Del] to run it
// earlier) and fails the test if ADD fails.
//
// Note that DEL of the bridge plugin leaves the bridge and its gateway
// address in place; they go away with nodeNS.
func Add(t testing.TB, binDir string, conf []byte, nodeNS, podNS ns.NetNS, containerID, ifname string) *Attachment {
	t.Helper()
	testnet.RequireRoot(t)
	dir, release, err := acquireNodeDir(nodeNS)
	if err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "host-local")
	list, err := parseConf(conf, dataDir)
	if err != nil {
		release()
		t.Fatalf("CNI configuration: %v", err)
	}
	cfg := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(binDir), filepath.Join(dir, "cache"), &nsExec{netns: nodeNS, logf: t.Logf})
	rt := &libcni.RuntimeConf{
		ContainerID: containerID,
		NetNS:       podNS.Path(),
		IfName:      ifname,
	}
	a := &Attachment{cfg: cfg, list: list, rt: rt, dataDir: dataDir, release: release}
	ctx, cancel := context.WithTimeout(context.Background(), pluginTimeout)
	defer cancel()
	res, err := cfg.AddNetworkList(ctx, list, rt)
	// DEL even after a failed ADD: the spec requires plugins to clean up
	// partial state on DEL.
	t.Cleanup(func() {
		if err := a.Del(); err != nil {
			t.Errorf("%v", err)
		}
	})
	if err != nil {
		t.Fatalf("CNI ADD %s (container %s, %s): %v", list.Name, containerID, ifname, err)
	}
	a.Result, err = current.NewResultFromResult(res)
	if err != nil {
		t.Fatalf("converting CNI result: %v", err)
	}
	return a
}

// parseConf parses a conflist or a single plugin configuration, turning the
// latter into a one-element list, and points host-local IPAM at dataDir.
func parseConf(conf []byte, dataDir string) (*libcni.NetworkConfigList, error) {
	var raw map[string]any
	if err := json.Unmarshal(conf, &raw); err != nil {
		return nil, fmt.Errorf("parsing JSON: %w", err)
	}
	setDataDir := func(plugin map[string]any) {
		ipam, ok := plugin["ipam"].(map[string]any)
		if !ok || ipam["type"] != "host-local" {
			return
		}
		if _, set := ipam["dataDir"]; !set {
			ipam["dataDir"] = dataDir
		}
	}
	if _, isList := raw["plugins"]; !isList {
		// A single plugin configuration: wrap it in a one-element list.
		raw = map[string]any{
			"name":       raw["name"],
			"cniVersion": raw["cniVersion"],
			"plugins":    []any{raw},
		}
	}
	plugins, ok := raw["plugins"].([]any)
	if !ok {
		return nil, errors.New(`"plugins" is not a list`)
	}
	for _, p := range plugins {
		if m, ok := p.(map[string]any); ok {
			setDataDir(m)
		}
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("re-encoding: %w", err)
	}
	list, err := libcni.NetworkConfFromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("parsing configuration list: %w", err)
	}
	return list, nil
}
