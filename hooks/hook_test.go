package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/golden"
)

// fakeLib records the library calls as text.
type fakeLib struct {
	calls []string
	err   error
}

func (f *fakeLib) Setup(ctx context.Context, cfg sandbox.Config) (*sandbox.Sandbox, error) {
	_, hasDeadline := ctx.Deadline()
	call := fmt.Sprintf("setup id=%s netns=%s model=%s queues=%d deadline=%v", cfg.ID, cfg.Netns, cfg.Model, cfg.Queues, hasDeadline)
	if !cfg.DNS.IsZero() {
		call += fmt.Sprintf(" dns=%v", cfg.DNS.Nameservers)
	}
	f.calls = append(f.calls, call)
	if f.err != nil {
		return nil, f.err
	}
	return &sandbox.Sandbox{ID: cfg.ID, Netns: cfg.Netns, NICs: []sandbox.NIC{{Name: "eth0", Tap: "nb-eth0"}}}, nil
}

func (f *fakeLib) Teardown(_ context.Context, id string) error {
	f.calls = append(f.calls, fmt.Sprintf("teardown id=%s", id))
	return f.err
}

// bundle writes a config.json into a new bundle directory.
func bundle(t *testing.T, config string) string {
	t.Helper()
	dir := t.TempDir()
	if config != "" {
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const (
	netnsConfig   = `{"ociVersion":"1.0.2","process":{"args":["sh"]},"linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/run/netns/cni-1"},{"type":"mount"}]}}`
	newNetConfig  = `{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"network"},{"type":"mount"}]}}`
	hostNetConfig = `{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"pid"},{"type":"mount"}]}}`
	criConfig     = `{"annotations":{"io.kubernetes.cri.container-type":"sandbox","io.kubernetes.cri.sandbox-id":"pod-abc"},"linux":{"namespaces":[{"type":"network","path":"/run/netns/cni-2"}]}}`
	appConfig     = `{"annotations":{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.sandbox-id":"pod-abc"},"linux":{"namespaces":[{"type":"network","path":"/run/netns/cni-2"}]}}`
	crioConfig    = `{"annotations":{"io.kubernetes.cri-o.ContainerType":"sandbox","io.kubernetes.cri-o.SandboxID":"crio-sb","io.kubernetes.cri-o.CNIResult":"{\"cniVersion\":\"1.0.0\",\"dns\":{\"nameservers\":[\"198.51.100.53\"]}}"},"linux":{"namespaces":[{"type":"network","path":"/var/run/netns/x"}]}}`
	badConfig     = `{"linux":{"namespaces":"nope"}}`
	hugeState     = "huge"
)

func TestRun(t *testing.T) {
	for _, c := range []struct {
		name, stage, config, state string
		want                       string // recorded calls, or "error: <substring>"
	}{
		{"runc prestart", "prestart", netnsConfig,
			`{"ociVersion":"1.0.2-dev","id":"c1","status":"creating","pid":4242,"bundle":"BUNDLE","annotations":{}}`,
			"setup id=c1 netns=/run/netns/cni-1 model=tcfilter queues=2 deadline=true"},
		{"crun createRuntime", "createRuntime", netnsConfig,
			`{"ociVersion":"1.0","id":"c2","status":"created","pid":77,"bundle":"BUNDLE","root":"/run/crun"}`,
			"setup id=c2 netns=/run/netns/cni-1 model=tcfilter queues=2 deadline=true"},
		{"kata prestart (no ociVersion, no status, hypervisor pid)", "prestart", netnsConfig,
			`{"id":"c3","pid":999,"bundle":"BUNDLE","annotations":{"io.kubernetes.cri.sandbox-id":"kata-sb"}}`,
			"setup id=kata-sb netns=/run/netns/cni-1 model=tcfilter queues=2 deadline=true"},
		{"netns made by the runtime: use the pid", "prestart", newNetConfig,
			`{"ociVersion":"1.0.2","id":"c4","status":"creating","pid":1234,"bundle":"BUNDLE"}`,
			"setup id=c4 netns=/proc/1234/ns/net model=tcfilter queues=2 deadline=true"},
		{"missing bundle: fall back to the pid", "prestart", "",
			`{"ociVersion":"1.0.2","id":"c5","status":"creating","pid":55,"bundle":"BUNDLE"}`,
			"setup id=c5 netns=/proc/55/ns/net model=tcfilter queues=2 deadline=true"},
		{"CRI sandbox id from config.json annotations", "prestart", criConfig,
			`{"ociVersion":"1.0.2","id":"c6","status":"creating","pid":9,"bundle":"BUNDLE"}`,
			"setup id=pod-abc netns=/run/netns/cni-2 model=tcfilter queues=2 deadline=true"},
		{"CRI-O annotations", "prestart", crioConfig,
			`{"ociVersion":"1.0.2","id":"c6b","status":"creating","pid":9,"bundle":"BUNDLE"}`,
			"setup id=crio-sb netns=/var/run/netns/x model=tcfilter queues=2 deadline=true dns=[198.51.100.53]"},
		{"app container is a no-op", "prestart", appConfig,
			`{"ociVersion":"1.0.2","id":"c7","status":"creating","pid":9,"bundle":"BUNDLE"}`, ""},
		{"host network container is a no-op", "prestart", hostNetConfig,
			`{"ociVersion":"1.0.2","id":"c8","status":"creating","pid":9,"bundle":"BUNDLE"}`, ""},
		{"poststop without pid", "poststop", netnsConfig,
			`{"ociVersion":"1.0.2","id":"c9","status":"stopped","bundle":"BUNDLE"}`,
			"teardown id=c9"},
		{"poststop with the bundle gone", "poststop", "",
			`{"ociVersion":"1.0.2","id":"c10","status":"stopped","bundle":"/nonexistent/bundle"}`,
			"teardown id=c10"},
		{"poststop of a CRI sandbox uses the sandbox id", "poststop", criConfig,
			`{"ociVersion":"1.0.2","id":"c11","status":"stopped","bundle":"BUNDLE"}`,
			"teardown id=pod-abc"},
		{"other stage ignored", "startContainer", netnsConfig, `not even json`, ""},
		{"empty stdin", "prestart", netnsConfig, ``, "error: no state on stdin"},
		{"blank stdin", "prestart", netnsConfig, "  \n", "error: no state on stdin"},
		{"malformed JSON", "prestart", netnsConfig, `{"id":`, "error: not a container state"},
		{"wrong JSON type", "prestart", netnsConfig, `["id"]`, "error: not a container state"},
		{"no id", "prestart", netnsConfig, `{"status":"creating","pid":3,"bundle":"BUNDLE"}`, "error: has no id"},
		{"negative pid", "prestart", newNetConfig, `{"id":"x","pid":-4,"bundle":"BUNDLE"}`, "error: pid -4"},
		{"relative bundle", "prestart", netnsConfig, `{"id":"x","pid":4,"bundle":"rel/dir"}`, "error: not an absolute path"},
		{"no pid, no bundle", "prestart", "", `{"id":"x","bundle":"BUNDLE"}`, "error: cannot find the network namespace"},
		{"no pid, new netns", "prestart", newNetConfig, `{"id":"x","bundle":"BUNDLE"}`, "error: names no network namespace path"},
		{"broken config.json", "prestart", badConfig, `{"id":"x","pid":3,"bundle":"BUNDLE"}`, "error: is not an OCI config"},
		{"huge state", "prestart", netnsConfig, hugeState, "error: larger than"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := bundle(t, c.config)
			state := strings.ReplaceAll(c.state, "BUNDLE", dir)
			if c.state == hugeState {
				state = `{"id":"x","pad":"` + strings.Repeat("a", maxState) + `"}`
			}
			lib := &fakeLib{}
			h := &Hook{Stage: c.stage, Setup: sandbox.Config{Queues: 2, Model: "tcfilter"}, Lib: lib}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := h.Run(ctx, strings.NewReader(state))
			if want, ok := strings.CutPrefix(c.want, "error: "); ok {
				if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrBadInput) {
					t.Fatalf("Run = %v, want an ErrBadInput containing %q", err, want)
				}
				if len(lib.calls) != 0 {
					t.Errorf("bad input reached the library: %v", lib.calls)
				}
				return
			}
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := strings.Join(lib.calls, "\n"); got != c.want {
				t.Errorf("calls:\n%s\nwant:\n%s", got, c.want)
			}
		})
	}
}

