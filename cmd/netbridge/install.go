package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/netbridge/netbridge/hooks"
	"github.com/netbridge/netbridge/pkg/nodeinstall"
)

// defaultConfDir is where runtimes read CNI configuration by default.
const defaultConfDir = "/etc/cni/net.d"

// pluginBinary is the name of the CNI plugin's binary beside netbridge.
const pluginBinary = "netbridge-cni"

// installFlags are the flags install and uninstall share.
type installFlags struct {
	opts   nodeinstall.Options
	binDir string
}

func (f *installFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.opts.ConfDir, "cni-conf-dir", defaultConfDir, "CNI configuration directory the runtime reads")
	fs.StringVar(&f.binDir, "cni-bin-dir", "", "CNI bin directory (default: the first of /opt/cni/bin and /usr/lib/cni that holds plugins)")
	fs.StringVar(&f.opts.HooksDir, "hooks-dir", "", "also write (uninstall: remove) containers hooks.d entries in this directory")
	fs.StringVar(&f.opts.Plugin, "cni-plugin", "", "the netbridge CNI plugin binary to install (default: "+pluginBinary+" beside this binary)")
}

// resolve fills in the defaults that depend on the machine, telling the
// user which bin dir was chosen.
func (f *installFlags) resolve(e *env) error {
	self, err := os.Executable()
	if err == nil {
		self, err = filepath.Abs(self)
	}
	if err != nil {
		return fmt.Errorf("finding this binary: %w", err)
	}
	f.opts.CLI = self
	if f.opts.Plugin == "" {
		f.opts.Plugin = filepath.Join(filepath.Dir(self), pluginBinary)
	}
	f.opts.BinDir = f.binDir
	if f.opts.BinDir == "" {
		d, err := nodeinstall.DetectBinDir(nodeinstall.DefaultBinDirs)
		if err != nil {
			return usageError{fmt.Errorf("%w: use --cni-bin-dir", err)}
		}
		f.opts.BinDir = d
		fmt.Fprintf(e.stderr, "netbridge: CNI bin directory %s (found plugins there; --cni-bin-dir chooses another)\n", d)
	}
	return nil
}

func runInstall(ctx context.Context, e *env, args []string) error {
	fs := newFlags("install")
	var (
		f     installFlags
		watch bool
	)
	f.register(fs)
	fs.StringVar(&f.opts.Network, "network", "", "name of the network to chain netbridge to (default: the configuration the runtime uses, the lexically first file)")
	fs.StringVar(&f.opts.PodAnnotation, "pod-annotation", "", "act only for pods with this annotation: KEY (present and not \"false\") or KEY=VALUE")
	fs.StringVar(&f.opts.StateDir, "state-dir", "", "netbridge's state directory, written into the configuration (default: the plugin's)")
	fs.BoolVar(&watch, "watch", false, "stay in the foreground and put netbridge back whenever the network provider rewrites its configuration")
	if err := parse(e.stdout, fs, args); err != nil {
		return err
	}
	if err := f.resolve(e); err != nil {
		return err
	}
	if _, err := os.Stat(f.opts.Plugin); err != nil {
		return usagef("--cni-plugin: %v", err)
	}
	if f.opts.HooksDir != "" {
		var extra []string
		if f.opts.StateDir != "" {
			extra = []string{"--state-dir", f.opts.StateDir}
		}
		f.opts.HookEntries = func(binary, stage string) ([]byte, error) {
			return hooks.HooksConfig(binary, stage, hooks.DefaultTimeout, extra)
		}
	}
	if !watch {
		r, err := nodeinstall.Install(f.opts)
		printResult(e, r)
		if errors.Is(err, nodeinstall.ErrNoNetwork) {
			return usageError{err}
		}
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := nodeinstall.Watch(ctx, f.opts, func(r nodeinstall.Result, err error) {
		printResult(e, r)
		if err != nil {
			fmt.Fprintf(e.stderr, "netbridge install: %v (watching on)\n", err)
		}
		if e.flush != nil {
			e.flush()
		}
	})
	if err == nil {
		fmt.Fprintln(e.stdout, "stopped watching; the installation stays (netbridge uninstall removes it)")
	}
	return err
}

func runUninstall(_ context.Context, e *env, args []string) error {
	fs := newFlags("uninstall")
	var f installFlags
	f.register(fs)
	if err := parse(e.stdout, fs, args); err != nil {
		return err
	}
	if err := f.resolve(e); err != nil {
		return err
	}
	r, err := nodeinstall.Uninstall(f.opts)
	printResult(e, r)
	return err
}

// printResult prints one line per file changed and per note.
func printResult(e *env, r nodeinstall.Result) {
	for _, c := range r.Changes {
		fmt.Fprintf(e.stdout, "%s %s\n", c.What, c.Path)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(e.stdout, "note: %s\n", n)
	}
	if r.ConfFile != "" && len(r.Changes) == 0 {
		fmt.Fprintf(e.stdout, "netbridge is chained in %s; nothing to change\n", r.ConfFile)
	}
}
