package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netbridge/netbridge/hooks"
	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/pkg/sandboxid"
	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/testnet"
)

// TestBadInputChangesNothing feeds bad input to the CLI, the hook and the
// library. Each must fail with the documented error class (exit 2 for
// input the caller got wrong, 1 for an operation that failed; the library's
// sentinel errors), never panic, and leave the pod netns and state dir as
// they were.
func TestBadInputChangesNothing(t *testing.T) {
	ctx := context.Background()
	node, pod := topology(t, 0)
	// A tap owned by another sandbox, and a macvlan on eth0.
	otherDir := t.TempDir()
	if _, err := netbridge.New(otherDir, nil).Setup(ctx, sandbox.Config{ID: "owner", Netns: pod.Path(), Interfaces: []string{"eth0"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netbridge.New(otherDir, nil).Teardown(ctx, "owner") })
	testnet.Exec(t, pod, "ip", "link", "add", "link", "eth0", "name", "mv0", "address", "02:00:5e:50:00:01", "type", "macvlan", "mode", "bridge")
	testnet.Exec(t, pod, "ip", "link", "set", "mv0", "up")
	testnet.AddAddr(t, pod, "mv0", "203.0.113.5/24")
	_ = node

	tmp := t.TempDir()
	regular := filepath.Join(tmp, "regular")
	if err := os.WriteFile(regular, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	realDir := t.TempDir()
	symDir := filepath.Join(tmp, "statelink")
	if err := os.Symlink(realDir, symDir); err != nil {
		t.Fatal(err)
	}
	badBundle := filepath.Join(tmp, "badbundle")
	os.Mkdir(badBundle, 0o700)
	os.WriteFile(filepath.Join(badBundle, "config.json"), []byte("{not json"), 0o600)
	missingNetnsBundle := filepath.Join(tmp, "missingnetns")
	os.Mkdir(missingNetnsBundle, 0o700)
	os.WriteFile(filepath.Join(missingNetnsBundle, "config.json"),
		[]byte(`{"linux":{"namespaces":[{"type":"network","path":"/run/netns/nb-no-such-ns"}]}}`), 0o600)
	long := strings.Repeat("a", 129)

	type tc struct {
		name  string
		args  []string // CLI; $POD, $DIR, $TMP are replaced
		stdin string
		lib   func(dir string) error
		code  int     // CLI exit status
		is    []error // library sentinels
		// prep fills the state dir before the call (malformed records);
		// the state dir must look the same afterwards.
		prep func(dir string)
		dir  string // a fixed --state-dir instead of a fresh one
	}
	setup := func(extra ...string) []string {
		return append([]string{"setup", "--netns", "$POD", "--id", "bad", "--state-dir", "$DIR", "--cni-cache-dir", ""}, extra...)
	}
	badRecord := func(dir string) {
		os.WriteFile(filepath.Join(dir, "x.json"), []byte(`{"version":1,"journal":[{`), 0o600)
	}
	wrongType := func(dir string) {
		os.WriteFile(filepath.Join(dir, "x.json"), []byte(`{"version":"one","journal":7}`), 0o600)
	}
	cases := []tc{
		// ids
		{name: "cli id empty", args: []string{"setup", "--netns", "$POD", "--id", "", "--state-dir", "$DIR"}, code: 2},
		{name: "cli id slash", args: []string{"setup", "--netns", "$POD", "--id", "a/b", "--state-dir", "$DIR"}, code: 2},
		{name: "cli id dotdot", args: []string{"setup", "--netns", "$POD", "--id", "..", "--state-dir", "$DIR"}, code: 2},
		{name: "cli id 129 bytes", args: []string{"setup", "--netns", "$POD", "--id", long, "--state-dir", "$DIR"}, code: 2},
		{name: "cli id leading dash", args: []string{"setup", "--netns", "$POD", "--id=-x", "--state-dir", "$DIR"}, code: 2},
		{name: "cli teardown id dotdot", args: []string{"teardown", "--id", "..", "--state-dir", "$DIR"}, code: 2},
		{name: "lib id NUL", lib: func(dir string) error {
			_, err := netbridge.New(dir, nil).Setup(ctx, sandbox.Config{ID: "a\x00b", Netns: pod.Path()})
			return err
		}, is: []error{sandbox.ErrInvalidConfig, sandboxid.ErrInvalid}},
		{name: "lib teardown id NUL", lib: func(dir string) error { return netbridge.New(dir, nil).Teardown(ctx, "a\x00b") },
			is: []error{sandbox.ErrInvalidConfig, sandboxid.ErrInvalid}},
		{name: "lib check id slash", lib: func(dir string) error { return netbridge.New(dir, nil).Check(ctx, "a/b") }, is: []error{sandboxid.ErrInvalid}},
		{name: "lib id 129 bytes", lib: func(dir string) error {
			_, err := netbridge.New(dir, nil).Setup(ctx, sandbox.Config{ID: long, Netns: pod.Path()})
			return err
		}, is: []error{sandbox.ErrInvalidConfig, sandboxid.ErrInvalid}},
		// netns
		{name: "cli netns missing", args: []string{"setup", "--netns", "/run/netns/nb-no-such-ns", "--id", "bad", "--state-dir", "$DIR"}, code: 2},
		{name: "cli netns regular file", args: []string{"setup", "--netns", regular, "--id", "bad", "--state-dir", "$DIR"}, code: 2},
		{name: "cli netns directory", args: []string{"setup", "--netns", tmp, "--id", "bad", "--state-dir", "$DIR"}, code: 2},
		{name: "cli netns mnt ns", args: []string{"setup", "--netns", "/proc/self/ns/mnt", "--id", "bad", "--state-dir", "$DIR"}, code: 2},
		{name: "cli netns host", args: []string{"setup", "--netns", "/proc/self/ns/net", "--id", "bad", "--state-dir", "$DIR"}, code: 2},
		{name: "lib netns missing", lib: func(dir string) error {
			_, err := netbridge.New(dir, nil).Setup(ctx, sandbox.Config{ID: "bad", Netns: "/run/netns/nb-no-such-ns"})
			return err
		}, is: []error{sandbox.ErrInvalidConfig, netns.ErrNotExist}},
		{name: "lib netns regular file", lib: func(dir string) error {
			_, err := netbridge.New(dir, nil).Setup(ctx, sandbox.Config{ID: "bad", Netns: regular})
			return err
		}, is: []error{sandbox.ErrInvalidConfig, netns.ErrNotNetns}},
		{name: "lib netns mnt ns", lib: func(dir string) error {
			_, err := netbridge.New(dir, nil).Setup(ctx, sandbox.Config{ID: "bad", Netns: "/proc/self/ns/mnt"})
			return err
		}, is: []error{sandbox.ErrInvalidConfig, netns.ErrNotNetns}},
		{name: "lib netns host", lib: func(dir string) error {
			_, err := netbridge.New(dir, nil).Setup(ctx, sandbox.Config{ID: "bad", Netns: "/proc/self/ns/net"})
			return err
		}, is: []error{sandbox.ErrInvalidConfig, netns.ErrHostNetns}},
		{name: "lib netns empty", lib: func(dir string) error {
			_, err := netbridge.New(dir, nil).Setup(ctx, sandbox.Config{ID: "bad"})
			return err
		}, is: []error{sandbox.ErrInvalidConfig}},
		// models, queues, vhost, macvtap mode
		{name: "cli model unknown", args: setup("--model", "vmxnet"), code: 2},
		{name: "lib model unknown", lib: func(dir string) error {
			_, err := netbridge.New(dir, nil).Setup(ctx, sandbox.Config{ID: "bad", Netns: pod.Path(), Model: "TCFILTER"})
			return err
		}, is: []error{sandbox.ErrInvalidConfig}},
		{name: "cli queues -1", args: setup("--queues", "-1"), code: 2},
		{name: "cli queues 257", args: setup("--queues", "257"), code: 2},
		{name: "lib queues 257", lib: func(dir string) error {
			_, err := netbridge.New(dir, nil).Setup(ctx, sandbox.Config{ID: "bad", Netns: pod.Path(), Queues: 257})
			return err
		}, is: []error{sandbox.ErrInvalidConfig}},
		{name: "cli vhost maybe", args: setup("--vhost", "maybe"), code: 2},
		{name: "cli macvtap mode vepa", args: setup("--model", "macvtap", "--macvtap-mode", "vepa"), code: 2},
		// interfaces
		{name: "cli interface absent", args: setup("--interfaces", "eth9"), code: 2},
		{name: "cli interface twice", args: setup("--interfaces", "eth0,eth0"), code: 2},
		{name: "cli interface too long", args: setup("--interfaces", "abcdefghijklmnop"), code: 2},
		{name: "cli interface netbridge-owned tap", args: setup("--interfaces", "nb-eth0"), code: 2},
		{name: "cli macvlan under bridge model", args: setup("--model", "bridge", "--interfaces", "mv0"), code: 2},
		// flags
		{name: "cli unknown flag", args: setup("--frobnicate"), code: 2},
		{name: "cli positional arg", args: setup("extra"), code: 2},
		{name: "cli missing value", args: []string{"setup", "--netns", "$POD", "--state-dir", "$DIR", "--id"}, code: 2},
		{name: "cli output yaml", args: setup("--output", "yaml"), code: 2},
		{name: "cli status output xml", args: []string{"status", "--state-dir", "$DIR", "--output", "xml"}, code: 2},
		{name: "cli unknown command", args: []string{"frobnicate", "--state-dir", "$DIR"}, code: 2},
		// state dir
		{name: "cli state dir is a symlink", args: setup(), dir: symDir, code: 1},
		{name: "cli state dir is a file", args: setup(), dir: regular, code: 1},
		{name: "cli teardown state dir is a file", args: []string{"teardown", "--id", "x", "--state-dir", "$DIR"}, dir: regular, code: 1},
		{name: "cli teardown malformed record", args: []string{"teardown", "--id", "x", "--state-dir", "$DIR"}, prep: badRecord, code: 1},
		{name: "cli check malformed record", args: []string{"check", "--id", "x", "--state-dir", "$DIR"}, prep: badRecord, code: 1},
		{name: "cli render malformed record", args: []string{"render", "--id", "x", "--for", "qemu", "--state-dir", "$DIR"}, prep: badRecord, code: 1},
		{name: "cli status malformed record", args: []string{"status", "--state-dir", "$DIR"}, prep: badRecord, code: 1},
		{name: "cli teardown wrongly typed record", args: []string{"teardown", "--id", "x", "--state-dir", "$DIR"}, prep: wrongType, code: 1},
		{name: "lib teardown malformed record", prep: badRecord, lib: func(dir string) error { return netbridge.New(dir, nil).Teardown(ctx, "x") }},
		{name: "lib check malformed record", prep: badRecord, lib: func(dir string) error { return netbridge.New(dir, nil).Check(ctx, "x") }},
		// render
		{name: "cli render target vmware", args: []string{"render", "--id", "x", "--for", "vmware", "--state-dir", "$DIR"}, code: 2},
		{name: "cli render no target", args: []string{"render", "--id", "x", "--state-dir", "$DIR"}, code: 2},
		{name: "cli render no id", args: []string{"render", "--for", "qemu", "--state-dir", "$DIR"}, code: 2},
		// hook
		{name: "hook stdin empty", args: []string{"hook", "prestart", "--state-dir", "$DIR"}, stdin: "", code: 2},
		{name: "hook stdin blank", args: []string{"hook", "prestart", "--state-dir", "$DIR"}, stdin: "  \n", code: 2},
		{name: "hook stdin malformed", args: []string{"hook", "prestart", "--state-dir", "$DIR"}, stdin: "{", code: 2},
		{name: "hook stdin no id", args: []string{"hook", "prestart", "--state-dir", "$DIR"}, stdin: `{"pid":1,"bundle":"/"}`, code: 2},
		{name: "hook relative bundle", args: []string{"hook", "prestart", "--state-dir", "$DIR"}, stdin: `{"id":"bad","pid":1,"bundle":"rel/bundle"}`, code: 2},
		{name: "hook negative pid", args: []string{"hook", "prestart", "--state-dir", "$DIR"}, stdin: `{"id":"bad","pid":-4,"bundle":"/"}`, code: 2},
		{name: "hook malformed config.json", args: []string{"hook", "prestart", "--state-dir", "$DIR"}, stdin: `{"id":"bad","pid":1,"bundle":"` + badBundle + `"}`, code: 2},
		{name: "hook config.json netns missing", args: []string{"hook", "prestart", "--state-dir", "$DIR"}, stdin: `{"id":"bad","pid":1,"bundle":"` + missingNetnsBundle + `"}`, code: 2},
		{name: "hook bad id", args: []string{"hook", "prestart", "--state-dir", "$DIR"}, stdin: `{"id":"../x","pid":1,"bundle":"` + missingNetnsBundle + `"}`, code: 2},
		{name: "hook no stage", args: []string{"hook", "--state-dir", "$DIR"}, stdin: `{"id":"bad"}`, code: 2},
		// An unknown stage (poststart) is ignored on purpose, exit 0; an
		// unknown flag is not.
		{name: "hook unknown flag", args: []string{"hook", "prestart", "--state-dir", "$DIR", "--frob"}, stdin: `{"id":"bad","pid":1}`, code: 2},
		{name: "hook bad model", args: []string{"hook", "prestart", "--state-dir", "$DIR", "--model", "x"}, stdin: `{"id":"bad","pid":1,"bundle":"` + missingNetnsBundle + `"}`, code: 2},
		{name: "lib hook ParseState no id", lib: func(string) error { _, err := hooks.ParseState(strings.NewReader(`{"pid":1}`)); return err },
			is: []error{hooks.ErrBadInput}},
	}

	bin := netbridgeBinary(t)
	before := testnet.Snapshot(t, pod)
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			dir := c.dir
			if dir == "" {
				dir = filepath.Join(t.TempDir(), "state")
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			if c.prep != nil {
				c.prep(dir)
			}
			ents0 := dirEntries(dir)
			if c.lib != nil {
				err := c.lib(dir)
				if err == nil {
					t.Fatalf("succeeded, want an error")
				}
				for _, want := range c.is {
					if !errors.Is(err, want) {
						t.Errorf("error %q is not %q", err, want)
					}
				}
				t.Logf("error: %v", err)
			} else {
				args := make([]string, len(c.args))
				for i, a := range c.args {
					args[i] = strings.NewReplacer("$POD", pod.Path(), "$DIR", dir).Replace(a)
				}
				cmd := exec.Command(bin, args...)
				cmd.Stdin = strings.NewReader(c.stdin)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				cmd.Stdout = &stderr
				err := cmd.Run()
				code := cmd.ProcessState.ExitCode()
				if code != c.code {
					t.Errorf("netbridge %q exited %d (%v), want %d:\n%s", args, code, err, c.code, stderr.String())
				}
				if strings.Contains(stderr.String(), "panic") || strings.Contains(stderr.String(), "goroutine ") {
					t.Errorf("netbridge %q panicked:\n%s", args, stderr.String())
				}
				t.Logf("exit %d: %s", code, strings.TrimSpace(stderr.String()))
			}
			if got := dirEntries(dir); got != ents0 {
				t.Errorf("state dir changed: %q -> %q", ents0, got)
			}
			if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
				t.Errorf("pod changed:\n%s", d)
			}
		})
	}
	t.Logf("%d bad inputs", len(cases))
}

// dirEntries describes the entries of dir (or why it cannot be read, or
// that it is a file). Lock files are left out: one stays beside a record
// that a failed teardown or check kept.
func dirEntries(dir string) string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return pe.Err.Error()
		}
		return err.Error()
	}
	var names []string
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".lock") {
			names = append(names, e.Name())
		}
	}
	return strings.Join(names, ",")
}
