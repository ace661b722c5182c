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

// GoCommand returns the go command: the one in $GOROOT/bin when go test
// set GOROOT, else the one on $PATH.
func GoCommand() string {
	if root := os.Getenv("GOROOT"); root != "" {
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "go"
}

// ModuleDir returns the root directory of the module the test runs in (a
// test runs in its package directory), asking the go command goBin.
func ModuleDir(goBin string) (string, error) {
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module; cannot build the pinned tools")
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
	goBin := GoCommand()
	modDir, err := ModuleDir(goBin)
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

// NetbridgePlugin is the name the netbridge plugin has in a CNI bin
// directory: its type in a configuration.
const NetbridgePlugin = "netbridge"

// netbridgePackage is the netbridge CNI plugin's package in this module.
const netbridgePackage = "./cmd/netbridge-cni"

var nbBuild struct {
	sync.Mutex
	dir  string
	refs int
}

// BuildNetbridge builds the chained netbridge plugin (cmd/netbridge-cni of
// this module, as the work tree has it) into a temporary directory, as
// NetbridgePlugin, and returns the directory; join it to [Build]'s with
// the path-list separator for [Add]. Tests running at the same time share
// one build; the directory is removed at the cleanup of the last of them,
// so nothing is left behind, and a later test builds again (a link only,
// well under a second, since go caches the compiled packages). A failed
// build fails the test.
func BuildNetbridge(t testing.TB) string {
	t.Helper()
	nbBuild.Lock()
	defer nbBuild.Unlock()
	if nbBuild.dir == "" {
		dir, err := buildNetbridge()
		if err != nil {
			t.Fatalf("building the netbridge CNI plugin: %v", err)
		}
		nbBuild.dir = dir
	}
	nbBuild.refs++
	t.Cleanup(func() {
		nbBuild.Lock()
		defer nbBuild.Unlock()
		if nbBuild.refs--; nbBuild.refs == 0 {
			_ = os.RemoveAll(nbBuild.dir)
			nbBuild.dir = ""
		}
	})
	return nbBuild.dir
}

func buildNetbridge() (string, error) {
	goBin := GoCommand()
	modDir, err := ModuleDir(goBin)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "netbridge-cni-plugin-")
	if err != nil {
		return "", err
	}
	cmd := exec.Command(goBin, "build", "-o", filepath.Join(dir, NetbridgePlugin), netbridgePackage)
	cmd.Dir = modDir
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("go build %s: %w\n%s", netbridgePackage, err, out)
	}
	return dir, nil
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
	// Raw is the ADD result as libcni returned it: in the spec version
	// the last plugin printed (normally the configuration's).
	Raw types.Result

	cfg      *libcni.CNIConfig
	list     *libcni.NetworkConfigList
	rt       *libcni.RuntimeConf
	once     sync.Once
	err      error
	dataDir  string // host-local dataDir injected by Add
	cacheDir string // libcni's cache directory
	release  func()
}

// Del runs the configuration's DEL now, in reverse plugin order, instead of
// at cleanup. Later calls (and the cleanup) return the first call's result.
func (a *Attachment) Del() error {
	a.once.Do(func() { a.err = a.del() })
	return a.err
}

// DelAgain runs the configuration's DEL once more, whatever happened
// before: the spec wants a DEL of what is already deleted to succeed.
func (a *Attachment) DelAgain() error {
	return a.del()
}

func (a *Attachment) del() error {
	ctx, cancel := context.WithTimeout(context.Background(), pluginTimeout)
	defer cancel()
	if err := a.cfg.DelNetworkList(ctx, a.list, a.rt); err != nil {
		return fmt.Errorf("CNI DEL %s (container %s, %s): %w", a.list.Name, a.rt.ContainerID, a.rt.IfName, err)
	}
	return nil
}

// Check runs the configuration's CHECK (libcni's CheckNetworkList: every
// plugin in order, each given the cached ADD result as prevResult). It
// fails for spec versions before 0.4.0, which have no CHECK.
func (a *Attachment) Check() error {
	ctx, cancel := context.WithTimeout(context.Background(), pluginTimeout)
	defer cancel()
	if err := a.cfg.CheckNetworkList(ctx, a.list, a.rt); err != nil {
		return fmt.Errorf("CNI CHECK %s (container %s, %s): %w", a.list.Name, a.rt.ContainerID, a.rt.IfName, err)
	}
	return nil
}

