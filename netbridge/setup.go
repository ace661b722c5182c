package netbridge

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/netbridge/internal/model"
	"github.com/netbridge/netbridge/netbridge/internal/netview"
	"github.com/netbridge/netbridge/pkg/linkname"
	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/sandbox"
)

// Setup wires the sandbox: in its netns it connects every attached
// interface to the guest with the configured model (a tap and a tc
// redirect, a bridge, or a macvtap), recording every step in the state
// directory first. It returns the sandbox's NICs, ordered by interface
// name.
//
// Setup is idempotent: when the id is already wired as asked in the same
// netns, it changes nothing and returns the recorded sandbox. A record left
// by a crash, by a different request or by a netns that was replaced is
// undone first, but only once the new request was checked against the
// netns as that undo will leave it: a request that cannot be wired fails
// with sandbox.ErrInvalidConfig (or the error that shows it cannot) and leaves the
// earlier wiring as it was. On failure, everything this call did is undone
// again.
//
// An interface that netbridge wired for another sandbox is refused with a
// *TakenError (sandbox.ErrInvalidConfig), named explicitly or under Strict, and
// skipped with a warning otherwise. A sandbox whose interfaces were
// attached one by one (Attach, the CNI plugin) is refused with
// ErrModeConflict: Setup does not take it over.
func (m *Manager) Setup(ctx context.Context, cfg sandbox.Config) (*sandbox.Sandbox, error) {
	s, err := m.begin(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer s.end()
	old, err := journal.Read(s.st, cfg.ID)
	if err != nil {
		return nil, err
	}
	if old != nil {
		sb, err := s.redo(ctx, old)
		if sb != nil || err != nil {
			return sb, err
		}
	}
	sb, err := s.setup(ctx)
	if err != nil {
		return nil, fmt.Errorf("setting up sandbox %q in netns %q: %w", cfg.ID, cfg.Netns, err)
	}
	s.log.Info("set up", "netns", cfg.Netns, "model", sb.Model, "nics", len(sb.NICs), "elapsed", time.Since(s.start))
	return sb, nil
}

// redo deals with the earlier record old of the sandbox: it returns the
// recorded sandbox when its wiring is intact and as asked, refuses one
// attached interface by interface, and else undoes it once the request was
// checked against the netns as the undo will leave it (nil, nil).
func (s *session) redo(ctx context.Context, old *journal.Record) (*sandbox.Sandbox, error) {
	cfg := s.cfg
	if old.Mode == journal.ModeAttach {
		return nil, fmt.Errorf("setting up sandbox %q: %w: its interfaces (%s) were attached one by one (by the CNI plugin), as recorded in %s; setup does not take them over: detach them (CNI DEL) or tear the sandbox down first",
			cfg.ID, ErrModeConflict, strings.Join(slices.Sorted(maps.Keys(old.Requests)), ", "), s.st.Dir())
	}
	old.SetLog(s.log)
	sameNetns := old.NetnsID == s.n.ID()
	if old.Phase == sandbox.PhaseReady && sameNetns && old.Request.Equal(s.req) {
		sb, err := reuse(s.n, old, cfg.HoldFDs)
		if err == nil {
			s.log.Info("already set up; nothing to do", "netns", cfg.Netns, "elapsed", time.Since(s.start))
			return sb, nil
		}
		if !errors.Is(err, errBroken) {
			return nil, err
		}
	}
	h, err := journal.OpenHandle(s.n)
	if err != nil {
		return nil, err
	}
	err = precheck(h, cfg, s.req, cfg.Interfaces, s.st, old, sameNetns, journal.All)
	h.Close()
	if err != nil {
		return nil, fmt.Errorf("setting up sandbox %q in netns %q (its earlier setup is left as it was): %w", cfg.ID, cfg.Netns, err)
	}
	if err := old.UndoAll(ctx, s.st); err != nil {
		return nil, fmt.Errorf("undoing the earlier setup of sandbox %q before setting it up again: %w", cfg.ID, err)
	}
	s.log.Info("undid an earlier setup (interrupted, damaged or set up differently)", "phase", old.Phase, "elapsed", time.Since(s.start))
	return nil, nil
}

// setup wires the sandbox anew, recorded in a new record; on failure it
// rolls back.
func (s *session) setup(ctx context.Context) (*sandbox.Sandbox, error) {
	cfg := s.cfg
	dns := cfg.DNS
	if dns.IsZero() && cfg.CNICacheDir != "" {
		var err error
		if dns, err = sandbox.DNSFromCNICache(cfg.CNICacheDir, cfg.ID); err != nil {
			s.log.Warn("no DNS for the guest", "error", err)
		}
	}
	rec := journal.NewRecord(journal.ModeWhole, s.n, sandbox.Sandbox{ID: cfg.ID, Netns: cfg.Netns, Model: s.req.Model, NICs: []sandbox.NIC{}, DNS: dns})
	rec.Request = s.req
	rec.SetLog(s.log)
	var sb *sandbox.Sandbox
	err := s.run(rec, func(tx *journal.Tx) error {
		var err error
		if sb, err = s.wireSandbox(ctx, tx); err == nil {
			return nil
		}
		s.log.Warn("setup failed; rolling back", "error", err, "elapsed", time.Since(s.start))
		// The rollback runs to its end even when ctx ended the setup.
		if uerr := rec.Undo(context.WithoutCancel(ctx), tx.Netns().H, s.n, journal.All); uerr != nil {
			// Keep what could not be undone for the next teardown.
			_ = tx.Save()
			return errors.Join(err, fmt.Errorf("rolling back: %w (run teardown to retry)", uerr))
		}
		return errors.Join(err, s.st.Remove(cfg.ID))
	})
	return sb, err
}

// wireSandbox discovers the interfaces and wires those the request
// attaches, in the record of tx.
func (s *session) wireSandbox(ctx context.Context, tx *journal.Tx) (*sandbox.Sandbox, error) {
	v, err := netview.Read(tx.Netns().H)
	if err != nil {
		return nil, err
	}
	d, err := decide(v, s.cfg, s.req, s.cfg.Interfaces, s.st, nil)
	if err != nil {
		return nil, err
	}
	rec := tx.Record()
	sb := &rec.Sandbox
	for _, i := range d.skipped {
		sb.Warnings = append(sb.Warnings, fmt.Sprintf("skipped %s: %s", linkname.Show(i.Name), i.Reason))
		s.log.Warn("interface skipped", "interface", linkname.Show(i.Name), "reason", i.Reason)
	}
	nics, err := s.wireAll(ctx, tx, d, nil)
	if err != nil {
		return nil, err
	}
	sb.NICs = nics
	rec.Phase = sandbox.PhaseReady
	if err := tx.Save(); err != nil {
		model.CloseNICs(sb.NICs)
		return nil, err
	}
	out := *sb
	out.NICs = slices.Clone(sb.NICs)
	return &out, nil
}

// reuse returns the sandbox of a ready record whose wiring is intact,
// reopening the queues when the caller holds fds. It returns errBroken
// when the wiring must be redone.
func reuse(n *netns.NS, rec *journal.Record, holdFDs bool) (*sandbox.Sandbox, error) {
	h, err := journal.OpenHandle(n)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	if problems := models.Check(h, n.Fd(), rec.Sandbox.ID, rec.Sandbox.NICs); len(problems) > 0 {
		return nil, errBroken
	}
	sb := rec.Sandbox
	sb.NICs = slices.Clone(sb.NICs)
	if !holdFDs {
		return &sb, nil
	}
	if err := openAll(n, h, sb.NICs, nil); err != nil {
		return nil, fmt.Errorf("sandbox %q is set up already: %w", rec.Sandbox.ID, err)
	}
	return &sb, nil
}

var errBroken = errors.New("wiring is broken")
