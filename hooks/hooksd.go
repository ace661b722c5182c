package hooks

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// HooksDirEntry is a containers hooks.d entry, schema version 1.0.0 (see
// oci-hooks(5)), as read by podman, CRI-O and buildah.
type HooksDirEntry struct {
	Version string     `json:"version"`
	Hook    specs.Hook `json:"hook"`
	When    When       `json:"when"`
	Stages  []string   `json:"stages"`
}

// When holds the conditions of a hooks.d entry; all must match.
type When struct {
	Annotations map[string]string `json:"annotations,omitempty"`
}

// DefaultTimeout is the hooks.d timeout, in seconds, of the entries
// HooksConfig writes. The hook's own deadline (its --timeout, 20 seconds by default) is well
// under it, so the hook rolls back and reports before the runtime kills it.
const DefaultTimeout = 30

// HooksConfig returns the hooks.d entry that runs binary as the netbridge
// hook for stage, for pod sandbox containers only (CRI-O's container-type
// annotation is "sandbox"). extra are setup flags appended to the hook's
// arguments.
func HooksConfig(binary, stage string, timeout int, extra []string) ([]byte, error) {
	if !filepath.IsAbs(binary) {
		return nil, fmt.Errorf("hook binary %q must be an absolute path (runtimes run hooks without PATH)", binary)
	}
	switch stage {
	case StagePrestart, StageCreateRuntime, StagePoststop:
	default:
		return nil, fmt.Errorf("stage %q: use prestart, createRuntime or poststop", stage)
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("timeout %d: must be positive", timeout)
	}
	args := append([]string{"netbridge", "hook", stage}, extra...)
	e := HooksDirEntry{
		Version: "1.0.0",
		Hook:    specs.Hook{Path: binary, Args: args, Timeout: &timeout},
		When: When{Annotations: map[string]string{
			"^" + regexp.QuoteMeta(AnnotationCRIOContainerType) + "$": "^sandbox$",
		}},
		Stages: []string{stage},
	}
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
