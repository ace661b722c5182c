package netbridge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/netbridge/internal/model"
	"github.com/netbridge/netbridge/netbridge/internal/netview"
	"github.com/netbridge/netbridge/sandbox"
)

// Attach wires the interfaces cfg.Interfaces names into sandbox cfg.ID,
// next to the interfaces attached to it before, which it leaves alone. It
// is the per-interface form of Setup, made for a chained CNI plugin: under
// Multus each network of a pod calls it for its own interface, with its own
// model. Each interface keeps the Config it was attached with.
//
// Attach is idempotent per interface: an interface already wired as asked
// is kept as it is; one wired differently, or whose wiring is broken, is
// undone and wired again, once the new request was checked against the
// netns as that undo will leave it (a request that cannot be wired leaves
// the interface wired as it was). Steps left by an attach that crashed are
// undone first. On failure, what this call did is undone and the
// interfaces attached before stay wired. It returns the whole sandbox;
// when cfg.HoldFDs is set, only the NICs of this call hold files. An
// interface that netbridge wired for another sandbox is refused with a
// *TakenError.
//
// A sandbox set up as a whole by Setup cannot take interfaces one by one:
// Attach refuses it with ErrModeConflict (a sandbox.ErrInvalidConfig).
func (m *Manager) Attach(ctx context.Context, cfg sandbox.Config) (*sandbox.Sandbox, error) {
	if len(cfg.Interfaces) == 0 {
		return nil, fmt.Errorf("%w: attach needs the interfaces to attach named", sandbox.ErrInvalidConfig)
	}
	s, err := m.begin(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer s.end()
	s.req.Interfaces = nil // a request per interface; the names are the keys
	rec, err := s.attachRecord(ctx)
	if err != nil {
		return nil, err
	}
	var sb *sandbox.Sandbox
	err = s.run(rec, func(tx *journal.Tx) error {
		sb, err = s.attach(ctx, tx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("attaching %v to sandbox %q in netns %q: %w", cfg.Interfaces, cfg.ID, cfg.Netns, err)
	}
	s.log.Info("attached", "netns", cfg.Netns, "interfaces", cfg.Interfaces, "nics", len(sb.NICs), "elapsed", time.Since(s.start))
	return sb, nil
}

// attachRecord returns the record the interfaces are attached to: the one
// of the sandbox in this netns, or a new one. A sandbox set up as a whole
// is refused; one attached in a netns that is gone or was replaced is
// forgotten (its objects went with it).
func (s *session) attachRecord(ctx context.Context) (*journal.Record, error) {
	cfg := s.cfg
	rec, err := journal.Read(s.st, cfg.ID)
	if err != nil {
		return nil, err
	}
	if rec != nil && rec.Mode != journal.ModeAttach {
		return nil, fmt.Errorf("%w: sandbox %q was set up as a whole (netbridge setup or the OCI hook), not interface by interface; tear it down first", ErrModeConflict, cfg.ID)
	}
	if rec != nil && rec.NetnsID != s.n.ID() {
		if err := rec.UndoAll(ctx, s.st); err != nil {
			return nil, fmt.Errorf("forgetting sandbox %q of a netns that is gone: %w", cfg.ID, err)
		}
		s.log.Info("forgot the interfaces attached in a previous netns", "netns", rec.Sandbox.Netns)
		rec = nil
	}
	if rec == nil {
		rec = journal.NewRecord(journal.ModeAttach, s.n, sandbox.Sandbox{ID: cfg.ID, Netns: cfg.Netns, Model: s.req.Model, NICs: []sandbox.NIC{}})
	}
	rec.SetLog(s.log)
	if rec.Sandbox.DNS.IsZero() {
		rec.Sandbox.DNS = cfg.DNS
	}
	return rec, nil
}

// attachPlan is what an attach does to the interfaces of a sandbox: keep
// those wired as asked, wire the others named, and first undo the steps of
// those wired differently or broken and of those a crashed attach left.
type attachPlan struct {
	keep, wire []string
	undo       map[string]bool
}

// plan sorts the interfaces of the record and those the request names.
func (s *session) plan(tx *journal.Tx) *attachPlan {
	rec := tx.Record()
	nics := rec.Sandbox.NICs
	p := &attachPlan{undo: map[string]bool{}}
	wired := func(name string) bool {
		return slices.ContainsFunc(nics, func(n sandbox.NIC) bool { return n.Name == name })
	}
	for _, st := range rec.Journal {
		if !wired(st.Iface) {
			p.undo[st.Iface] = true // a step without a finished sandbox.NIC
		}
	}
	for name := range rec.Requests {
		if !wired(name) {
			p.undo[name] = true
		}
	}
	for _, name := range s.cfg.Interfaces {
		i := slices.IndexFunc(nics, func(n sandbox.NIC) bool { return n.Name == name })
		switch {
		case i < 0:
			p.wire = append(p.wire, name)
		case rec.Requests[name].Equal(s.req) && len(models.Check(tx.Netns().H, s.n.Fd(), s.cfg.ID, nics[i:i+1])) == 0:
			p.keep = append(p.keep, name)
		default:
			p.undo[name] = true
			p.wire = append(p.wire, name)
		}
	}
	return p
}

// attach wires the interfaces the request names into the record of tx,
// next to the others. It runs on a thread inside the sandbox netns.
func (s *session) attach(ctx context.Context, tx *journal.Tx) (*sandbox.Sandbox, error) {
	rec := tx.Record()
	sb := &rec.Sandbox
	p := s.plan(tx)
	if len(p.undo) > 0 {
		if err := s.undoFirst(ctx, tx, p); err != nil {
			return nil, err
		}
	}
	if len(p.wire) > 0 {
		if err := s.attachNew(ctx, tx, p.wire); err != nil {
			return nil, err
		}
	}
	if s.cfg.HoldFDs {
		var last string // the interface whose queues openAll opens last
		kept := func(n *sandbox.NIC) bool { last = n.Name; return slices.Contains(p.keep, n.Name) }
		if err := openAll(s.n, tx.Netns().H, sb.NICs, kept); err != nil {
			return nil, fmt.Errorf("interface %q is attached already: %w", last, err)
		}
	}
	out := *sb
	out.NICs = slices.Clone(sb.NICs)
	for i := range sb.NICs { // the files are out's now; the record keeps none
		sb.NICs[i].Files, sb.NICs[i].VhostFiles = nil, nil
	}
	return &out, nil
}

// undoFirst undoes the interfaces p.undo names, once the new request was
// decided against the netns as that undo will leave it: a request that
// cannot be wired leaves the interfaces as they are.
func (s *session) undoFirst(ctx context.Context, tx *journal.Tx, p *attachPlan) error {
	rec := tx.Record()
	undo := func(st journal.Step) bool { return p.undo[st.Iface] }
	if len(p.wire) > 0 {
		if err := precheck(tx.Netns().H, s.cfg, s.req, p.wire, s.st, rec, true, undo); err != nil {
			return err
		}
	}
	err := rec.Undo(ctx, tx.Netns().H, s.n, undo)
	rec.Sandbox.NICs = slices.DeleteFunc(rec.Sandbox.NICs, func(n sandbox.NIC) bool { return p.undo[n.Name] })
	for name := range p.undo {
		delete(rec.Requests, name)
	}
	if err != nil {
		return errors.Join(err, tx.SaveOrRemove())
	}
	rec.Phase = sandbox.PhaseReady // what is left in the journal is finished
	if len(p.wire) == 0 {
		if err := tx.SaveOrRemove(); err != nil {
			return err
		}
	}
	s.log.Info("undid interfaces wired differently, broken or left by an interrupted attach", "interfaces", slices.Sorted(maps.Keys(p.undo)))
	return nil
}

// attachNew wires the interfaces named, none of which has steps in the
// journal. On failure it undoes their steps and keeps the rest.
func (s *session) attachNew(ctx context.Context, tx *journal.Tx, names []string) error {
	rec := tx.Record()
	sb := &rec.Sandbox
	rec.Phase = sandbox.PhaseSettingUp
	fail := func(err error) error {
		s.log.Warn("attach failed; rolling back", "error", err, "elapsed", time.Since(s.start))
		model.CloseNICs(sb.NICs)
		mine := func(n string) bool { return slices.Contains(names, n) }
		uerr := rec.Undo(context.WithoutCancel(ctx), tx.Netns().H, s.n, func(st journal.Step) bool { return mine(st.Iface) })
		sb.NICs = slices.DeleteFunc(sb.NICs, func(n sandbox.NIC) bool { return mine(n.Name) })
		for _, n := range names {
			delete(rec.Requests, n)
		}
		if uerr != nil {
			// Keep what could not be undone for the next attach or teardown.
			uerr = fmt.Errorf("rolling back: %w (run teardown to retry)", uerr)
		} else {
			rec.Phase = sandbox.PhaseReady
		}
		return errors.Join(err, uerr, tx.SaveOrRemove())
	}
	v, err := netview.Read(tx.Netns().H)
	if err != nil {
		return fail(err)
	}
	d, err := decide(v, s.cfg, s.req, names, s.st, nil)
	if err != nil {
		return fail(err)
	}
	// Each request is recorded first, so that an interrupted attach is
	// known by its network too (Collect).
	nics, err := s.wireAll(ctx, tx, d, func(ifc netview.Link) { rec.Requests[ifc.Name] = s.req })
	if err != nil {
		return fail(err)
	}
	sb.NICs = append(sb.NICs, nics...)
	slices.SortFunc(sb.NICs, func(a, b sandbox.NIC) int { return cmp.Compare(a.Name, b.Name) })
	sb.Model = ""
	for _, r := range rec.Requests {
		switch {
		case sb.Model == "":
			sb.Model = r.Model
		case sb.Model != r.Model:
			sb.Model = sandbox.ModelMixed
		}
	}
	rec.Phase = sandbox.PhaseReady
	if err := tx.Save(); err != nil {
		return fail(err)
	}
	return nil
}
