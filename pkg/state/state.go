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
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/pkg/sandboxid"
)

// EnvDir names the environment variable that overrides the default state
// directory.
const EnvDir = "NETBRIDGE_STATE_DIR"

// DefaultDir is the state directory used when neither a flag nor EnvDir
// names one.
const DefaultDir = "/run/netbridge"

// MaxRecordSize is the largest record read or written, in bytes: 4 MiB,
// hundreds of times what a sandbox with a dozen interfaces needs. A larger
// file was not written by netbridge and is refused unread.
const MaxRecordSize = 4 << 20

// ErrUnsafeDir reports a state directory that is not netbridge's alone: a
// symbolic link or not a directory, owned by another user, or writable by
// group or others, who could plant records there.
var ErrUnsafeDir = errors.New("unsafe state directory")

// ErrBadRecord reports a record that cannot be used: undecodable, larger
// than MaxRecordSize, or a file that another user owns or may write.
var ErrBadRecord = errors.New("unusable state record")

// ErrTooLarge reports a record larger than MaxRecordSize.
var ErrTooLarge = errors.New("state record too large")

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

// Open returns the store in dir, made absolute, creating the directory
// with mode 0700 if it does not exist. The directory must be netbridge's
// alone: one that is a symbolic link or not a directory, owned by another
// user than the caller (the effective uid), or writable by group or others
// is refused with ErrUnsafeDir. One of the caller's that group or others
// may read or enter is tightened to 0700.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("state directory: empty path")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("state directory %q: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("creating parent of state directory %q: %w", dir, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("creating state directory %q: %w", dir, err)
	}
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	return &Store{dir: dir}, nil
}

// checkDir checks that dir is a directory of the caller's alone, and
// tightens its mode to 0700.
func checkDir(dir string) error {
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return fmt.Errorf("%w %q: not a directory (a symbolic link or file is refused)", ErrUnsafeDir, dir)
	}
	if err != nil {
		return fmt.Errorf("checking state directory %q: %w", dir, err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("checking state directory %q: %w", dir, err)
	}
	if euid := os.Geteuid(); int(st.Uid) != euid {
		return fmt.Errorf("%w %q: owned by uid %d, and netbridge runs as uid %d; use a directory of that user's own, or chown it after checking its contents", ErrUnsafeDir, dir, st.Uid, euid)
	}
	perm := st.Mode & 0o7777
	if perm&0o022 != 0 {
		return fmt.Errorf("%w %q: mode %04o lets group or others write there and plant records; check its contents, then chmod 0700 it, or use another directory", ErrUnsafeDir, dir, perm)
	}
	if perm&0o077 != 0 {
		if err := unix.Fchmod(int(f.Fd()), perm&^0o077); err != nil {
			return fmt.Errorf("tightening state directory %q to mode 0700: %w", dir, err)
		}
	}
	return nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(id, suffix string) string { return filepath.Join(s.dir, id+suffix) }

// NodeDir returns the directory of the private device nodes of sandbox id
// in the state directory dir: DIR/ID.dev, next to its record.
func NodeDir(dir, id string) string { return filepath.Join(dir, id+".dev") }

// NodeDir returns the directory of the private device nodes of sandbox id.
func (s *Store) NodeDir(id string) string { return NodeDir(s.dir, id) }

// Lock is a held per-id lock.
type Lock struct {
	f    *os.File
	path string
}

// Lock takes the lock of id, waiting until it is free or ctx is done.
func (s *Store) Lock(ctx context.Context, id string) (*Lock, error) {
	if err := sandboxid.Check(id); err != nil {
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
				s.removeTemp(id)
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

// removeTemp removes the temporary file of id's record, which only a
// writer killed between writing and renaming leaves behind: every writer
// holds the lock, so none is using it while we hold it.
func (s *Store) removeTemp(id string) {
	os.Remove(s.tempPath(id))
}

// tempPath is where the next record of id is written before it is renamed
// into place: one name per id, since only the holder of id's lock writes.
func (s *Store) tempPath(id string) string { return filepath.Join(s.dir, "."+id+".tmp") }

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
	if err := sandboxid.Check(id); err != nil {
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
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false, fmt.Errorf("checking state %q: %w", p, err)
	}
	if err := checkRecordFile(p, &st); err != nil {
		return false, err
	}
	if st.Size == 0 {
		// Only a machine crash leaves an empty record (a rename that
		// reached the disk before the data did), and the objects it
		// described died with that kernel.
		return false, nil
	}
	dec := json.NewDecoder(io.LimitReader(f, MaxRecordSize))
	if err := dec.Decode(v); err != nil {
		return false, fmt.Errorf("decoding state %q: %w: %w (remove the file if netbridge did not write it)", p, ErrBadRecord, err)
	}
	return true, nil
}

// checkRecordFile checks the record file at p, of status st, before it is
// read: a regular file of the caller's that no one else may write, no
// larger than MaxRecordSize.
func checkRecordFile(p string, st *unix.Stat_t) error {
	switch euid := os.Geteuid(); {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return fmt.Errorf("state %q: %w: not a regular file", p, ErrBadRecord)
	case int(st.Uid) != euid:
		return fmt.Errorf("state %q: %w: owned by uid %d, not by uid %d that netbridge runs as; not trusting it (remove it if netbridge did not write it)", p, ErrBadRecord, st.Uid, euid)
	case st.Mode&0o022 != 0:
		return fmt.Errorf("state %q: %w: mode %04o lets group or others write it; not trusting it (remove it if netbridge did not write it)", p, ErrBadRecord, st.Mode&0o7777)
	case st.Size > MaxRecordSize:
		return fmt.Errorf("state %q: %w: %w: %d bytes, more than %d; not reading it (remove it: netbridge did not write it)", p, ErrBadRecord, ErrTooLarge, st.Size, MaxRecordSize)
	}
	return nil
}

// Write replaces the record of id with v atomically: readers see the old
// record or the new one, never a mix, even across a crash. The caller holds
// id's lock. A record larger than MaxRecordSize is not written (ErrTooLarge).
func (s *Store) Write(id string, v any) error {
	if err := sandboxid.Check(id); err != nil {
		return err
	}
	b, err := json.Marshal(v) // compact: a record is rewritten once per setup step
	if err != nil {
		return fmt.Errorf("encoding state of %q: %w", id, err)
	}
	b = append(b, '\n')
	if len(b) > MaxRecordSize {
		return fmt.Errorf("writing state of %q: %w: %d bytes, more than %d", id, ErrTooLarge, len(b), MaxRecordSize)
	}
	tmp := s.tempPath(id)
	f, err := openNoFollow(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("writing state of %q: %w", id, err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path(id, ".json"))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing state of %q: %w", id, err)
	}
	return nil
}

// Remove deletes the record of id; a missing record is not an error.
func (s *Store) Remove(id string) error {
	if err := sandboxid.Check(id); err != nil {
		return err
	}
	if err := os.Remove(s.path(id, ".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing state of %q: %w", id, err)
	}
	return nil
}

// Has reports whether id has a record: a regular file (a symbolic link or
// anything else in its place is refused by Read, and is not one).
func (s *Store) Has(id string) bool {
	if sandboxid.Check(id) != nil {
		return false
	}
	fi, err := os.Lstat(s.path(id, ".json"))
	return err == nil && fi.Mode().IsRegular()
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
		if ok && e.Type().IsRegular() && sandboxid.Check(id) == nil {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

func openNoFollow(path string, flag int, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(path, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
}
