package netbridge

import (
	"context"
	"fmt"
	"time"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/pkg/sandboxid"
	"github.com/netbridge/netbridge/pkg/state"
)

// Teardown undoes the recorded setup of sandbox id, newest object first,
// leaving its netns as it was before setup, and removes the record.
//
// It is idempotent: an id with no record, or whose netns is gone, succeeds
// without doing anything. Only objects netbridge recorded are removed; a
// link of the same name that is not tagged as ours is left alone. When
// something cannot be removed, the record keeps what is left, so that
// teardown can be run again.
func Teardown(ctx context.Context, stateDir, id string) error {
	if err := sandboxid.Check(id); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	start := time.Now()
	log := loggerFrom(ctx).With("id", id)
	st, err := state.Open(state.Dir(stateDir))
	if err != nil {
		return err
	}
	lock, err := st.Lock(ctx, id)
	if err != nil {
		return err
	}
	defer st.Release(lock, id)
	rec, err := journal.Read(st, id)
	if err != nil {
		return err
	}
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
