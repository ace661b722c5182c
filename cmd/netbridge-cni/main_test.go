package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/pkg/tap"
	"github.com/netbridge/netbridge/sandbox"
)

func TestSpecVersions(t *testing.T) {
	want := []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}
	if got := specVersions.SupportedVersions(); !slices.Equal(got, want) {
		t.Errorf("supported versions %q, want %q", got, want)
	}
}

func TestCNIError(t *testing.T) {
	for _, c := range []struct {
		err  error
		code uint
	}{
		{netns.ErrNotExist, types.ErrInvalidNetNS},
		{netns.ErrNotNetns, types.ErrInvalidNetNS},
		{netns.ErrHostNetns, types.ErrInvalidNetNS},
		{sandbox.ErrInvalidConfig, types.ErrInvalidNetworkConfig},
		{netbridge.ErrNotFound, types.ErrUnknownContainer},
		{context.DeadlineExceeded, types.ErrTryAgainLater},
		{context.Canceled, types.ErrTryAgainLater},
		{errors.New("EPERM"), types.ErrInternal},
		{&netbridge.CheckError{ID: "c", Problems: []string{"tap gone"}}, types.ErrInternal},
	} {
		// As the library returns them: wrapped, and joined with others.
		for _, err := range []error{
			c.err,
			fmt.Errorf("attaching [eth0] to sandbox %q: %w", "c", c.err),
			errors.Join(fmt.Errorf("step: %w", c.err), errors.New("rolling back: ok")),
		} {
			got := cniError(err)
			var e *types.Error
			if !errors.As(got, &e) {
				t.Fatalf("cniError(%v) = %T", err, got)
			}
			if e.Code != c.code || e.Msg != err.Error() || e.Details != "" {
				t.Errorf("cniError(%q) = {%d %q %q}, want code %d and the error's text", err, e.Code, e.Msg, e.Details, c.code)
			}
		}
	}
}

// args returns the skel arguments of a call on eth0 of container ctr1.
func args(stdin []byte, netnsPath string) *skel.CmdArgs {
	return &skel.CmdArgs{ContainerID: "ctr1", Netns: netnsPath, IfName: "eth0", StdinData: stdin}
}

