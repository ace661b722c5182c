package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netbridge/netbridge/hooks"
)

// TestMakeInstall runs `make install` into a DESTDIR and checks the binary
// and the two hooks.d entries it installs, and the CNI plugin.
func TestMakeInstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	dest := t.TempDir()
	cmd := exec.Command("make", "-C", "../..", "install", "DESTDIR="+dest, "PREFIX=/opt/nb", "BIN="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	if fi, err := os.Stat(filepath.Join(dest, "opt/nb/bin/netbridge")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("installed binary: %v %v", fi, err)
	}
	plugin := filepath.Join(dest, "opt/cni/bin/netbridge")
	version := exec.Command(plugin)
	version.Env = []string{"CNI_COMMAND=VERSION"}
	version.Stdin = strings.NewReader(`{"cniVersion":"1.1.0"}`)
	if out, err := version.Output(); err != nil || !strings.Contains(string(out), `"1.1.0"`) || !strings.Contains(string(out), `"0.4.0"`) {
		t.Errorf("installed CNI plugin, VERSION: %s, %v", out, err)
	}
	for stage, file := range map[string]string{"prestart": "50-netbridge-prestart.json", "poststop": "50-netbridge-poststop.json"} {
		b, err := os.ReadFile(filepath.Join(dest, "opt/nb/share/containers/oci/hooks.d", file))
		if err != nil {
			t.Fatal(err)
		}
		var e hooks.HooksDirEntry
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if e.Version != "1.0.0" || e.Hook.Path != "/opt/nb/bin/netbridge" || len(e.Stages) != 1 || e.Stages[0] != stage ||
			len(e.Hook.Args) != 3 || e.Hook.Args[1] != "hook" || e.Hook.Args[2] != stage || e.Hook.Timeout == nil || len(e.When.Annotations) != 1 {
			t.Errorf("%s = %+v", file, e)
		}
	}
}