// CachedResult returns the result libcni cached for the attachment
// (GetNetworkListCachedResult), converted to the configuration's spec
// version; nil when there is none.
func (a *Attachment) CachedResult() (types.Result, error) {
	return a.cfg.GetNetworkListCachedResult(a.list, a.rt)
}

// ForgetCache removes libcni's cached result of the attachment, as a
// runtime that lost its cache (or crashed between a plugin's ADD and
// caching) would have it: a later GC then does not DEL the attachment
// itself, the plugins' GC has to find it. A later DEL runs without a
// prevResult.
func (a *Attachment) ForgetCache() error {
	p := filepath.Join(a.cacheDir, "results", fmt.Sprintf("%s-%s-%s", a.list.Name, a.rt.ContainerID, a.rt.IfName))
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("forgetting libcni's cached result: %w", err)
	}
	return nil
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
// with the OS path-list separator, for instance to add the netbridge
// plugin from [BuildNetbridge].
//
// For every plugin whose "ipam" section is of type host-local and sets no
// "dataDir", Add sets one in a temporary directory per node namespace, so
// nothing is written under /var/lib/cni and pods added to the same node
// namespace (even from different subtests) get distinct addresses; libcni's
// result cache lives there too. The directory is removed at the cleanup of
// the node's last attachment. Add registers DEL in t.Cleanup (use
// [Attachment.Del] to run it earlier) and fails the test if ADD fails.
//
// Note that DEL of the bridge plugin leaves the bridge and its gateway
// address in place; they go away with nodeNS.
func Add(t testing.TB, binDir string, conf []byte, nodeNS, podNS ns.NetNS, containerID, ifname string) *Attachment {
	t.Helper()
	a, err := TryAdd(t, binDir, conf, nodeNS, podNS, containerID, ifname)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TryAdd is [Add] returning ADD's error instead of failing the test, for
// tests of ADDs that must fail; DEL still runs at cleanup. The error wraps
// the *types.Error the failing plugin printed, if it printed one.
func TryAdd(t testing.TB, binDir string, conf []byte, nodeNS, podNS ns.NetNS, containerID, ifname string) (*Attachment, error) {
	t.Helper()
	return TryAddArgs(t, binDir, conf, nodeNS, podNS, containerID, ifname, nil)
}

// TryAddArgs is [TryAdd] with CNI_ARGS: args are the runtime's key-value
// pairs (libcni's RuntimeConf.Args), for ADD and for every later command
// on the attachment.
func TryAddArgs(t testing.TB, binDir string, conf []byte, nodeNS, podNS ns.NetNS, containerID, ifname string, args [][2]string) (*Attachment, error) {
	t.Helper()
	testnet.RequireRoot(t)
	n, err := openNode(t, binDir, conf, nodeNS)
	if err != nil {
		t.Fatal(err)
	}
	rt := &libcni.RuntimeConf{
		ContainerID: containerID,
		NetNS:       podNS.Path(),
		IfName:      ifname,
		Args:        args,
	}
	a := &Attachment{cfg: n.cfg, list: n.list, rt: rt, dataDir: n.dataDir, cacheDir: n.cacheDir, release: n.release}
	ctx, cancel := context.WithTimeout(context.Background(), pluginTimeout)
	defer cancel()
	res, err := n.cfg.AddNetworkList(ctx, n.list, rt)
	// DEL even after a failed ADD: the spec requires plugins to clean up
	// partial state on DEL.
	t.Cleanup(func() {
		if err := a.Del(); err != nil {
			t.Errorf("%v", err)
		}
		a.release()
	})
	if err != nil {
		return a, fmt.Errorf("CNI ADD %s (container %s, %s): %w", n.list.Name, containerID, ifname, err)
	}
	a.Raw = res
	a.Result, err = current.NewResultFromResult(res)
	if err != nil {
		return a, fmt.Errorf("converting CNI result: %w", err)
	}
	return a, nil
}

// node is a libcni configuration run against a node namespace: its plugin
// processes run inside it, with the host-local data directory and the
// libcni cache [Add] uses for that namespace.
type node struct {
	cfg               *libcni.CNIConfig
	list              *libcni.NetworkConfigList
	dataDir, cacheDir string
	release           func()
}

func openNode(t testing.TB, binDir string, conf []byte, nodeNS ns.NetNS) (*node, error) {
	dir, release, err := acquireNodeDir(nodeNS)
	if err != nil {
		return nil, err
	}
	dataDir := filepath.Join(dir, "host-local")
	list, err := parseConf(conf, dataDir)
	if err != nil {
		release()
		return nil, fmt.Errorf("CNI configuration: %w", err)
	}
	cacheDir := filepath.Join(dir, "cache")
	cfg := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(binDir), cacheDir, &nsExec{netns: nodeNS, logf: t.Logf})
	return &node{cfg: cfg, list: list, dataDir: dataDir, cacheDir: cacheDir, release: release}, nil
}

