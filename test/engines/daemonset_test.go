package engines

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

// daemonSetPath is the DaemonSet manifest, from this package's directory.
const daemonSetPath = "../../pkg/nodeinstall/deploy/netbridge-daemonset.yaml"

// imageBinDir is where the manifest's image holds the binaries.
const imageBinDir = "/usr/local/bin"

// TestDaemonSetManifest decodes the DaemonSet with the Kubernetes API types
// (strictly: an unknown field fails) and runs its container's command as
// the node would, against a temporary root: each hostPath volume is a
// directory of that root, mounted where the container expects it by
// rewriting the command's paths, and the binaries are this tree's, at the
// image's paths. The watch must chain netbridge into the provider's
// configuration, put it back after the provider rewrites it, and stop
// cleanly on SIGTERM.
func TestDaemonSetManifest(t *testing.T) {
	b, err := os.ReadFile(daemonSetPath)
	if err != nil {
		t.Fatal(err)
	}
	var ds appsv1.DaemonSet
	if err := yaml.UnmarshalStrict(b, &ds); err != nil {
		t.Fatalf("decoding %s: %v", daemonSetPath, err)
	}
	if ds.Kind != "DaemonSet" || ds.APIVersion != "apps/v1" {
		t.Fatalf("kind %s %s", ds.APIVersion, ds.Kind)
	}
	spec := ds.Spec.Template.Spec
	if got := ds.Spec.Selector.MatchLabels; len(got) == 0 || ds.Spec.Template.Labels["app.kubernetes.io/name"] != got["app.kubernetes.io/name"] {
		t.Errorf("the selector %v does not select the template's labels %v", got, ds.Spec.Template.Labels)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(spec.Containers))
	}
	ctr := spec.Containers[0]

	// The node: a temporary root holding each hostPath.
	root := t.TempDir()
	hostPaths := map[string]string{}
	for _, v := range spec.Volumes {
		if v.HostPath == nil {
			t.Fatalf("volume %s is not a hostPath", v.Name)
		}
		hostPaths[v.Name] = filepath.Join(root, v.HostPath.Path)
		if err := os.MkdirAll(hostPaths[v.Name], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mounts := map[string]string{} // path in the container -> directory of the node
	for _, m := range ctr.VolumeMounts {
		dir, ok := hostPaths[m.Name]
		if !ok {
			t.Fatalf("volume mount %s names no volume", m.Name)
		}
		mounts[m.MountPath] = dir
	}
	confDir := mounts["/host/etc/cni/net.d"]
	binDir := mounts["/host/opt/cni/bin"]
	if confDir == "" || binDir == "" {
		t.Fatalf("the container does not mount the CNI conf and bin dirs: %v", ctr.VolumeMounts)
	}
	if err := os.WriteFile(filepath.Join(confDir, "10-calico.conflist"), []byte(providerConf), 0o644); err != nil {
		t.Fatal(err)
	}

	// The image: this tree's binaries at the image's paths.
	image := t.TempDir()
	bins := map[string]string{
		imageBinDir + "/netbridge":     Build(t, "./cmd/netbridge", "netbridge"),
		imageBinDir + "/netbridge-cni": Build(t, "./cmd/netbridge-cni", "netbridge-cni"),
	}
	for inImage, built := range bins {
		dst := filepath.Join(image, inImage)
		os.MkdirAll(filepath.Dir(dst), 0o755)
		data, err := os.ReadFile(built)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	argv := slicesMap(ctr.Command, func(a string) string {
		if _, ok := bins[a]; ok {
			return filepath.Join(image, a)
		}
		if dir, ok := mounts[a]; ok {
			return dir
		}
		return a
	})
	if !slices.Contains(argv, "--watch") {
		t.Fatalf("the command %v does not watch", ctr.Command)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	conf := filepath.Join(confDir, "10-calico.conflist")
	waitFor(t, "netbridge chained into the provider's configuration", func() bool { return chainOf(conf) == "calico,netbridge" })
	if _, err := os.Stat(filepath.Join(binDir, "netbridge")); err != nil {
		t.Errorf("the plugin is not in the node's bin dir: %v", err)
	}
	// The provider rewrites its configuration (as Calico's installer does).
	tmp := conf + ".provider"
	os.WriteFile(tmp, []byte(providerConf), 0o644)
	if err := os.Rename(tmp, conf); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "netbridge put back after the provider's rewrite", func() bool { return chainOf(conf) == "calico,netbridge" })
	var entry map[string]any
	var list struct{ Plugins []map[string]any }
	data, _ := os.ReadFile(conf)
	json.Unmarshal(data, &list)
	entry = list.Plugins[len(list.Plugins)-1]
	if entry["podAnnotation"] != "netbridge.io/vm" {
		t.Errorf("netbridge's entry %v lacks the manifest's pod selector", entry)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("netbridge install --watch after SIGTERM: %v\n%s", err, out.String())
	}
	t.Logf("install --watch said:\n%s", out.String())
}

// providerConf is a network provider's configuration list.
const providerConf = `{
  "name": "k8s-pod-network",
  "cniVersion": "0.3.1",
  "plugins": [{"type": "calico", "datastore_type": "kubernetes", "ipam": {"type": "calico-ipam"}}]
}
`

func chainOf(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var l struct {
		Plugins []struct {
			Type string `json:"type"`
		} `json:"plugins"`
	}
	if json.Unmarshal(b, &l) != nil {
		return ""
	}
	var types []string
	for _, p := range l.Plugins {
		types = append(types, p.Type)
	}
	return strings.Join(types, ",")
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func slicesMap(in []string, f func(string) string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = f(s)
	}
	return out
}
