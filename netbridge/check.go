package netbridge

import (
	"context"
	"fmt"
	"slices"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/sandbox"
)

// Check verifies that the recorded wiring of sandbox id is intact: every
// interface and tap exists with the recorded MAC, MTU and state, and the
// model's objects are in place. It returns nil when all is well, a
// *CheckError listing the problems, or another error when it could not
// look.
func (m *Manager) Check(ctx context.Context, id string) error {
	st, rec, unlock, err := m.lockedRecord(ctx, id)
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
func (m *Manager) CheckInterface(ctx context.Context, id, ifname string) error {
	st, rec, unlock, err := m.lockedRecord(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	i := -1
	if rec != nil {
		i = slices.IndexFunc(rec.Sandbox.NICs, func(n sandbox.NIC) bool { return n.Name == ifname })
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
func checkIn(rec *journal.Record, nics []sandbox.NIC) error {
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
