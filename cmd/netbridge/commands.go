package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/netbridge/netbridge/hypervisor/cloudhypervisor"
	"github.com/netbridge/netbridge/hypervisor/firecracker"
	"github.com/netbridge/netbridge/hypervisor/guest"
	"github.com/netbridge/netbridge/hypervisor/qemu"
	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/pkg/linkname"
	"github.com/netbridge/netbridge/pkg/probe"
	"github.com/netbridge/netbridge/pkg/state"
	"github.com/netbridge/netbridge/sandbox"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// common flags
type stateFlags struct {
	stateDir string
	timeout  time.Duration
}

// register adds --state-dir and --timeout (with the given default).
func (s *stateFlags) register(fs *flag.FlagSet, timeout time.Duration) {
	fs.StringVar(&s.stateDir, "state-dir", "", "state directory (default $NETBRIDGE_STATE_DIR, else /run/netbridge)")
	fs.DurationVar(&s.timeout, "timeout", timeout, "give up after this long, including the wait for another netbridge working on the same id")
}

// manager returns the library on the state directory of the flags:
// --state-dir, else $NETBRIDGE_STATE_DIR, else the default, logging to log.
func (s *stateFlags) manager(log *slog.Logger) *netbridge.Manager {
	return netbridge.New(state.Dir(s.stateDir), log)
}

func (s *stateFlags) context(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// listFlag is a comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	*l = nil
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// idFlag is an optional uint32 (a uid or gid).
type idFlag struct{ v *uint32 }

func (f *idFlag) String() string {
	if f.v == nil {
		return ""
	}
	return strconv.FormatUint(uint64(*f.v), 10)
}
func (f *idFlag) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return fmt.Errorf("want a numeric id: %w", err)
	}
	v := uint32(n)
	f.v = &v
	return nil
}

// setupOutput is what setup --output json prints.
type setupOutput struct {
	sandbox.Sandbox
	QEMU []string `json:"qemu"`
	// QEMUForm is "name" when QEMU opens the taps by name, "fd" when the
	// NICs must be passed as fds (a macvtap): QEMU holds fds= numbers
	// from 3, as netbridge exec passes them.
	QEMUForm      string `json:"qemu_form"`
	KernelCmdline string `json:"kernel_cmdline"`
}

// setupFlags are the flags that shape a setup, shared by setup and hook.
type setupFlags struct {
	cfg          sandbox.Config
	ifaces       listFlag
	owner, group idFlag
}

func (f *setupFlags) register(fs *flag.FlagSet) {
	fs.StringVar((*string)(&f.cfg.Model), "model", string(sandbox.ModelTCFilter), "how each interface is connected to its tap: "+modelList())
	fs.IntVar(&f.cfg.Queues, "queues", 1, "queues per tap (multi-queue virtio-net when > 1)")
	fs.StringVar((*string)(&f.cfg.Vhost), "vhost", string(sandbox.VhostOff), "use vhost-net: on, off or auto")
	fs.Var(&f.ifaces, "interfaces", "comma-separated interfaces to attach (default: every supported interface with an address)")
	fs.Var(&f.owner, "tap-owner", "uid allowed to open the taps (default: anyone with CAP_NET_ADMIN)")
	fs.Var(&f.group, "tap-group", "gid allowed to open the taps")
	fs.StringVar((*string)(&f.cfg.MacvtapMode), "macvtap-mode", string(sandbox.MacvtapBridge), "mode of the macvtap model: bridge or passthru")
	fs.StringVar(&f.cfg.CNICacheDir, "cni-cache-dir", "/var/lib/cni", "libcni's cache directory, where the guest's DNS is read from the sandbox's cached CNI results (empty: do not look)")
	fs.BoolVar(&f.cfg.Strict, "strict", false, "fail, rather than skip with a warning, on an interface with an address whose kind netbridge cannot carry")
}

// modelList names the models --model takes: "a, b, c".
func modelList() string {
	names := make([]string, len(sandbox.Models))
	for i, m := range sandbox.Models {
		names[i] = string(m)
	}
	return strings.Join(names, ", ")
}

