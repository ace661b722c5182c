package cni

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildNetbridge: the plugin is built once for tests running at the
// same time, under the name its type needs, speaks the spec versions up
// to 1.1.0, and its directory goes with the last test using it.
func TestBuildNetbridge(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the netbridge CNI plugin")
	}
	var dir string
	t.Run("build", func(t *testing.T) {
		dir = BuildNetbridge(t)
		if again := BuildNetbridge(t); again != dir {
			t.Errorf("second BuildNetbridge returned %s, first %s", again, dir)
		}
		cmd := exec.Command(filepath.Join(dir, NetbridgePlugin))
		cmd.Env = []string{"CNI_COMMAND=VERSION"}
		cmd.Stdin = strings.NewReader(`{"cniVersion":"1.1.0"}`)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("VERSION: %v", err)
		}
		for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
			if !bytes.Contains(out, []byte(`"`+v+`"`)) {
				t.Errorf("VERSION does not list %s: %s", v, out)
			}
		}
	})
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the plugin directory %s outlived its tests: %v", dir, err)
	}
}
