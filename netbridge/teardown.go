package netbridge

import (
	"context"
	"fmt"
	"time"
)

// Teardown undoes the recorded setup of sandbox id, newest object first,
// leaving its netns as it was before setup, and removes the record.
//
// It is idempotent: an id with no record, or whose netns is gone, succeeds
// without doing anything. Only objects netbridge recorded are removed; a
// link of the same name that is not tagged as ours is left alone. When
// something cannot be removed, the record keeps what is left, so that
// teardown can be run again.
func (m *Manager) Teardown(ctx context.Context, id string) error {
	start := time.Now()
	log := m.log.With("id", id)
	st, rec, unlock, err := m.lockedRecord(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	if rec == nil {
		log.Info("nothing recorded; nothing to do", "state_dir", st.Dir(), "elapsed", time.Since(start))
		return nil
	}
	rec.SetLog(log)
	objects := len(rec.Journal)
	if err := rec.UndoAll(ctx, st); err != nil {
		return fmt.Errorf("tearing down sandbox %q: %w", id, err)
	}
	if rec.NetnsGone() {
		log.Info("netns gone, and the objects in it with it; record removed", "netns", rec.Sandbox.Netns, "elapsed", time.Since(start))
		return nil
	}
	log.Info("torn down", "netns", rec.Sandbox.Netns, "objects", objects, "elapsed", time.Since(start))
	return nil
}