// config returns the setup configuration.
func (f *setupFlags) config() sandbox.Config {
	c := f.cfg
	c.Interfaces, c.TapOwner, c.TapGroup = f.ifaces, f.owner.v, f.group.v
	return c
}

func runSetup(ctx context.Context, e *env, args []string) error {
	fs := newFlags("setup")
	var (
		setup     setupFlags
		sf        stateFlags
		netnsPath string
		id        string
		output    string
	)
	fs.StringVar(&netnsPath, "netns", "", "path of the sandbox network namespace (required), e.g. /run/netns/NAME or /proc/PID/ns/net")
	fs.StringVar(&id, "id", "", "sandbox id (required): letters, digits, '_', '.', '-', at most 128 bytes")
	fs.StringVar(&output, "output", "text", "output format: text or json")
	setup.register(fs)
	sf.register(fs, time.Minute)
	if err := parse(e.stdout, fs, args); err != nil {
		return err
	}
	if err := errors.Join(need("netns", netnsPath), need("id", id), checkOutput(output, "text", "json")); err != nil {
		return err
	}
	cfg := setup.config()
	cfg.ID, cfg.Netns = id, netnsPath
	ctx, cancel := sf.context(ctx)
	defer cancel()
	sb, err := sf.manager(nil).Setup(ctx, cfg)
	if err != nil {
		return err
	}
	args, byFD, err := qemuArgs(sb)
	if err != nil {
		return err
	}
	kip, kerr := guest.KernelIP(sb.NICs, sb.DNS.Nameservers...)
	if kerr != nil && !errors.Is(kerr, guest.ErrUnsupported) {
		return kerr
	}
	if output == "json" {
		form := "name"
		if byFD {
			form = "fd"
		}
		return writeJSON(e.stdout, setupOutput{Sandbox: *sb, QEMU: args, QEMUForm: form, KernelCmdline: kip})
	}
	fmt.Fprintf(e.stdout, "sandbox %s wired in %s (model %s)\n\n", sb.ID, sb.Netns, sb.Model)
	printNICs(e.stdout, sb.NICs)
	for _, n := range sb.NICs {
		if n.Why != "" {
			fmt.Fprintf(e.stdout, "%s: model %s (%s)\n", n.Name, n.Model, n.Why)
		}
	}
	for _, w := range sb.Warnings {
		fmt.Fprintf(e.stdout, "warning: %s\n", w)
	}
	if byFD {
		fmt.Fprintf(e.stdout, "\n%s\nQEMU arguments, fd form (start QEMU with 'netbridge exec --id %s -- qemu-system-...'):\n  %s\n", fdOnlyNote, sb.ID, qemu.Quote(args))
	} else {
		fmt.Fprintf(e.stdout, "\nQEMU arguments (run QEMU inside the netns):\n  %s\n", qemu.Quote(args))
	}
	switch {
	case kip != "":
		fmt.Fprintf(e.stdout, "Guest kernel command line:\n  %s\n", kip)
	case kerr != nil:
		fmt.Fprintf(e.stdout, "No guest kernel ip= parameter: %v\nUse 'netbridge render --for guest-json' instead.\n", kerr)
	}
	return nil
}

func printNICs(w io.Writer, nics []sandbox.NIC) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INTERFACE\tKIND\tTAP\tGUEST MAC\tMTU\tQUEUES\tADDRESSES")
	for _, n := range nics {
		var addrs []string
		for _, a := range n.Addresses {
			addrs = append(addrs, a.String())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", n.Name, n.Kind, n.Tap, n.GuestMAC, n.MTU, n.Queues, strings.Join(addrs, ","))
	}
	tw.Flush()
}

// idFlags parses the flags of a command that acts on one recorded sandbox:
// --id (required), --state-dir and --timeout.
func idFlags(e *env, name string, args []string) (id string, sf stateFlags, err error) {
	fs := newFlags(name)
	fs.StringVar(&id, "id", "", "sandbox id (required)")
	sf.register(fs, time.Minute)
	if err := parse(e.stdout, fs, args); err != nil {
		return "", sf, err
	}
	return id, sf, need("id", id)
}

