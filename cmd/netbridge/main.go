// Command netbridge connects the CNI interfaces of a VM sandbox's network
// namespace to tap devices and prints what the hypervisor needs.
//
// Run "netbridge help" for the commands.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/pkg/sandboxid"
	"github.com/netbridge/netbridge/sandbox"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // the operation failed
	exitUsage = 2 // the command line or its input is wrong; nothing changed
)

// command is one subcommand.
type command struct {
	name    string
	args    string // synopsis after the name
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

// commands is filled in by init: the commands' flag usage refers back to it.
var commands []command

func init() {
	commands = []command{
		{"setup", "--netns PATH --id ID [--model M] [--queues N] [--vhost V] [--interfaces LIST] [--output text|json]", "wire the sandbox's interfaces to taps", runSetup},
		{"teardown", "--id ID", "undo a setup exactly (idempotent)", runTeardown},
		{"check", "--id ID", "verify that a setup's wiring is intact", runCheck},
		{"status", "[--id ID] [--output text|json]", "show recorded sandboxes", runStatus},
		{"prune", "[--state-dir DIR]", "remove the records of sandboxes whose netns is gone (safe against a concurrent setup)", runPrune},
		{"discover", "--netns PATH [--interfaces LIST] [--output text|json]", "show what setup would attach; changes nothing", runDiscover},
		{"render", "--id ID --for qemu|qmp|cloud-hypervisor|firecracker|kernel-cmdline|guest-cmdline|guest-json|cloud-init", "print hypervisor or guest configuration", runRender},
		{"probe", "[--output text|json]", "report kernel features and which models work", runProbe},
		{"exec", "--id ID [--no-append] [--driver D] -- CMD [ARGS...]", "run CMD (QEMU) in the sandbox netns with every NIC's queues open as fds 3, 4, ... and the fd-form NIC arguments appended", runExec},
		{"hotplug", "--id ID --qmp SOCKET [--unplug]", "add the sandbox's NICs to a running QEMU over QMP (fds passed with getfd), or remove them", runHotplug},
		{"follow", "--id ID [--qmp SOCKET] [--state-dir DIR] [--output text|json]", "keep a running sandbox's wiring, and with --qmp its QEMU's NICs, in step with its netns, in the foreground (one line per event)", runFollow},
		{"hook", "prestart|createRuntime|poststop [--state-dir DIR] [--log-file FILE] [--timeout D] [setup flags]", "run as an OCI runtime hook (container state on stdin)", runHook},
		{"hooks-config", "[--binary PATH] [--stage prestart|createRuntime|poststop] [--timeout S] [-- setup flags]", "print a containers hooks.d entry for the hook", runHooksConfig},
		{"install", "[--cni-conf-dir DIR] [--cni-bin-dir DIR] [--network NAME] [--pod-annotation KEY[=VALUE]] [--hooks-dir DIR] [--state-dir DIR] [--watch]", "install netbridge on this node: the CNI plugin, appended to the runtime's network configuration, and hooks.d entries", runInstall},
		{"uninstall", "[--cni-conf-dir DIR] [--cni-bin-dir DIR] [--hooks-dir DIR]", "remove exactly what install added", runUninstall},
		{"version", "", "print the version", runVersion},
	}
}

// env is what a command writes to.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// flush, when set, writes out what stdout buffers (before an exec).
	flush func() error
}

// usageError marks an error in the command line.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// loggedError is an error whose one-line report has been logged already.
type loggedError struct{ err error }

func (l loggedError) Error() string { return l.err.Error() }
func (l loggedError) Unwrap() error { return l.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func main() {
	// Standard output is buffered: a setup's report took 35 write calls.
	out := bufio.NewWriterSize(os.Stdout, 64<<10)
	code := run(context.Background(), os.Args[1:], &env{stdin: os.Stdin, stdout: out, stderr: os.Stderr, flush: out.Flush})
	out.Flush()
	os.Exit(code)
}

func run(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			return run(ctx, []string{args[1], "--help"}, e)
		}
		usage(e.stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, e, args[1:])
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		var logged loggedError
		if errors.As(err, &logged) {
			return exitCode(logged.err) // its one line is in the log already
		}
		if err != nil {
			fmt.Fprintf(e.stderr, "netbridge %s: %v\n", c.name, report(err))
			return exitCode(err)
		}
		return exitOK
	}
	fmt.Fprintf(e.stderr, "netbridge: unknown command %q; run 'netbridge help'\n", args[0])
	return exitUsage
}

// exitCode maps an error to the exit status: 2 for anything the caller
// got wrong (flags, ids, netns paths, models, interface names), 1 otherwise.
func exitCode(err error) int {
	var u usageError
	switch {
	case errors.As(err, &u),
		errors.Is(err, sandbox.ErrInvalidConfig),
		errors.Is(err, sandboxid.ErrInvalid),
		errors.Is(err, netns.ErrNotExist),
		errors.Is(err, netns.ErrNotNetns),
		errors.Is(err, netns.ErrHostNetns):
		return exitUsage
	}
	return exitFail
}

// oneLine folds a possibly multi-line (joined) error onto one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

func usage(w io.Writer) {
	fmt.Fprint(w, `netbridge connects the CNI interfaces of a VM sandbox's network namespace to
tap devices, and prints the arguments a hypervisor needs to use them.

Usage:
  netbridge <command> [flags]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Typical use, as root, after CNI has configured the netns:
  netbridge setup --netns /run/netns/pod1 --id pod1
  qemu-system-x86_64 ... $(netbridge render --id pod1 --for qemu)   # run inside the netns
  netbridge teardown --id pod1

State lives in --state-dir, else $NETBRIDGE_STATE_DIR, else /run/netbridge.
Exit status: 0 success, 1 failure, 2 usage error (nothing changed).
Run 'netbridge help <command>' for a command's flags.
`)
}

// newFlags returns a flag set for a command. Parse errors come back as
// one-line usage errors; -h/--help prints the command's usage (see parse).
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

func printUsage(w io.Writer, fs *flag.FlagSet) {
	for _, c := range commands {
		if c.name == fs.Name() {
			fmt.Fprintf(w, "Usage: netbridge %s %s\n\n%s.\n\nFlags:\n", c.name, c.args, upperFirst(c.summary))
		}
	}
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// parse parses args, rejecting positional arguments. On -h or --help it
// prints the usage to w and returns flag.ErrHelp.
func parse(w io.Writer, fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(w, fs)
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

func need(name, value string) error {
	if value == "" {
		return usagef("--%s is required", name)
	}
	return nil
}

func checkOutput(o string, allowed ...string) error {
	for _, a := range allowed {
		if o == a {
			return nil
		}
	}
	return usagef("--output %q: use %s", o, strings.Join(allowed, " or "))
}