// TestAddCheckWithoutPrevResult: netbridge alone in a list, or as a
// single plugin, is told it is a chained plugin, as the configuration's
// fault (code 7); nothing is looked up or created.
func TestAddCheckWithoutPrevResult(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	stdin := netconf("1.0.0", fmt.Sprintf(`"stateDir":%q`, dir), "")
	for name, cmd := range map[string]func(*skel.CmdArgs) error{"ADD": cmdAdd, "CHECK": cmdCheck} {
		code, msg := cniCode(t, cmd(args(stdin, "/run/netns/nbtest-does-not-exist")))
		if code != types.ErrInvalidNetworkConfig || !strings.Contains(msg, "prevResult") || !strings.Contains(msg, "chained") {
			t.Errorf("%s: code %d %q, want %d saying it is chained and needs a prevResult", name, code, msg, types.ErrInvalidNetworkConfig)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the state directory was made: %v", err)
	}
}

// TestAddErrorsBeforeTheNetns: a missing netns is code 8, a container id
// the state directory cannot take is the configuration's fault (7).
func TestAddErrorsBeforeTheNetns(t *testing.T) {
	dir := t.TempDir()
	stdin := netconf("1.0.0", fmt.Sprintf(`"stateDir":%q`, dir), prevResults["1.0.0"])
	code, msg := cniCode(t, cmdAdd(args(stdin, "")))
	if code != types.ErrInvalidNetNS || !strings.Contains(msg, "CNI_NETNS") {
		t.Errorf("no netns: code %d %q", code, msg)
	}
	code, msg = cniCode(t, cmdAdd(args(stdin, filepath.Join(dir, "no-such-netns"))))
	if code != types.ErrInvalidNetNS {
		t.Errorf("a netns path that does not exist: code %d %q, want %d", code, msg, types.ErrInvalidNetNS)
	}
	a := args(stdin, filepath.Join(dir, "no-such-netns"))
	a.ContainerID = "../escape"
	code, msg = cniCode(t, cmdAdd(a))
	if code != types.ErrInvalidNetworkConfig {
		t.Errorf("container id %q: code %d %q, want %d", a.ContainerID, code, msg, types.ErrInvalidNetworkConfig)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("failed ADDs left %v in the state directory", ents)
	}
}

// TestDelNothingRecorded: DEL of an attachment netbridge never made (ADD
// failed earlier in the chain, or DEL runs twice) succeeds, with or
// without prevResult or netns, and leaves no file.
func TestDelNothingRecorded(t *testing.T) {
	dir := t.TempDir()
	for _, stdin := range [][]byte{
		netconf("1.0.0", fmt.Sprintf(`"stateDir":%q`, dir), ""),
		netconf("0.4.0", fmt.Sprintf(`"stateDir":%q`, dir), prevResults["0.4.0"]),
	} {
		for _, ns := range []string{"", "/run/netns/nbtest-gone"} {
			if err := cmdDel(args(stdin, ns)); err != nil {
				t.Errorf("DEL (netns %q): %v", ns, err)
			}
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("DEL left %v in the state directory", ents)
	}
	code, msg := cniCode(t, cmdDel(&skel.CmdArgs{ContainerID: "ctr1", IfName: "bad/name", StdinData: netconf("1.0.0", fmt.Sprintf(`"stateDir":%q`, dir), "")}))
	if code != types.ErrInvalidNetworkConfig {
		t.Errorf("DEL of interface bad/name: code %d %q", code, msg)
	}
}

func TestGCNothingRecorded(t *testing.T) {
	dir := t.TempDir()
	stdin := netconf("1.1.0", fmt.Sprintf(`"stateDir":%q,"cni.dev/valid-attachments":[{"containerID":"ctr1","ifname":"eth0"}]`, dir), "")
	if err := cmdGC(&skel.CmdArgs{StdinData: stdin}); err != nil {
		t.Errorf("GC: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("GC left %v in the state directory", ents)
	}
}

// TestStatus: ready when taps can be made and the state directory used;
// a state directory that is a file makes the plugin unavailable (50).
func TestStatus(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, msg := cniCode(t, cmdStatus(&skel.CmdArgs{StdinData: netconf("1.1.0", fmt.Sprintf(`"stateDir":%q`, file), "")}))
	if code != types.ErrPluginNotAvailable {
		t.Errorf("STATUS with a file as state directory: code %d %q", code, msg)
	}
	f, err := os.OpenFile(tap.CloneDevice, os.O_RDWR, 0)
	if err != nil {
		t.Skipf("cannot open %s here (%v): the ready case needs it", tap.CloneDevice, err)
	}
	f.Close()
	dir := filepath.Join(t.TempDir(), "state")
	if err := cmdStatus(&skel.CmdArgs{StdinData: netconf("1.1.0", fmt.Sprintf(`"stateDir":%q`, dir), "")}); err != nil {
		t.Errorf("STATUS: %v", err)
	}
}

// TestLogFile: with logFile set, the lines carry the command, network,
// container and interface; a log file that cannot be opened is an I/O
// failure (5).
func TestLogFile(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "nb.log")
	t.Setenv("CNI_COMMAND", "DEL")
	stdin := netconf("1.0.0", fmt.Sprintf(`"stateDir":%q,"logFile":%q`, filepath.Join(dir, "state"), log), "")
	if err := cmdDel(args(stdin, "")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"cni_command":"DEL"`, `"network":"podnet"`, `"container":"ctr1"`, `"ifname":"eth0"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("log lacks %s:\n%s", want, b)
		}
	}
	stdin = netconf("1.0.0", fmt.Sprintf(`"stateDir":%q,"logFile":%q`, filepath.Join(dir, "state"), filepath.Join(dir, "no", "such", "dir", "nb.log")), "")
	if code, msg := cniCode(t, cmdDel(args(stdin, ""))); code != types.ErrIOFailure || !strings.Contains(msg, "logFile") {
		t.Errorf("unopenable log file: code %d %q", code, msg)
	}
}
