package hooks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/netbridge/netbridge/sandbox"
)

// Stages.
const (
	StagePrestart      = "prestart"
	StageCreateRuntime = "createRuntime"
	StagePoststop      = "poststop"
)

// CRI annotations.
const (
	// Sandbox ids, CRI-O's and containerd's.
	AnnotationCRIOSandboxID       = "io.kubernetes.cri-o.SandboxID"
	AnnotationContainerdSandboxID = "io.kubernetes.cri.sandbox-id"
	// AnnotationCRIOCNIResult is where CRI-O puts the sandbox's CNI result.
	AnnotationCRIOCNIResult = "io.kubernetes.cri-o.CNIResult"
	// Container types, whose value is "sandbox" or "container".
	AnnotationCRIOContainerType       = "io.kubernetes.cri-o.ContainerType"
	AnnotationContainerdContainerType = "io.kubernetes.cri.container-type"
)

// Library is what a hook needs of netbridge: a *netbridge.Manager, on the
// state directory the hook was given; tests substitute a fake.
type Library interface {
	Setup(ctx context.Context, cfg sandbox.Config) (*sandbox.Sandbox, error)
	Teardown(ctx context.Context, id string) error
}

// Hook is one invocation of the hook.
type Hook struct {
	// Stage is the OCI hook stage the runtime called the hook for.
	Stage string
	// Setup is the configuration for setup stages; ID and Netns are filled
	// in from the state.
	Setup sandbox.Config
	// Log receives the hook's own lines (the library logs through its
	// own logger). Nil discards.
	Log *slog.Logger
	// Lib is the library.
	Lib Library
}

// Target is what a state resolves to.
type Target struct {
	// SandboxID is the id netbridge records the sandbox under.
	SandboxID string
	// Netns is the sandbox netns path; empty for poststop.
	Netns string
	// Skip, when non-empty, says why the hook does nothing for this
	// container.
	Skip string
	// CNIResult is the sandbox's CNI result when the runtime annotated it
	// (CRI-O), else empty.
	CNIResult string
}

// Resolve works out, from the state and the bundle's config.json, which
// sandbox and netns the call is about. It reads config.json and nothing of
// the container's own filesystem, and never enters the container's mount
// namespace.
func Resolve(stage string, st *specs.State) (Target, error) {
	cfg, err := readBundle(st.Bundle)
	if err != nil {
		return Target{}, err
	}
	return resolve(stage, st, cfg)
}

// resolve is Resolve with config.json already read (nil when missing).
func resolve(stage string, st *specs.State, cfg *bundleConfig) (Target, error) {
	ann := func(key string) string {
		if v := st.Annotations[key]; v != "" {
			return v
		}
		if cfg != nil {
			return cfg.Annotations[key]
		}
		return ""
	}
	t := Target{SandboxID: st.ID, CNIResult: ann(AnnotationCRIOCNIResult)}
	for _, k := range []string{AnnotationContainerdSandboxID, AnnotationCRIOSandboxID} {
		if v := ann(k); v != "" {
			t.SandboxID = v
			break
		}
	}
	for _, k := range []string{AnnotationContainerdContainerType, AnnotationCRIOContainerType} {
		if v := ann(k); v != "" && v != "sandbox" {
			t.Skip = fmt.Sprintf("container %q is of type %q, not a pod sandbox (annotation %s)", st.ID, v, k)
			return t, nil
		}
	}
	if stage == StagePoststop {
		return t, nil // teardown needs only the id; the netns may be gone
	}
	path, found := cfg.networkNamespace()
	switch {
	case path != "":
		t.Netns = path
	case cfg != nil && !found:
		t.Skip = fmt.Sprintf("container %q has no network namespace of its own (it shares the runtime's)", st.ID)
	case st.Pid > 0:
		t.Netns = fmt.Sprintf("/proc/%d/ns/net", st.Pid)
	case cfg == nil:
		return Target{}, fmt.Errorf("%w: the bundle %q has no config.json and the state has no pid: cannot find the network namespace", ErrBadInput, st.Bundle)
	default:
		return Target{}, fmt.Errorf("%w: config.json of %q names no network namespace path and the state has no pid", ErrBadInput, st.ID)
	}
	return t, nil
}

// Run performs the hook: it parses the state from stdin and sets up,
// tears down, or ignores the stage. It returns an error that names the step
// that failed; on a setup failure (including the context's deadline) what
// was done is rolled back by the library.
func (h *Hook) Run(ctx context.Context, stdin io.Reader) error {
	start := time.Now()
	log := h.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lib := h.Lib
	if lib == nil {
		return errors.New("hook: no library to call")
	}
	log = log.With("stage", h.Stage)
	switch h.Stage {
	case StagePrestart, StageCreateRuntime, StagePoststop:
	default:
		log.Info("stage ignored: netbridge acts on prestart, createRuntime and poststop")
		return nil
	}
	st, err := ParseState(stdin)
	if err != nil {
		return err
	}
	t, err := Resolve(h.Stage, st)
	if err != nil {
		return err
	}
	log = log.With("id", t.SandboxID)
	if t.Skip != "" {
		log.Info("nothing to do: " + t.Skip)
		return nil
	}
	if h.Stage == StagePoststop {
		if err := lib.Teardown(ctx, t.SandboxID); err != nil {
			return fmt.Errorf("poststop: %w", err)
		}
		return nil
	}
	cfg := h.Setup
	cfg.ID, cfg.Netns, cfg.HoldFDs = t.SandboxID, t.Netns, false
	if cfg.DNS.IsZero() && t.CNIResult != "" {
		dns, err := sandbox.DNSFromCNIResult([]byte(t.CNIResult))
		if err != nil {
			log.Warn("ignoring the CNI result annotation", "annotation", AnnotationCRIOCNIResult, "error", err)
		}
		cfg.DNS = dns
	}
	log.Info("setting up", "netns", t.Netns, "pid", st.Pid, "status", st.Status, "elapsed", time.Since(start))
	sb, err := lib.Setup(ctx, cfg)
	if errors.Is(err, sandbox.ErrNoInterface) && len(cfg.Interfaces) == 0 {
		// A sandbox without a network (podman --network none, a pod
		// with host networking in a netns of its own): nothing to wire,
		// and nothing to refuse the container for.
		log.Info("nothing to wire: "+err.Error(), "netns", t.Netns)
		return nil
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%s: deadline exceeded, what was done is rolled back: %w", h.Stage, err)
		}
		return fmt.Errorf("%s: %w", h.Stage, err)
	}
	for _, nic := range sb.NICs {
		log.Info("ready", "interface", nic.Name, "tap", nic.Tap, "guest_mac", nic.GuestMAC.String())
	}
	return nil
}
