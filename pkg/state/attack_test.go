package state

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// nobody is the uid another, unprivileged user has in these tests.
const nobody = 65534

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files to another user")
	}
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestOpenRefusesDirsOthersControl: a state directory another user owns, or
// that group or others may write (where anyone could plant a record), is
// refused and left as it is; one of ours that others may only read is
// tightened to 0700.
func TestOpenRefusesDirsOthersControl(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	for _, c := range []struct {
		name  string
		mode  os.FileMode
		owner int
	}{
		{"foreign", 0o700, nobody},
		{"foreign-world-writable", 0o777, nobody},
		{"world-writable", 0o777, 0},
		{"group-writable", 0o770, 0},
		{"sticky-world-writable", 0o777 | os.ModeSticky, 0},
	} {
		dir := filepath.Join(base, c.name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, c.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, c.owner, c.owner); err != nil {
			t.Fatal(err)
		}
		before := mode(t, dir)
		if _, err := Open(dir); !errors.Is(err, ErrUnsafeDir) {
			t.Errorf("Open(%s dir) = %v, want ErrUnsafeDir", c.name, err)
		}
		if got := mode(t, dir); got != before {
			t.Errorf("Open changed the mode of the %s dir: %v -> %v", c.name, before, got)
		}
	}

	// Ours, 0755 (a pre-created dir): tightened.
	dir := filepath.Join(base, "ours")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := mode(t, dir); got != 0o700 {
		t.Errorf("mode of a pre-created 0755 state dir after Open = %v, want 0700", got)
	}
	// A relative path is made absolute, so the paths of device nodes
	// under it mean the same thing from any working directory.
	if !filepath.IsAbs(s.Dir()) {
		t.Errorf("Dir() = %q, want an absolute path", s.Dir())
	}
}

// TestReadRefusesRecordsOthersControl: a record owned by another user, or
// writable by others, or larger than MaxRecordSize is refused without
// being decoded.
func TestReadRefusesRecordsOthersControl(t *testing.T) {
	requireRoot(t)
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	write := func(id, text string, perm os.FileMode, owner int) {
		p := filepath.Join(s.Dir(), id+".json")
		if err := os.WriteFile(p, []byte(text), perm); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, perm)
		if err := os.Chown(p, owner, owner); err != nil {
			t.Fatal(err)
		}
	}
	write("foreign", `{"version":1}`, 0o600, nobody)
	write("writable", `{"version":1}`, 0o666, 0)
	write("huge", `{"version":1,"names":["`+strings.Repeat("x", MaxRecordSize)+`"]}`, 0o600, 0)
	for _, id := range []string{"foreign", "writable", "huge"} {
		var r rec
		ok, err := s.Read(id, &r)
		if ok || !errors.Is(err, ErrBadRecord) || r.Version != 0 {
			t.Errorf("Read(%s) = %v, %v (decoded %+v); want ErrBadRecord, nothing decoded", id, ok, err, r)
		}
	}
	var r rec
	if _, err := s.Read("huge", &r); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Read(huge) = %v, want ErrTooLarge", err)
	}
}

// TestWriteRefusesRecordsTooLargeToRead: a record that Read would refuse
// is never written.
func TestWriteRefusesRecordsTooLargeToRead(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	big := rec{Names: []string{strings.Repeat("x", MaxRecordSize)}}
	if err := s.Write("sb", big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Write of a %d-byte record = %v, want ErrTooLarge", MaxRecordSize, err)
	}
	fits := rec{Version: 1, Names: []string{strings.Repeat("x", MaxRecordSize-100)}}
	if err := s.Write("sb", fits); err != nil {
		t.Fatal(err)
	}
	var got rec
	if ok, err := s.Read("sb", &got); !ok || err != nil || got.Version != 1 {
		t.Errorf("Read of a record just under the limit = %v, %v", ok, err)
	}
}

// TestLockRemovesLeftoverTemp: the temporary file a writer killed before
// its rename leaves is removed by the next holder of that id's lock, and
// only that id's.
func TestLockRemovesLeftoverTemp(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{".sb.tmp", ".sb.x.tmp", ".sb2.tmp"} {
		if err := os.WriteFile(filepath.Join(s.Dir(), name), []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l, err := s.Lock(context.Background(), "sb")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Release(l, "sb"); err != nil {
		t.Fatal(err)
	}
	var names []string
	ents, _ := os.ReadDir(s.Dir())
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{".sb.x.tmp", ".sb2.tmp"}; !slices.Equal(names, want) {
		t.Errorf("state dir holds %q after locking sb, want %q", names, want)
	}
}

// TestReleaseRemovesLockBesideRefusedRecord: when the record in place of
// id is a symbolic link (refused), releasing id's lock removes the lock
// file, which is ours, and leaves the link.
func TestReleaseRemovesLockBesideRefusedRecord(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/hostname", filepath.Join(s.Dir(), "sb.json")); err != nil {
		t.Fatal(err)
	}
	l, err := s.Lock(context.Background(), "sb")
	if err != nil {
		t.Fatal(err)
	}
	var r rec
	if _, err := s.Read("sb", &r); err == nil {
		t.Fatal("Read followed a symlinked record")
	}
	if err := s.Release(l, "sb"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(s.Dir(), "sb.lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("sb.lock after Release: %v, want it removed", err)
	}
	if _, err := os.Lstat(filepath.Join(s.Dir(), "sb.json")); err != nil {
		t.Errorf("the symlink was removed: %v", err)
	}
}
