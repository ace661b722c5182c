package netbridge

import (
	"context"
	"errors"
	"fmt"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/pkg/netns"
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
func (m *Manager) Prune(ctx context.Context) ([]string, error) {
	st, ids, err := m.recordedIDs()
	if err != nil {
		return nil, err
	}
	var pruned []string
	var errs []error
	for _, id := range ids {
		gone := false
		err := m.withRecord(ctx, st, id, func(rec *journal.Record) error {
			if rec == nil || !netnsGone(rec) {
				return nil
			}
			if err := rec.UndoAll(ctx, st); err != nil {
				return fmt.Errorf("pruning sandbox %q: %w", id, err)
			}
			gone = true
			return nil
		})
		if err != nil {
			errs = append(errs, &RecordError{ID: id, Err: err})
			continue
		}
		if gone {
			pruned = append(pruned, id)
			m.log.Info("pruned: the netns is gone", "id", id)
		}
	}
	return pruned, errors.Join(errs...)
}
