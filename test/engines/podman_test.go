package engines

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netbridge/netbridge/test/testnet"
)

// sandboxAnnotation is what the hooks.d entries of netbridge match: CRI-O
// marks a pod's sandbox container with it, and podman users pass it with
// --annotation.
const sandboxAnnotation = "io.kubernetes.cri-o.ContainerType=sandbox"

// installHooks writes netbridge's hooks.d entries into p's hooks dir as
// `make install` does (netbridge hooks-config), with stateDir passed to the
// hook after "--".
func installHooks(t *testing.T, p *Podman, stateDir string) {
	t.Helper()
	bin := Build(t, "./cmd/netbridge", "netbridge")
	for _, stage := range []string{"prestart", "poststop"} {
		out, err := netbridgeCLI(t, "hooks-config", "--binary", bin, "--stage", stage, "--", "--state-dir", stateDir)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p.HooksDir, "50-netbridge-"+stage+".json"), []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPodmanHooks runs podman with netbridge's hooks.d entries on a pod
// netns that outlives its containers (--network ns:PATH): a container
// without the sandbox annotation is left alone; one with it gets eth0
// wired to a tap at prestart, and poststop restores the netns exactly.
func TestPodmanHooks(t *testing.T) {
	node, pod := testnet.NewNS(t), testnet.NewNS(t)
	testnet.VethPair(t, node, pod, "veth0", "eth0", 0)
	testnet.AddAddr(t, node, "veth0", "198.51.100.1/24")
	testnet.AddAddr(t, pod, "eth0", "198.51.100.2/24")
	testnet.AddRoute(t, pod, "eth0", "default", "198.51.100.1")
	stateDir := filepath.Join(t.TempDir(), "state")
	p := NewPodman(t, node)
	installHooks(t, p, stateDir)
	before := testnet.Snapshot(t, pod)

	t.Run("without the annotation", func(t *testing.T) {
		args := append([]string{"run", "--rm", "--network", "ns:" + pod.Path()}, p.RunArgs()...)
		if _, err := p.Podman(append(args, "/bin/true")...); err != nil {
			t.Fatal(err)
		}
		if got := stateEntries(t, stateDir); len(got) != 0 {
			t.Errorf("the hook acted for a container without the annotation: state dir holds %v", got)
		}
		if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
			t.Errorf("pod netns changed:\n%s", d)
		}
	})

	t.Run("with the annotation, no network", func(t *testing.T) {
		// podman --network none: a netns with only lo. The hook has
		// nothing to wire and must not block the container.
		args := append([]string{"run", "--rm", "--annotation", sandboxAnnotation, "--network", "none"}, p.RunArgs()...)
		if _, err := p.Podman(append(args, "/bin/true")...); err != nil {
			t.Fatalf("a sandbox without a network failed: %v", err)
		}
		if got := stateEntries(t, stateDir); len(got) != 0 {
			t.Errorf("state dir holds %v, want nothing", got)
		}
	})

	t.Run("with the annotation", func(t *testing.T) {
		args := append([]string{"run", "-d", "--name", "vm-sandbox", "--annotation", sandboxAnnotation, "--network", "ns:" + pod.Path()}, p.RunArgs()...)
		out, err := p.Podman(append(args, "/bin/sleep", "600")...)
		if err != nil {
			t.Fatal(err)
		}
		id := strings.TrimSpace(out)
		wiredTap(t, pod)
		if got := stateEntries(t, stateDir); !containsPrefix(got, id) {
			t.Errorf("state dir holds %v, want a record of container %s", got, id)
		}
		if _, err := p.Podman("rm", "-f", "-t", "0", id); err != nil {
			t.Fatal(err)
		}
		if got := stateEntries(t, stateDir); len(got) != 0 {
			t.Errorf("state dir after the container was removed: %v, want empty", got)
		}
		if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
			t.Errorf("pod netns after poststop differs from before prestart:\n%s", d)
		}
	})
}

// containsPrefix reports whether a name of names starts with prefix.
func containsPrefix(names []string, prefix string) bool {
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			return true
		}
	}
	return false
}
