package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
)

// TestLogFileRecordsFailures: a failed ADD or CHECK writes its error to
// logFile with the call's context, not only successes.
func TestLogFileRecordsFailures(t *testing.T) {
	for name, cmd := range map[string]func(*skel.CmdArgs) error{"ADD": cmdAdd, "CHECK": cmdCheck} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			log := filepath.Join(dir, "nb.log")
			t.Setenv("CNI_COMMAND", name)
			stdin := netconf("1.0.0", fmt.Sprintf(`"stateDir":%q,"logFile":%q`, filepath.Join(dir, "state"), log), "")
			err := cmd(args(stdin, "/run/netns/nbtest-does-not-exist"))
			if err == nil {
				t.Fatal("no error: the test needs a failing call")
			}
			b, rerr := os.ReadFile(log)
			if rerr != nil {
				t.Fatal(rerr)
			}
			var line map[string]any
			if jerr := json.Unmarshal(b, &line); jerr != nil {
				t.Fatalf("log %q: %v", b, jerr)
			}
			for k, want := range map[string]string{"level": "ERROR", "cni_command": name, "container": "ctr1", "ifname": "eth0", "netns": "/run/netns/nbtest-does-not-exist"} {
				if line[k] != want {
					t.Errorf("log %s = %v, want %q (line %s)", k, line[k], want, b)
				}
			}
			if msg, _ := line["error"].(string); !strings.Contains(msg, "prevResult") {
				t.Errorf("log error %q, want the call's error", msg)
			}
		})
	}
}
