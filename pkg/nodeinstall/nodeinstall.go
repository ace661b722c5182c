// Package nodeinstall installs netbridge on a node the way CNI add-on
// installers do: it copies the chained plugin into the CNI bin directory,
// appends netbridge to the network configuration the runtime uses, writes
// containers hooks.d entries when asked, and undoes exactly that.
//
// Every file is written atomically (a temporary file in the same
// directory, then a rename), because the runtime may read the CNI
// configuration at any moment. The temporary files' names end in ".tmp",
// which no runtime reads as a network configuration.
//
// What install added is marked in the file itself: the netbridge entry of
// a configuration list carries an "installedBy" object holding the file as
// it was before (see [Marker]). Uninstall removes only entries with that
// mark, and puts the original bytes back when nothing else changed since,
// including a single-plugin .conf that install turned into a .conflist.
package nodeinstall

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// PluginType is the CNI type of netbridge's plugin: the name of its binary
// in the CNI bin directory.
const PluginType = "netbridge"

// HookBinary is the name under which install copies the netbridge CLI into
// the CNI bin directory when it writes hooks.d entries: the hooks need a
// path on the node, and the bin directory is the one install may write.
const HookBinary = "netbridge-cli"

// PodAnnotationsCapability is the CNI capability under which containerd
// and CRI-O pass a pod's annotations in runtimeConfig.
const PodAnnotationsCapability = "io.kubernetes.cri.pod-annotations"

// MarkerKey is the key of the netbridge entry that marks it as added by
// install.
const MarkerKey = "installedBy"

// markerTool is the value of Marker.Tool.
const markerTool = "netbridge install"

// Marker is what install records in the entry it adds: enough to undo it.
type Marker struct {
	// Tool is "netbridge install".
	Tool string `json:"tool"`
	// ConvertedFrom is the name of the single-plugin configuration file
	// that install turned into this .conflist; empty when the file was a
	// configuration list already.
	ConvertedFrom string `json:"convertedFrom,omitempty"`
	// Original is the file as it was before install changed it, base64.
	Original string `json:"original"`
}

// ErrNoNetwork reports a CNI configuration directory without a network
// configuration to chain netbridge to.
var ErrNoNetwork = errors.New("no CNI network configuration")

// Options says where to install and what.
type Options struct {
	// ConfDir is the CNI configuration directory the runtime reads.
	ConfDir string
	// BinDir is the CNI bin directory.
	BinDir string
	// Network names the network to chain netbridge to; empty means the
	// configuration the runtime uses: the lexically first file.
	Network string
	// PodAnnotation, when set, restricts netbridge to pods with that
	// annotation (KEY, or KEY=VALUE); it also declares the capability that
	// makes the runtime pass pod annotations.
	PodAnnotation string
	// StateDir is netbridge's state directory in the entry; empty keeps
	// the plugin's default.
	StateDir string
	// HooksDir, when set, receives the containers hooks.d entries.
	HooksDir string
	// Plugin is the path of the netbridge-cni binary to copy.
	Plugin string
	// CLI is the path of the netbridge binary to copy for the hooks;
	// needed with HooksDir only.
	CLI string
	// HookEntries returns the hooks.d entry of a stage for a hook binary
	// at the given path (hooks.HooksConfig); needed with HooksDir only.
	HookEntries func(binary, stage string) ([]byte, error)
}

// Stages are the hook stages whose hooks.d entries install writes.
var Stages = []string{"prestart", "poststop"}

// HookFile returns the name of the hooks.d entry of stage.
func HookFile(stage string) string { return "50-netbridge-" + stage + ".json" }

// Change is one file install or uninstall wrote or removed.
type Change struct {
	Path string
	What string // "wrote", "removed", "restored"
}

// Result is what a call changed; empty when nothing needed to.
type Result struct {
	// ConfFile is the network configuration netbridge is chained to.
	ConfFile string
	Changes  []Change
	// Notes are things the caller should tell the user.
	Notes []string
}

// Install installs netbridge as Options say. It is idempotent: a second
// call changes nothing.
func Install(o Options) (Result, error) {
	var r Result
	if err := o.check(); err != nil {
		return r, err
	}
	if err := installBinary(&r, o.Plugin, filepath.Join(o.BinDir, PluginType)); err != nil {
		return r, err
	}
	if o.HooksDir != "" {
		hookBin := filepath.Join(o.BinDir, HookBinary)
		if err := installBinary(&r, o.CLI, hookBin); err != nil {
			return r, err
		}
		for _, stage := range Stages {
			b, err := o.HookEntries(hookBin, stage)
			if err != nil {
				return r, err
			}
			if err := writeIfChanged(&r, filepath.Join(o.HooksDir, HookFile(stage)), b, 0o644); err != nil {
				return r, err
			}
		}
	}
	err := InstallConf(&r, o)
	return r, err
}