func TestRunTwiceCallsTheLibraryTwice(t *testing.T) {
	dir := bundle(t, netnsConfig)
	lib := &fakeLib{}
	h := &Hook{Stage: StagePrestart, Lib: lib}
	for range 2 {
		if err := h.Run(context.Background(), strings.NewReader(`{"id":"twice","pid":3,"bundle":"`+dir+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if len(lib.calls) != 2 || lib.calls[0] != lib.calls[1] {
		t.Errorf("calls %v, want the same setup twice (the library makes the second a no-op)", lib.calls)
	}
}

func TestRunReportsLibraryFailure(t *testing.T) {
	dir := bundle(t, netnsConfig)
	lib := &fakeLib{err: fmt.Errorf("wrapped: %w", context.DeadlineExceeded)}
	h := &Hook{Stage: StageCreateRuntime, Lib: lib}
	err := h.Run(context.Background(), strings.NewReader(`{"id":"x","pid":3,"bundle":"`+dir+`"}`))
	if err == nil || !strings.Contains(err.Error(), "rolled back") || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run = %v, want a deadline error saying it rolled back", err)
	}
}

func TestHooksConfig(t *testing.T) {
	for _, stage := range []string{StagePrestart, StageCreateRuntime, StagePoststop} {
		b, err := HooksConfig("/usr/local/bin/netbridge", stage, 30, []string{"--model", "tcfilter"})
		if err != nil {
			t.Fatal(err)
		}
		golden.Check(t, "hooksd_"+stage, b)
		var e HooksDirEntry
		if err := json.Unmarshal(b, &e); err != nil || e.Version != "1.0.0" || e.Hook.Args[2] != stage || *e.Hook.Timeout != 30 {
			t.Errorf("entry %+v, %v", e, err)
		}
	}
	for _, c := range []struct {
		bin, stage string
		timeout    int
	}{{"netbridge", StagePrestart, 30}, {"/x", "poststart", 30}, {"/x", StagePoststop, 0}} {
		if _, err := HooksConfig(c.bin, c.stage, c.timeout, nil); err == nil {
			t.Errorf("HooksConfig(%q, %q, %d) succeeded", c.bin, c.stage, c.timeout)
		}
	}
}

// FuzzParseState feeds arbitrary stdin and config.json to the hook's
// parsers: errors are fine, panics are not, and a state it accepts has an
// id and resolves to a sandbox id. It works in memory to stay fast.
func FuzzParseState(f *testing.F) {
	for _, s := range []string{
		`{"ociVersion":"1.0.2-dev","id":"c1","status":"creating","pid":4242,"bundle":"/b","annotations":{}}`,
		`{"id":"c3","pid":999,"bundle":"/b"}`, `{"id":`, ``, `null`, `{"id":"x","pid":-1}`,
	} {
		f.Add([]byte(s), []byte(netnsConfig))
	}
	f.Add([]byte(`{"id":"a","bundle":"/b"}`), []byte(badConfig))
	f.Add([]byte(`{"id":"a","pid":3,"bundle":"/b"}`), []byte(appConfig))
	f.Fuzz(func(t *testing.T, state, config []byte) {
		st, err := ParseState(bytes.NewReader(state))
		if err != nil {
			return
		}
		if st.ID == "" {
			t.Fatal("accepted a state without an id")
		}
		cfg, err := parseBundleConfig(bytes.NewReader(config))
		if err != nil {
			cfg = nil
		}
		for _, stage := range []string{StagePrestart, StagePoststop} {
			if tg, err := resolve(stage, st, cfg); err == nil && tg.Skip == "" && (tg.SandboxID == "" || stage == StagePrestart && tg.Netns == "") {
				t.Fatalf("resolve(%s) = %+v for %q", stage, tg, state)
			}
		}
	})
}
