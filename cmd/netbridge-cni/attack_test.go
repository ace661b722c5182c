package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

// TestGCAttachmentLists: GC reads its list of valid attachments under the
// key of the spec (cni.dev/valid-attachments), else under the key the spec
// first gave it (cni.dev/attachments), and knows when there is none.
func TestGCAttachmentLists(t *testing.T) {
	a := func(id string) types.GCAttachment { return types.GCAttachment{ContainerID: id, IfName: "eth0"} }
	for _, c := range []struct {
		extra string
		want  []types.GCAttachment
		given bool
	}{
		{`"cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]`, []types.GCAttachment{a("c1")}, true},
		{`"cni.dev/attachments":[{"containerID":"c2","ifname":"eth0"}]`, []types.GCAttachment{a("c2")}, true},
		{`"cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}],"cni.dev/attachments":[{"containerID":"c2","ifname":"eth0"}]`, []types.GCAttachment{a("c1")}, true},
		{`"cni.dev/valid-attachments":[]`, []types.GCAttachment{}, true},
		{``, nil, false},
	} {
		conf, _, err := parseConf(netconf("1.1.0", c.extra, ""))
		if err != nil {
			t.Fatal(err)
		}
		got, given := conf.validAttachments()
		if !slices.Equal(got, c.want) || given != c.given {
			t.Errorf("%s: valid attachments %v (given %t), want %v (%t)", c.extra, got, given, c.want, c.given)
		}
	}
}

// TestDelNameNotUTF8: ADD refuses an interface name that is not valid
// UTF-8 (code 7, saying so); the DEL a runtime sends after that succeeds,
// with a line in the log, and leaves no file.
func TestDelNameNotUTF8(t *testing.T) {
	dir := t.TempDir()
	state, log := filepath.Join(dir, "state"), filepath.Join(dir, "nb.log")
	stdin := netconf("1.0.0", fmt.Sprintf(`"stateDir":%q,"logFile":%q`, state, log), "")
	a := &skel.CmdArgs{ContainerID: "ctr1", IfName: "eth\xff", StdinData: stdin}
	if err := cmdDel(a); err != nil {
		t.Fatalf("DEL of eth\\xff: %v", err)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "UTF-8") {
		t.Errorf("the log does not say why DEL did nothing:\n%s", b)
	}
	a.StdinData = netconf("1.0.0", fmt.Sprintf(`"stateDir":%q`, state), prevResults["1.0.0"])
	a.Netns = filepath.Join(dir, "no-such-netns")
	code, msg := cniCode(t, cmdAdd(a))
	if code != types.ErrInvalidNetworkConfig || !strings.Contains(msg, "UTF-8") || !strings.Contains(msg, `eth\xff`) {
		t.Errorf("ADD of eth\\xff: code %d %q, want %d showing the name and saying UTF-8", code, msg, types.ErrInvalidNetworkConfig)
	}
	if ents, _ := os.ReadDir(state); len(ents) != 0 {
		t.Errorf("left %v in the state directory", ents)
	}
}