func (o Options) check() error {
	switch {
	case o.ConfDir == "":
		return errors.New("no CNI configuration directory")
	case o.BinDir == "":
		return errors.New("no CNI bin directory")
	case o.Plugin == "":
		return errors.New("no netbridge CNI plugin binary to install")
	case o.HooksDir != "" && (o.CLI == "" || o.HookEntries == nil):
		return errors.New("hooks.d entries need the netbridge binary")
	}
	return validSelector(o.PodAnnotation)
}

// validSelector checks a pod annotation selector, KEY or KEY=VALUE.
func validSelector(s string) error {
	if s == "" {
		return nil
	}
	key, _, _ := strings.Cut(s, "=")
	if key == "" {
		return fmt.Errorf("pod annotation selector %q: the key is empty (want KEY or KEY=VALUE)", s)
	}
	return nil
}

// InstallConf appends netbridge's entry to the network configuration that
// Options name (converting a single-plugin file to a list), or updates the
// entry install added earlier, recording what it wrote in r.
func InstallConf(r *Result, o Options) error {
	c, err := chooseConf(o.ConfDir, o.Network)
	if err != nil {
		return err
	}
	r.ConfFile = c.path
	plugins := c.plugins()
	for i, p := range plugins {
		if pluginType(p) != PluginType {
			continue
		}
		if _, ours := p[MarkerKey]; !ours {
			r.Notes = append(r.Notes, fmt.Sprintf("%s chains netbridge already (an entry not added by install); left as it is", c.path))
			return nil
		}
		if i != len(plugins)-1 {
			// Ours, but no longer last: the provider added plugins after
			// it. Move it to the end.
			plugins = slices.Delete(plugins, i, i+1)
			break
		}
		want := o.entry(p[MarkerKey])
		if jsonEqual(p, want) {
			return nil
		}
		plugins = plugins[:i]
		break
	}
	var marker json.RawMessage
	for _, p := range c.plugins() {
		if m, ok := p[MarkerKey]; ok && pluginType(p) == PluginType {
			marker = m
		}
	}
	if marker == nil {
		m, err := json.Marshal(Marker{Tool: markerTool, ConvertedFrom: c.convertedFrom(), Original: base64.StdEncoding.EncodeToString(c.raw)})
		if err != nil {
			return err
		}
		marker = m
	}
	list, err := c.withPlugins(append(plugins, o.entry(marker)))
	if err != nil {
		return err
	}
	target := c.listPath()
	if err := writeIfChanged(r, target, list, c.mode); err != nil {
		return err
	}
	r.ConfFile = target
	if target != c.path {
		if err := os.Remove(c.path); err != nil {
			return fmt.Errorf("removing %s after writing %s: %w", c.path, target, err)
		}
		r.Changes = append(r.Changes, Change{c.path, "removed"})
	}
	return nil
}

// entry is netbridge's entry in a configuration list.
func (o Options) entry(marker json.RawMessage) map[string]json.RawMessage {
	e := map[string]json.RawMessage{"type": mustJSON(PluginType), MarkerKey: marker}
	if o.PodAnnotation != "" {
		e["podAnnotation"] = mustJSON(o.PodAnnotation)
		e["capabilities"] = mustJSON(map[string]bool{PodAnnotationsCapability: true})
	}
	if o.StateDir != "" {
		e["stateDir"] = mustJSON(o.StateDir)
	}
	return e
}

