package macvtap

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/netbridge/netbridge/test/testnet"
)

// null is the device number of /dev/null, harmless to make nodes of.
var null = Device{Major: 1, Minor: 3}

func exists(t *testing.T, p string) bool {
	t.Helper()
	_, err := os.Lstat(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// TestNodesNeverGoThroughASymlinkedDir: a symbolic link in place of the
// node directory (STATE/ID.dev) is never followed, to make a node or to
// remove one.
func TestNodesNeverGoThroughASymlinkedDir(t *testing.T) {
	testnet.RequireRoot(t)
	base := t.TempDir()
	elsewhere := filepath.Join(base, "elsewhere")
	if err := os.Mkdir(elsewhere, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := MakeNode(filepath.Join(elsewhere, "victim"), null); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "sb.dev")
	if err := os.Symlink(elsewhere, link); err != nil {
		t.Fatal(err)
	}
	if err := MakeNode(filepath.Join(link, "nbm-eth0"), null); !errors.Is(err, ErrNotOurNode) {
		t.Errorf("MakeNode through a symlinked dir = %v, want ErrNotOurNode", err)
	}
	if exists(t, filepath.Join(elsewhere, "nbm-eth0")) {
		t.Error("MakeNode made a node through the symbolic link")
	}
	for _, remove := range []func(string) error{RemoveNode, func(p string) error { return RemoveNodeOf(p, null) }} {
		if err := remove(filepath.Join(link, "victim")); !errors.Is(err, ErrNotOurNode) {
			t.Errorf("removing through a symlinked dir = %v, want ErrNotOurNode", err)
		}
	}
	if !exists(t, filepath.Join(elsewhere, "victim")) {
		t.Error("a node was removed through the symbolic link")
	}
	if err := RemoveDir(link); !errors.Is(err, ErrNotOurNode) {
		t.Errorf("RemoveDir of a symbolic link = %v, want ErrNotOurNode", err)
	}
	if !exists(t, link) {
		t.Error("RemoveDir removed the symbolic link")
	}
}

// TestNodesOnlyInDirsOfOurOwn: a node directory another user owns, or that
// others may write, is refused.
func TestNodesOnlyInDirsOfOurOwn(t *testing.T) {
	testnet.RequireRoot(t)
	for _, c := range []struct {
		name  string
		owner int
		mode  os.FileMode
	}{{"foreign", 65534, 0o700}, {"world-writable", 0, 0o777}} {
		dir := filepath.Join(t.TempDir(), "sb.dev")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := MakeNode(filepath.Join(dir, "victim"), null); err != nil {
			t.Fatal(err)
		}
		os.Chmod(dir, c.mode)
		if err := os.Chown(dir, c.owner, c.owner); err != nil {
			t.Fatal(err)
		}
		if err := MakeNode(filepath.Join(dir, "nbm-eth0"), null); !errors.Is(err, ErrNotOurNode) {
			t.Errorf("%s: MakeNode = %v, want ErrNotOurNode", c.name, err)
		}
		if err := RemoveNode(filepath.Join(dir, "victim")); !errors.Is(err, ErrNotOurNode) {
			t.Errorf("%s: RemoveNode = %v, want ErrNotOurNode", c.name, err)
		}
		if !exists(t, filepath.Join(dir, "victim")) {
			t.Errorf("%s: the node was removed", c.name)
		}
	}
}

// TestRemoveNodeOfChecksTheNumber: a node is removed only when it is the
// device recorded for it.
func TestRemoveNodeOfChecksTheNumber(t *testing.T) {
	testnet.RequireRoot(t)
	p := filepath.Join(t.TempDir(), "sb.dev", "nbm-eth0")
	if err := MakeNode(p, null); err != nil {
		t.Fatal(err)
	}
	if err := RemoveNodeOf(p, Device{Major: 1, Minor: 5}); !errors.Is(err, ErrNotOurNode) {
		t.Errorf("RemoveNodeOf(another number) = %v, want ErrNotOurNode", err)
	}
	if !exists(t, p) {
		t.Fatal("a node of another number was removed")
	}
	if err := RemoveNodeOf(p, null); err != nil {
		t.Fatal(err)
	}
	if exists(t, p) {
		t.Error("the node of the recorded number was not removed")
	}
	if err := RemoveNodeOf(p, null); err != nil {
		t.Errorf("RemoveNodeOf of a missing node = %v, want nil", err)
	}
	if err := RemoveDir(filepath.Dir(p)); err != nil || exists(t, filepath.Dir(p)) {
		t.Errorf("RemoveDir of the empty node dir = %v (exists: %v)", err, exists(t, filepath.Dir(p)))
	}
}

func TestMajorOf(t *testing.T) {
	devices := "Character devices:\n  1 mem\n 10 misc\n246 macvtap\n\nBlock devices:\n  8 sd\n250 macvtap\n"
	if m, ok, err := majorOf(devices, "macvtap"); m != 246 || !ok || err != nil {
		t.Errorf("majorOf = %d, %v, %v; want 246", m, ok, err)
	}
	if _, ok, err := majorOf(devices, "sd"); ok || err != nil {
		t.Errorf("majorOf(a block device) = %v, %v; want not found", ok, err)
	}
	if m, ok, err := Major(); err != nil || (ok && m == 0) {
		t.Errorf("Major() = %d, %v, %v", m, ok, err)
	}
}
