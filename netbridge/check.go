package netbridge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/pkg/sandboxid"
	"github.com/netbridge/netbridge/pkg/state"
	"github.com/netbridge/netbridge/sandbox"
)

// ErrNotFound reports that no sandbox of that id is recorded.
var ErrNotFound = errors.New("no such sandbox")

// CheckError lists what is wrong with a sandbox's wiring.
type CheckError struct {
	ID       string
	Problems []string
}

func (e *CheckError) Error() string {
	return fmt.Sprintf("sandbox %q wiring is not intact: %s", e.ID, strings.Join(e.Problems, "; "))
}

// Check verifies that the recorded wiring of sandbox id is intact: every
// interface and tap exists with the recorded MAC, MTU and state, and the
// model's objects are in place. It returns nil when all is well, a
// *CheckError listing the problems, or another error when it could not
// look.
func Check(ctx context.Context, stateDir, id string) error {
	st, rec, unlock, err := lockedRecord(ctx, stateDir, id)
	if err != nil {
		return err
	}
	defer unlock()
	if rec == nil {
		return fmt.Errorf("checking sandbox %q: %w in %s", id, ErrNotFound, st.Dir())
	}
	if rec.Phase != sandbox.PhaseReady {
		return &CheckError{ID: id, Problems: []string{"setup did not finish (interrupted?); run setup again or teardown"}}
	}
	return checkIn(rec, rec.Sandbox.NICs)
}

// CheckInterface is Check for the one interface ifname of sandbox id,
// attached by Attach or set up by Setup: it returns ErrNotFound (wrapped)
// when that interface is not recorded.
func CheckInterface(ctx context.Context, stateDir, id, ifname string) error {
	st, rec, unlock, err := lockedRecord(ctx, stateDir, id)
	if err != nil {
		return err
	}
	defer unlock()
	i := -1
	if rec != nil {
		i = slices.IndexFunc(rec.Sandbox.NICs, func(n NIC) bool { return n.Name == ifname })
	}
	if i < 0 {
		return fmt.Errorf("checking interface %q of sandbox %q: %w in %s", ifname, id, ErrNotFound, st.Dir())
	}
	if rec.Phase != sandbox.PhaseReady && slices.ContainsFunc(rec.Journal, func(s journal.Step) bool { return s.Iface == ifname && !s.Done }) {
		return &CheckError{ID: id, Problems: []string{ifname + ": setup did not finish (interrupted?); attach again or detach"}}
	}
	return checkIn(rec, rec.Sandbox.NICs[i:i+1])
}

// checkIn checks the wiring of nics, of the sandbox rec records, in its
// netns.
func checkIn(rec *journal.Record, nics []NIC) error {
	id := rec.Sandbox.ID
	n, err := netns.Open(rec.Sandbox.Netns)
	if err != nil {
		return &CheckError{ID: id, Problems: []string{err.Error()}}
	}
	defer n.Close()
	if n.ID() != rec.NetnsID {
		return &CheckError{ID: id, Problems: []string{fmt.Sprintf("netns %q is another namespace than the one set up (%s, now %s)", rec.Sandbox.Netns, rec.NetnsID, n.ID())}}
	}
	h, err := journal.OpenHandle(n)
	if err != nil {
		return err
	}
	defer h.Close()
	if p := models.Check(h, n.Fd(), id, nics); len(p) > 0 {
		return &CheckError{ID: id, Problems: p}
	}
	return nil
}

// lockedRecord opens the store, takes id's lock and reads its record (nil
// when there is none). unlock releases the lock.
func lockedRecord(ctx context.Context, stateDir, id string) (*state.Store, *journal.Record, func(), error) {
	if err := sandboxid.Check(id); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	st, err := state.Open(state.Dir(stateDir))
	if err != nil {
		return nil, nil, nil, err
	}
	lock, err := st.Lock(ctx, id)
	if err != nil {
		return nil, nil, nil, err
	}
	rec, err := journal.Read(st, id)
	if err != nil {
		st.Release(lock, id)
		return nil, nil, nil, err
	}
	return st, rec, func() { st.Release(lock, id) }, nil
}