func runTeardown(ctx context.Context, e *env, args []string) error {
	id, sf, err := idFlags(e, "teardown", args)
	if err != nil {
		return err
	}
	ctx, cancel := sf.context(ctx)
	defer cancel()
	// Warnings (a replaced interface left alone, a link of our name that
	// is not ours) go to standard error.
	warn := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return sf.manager(warn).Teardown(ctx, id)
}

func runPrune(ctx context.Context, e *env, args []string) error {
	fs := newFlags("prune")
	var sf stateFlags
	sf.register(fs, time.Minute)
	if err := parse(e.stdout, fs, args); err != nil {
		return err
	}
	ctx, cancel := sf.context(ctx)
	defer cancel()
	pruned, err := sf.manager(nil).Prune(ctx)
	for _, id := range pruned {
		fmt.Fprintf(e.stdout, "removed the record of %s: its netns is gone\n", id)
	}
	if len(pruned) == 0 && err == nil {
		fmt.Fprintln(e.stdout, "no stale records")
	}
	return err
}

func runCheck(ctx context.Context, e *env, args []string) error {
	id, sf, err := idFlags(e, "check", args)
	if err != nil {
		return err
	}
	ctx, cancel := sf.context(ctx)
	defer cancel()
	err = sf.manager(nil).Check(ctx, id)
	var ce *netbridge.CheckError
	if errors.As(err, &ce) {
		for _, p := range ce.Problems {
			fmt.Fprintf(e.stdout, "problem: %s\n", p)
		}
	} else if err == nil {
		fmt.Fprintf(e.stdout, "sandbox %s: wiring intact\n", id)
	}
	return err
}

func runStatus(ctx context.Context, e *env, args []string) error {
	fs := newFlags("status")
	var (
		id, output string
		sf         stateFlags
	)
	fs.StringVar(&id, "id", "", "show only this sandbox")
	fs.StringVar(&output, "output", "text", "output format: text (a picture of the wiring), json or dot (Graphviz)")
	sf.register(fs, time.Minute)
	if err := parse(e.stdout, fs, args); err != nil {
		return err
	}
	if err := checkOutput(output, "text", "json", "dot"); err != nil {
		return err
	}
	// A record that cannot be read is reported, and the rest still shown.
	all, listErr := sf.manager(nil).List(ctx)
	if all == nil {
		return listErr
	}
	if id != "" {
		var one []netbridge.Status
		for _, s := range all {
			if s.ID == id {
				one = append(one, s)
			}
		}
		if len(one) == 0 {
			if err := recordError(listErr, id); err != nil {
				return err
			}
			return fmt.Errorf("sandbox %q: %w", id, netbridge.ErrNotFound)
		}
		all, listErr = one, nil // the other records are not asked about
	}
	if err := showStatus(e, output, id, all, listErr != nil); err != nil {
		return err
	}
	return listErr
}

// recordError returns the error of the record of id among the errors of
// List, nil when there is none.
func recordError(listErr error, id string) error {
	var errs []error
	if j, ok := listErr.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else if listErr != nil {
		errs = []error{listErr}
	}
	for _, err := range errs {
		var re *netbridge.RecordError
		if errors.As(err, &re) && re.ID == id {
			return err
		}
	}
	return nil
}

// showStatus prints the sandboxes of status; unreadable says that some
// records could not be read (and are reported apart).
func showStatus(e *env, output, id string, all []netbridge.Status, unreadable bool) error {
	switch output {
	case "json":
		if id != "" {
			return writeJSON(e.stdout, all[0])
		}
		return writeJSON(e.stdout, all)
	case "dot":
		drawDot(e.stdout, all)
		return nil
	}
	if len(all) == 0 && !unreadable {
		fmt.Fprintln(e.stdout, "no sandboxes recorded")
	}
	for i, s := range all {
		if i > 0 {
			fmt.Fprintln(e.stdout)
		}
		phase := s.Phase
		if s.Stale {
			phase = "stale (its netns is gone; 'netbridge prune' removes the record)"
		}
		fmt.Fprintf(e.stdout, "sandbox %s: %s, model %s, netns %s, since %s\n\n", s.ID, phase, s.Model, s.Netns, s.Created.Format(time.RFC3339))
		drawNICs(e.stdout, s.NICs)
		for _, w := range s.Warnings {
			fmt.Fprintf(e.stdout, "warning: %s\n", w)
		}
	}
	return nil
}

