package netbridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/pkg/sandboxid"
	"github.com/netbridge/netbridge/sandbox"
)

// Status is a recorded sandbox and the phase of its setup.
type Status struct {
	sandbox.Sandbox
	// Phase is "ready" when setup finished, "setting-up" while it runs or
	// when it was interrupted.
	Phase sandbox.Phase `json:"phase"`
	// Created is when the setup began.
	Created time.Time `json:"created"`
	// Attached reports that the sandbox's interfaces were attached one by
	// one (Attach, as the CNI plugin does) rather than set up as a whole.
	Attached bool `json:"attached,omitempty"`
	// Stale reports that the sandbox's netns is gone (it is nowhere to be
	// found, not only not at its path): a runtime failed after setup and
	// never ran teardown. Its objects went with the netns; Prune removes
	// the record.
	Stale bool `json:"stale,omitempty"`
}

// Load returns the recorded sandbox id, which must be fully set up. It
// reads the state without entering the netns.
func (m *Manager) Load(ctx context.Context, id string) (*sandbox.Sandbox, error) {
	if err := sandboxid.Check(id); err != nil {
		return nil, fmt.Errorf("%w: %w", sandbox.ErrInvalidConfig, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, err := m.store()
	if err != nil {
		return nil, err
	}
	rec, err := journal.Read(st, id)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("loading sandbox %q: %w in %s", id, ErrNotFound, st.Dir())
	}
	if rec.Phase != sandbox.PhaseReady {
		return nil, fmt.Errorf("loading sandbox %q: its setup did not finish; run setup again or teardown", id)
	}
	sb := rec.Sandbox
	return &sb, nil
}

// List returns every recorded sandbox, ordered by id. A record that
// cannot be read does not hide the others: List returns them all, with an
// error joining a *RecordError for each record it could not read.
func (m *Manager) List(ctx context.Context) ([]Status, error) {
	st, ids, err := m.recordedIDs()
	if err != nil {
		return nil, err
	}
	out := []Status{}
	var errs []error
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return out, errors.Join(append(errs, err)...)
		}
		rec, err := journal.Read(st, id)
		if err != nil {
			errs = append(errs, &RecordError{ID: id, Err: err})
			continue
		}
		if rec != nil { // removed meanwhile otherwise
			out = append(out, Status{Sandbox: rec.Sandbox, Phase: rec.Phase, Created: rec.Created, Attached: rec.Mode == journal.ModeAttach, Stale: netnsGone(rec)})
		}
	}
	return out, errors.Join(errs...)
}
