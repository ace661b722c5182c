package netbridge

import (
	"context"
	"fmt"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/pkg/sandboxid"
	"github.com/netbridge/netbridge/pkg/state"
	"github.com/netbridge/netbridge/sandbox"
)

// lockedRecord opens the store, takes id's lock and reads its record (nil
// when there is none). unlock releases the lock.
func (m *Manager) lockedRecord(ctx context.Context, id string) (st *state.Store, rec *journal.Record, unlock func(), err error) {
	if err := sandboxid.Check(id); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %w", sandbox.ErrInvalidConfig, err)
	}
	if st, err = m.store(); err != nil {
		return nil, nil, nil, err
	}
	lock, err := st.Lock(ctx, id)
	if err != nil {
		return nil, nil, nil, err
	}
	if rec, err = journal.Read(st, id); err != nil {
		st.Release(lock, id)
		return nil, nil, nil, err
	}
	return st, rec, func() { st.Release(lock, id) }, nil
}

// withRecord runs fn with the record of id in st (nil when there is none),
// under id's lock.
func (m *Manager) withRecord(ctx context.Context, st *state.Store, id string, fn func(*journal.Record) error) error {
	lock, err := st.Lock(ctx, id)
	if err != nil {
		return err
	}
	defer st.Release(lock, id)
	rec, err := journal.Read(st, id)
	if err != nil {
		return err
	}
	return fn(rec)
}

// recordedIDs opens the state directory and lists the ids it has a record
// of.
func (m *Manager) recordedIDs() (*state.Store, []string, error) {
	st, err := m.store()
	if err != nil {
		return nil, nil, err
	}
	ids, err := st.List()
	return st, ids, err
}
