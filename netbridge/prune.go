package netbridge

import (
	"context"
	"errors"
	"fmt"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/pkg/state"
)

// netnsGone reports whether the netns of rec is nowhere to be found (not
// at its path, and not mounted or held by a process elsewhere). An error
// other than "does not exist" is not taken as gone.
func netnsGone(rec *journal.Record) bool {
	n, err := netns.Find(rec.Sandbox.Netns, rec.NetnsID, rec.NetnsCookie)
	if err != nil {
		return errors.Is(err, netns.ErrNotExist)
	}
	n.Close()
	return false
}

// Prune removes the records of the sandboxes whose netns is gone: a
// runtime failed after setup (or the attach of an interface) and never
// ran teardown. The netns took its links and qdiscs with it; Prune removes
// what lives outside it (device nodes in the state directory) and the
// record, and returns the ids it removed. Each id is judged and removed
// under its lock, so a concurrent setup of the same id is never undone: it
// either ran first (the netns is there, the record stays) or runs after.
// A record that cannot be read is reported and left in place.
func Prune(ctx context.Context, stateDir string) ([]string, error) {
	st, ids, err := recordedIDs(stateDir)
	if err != nil {
		return nil, err
	}
	var pruned []string
	var errs []error
	for _, id := range ids {
		gone, err := pruneOne(ctx, st, id)
		if err != nil {
			errs = append(errs, &RecordError{ID: id, Err: err})
			continue
		}
		if gone {
			pruned = append(pruned, id)
			loggerFrom(ctx).Info("pruned: the netns is gone", "id", id)
		}
	}
	return pruned, errors.Join(errs...)
}

// pruneOne removes id's record when its netns is gone, under its lock.
func pruneOne(ctx context.Context, s *state.Store, id string) (bool, error) {
	lock, err := s.Lock(ctx, id)
	if err != nil {
		return false, err
	}
	defer s.Release(lock, id)
	rec, err := journal.Read(s, id)
	if err != nil || rec == nil {
		return false, err
	}
	if !netnsGone(rec) {
		return false, nil
	}
	if err := rec.UndoAll(ctx, s); err != nil {
		return false, fmt.Errorf("pruning sandbox %q: %w", id, err)
	}
	return true, nil
}
