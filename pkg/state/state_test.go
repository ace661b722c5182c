package state

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type rec struct {
	Version int      `json:"version"`
	Names   []string `json:"names"`
}

func TestRoundTripAndPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode = %v, %v; want 0700", fi.Mode().Perm(), err)
	}
	var got rec
	if ok, err := s.Read("sb", &got); ok || err != nil {
		t.Fatalf("Read of a missing record = %v, %v; want false, nil", ok, err)
	}
	want := rec{Version: 1, Names: []string{"eth0", "net1"}}
	if err := s.Write("sb", want); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Read("sb", &got); !ok || err != nil || got.Version != 1 || len(got.Names) != 2 {
		t.Fatalf("Read = %+v, %v, %v; want %+v", got, ok, err, want)
	}
	fi, err = os.Stat(filepath.Join(dir, "sb.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("record mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("state dir holds %d entries after a write, want 1 (no temporary files left)", len(ents))
	}
	ids, err := s.List()
	if err != nil || len(ids) != 1 || ids[0] != "sb" {
		t.Errorf("List = %v, %v; want [sb]", ids, err)
	}
	if err := s.Remove("sb"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("sb"); err != nil {
		t.Errorf("second Remove = %v, want nil", err)
	}
	if s.Has("sb") {
		t.Error("Has after Remove = true")
	}
}

func TestRefusesSymlinks(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(link); err == nil {
		t.Error("Open of a symlinked state dir succeeded")
	}
	s, err := Open(real)
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(base, "secret")
	if err := os.WriteFile(target, []byte(`{"version":9}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(real, "evil.json")); err != nil {
		t.Fatal(err)
	}
	var r rec
	if _, err := s.Read("evil", &r); err == nil {
		t.Error("Read followed a symlinked record")
	}
}

func TestCorruptRecord(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir(), "bad.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	var r rec
	if _, err := s.Read("bad", &r); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("Read of a corrupt record = %v, want an error naming the file", err)
	}
}

func TestLockSerializesAndTimesOut(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := s.Lock(ctx, "sb")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if _, err := s.Lock(short, "sb"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Lock while held = %v, want DeadlineExceeded", err)
	}
	other, err := s.Lock(ctx, "other")
	if err != nil {
		t.Fatalf("Lock of another id while sb is held: %v", err)
	}
	s.Release(other, "other")

	// Many waiters, each removing the lock file on release: at most one
	// holds the lock at any time.
	var (
		mu      sync.Mutex
		holders int
		wg      sync.WaitGroup
	)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := s.Lock(ctx, "sb")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			holders++
			if holders > 1 {
				t.Error("two holders of one lock")
			}
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			holders--
			mu.Unlock()
			if err := s.Release(l, "sb"); err != nil {
				t.Error(err)
			}
		}()
	}
	time.Sleep(5 * time.Millisecond)
	if err := l.UnlockAndRemove(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if ents, _ := os.ReadDir(s.Dir()); len(ents) != 0 {
		t.Errorf("lock files left behind: %v", ents)
	}
}

func TestDir(t *testing.T) {
	t.Setenv(EnvDir, "")
	if d := Dir(""); d != DefaultDir {
		t.Errorf("Dir(\"\") = %q, want %q", d, DefaultDir)
	}
	t.Setenv(EnvDir, "/x")
	if d := Dir(""); d != "/x" {
		t.Errorf("Dir with $%s = %q, want /x", EnvDir, d)
	}
	if d := Dir("/flag"); d != "/flag" {
		t.Errorf("Dir(/flag) = %q", d)
	}
}

// An empty record file (what a machine crash can leave of a rename whose
// data never reached the disk) reads as no record.
func TestEmptyRecordReadsAsNone(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir(), "sb1.json"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	ok, err := s.Read("sb1", &v)
	if ok || err != nil {
		t.Errorf("Read of an empty record = %v, %v; want false, nil", ok, err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir(), "sb1.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read("sb1", &v); err == nil {
		t.Error("Read of a torn record = nil error")
	}
}