// Uninstall removes exactly what Install added: netbridge's marked entries
// (restoring each file's original bytes when nothing else changed in it,
// and a converted .conf as it was), the hooks.d entries that run the
// installed hook binary, and the binaries when they are the ones Options
// name.
func Uninstall(o Options) (Result, error) {
	var r Result
	if o.ConfDir == "" || o.BinDir == "" {
		return r, errors.New("uninstall needs the CNI configuration and bin directories")
	}
	files, err := confFiles(o.ConfDir)
	if err != nil {
		return r, err
	}
	var errs []error
	for _, f := range files {
		if err := uninstallConf(&r, f); err != nil {
			errs = append(errs, err)
		}
	}
	if o.HooksDir != "" {
		hookBin := filepath.Join(o.BinDir, HookBinary)
		for _, stage := range Stages {
			p := filepath.Join(o.HooksDir, HookFile(stage))
			if runsBinary(p, hookBin) {
				errs = append(errs, remove(&r, p))
			}
		}
		if sameContent(hookBin, o.CLI) {
			errs = append(errs, remove(&r, hookBin))
		}
	}
	plugin := filepath.Join(o.BinDir, PluginType)
	switch {
	case o.Plugin != "" && sameContent(plugin, o.Plugin):
		errs = append(errs, remove(&r, plugin))
	case exists(plugin):
		r.Notes = append(r.Notes, fmt.Sprintf("%s is not the plugin this netbridge installs; left in place", plugin))
	}
	return r, errors.Join(errs...)
}

// uninstallConf removes the marked netbridge entries of the configuration
// file path, if it has any.
func uninstallConf(r *Result, path string) error {
	c, err := readConf(path)
	if err != nil || !c.isList() {
		return nil // not ours to repair: install writes lists only
	}
	plugins := c.plugins()
	var m *Marker
	kept := plugins[:0:0]
	for _, p := range plugins {
		if raw, ok := p[MarkerKey]; ok && pluginType(p) == PluginType {
			var mk Marker
			if json.Unmarshal(raw, &mk) == nil && mk.Tool == markerTool {
				m = &mk
				continue
			}
		}
		kept = append(kept, p)
	}
	if m == nil {
		return nil
	}
	edited, err := c.withPlugins(kept)
	if err != nil {
		return err
	}
	target, out := path, edited
	if orig, err := base64.StdEncoding.DecodeString(m.Original); err == nil && equivalent(orig, edited) {
		out = orig
		if m.ConvertedFrom != "" {
			target = filepath.Join(filepath.Dir(path), filepath.Base(m.ConvertedFrom))
		}
	}
	if err := writeIfChanged(r, target, out, c.mode); err != nil {
		return err
	}
	if target != path {
		return remove(r, path)
	}
	return nil
}

// equivalent reports whether orig, a single-plugin or list configuration,
// says the same as list, a configuration list.
func equivalent(orig, list []byte) bool {
	o := &conf{raw: orig}
	if json.Unmarshal(orig, &o.top) != nil {
		return false
	}
	as, err := o.withPlugins(o.plugins())
	if err != nil {
		return false
	}
	return jsonBytesEqual(as, list)
}

// conf is a network configuration file.
type conf struct {
	path string
	raw  []byte
	mode os.FileMode
	top  map[string]json.RawMessage
}

// confExts are the extensions libcni reads from a configuration directory.
var confExts = []string{".conf", ".conflist", ".json"}

