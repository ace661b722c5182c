// Package hooks runs netbridge as an OCI runtime hook: it turns the stage
// and the container state a runtime (runc, crun, Kata) passes on stdin into
// library calls, and writes containers hooks.d configuration. It knows
// nothing about netlink.
package hooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrBadInput reports a state or bundle that cannot be used; the runtime
// (or whoever called the hook) sent something wrong.
var ErrBadInput = errors.New("bad hook input")

// maxState bounds the state JSON read from stdin.
const maxState = 1 << 20

// ParseState reads the container state a runtime passes on stdin. It is
// lenient where runtimes differ: ociVersion, status and pid may be missing
// (Kata sends neither ociVersion nor status), and unknown fields (crun's
// root) are ignored. It requires an id.
func ParseState(r io.Reader) (*specs.State, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxState+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the state from stdin: %w", ErrBadInput, err)
	}
	if len(b) > maxState {
		return nil, fmt.Errorf("%w: state on stdin is larger than %d bytes", ErrBadInput, maxState)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, fmt.Errorf("%w: no state on stdin (an OCI runtime passes the container state as JSON)", ErrBadInput)
	}
	var st specs.State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%w: state on stdin is not a container state: %w", ErrBadInput, err)
	}
	if st.ID == "" {
		return nil, fmt.Errorf("%w: state on stdin has no id", ErrBadInput)
	}
	if st.Pid < 0 {
		return nil, fmt.Errorf("%w: state has pid %d", ErrBadInput, st.Pid)
	}
	if st.Bundle != "" && !filepath.IsAbs(st.Bundle) {
		return nil, fmt.Errorf("%w: bundle %q is not an absolute path", ErrBadInput, st.Bundle)
	}
	return &st, nil
}

// bundleConfig is the part of a bundle's config.json the hook reads. It is
// decoded on its own, so that the rest of config.json cannot make the hook
// fail.
type bundleConfig struct {
	Annotations map[string]string `json:"annotations"`
	Linux       *struct {
		Namespaces []specs.LinuxNamespace `json:"namespaces"`
	} `json:"linux"`
}

// readBundle reads config.json from the bundle directory. It returns nil
// and no error when the bundle or its config.json is missing.
func readBundle(bundle string) (*bundleConfig, error) {
	if bundle == "" {
		return nil, nil
	}
	path := filepath.Join(bundle, "config.json")
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	defer f.Close()
	c, err := parseBundleConfig(io.LimitReader(f, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not an OCI config: %w", ErrBadInput, path, err)
	}
	return c, nil
}

func parseBundleConfig(r io.Reader) (*bundleConfig, error) {
	var c bundleConfig
	if err := json.NewDecoder(r).Decode(&c); err != nil {
		return nil, err
	}
	return &c, nil
}

// networkNamespace returns the network namespace entry of the config: found
// reports whether there is one (without one, the container shares the
// runtime's netns), and path is its path (empty: the runtime made a new one).
func (c *bundleConfig) networkNamespace() (path string, found bool) {
	if c == nil || c.Linux == nil {
		return "", false
	}
	for _, n := range c.Linux.Namespaces {
		if n.Type == specs.NetworkNamespace {
			return n.Path, true
		}
	}
	return "", false
}