func runDiscover(ctx context.Context, e *env, args []string) error {
	fs := newFlags("discover")
	var (
		path, output string
		ifaces       listFlag
	)
	fs.StringVar(&path, "netns", "", "path of the network namespace (required)")
	fs.Var(&ifaces, "interfaces", "comma-separated interfaces setup would be told to attach")
	fs.StringVar(&output, "output", "text", "output format: text or json")
	if err := parse(e.stdout, fs, args); err != nil {
		return err
	}
	if err := errors.Join(need("netns", path), checkOutput(output, "text", "json")); err != nil {
		return err
	}
	ifs, err := netbridge.Discover(ctx, path, ifaces)
	if err != nil {
		return err
	}
	for i := range ifs {
		ifs[i].Reason = interfacesReason(ifs[i])
	}
	if output == "json" {
		return writeJSON(e.stdout, ifs)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INTERFACE\tKIND\tMAC\tMTU\tSTATE\tADDRESSES\tROUTES\tATTACH")
	for _, i := range ifs {
		var addrs, routes []string
		for _, a := range i.Addresses {
			addrs = append(addrs, a.String())
		}
		for _, r := range i.Routes {
			s := r.Dst.String()
			if r.Gw.IsValid() {
				s += " via " + r.Gw.String()
			}
			if r.MTU > 0 {
				s += fmt.Sprintf(" mtu %d", r.MTU)
			}
			routes = append(routes, s)
		}
		state, attach := "down", "yes"
		if i.Up {
			state = "up"
		}
		if !i.Attach {
			attach = "no: " + i.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", linkname.Show(i.Name), i.Kind, i.MAC, i.MTU, state, dash(addrs), dash(routes), attach)
	}
	return tw.Flush()
}

func dash(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

// renderTargets lists the values of render --for.
const renderTargets = "qemu, qmp, cloud-hypervisor, firecracker, kernel-cmdline, guest-cmdline, guest-json or cloud-init"

// fdOnlyNote says why a sandbox's QEMU arguments are in the fd form.
const fdOnlyNote = "A macvtap can only be handed to QEMU as open file descriptors, not by name."

// qemuArgs returns the QEMU NIC arguments: by name, or in the fd form
// (numbered from 3) when a NIC is a macvtap.
func qemuArgs(sb *sandbox.Sandbox) (args []string, byFD bool, err error) {
	for _, n := range sb.NICs {
		if n.Device != "" {
			args, err = qemu.FDLayout(sb.NICs, qemu.Options{}, 3)
			return args, true, err
		}
	}
	args, err = qemu.ByName(sb.NICs, qemu.Options{})
	return args, false, err
}

// renderers maps render --for values to their output; note, when set, goes
// to stderr.
var renderers = map[string]func(sb *sandbox.Sandbox) (out, note string, err error){
	"qemu": func(sb *sandbox.Sandbox) (string, string, error) {
		args, byFD, err := qemuArgs(sb)
		note := ""
		if byFD {
			note = fdOnlyNote + " These are the fd-form arguments, with fds numbered from 3; start QEMU with 'netbridge exec --id " + sb.ID + " -- qemu-system-...', which opens the queues and passes them."
		}
		return qemu.Quote(args), note, err
	},
	"kernel-cmdline": func(sb *sandbox.Sandbox) (string, string, error) {
		s, err := guest.KernelIP(sb.NICs, sb.DNS.Nameservers...)
		if err == nil && s == "" {
			err = fmt.Errorf("no NIC of sandbox %q has an IPv4 address; the kernel ip= parameter cannot express IPv6 (use --for guest-json)", sb.ID)
		}
		return s, "", err
	},
	"qmp": func(sb *sandbox.Sandbox) (string, string, error) {
		cmds, err := qemu.QMPCommands(sb.NICs, nil)
		if err != nil {
			return "", "", err
		}
		b, err := qemu.QMPLines(cmds)
		return strings.TrimSuffix(string(b), "\n"), "each getfd carries one queue fd (SCM_RIGHTS); 'netbridge hotplug --id " + sb.ID + " --qmp SOCKET' sends them", err
	},
	"cloud-hypervisor": func(sb *sandbox.Sandbox) (string, string, error) {
		byFD := false
		for _, n := range sb.NICs {
			byFD = byFD || n.Device != ""
		}
		vals, err := cloudhypervisor.NetArgs(sb.NICs, 3, byFD)
		if err != nil {
			return "", "", err
		}
		var args []string
		for _, v := range vals {
			args = append(args, "--net", v)
		}
		note := ""
		if byFD {
			note = fdOnlyNote + " These --net values name fds from 3."
		}
		return qemu.Quote(args), note, nil
	},
	"firecracker": func(sb *sandbox.Sandbox) (string, string, error) {
		b, err := firecracker.NetworkInterfaces(sb.NICs)
		return strings.TrimSuffix(string(b), "\n"), "", err
	},
	"cloud-init": func(sb *sandbox.Sandbox) (string, string, error) {
		b, err := guest.CloudInit(*sb)
		return strings.TrimSuffix(string(b), "\n"), "", err
	},
	"guest-cmdline": func(sb *sandbox.Sandbox) (string, string, error) {
		s, err := guest.Cmdline(sb.NICs)
		return s, "", err
	},
	"guest-json": func(sb *sandbox.Sandbox) (string, string, error) {
		b, err := guest.JSON(*sb)
		return strings.TrimSuffix(string(b), "\n"), "", err
	},
}

func runRender(ctx context.Context, e *env, args []string) error {
	fs := newFlags("render")
	var (
		id, target string
		sf         stateFlags
	)
	fs.StringVar(&id, "id", "", "sandbox id (required)")
	fs.StringVar(&target, "for", "", "what to render (required): "+renderTargets)
	sf.register(fs, time.Minute)
	if err := parse(e.stdout, fs, args); err != nil {
		return err
	}
	if err := errors.Join(need("id", id), need("for", target)); err != nil {
		return err
	}
	r, ok := renderers[target]
	if !ok {
		return usagef("--for %q: use %s", target, renderTargets)
	}
	sb, err := sf.manager(nil).Load(ctx, id)
	if err != nil {
		return err
	}
	out, note, err := r(sb)
	if err != nil {
		return err
	}
	if note != "" {
		fmt.Fprintf(e.stderr, "netbridge render: %s\n", note)
	}
	_, err = fmt.Fprintln(e.stdout, out)
	return err
}

func runProbe(_ context.Context, e *env, args []string) error {
	fs := newFlags("probe")
	var output string
	fs.StringVar(&output, "output", "text", "output format: text or json")
	if err := parse(e.stdout, fs, args); err != nil {
		return err
	}
	if err := checkOutput(output, "text", "json"); err != nil {
		return err
	}
	f, err := probe.Run()
	if err != nil {
		return err
	}
	models := netbridge.ModelSupport(f)
	if output == "json" {
		return writeJSON(e.stdout, struct {
			Features probe.Features             `json:"features"`
			Models   []netbridge.ModelAvailable `json:"models"`
		}{f, models})
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FEATURE\tAVAILABLE\tDETAIL")
	for _, r := range f {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, yesNo(r.Available), r.Detail)
	}
	fmt.Fprintln(tw, "\nMODEL\tWORKS\tDETAIL")
	for _, m := range models {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", m.Model, yesNo(m.Works), m.Detail)
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func runVersion(_ context.Context, e *env, args []string) error {
	fs := newFlags("version")
	if err := parse(e.stdout, fs, args); err != nil {
		return err
	}
	v := version
	if v == "" {
		v = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			v = bi.Main.Version
		}
	}
	_, err := fmt.Fprintf(e.stdout, "netbridge %s\n", v)
	return err
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