// confFiles lists the configuration files of dir, sorted by name, as the
// runtimes do.
func confFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading the CNI configuration directory: %w", err)
	}
	var files []string
	for _, e := range ents {
		if e.Type().IsRegular() && slices.Contains(confExts, filepath.Ext(e.Name())) {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(files)
	return files, nil
}

// chooseConf returns the configuration to chain netbridge to: the one of
// network name when set, else the first file (the one the runtime uses).
func chooseConf(dir, name string) (*conf, error) {
	files, err := confFiles(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, f := range files {
		c, err := readConf(f)
		if err != nil {
			if name == "" {
				return nil, err // the runtime would use this file: say what is wrong
			}
			continue
		}
		if name == "" || c.name() == name {
			return c, nil
		}
		names = append(names, c.name())
	}
	if name != "" {
		return nil, fmt.Errorf("%w named %q in %s (have: %s)", ErrNoNetwork, name, dir, strings.Join(names, ", "))
	}
	return nil, fmt.Errorf("%w in %s: install the cluster's network (CNI) provider first, or point --cni-conf-dir at the directory the runtime reads", ErrNoNetwork, dir)
}

func readConf(path string) (*conf, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c := &conf{path: path, raw: raw, mode: fi.Mode().Perm()}
	if err := json.Unmarshal(raw, &c.top); err != nil || c.top == nil {
		return nil, fmt.Errorf("CNI configuration %s is not a JSON object: %v", path, err)
	}
	if c.name() == "" {
		return nil, fmt.Errorf("CNI configuration %s has no network name", path)
	}
	return c, nil
}

func (c *conf) name() string {
	var s string
	_ = json.Unmarshal(c.top["name"], &s)
	return s
}

func (c *conf) isList() bool {
	_, ok := c.top["plugins"]
	return ok
}

// plugins returns the plugin entries: the list's, or the single plugin of
// a .conf without its cniVersion and name.
func (c *conf) plugins() []map[string]json.RawMessage {
	if c.isList() {
		var ps []map[string]json.RawMessage
		_ = json.Unmarshal(c.top["plugins"], &ps)
		return ps
	}
	p := map[string]json.RawMessage{}
	for k, v := range c.top {
		if k != "cniVersion" && k != "name" && k != "cniVersions" && k != "disableCheck" && k != "disableGC" {
			p[k] = v
		}
	}
	return []map[string]json.RawMessage{p}
}

// withPlugins returns the file as a configuration list holding plugins.
func (c *conf) withPlugins(plugins []map[string]json.RawMessage) ([]byte, error) {
	top := map[string]json.RawMessage{}
	if c.isList() {
		for k, v := range c.top {
			top[k] = v
		}
	} else {
		for _, k := range []string{"cniVersion", "name", "cniVersions", "disableCheck", "disableGC"} {
			if v, ok := c.top[k]; ok {
				top[k] = v
			}
		}
	}
	ps, err := json.Marshal(plugins)
	if err != nil {
		return nil, err
	}
	top["plugins"] = ps
	b, err := json.MarshalIndent(top, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// listPath is where the file's configuration list goes: the file itself,
// or for a single-plugin file the same name with the .conflist extension.
func (c *conf) listPath() string {
	if c.isList() {
		return c.path
	}
	return strings.TrimSuffix(c.path, filepath.Ext(c.path)) + ".conflist"
}

func (c *conf) convertedFrom() string {
	if c.isList() {
		return ""
	}
	return filepath.Base(c.path)
}

func pluginType(p map[string]json.RawMessage) string {
	var s string
	_ = json.Unmarshal(p["type"], &s)
	return s
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// jsonEqual reports whether two entries hold the same JSON values.
func jsonEqual(a, b map[string]json.RawMessage) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && jsonBytesEqual(x, y)
}

func jsonBytesEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// installBinary copies src to dst atomically, unless dst holds the same
// bytes already.
func installBinary(r *Result, src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("reading %s to install it: %w", src, err)
	}
	return writeIfChanged(r, dst, b, 0o755)
}

// writeIfChanged writes b to path atomically, unless path holds b already.
func writeIfChanged(r *Result, path string, b []byte, mode os.FileMode) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		return nil
	}
	if err := WriteAtomic(path, b, mode); err != nil {
		return err
	}
	r.Changes = append(r.Changes, Change{path, "wrote"})
	return nil
}

// WriteAtomic writes b to path with mode: into a temporary file in the
// same directory (named .NAME.*.tmp, which no runtime reads as a
// configuration), then renamed over path, so that a reader sees the old
// file or the new one, never a part.
func WriteAtomic(path string, b []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func remove(r *Result, path string) error {
	if err := os.Remove(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("removing %s: %w", path, err)
	}
	r.Changes = append(r.Changes, Change{path, "removed"})
	return nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// sameContent reports whether files a and b exist and hold the same bytes.
func sameContent(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	fa, err := os.Open(a)
	if err != nil {
		return false
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false
	}
	defer fb.Close()
	x, err1 := io.ReadAll(fa)
	y, err2 := io.ReadAll(fb)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// runsBinary reports whether the hooks.d entry at path runs binary.
func runsBinary(path, binary string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var e struct {
		Hook struct {
			Path string `json:"path"`
		} `json:"hook"`
	}
	return json.Unmarshal(b, &e) == nil && e.Hook.Path == binary
}

// DefaultBinDirs are the CNI bin directories DetectBinDir looks for, in
// order: the upstream default, then Debian's and Ubuntu's.
var DefaultBinDirs = []string{"/opt/cni/bin", "/usr/lib/cni"}

// DetectBinDir returns the first of dirs that holds CNI plugins (a
// loopback or bridge binary), else the first that exists.
func DetectBinDir(dirs []string) (string, error) {
	for _, d := range dirs {
		for _, p := range []string{"loopback", "bridge", "host-local"} {
			if exists(filepath.Join(d, p)) {
				return d, nil
			}
		}
	}
	for _, d := range dirs {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			return d, nil
		}
	}
	return "", fmt.Errorf("no CNI bin directory found (looked in %s); name the one your runtime uses", strings.Join(dirs, ", "))
}
