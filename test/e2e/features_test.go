package e2e

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/netbridge/netbridge/test/testnet"
)

// TestMissingKernelFeatures simulates kernels without some features (the
// test-seam build: the probe reports them missing and the kernel
// operations that need them fail as such a kernel's do). Setup fails with
// an error naming the missing feature and a model that works, leaves the
// pod as it was, and auto picks the model that works.
func TestMissingKernelFeatures(t *testing.T) {
	for _, c := range []struct {
		without, model string
		want           []string // in the error, or the chosen model for auto
	}{
		{"u32,matchall", "tcfilter", []string{"model tcfilter cannot work", "lacks u32 or matchall", "--model bridge"}},
		{"ingress", "tcfilter", []string{"lacks ingress", "--model bridge"}},
		{"bridge", "bridge", []string{"model bridge cannot work", "lacks bridge", "--model tcfilter"}},
		{"macvtap", "macvtap", []string{"lacks macvtap", "--model tcfilter or --model bridge"}},
		{"u32,matchall,bridge", "bridge", []string{"lacks bridge", "--model macvtap"}},
		{"u32,matchall", "auto", []string{"model bridge (auto: no tc redirect (missing u32 or matchall"}},
		{"u32,matchall,bridge", "auto", []string{"model macvtap (auto: neither tc redirect"}},
	} {
		t.Run(c.without+"/"+c.model, func(t *testing.T) {
			_, pod := topology(t, 0)
			dir := t.TempDir()
			before := testnet.Snapshot(t, pod)
			id := "feat"
			out, err := seamRun(t, "NETBRIDGE_SEAM_PROBE_WITHOUT="+c.without, "setup", "--netns", pod.Path(), "--id", id, "--model", c.model, "--state-dir", dir)
			t.Cleanup(func() { exec.Command(seamNetbridge(t), "teardown", "--id", id, "--state-dir", dir).Run() })
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("setup output lacks %q:\n%s", w, out)
				}
			}
			if c.model == "auto" {
				if err != nil {
					t.Fatalf("auto setup: %v\n%s", err, out)
				}
				return
			}
			if err == nil || !strings.Contains(out, "missing kernel feature") {
				t.Fatalf("setup = %v, want the missing-feature error:\n%s", err, out)
			}
			if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
				t.Errorf("a setup refused for a missing feature changed the pod:\n%s", d)
			}
		})
	}
}
