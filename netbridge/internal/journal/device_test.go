package journal

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/netbridge/netbridge/pkg/macvtap"
)

// TestDevicePathStaysInTheNodeDir: whatever path a create-device step
// names, undo acts on STATE/ID.dev/NAME only, and refuses a step naming
// any other place.
func TestDevicePathStaysInTheNodeDir(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "state")
	if err := os.MkdirAll(filepath.Join(dir, "sb.dev"), 0o700); err != nil {
		t.Fatal(err)
	}
	alias := filepath.Join(base, "alias")
	if err := os.Symlink(dir, alias); err != nil {
		t.Fatal(err)
	}
	ours := filepath.Join(dir, "sb.dev", "nbm-eth0")
	r := &Record{dir: dir}
	for _, recorded := range []string{
		ours,
		filepath.Join(alias, "sb.dev", "nbm-eth0"),   // the state dir by another name
		filepath.Join("state", "sb.dev", "nbm-eth0"), // an older record of a relative --state-dir
	} {
		if got, err := r.devicePath("sb", recorded); err != nil || got != ours {
			t.Errorf("devicePath(%q) = %q, %v; want %q", recorded, got, err, ours)
		}
	}
	for _, recorded := range []string{
		"/dev/sda",
		filepath.Join(dir, "other.dev", "nbm-eth0"),
		dir + "/sb.dev/../../victim",
		filepath.Join(dir, "sb.dev"),
		filepath.Join(dir, "sb.dev", ".."),
		filepath.Join(dir, "sb.dev", "a-name-far-too-long"),
		"relative/elsewhere/nbm-eth0",
		"",
	} {
		if got, err := r.devicePath("sb", recorded); !errors.Is(err, macvtap.ErrNotOurNode) {
			t.Errorf("devicePath(%q) = %q, %v; want ErrNotOurNode", recorded, got, err)
		}
	}
	if _, err := (&Record{}).devicePath("sb", ours); !errors.Is(err, macvtap.ErrNotOurNode) {
		t.Errorf("devicePath without a state dir = %v, want ErrNotOurNode", err)
	}
}

// TestNodeCheck: with a recorded number only that device passes; an older
// record's node must be a macvtap's.
func TestNodeCheck(t *testing.T) {
	check, err := nodeCheck(Step{Op: OpDevice, DevNum: "246:3"})
	if err != nil {
		t.Fatal(err)
	}
	if check(macvtap.Device{Major: 246, Minor: 3}) != nil || check(macvtap.Device{Major: 246, Minor: 4}) == nil {
		t.Error("a recorded number must pass exactly its device")
	}
	if _, err := nodeCheck(Step{Op: OpDevice, DevNum: "sda"}); err == nil {
		t.Error("a malformed recorded number was accepted")
	}
	major, ok, err := macvtap.Major()
	if err != nil {
		t.Fatal(err)
	}
	old, err := nodeCheck(Step{Op: OpDevice})
	if err != nil {
		t.Fatal(err)
	}
	if ok && (old(macvtap.Device{Major: major, Minor: 9}) != nil || old(macvtap.Device{Major: 1, Minor: 3}) == nil) {
		t.Errorf("an older record's node must be a macvtap's (major %d)", major)
	}
}