// GC runs CNI GC of the configuration conf (libcni's GCNetworkList) with
// the plugin processes inside nodeNS, on the cache and host-local data
// directory [Add] uses for nodeNS; valid lists the attachments the runtime
// still knows. libcni first DELs every attachment of the network it has a
// cached result of that valid does not list; then, for spec version 1.1.0
// and later, it runs GC of every plugin with cni.dev/valid-attachments.
func GC(t testing.TB, binDir string, conf []byte, nodeNS ns.NetNS, valid []types.GCAttachment) error {
	t.Helper()
	return onNode(t, binDir, conf, nodeNS, "GC", func(ctx context.Context, n *node) error {
		return n.cfg.GCNetworkList(ctx, n.list, &libcni.GCArgs{ValidAttachments: valid})
	})
}

// onNode runs op (CNI command command) on the configuration conf with the
// plugin processes inside nodeNS.
func onNode(t testing.TB, binDir string, conf []byte, nodeNS ns.NetNS, command string, op func(context.Context, *node) error) error {
	t.Helper()
	testnet.RequireRoot(t)
	n, err := openNode(t, binDir, conf, nodeNS)
	if err != nil {
		t.Fatal(err)
	}
	defer n.release()
	ctx, cancel := context.WithTimeout(context.Background(), pluginTimeout)
	defer cancel()
	if err := op(ctx, n); err != nil {
		return fmt.Errorf("CNI %s %s: %w", command, n.list.Name, err)
	}
	return nil
}

// Status runs CNI STATUS of the configuration conf (libcni's
// GetStatusNetworkList, which does nothing before spec version 1.1.0) with
// the plugin processes inside nodeNS. The error wraps the *types.Error of
// the first plugin that is not ready.
func Status(t testing.TB, binDir string, conf []byte, nodeNS ns.NetNS) error {
	t.Helper()
	return onNode(t, binDir, conf, nodeNS, "STATUS", func(ctx context.Context, n *node) error {
		return n.cfg.GetStatusNetworkList(ctx, n.list)
	})
}

// Invoke runs one plugin binary, found by name in binDir (a path list),
// the way a runtime does without libcni: CNI_COMMAND command, stdin as its
// network configuration (with a hand-written prevResult, say), for
// interface ifname of container containerID in the netns at netnsPath
// (empty where the command takes none). The process runs inside nodeNS,
// as with [Add]. Invoke returns the plugin's stdout; when the plugin
// fails, the error wraps the *types.Error it printed, if any.
func Invoke(ctx context.Context, binDir, plugin string, nodeNS ns.NetNS, command string, stdin []byte, containerID, netnsPath, ifname string) ([]byte, error) {
	return InvokeArgs(ctx, binDir, plugin, nodeNS, command, stdin, containerID, netnsPath, ifname, "")
}

// InvokeArgs is [Invoke] with CNI_ARGS args ("K=V;K2=V2", or "" for none).
func InvokeArgs(ctx context.Context, binDir, plugin string, nodeNS ns.NetNS, command string, stdin []byte, containerID, netnsPath, ifname, args string) ([]byte, error) {
	paths := filepath.SplitList(binDir)
	path, err := invoke.FindInPath(plugin, paths)
	if err != nil {
		return nil, err
	}
	a := &invoke.Args{Command: command, ContainerID: containerID, NetNS: netnsPath, IfName: ifname, PluginArgsStr: args, Path: strings.Join(paths, string(filepath.ListSeparator))}
	return (&nsExec{netns: nodeNS}).ExecPlugin(ctx, path, stdin, a.AsEnv())
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
