// Package state keeps one JSON record per sandbox id in a state directory:
// written atomically (temporary file, rename) and guarded by a per-id lock
// (flock), so that different ids proceed in parallel and the same id is
// handled by one process at a time.
//
// Writes are not fsynced. A record describes kernel objects (links,
// qdiscs, namespaces) that do not outlive the kernel, so it must survive
// the crash of a process, which an atomic rename guarantees, not the crash
// of the machine, after which there is nothing left to undo. An fsync of
// the file and the directory cost about 2 ms per write on ext4 here, and
// setup writes the record once per kernel object.
package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// EnvDir names the environment variable that overrides the default state
// directory.
const EnvDir = "NETBRIDGE_STATE_DIR"

// DefaultDir is the state directory used when neither a flag nor EnvDir
// names one.
const DefaultDir = "/run/netbridge"

// MaxIDLen is the longest sandbox id accepted, in bytes.
const MaxIDLen = 128

// ErrInvalidID reports a sandbox id that cannot be used.
var ErrInvalidID = errors.New("invalid sandbox id")

// ValidateID checks id against the CNI container-id rules: it starts with a
// letter or digit, holds only letters, digits, '_', '.' and '-', contains no
// "..", and is at most MaxIDLen bytes.
func ValidateID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty", ErrInvalidID)
	case len(id) > MaxIDLen:
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidID, len(id), MaxIDLen)
	case strings.Contains(id, ".."):
		return fmt.Errorf("%w %q: contains \"..\"", ErrInvalidID, id)
	case !idChars(id):
		return fmt.Errorf("%w %q: use letters, digits, '_', '.' and '-', starting with a letter or digit", ErrInvalidID, id)
	}
	return nil
}

// idChars reports whether id starts with a letter or digit and holds only
// letters, digits, '_', '.' and '-'. (A regular expression would do, but
// compiling it at start-up cost every netbridge process half a
// millisecond.)
func idChars(id string) bool {
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return id != ""
}

// Dir resolves the state directory: flag if non-empty, else $NETBRIDGE_STATE_DIR,
// else DefaultDir.
func Dir(flag string) string {
	if flag != "" {
		return flag
	}
	if d := os.Getenv(EnvDir); d != "" {
		return d
	}
	return DefaultDir
}

// Store is a state directory.
type Store struct {
	dir string
}

// Open returns the store in dir, creating the directory with mode 0700 if it
// does not exist. An existing path that is a symbolic link or not a directory
// is refused.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("state directory: empty path")
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("creating parent of state directory %q: %w", dir, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("creating state directory %q: %w", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, fmt.Errorf("checking state directory %q: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("state directory %q is not a directory (a symbolic link or file is refused)", dir)
	}
	return &Store{dir: dir}, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(id, suffix string) string { return filepath.Join(s.dir, id+suffix) }

// Lock is a held per-id lock.
type Lock struct {
	f    *os.File
	path string
}

// Lock takes the lock of id, waiting until it is free or ctx is done.
func (s *Store) Lock(ctx context.Context, id string) (*Lock, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	p := s.path(id, ".lock")
	delay := time.Millisecond
	for {
		f, err := openNoFollow(p, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("opening lock %q: %w", p, err)
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			// The holder before us may have removed the file after we
			// opened it; then our lock is on an orphan inode. Retry.
			if same(f, p) {
				return &Lock{f: f, path: p}, nil
			}
			f.Close()
			continue
		}
		f.Close()
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("locking %q: %w", p, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the lock of sandbox %q (another netbridge is working on it): %w", id, ctx.Err())
		case <-time.After(delay):
		}
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
}

func same(f *os.File, path string) bool {
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	pi, err := os.Lstat(path)
	return err == nil && os.SameFile(fi, pi)
}

// Unlock releases the lock.
func (l *Lock) Unlock() error { return l.f.Close() }

// UnlockAndRemove removes the lock file, then releases the lock. Call it
// when the id's record is gone, so no file is left behind.
func (l *Lock) UnlockAndRemove() error {
	err := os.Remove(l.path)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Read decodes the record of id into v. It returns false and no error when
// there is no record.
func (s *Store) Read(id string, v any) (bool, error) {
	if err := ValidateID(id); err != nil {
		return false, err
	}
	p := s.path(id, ".json")
	f, err := openNoFollow(p, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("opening state %q: %w", p, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() == 0 {
		// Only a machine crash leaves an empty record (a rename that
		// reached the disk before the data did), and the objects it
		// described died with that kernel.
		return false, nil
	}
	dec := json.NewDecoder(f)
	if err := dec.Decode(v); err != nil {
		return false, fmt.Errorf("decoding state %q: %w", p, err)
	}
	return true, nil
}

// Write replaces the record of id with v atomically: readers see the old
// record or the new one, never a mix, even across a crash.
func (s *Store) Write(id string, v any) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	b, err := json.Marshal(v) // compact: a record is rewritten once per setup step
	if err != nil {
		return fmt.Errorf("encoding state of %q: %w", id, err)
	}
	b = append(b, '\n')
	tmp, err := os.CreateTemp(s.dir, "."+id+".*.tmp")
	if err != nil {
		return fmt.Errorf("writing state of %q: %w", id, err)
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), s.path(id, ".json"))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing state of %q: %w", id, err)
	}
	return nil
}

// Remove deletes the record of id; a missing record is not an error.
func (s *Store) Remove(id string) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	if err := os.Remove(s.path(id, ".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing state of %q: %w", id, err)
	}
	return nil
}

// Has reports whether id has a record.
func (s *Store) Has(id string) bool {
	if ValidateID(id) != nil {
		return false
	}
	_, err := os.Lstat(s.path(id, ".json"))
	return err == nil
}

// Release releases l, which must be id's lock, and removes the lock file
// when id has no record (left), so that no file outlives its sandbox.
func (s *Store) Release(l *Lock, id string) error {
	if s.Has(id) {
		return l.Unlock()
	}
	return l.UnlockAndRemove()
}

// List returns the ids that have a record, sorted.
func (s *Store) List() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("listing state directory %q: %w", s.dir, err)
	}
	var ids []string
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if ok && e.Type().IsRegular() && ValidateID(id) == nil {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

func openNoFollow(path string, flag int, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(path, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
}
