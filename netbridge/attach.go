package netbridge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/netbridge/internal/netview"
	"github.com/netbridge/netbridge/pkg/linkname"
	"github.com/netbridge/netbridge/pkg/state"
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
// Attach refuses it with ErrModeConflict (an ErrInvalidConfig).
func Attach(ctx context.Context, cfg Config) (*Sandbox, error) {
	if len(cfg.Interfaces) == 0 {
		return nil, fmt.Errorf("%w: attach needs the interfaces to attach named", ErrInvalidConfig)
	}
	start := time.Now()
	log := loggerFrom(ctx).With("id", cfg.ID)
	c, err := begin(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer c.end()
	st, n, req := c.st, c.n, c.req
	req.Interfaces = nil // a request per interface; the names are the keys

	rec, err := journal.Read(st, cfg.ID)
	if err != nil {
		return nil, err
	}
	if rec != nil && rec.Mode != journal.ModeAttach {
		return nil, fmt.Errorf("%w: sandbox %q was set up as a whole (netbridge setup or the OCI hook), not interface by interface; tear it down first", ErrModeConflict, cfg.ID)
	}
	if rec != nil && rec.NetnsID != n.ID() {
		// Attached in a netns that is gone or was replaced: its objects
		// went with it.
		if err := rec.UndoAll(ctx, st); err != nil {
			return nil, fmt.Errorf("forgetting sandbox %q of a netns that is gone: %w", cfg.ID, err)
		}
		log.Info("forgot the interfaces attached in a previous netns", "netns", rec.Sandbox.Netns)
		rec = nil
	}
	if rec == nil {
		rec = &journal.Record{
			Version:  journal.Version,
			Mode:     journal.ModeAttach,
			Phase:    sandbox.PhaseReady,
			Created:  time.Now().UTC(),
			NetnsID:  n.ID(),
			Requests: map[string]journal.Request{},
			Sandbox:  Sandbox{ID: cfg.ID, Netns: cfg.Netns, Model: req.Model, NICs: []NIC{}},
		}
		rec.NetnsCookie = netnsCookie(n)
	}
	rec.SetLog(log)
	if rec.Sandbox.DNS.IsZero() {
		rec.Sandbox.DNS = cfg.DNS
	}
	c.req = req
	var sb *Sandbox
	err = c.run(ctx, cfg, rec, log, start, func(tx *txn) error {
		sb, err = tx.attach()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("attaching %v to sandbox %q in netns %q: %w", cfg.Interfaces, cfg.ID, cfg.Netns, err)
	}
	log.Info("attached", "netns", cfg.Netns, "interfaces", cfg.Interfaces, "nics", len(sb.NICs), "elapsed", time.Since(start))
	return sb, nil
}

// attach wires tx.cfg.Interfaces into the record. It runs on a thread
// inside the sandbox netns.
func (tx *txn) attach() (*Sandbox, error) {
	rec, sb := tx.rec, &tx.rec.Sandbox
	wired := map[string]bool{}
	for _, nic := range sb.NICs {
		wired[nic.Name] = true
	}
	// Interfaces to (re)wire, and interfaces whose steps must go first:
	// those of a crashed attach (steps without a finished NIC), and those
	// wired differently or broken.
	var kept, todo []string
	redo := map[string]bool{}
	for _, s := range rec.Journal {
		if !wired[s.Iface] {
			redo[s.Iface] = true
		}
	}
	for name := range rec.Requests {
		if !wired[name] {
			redo[name] = true
		}
	}
	for _, name := range tx.cfg.Interfaces {
		i := slices.IndexFunc(sb.NICs, func(n NIC) bool { return n.Name == name })
		if i >= 0 && rec.Requests[name].Equal(tx.req) && len(checkNICs(tx.h, tx.netnsFd, tx.id, sb.NICs[i:i+1])) == 0 {
			kept = append(kept, name)
			continue
		}
		if i >= 0 {
			redo[name] = true
		}
		todo = append(todo, name)
	}
	if len(redo) > 0 && len(todo) > 0 {
		// Decide the new request before undoing anything: one that cannot
		// be wired leaves the interfaces as they are.
		undo := func(s journal.Step) bool { return redo[s.Iface] }
		if err := precheck(tx.h, tx.cfg, tx.req, todo, tx.st, rec, true, undo); err != nil {
			return nil, err
		}
	}
	if len(redo) > 0 {
		err := rec.Undo(tx.ctx, tx.h, tx.n, func(s journal.Step) bool { return redo[s.Iface] })
		sb.NICs = slices.DeleteFunc(sb.NICs, func(n NIC) bool { return redo[n.Name] })
		for name := range redo {
			delete(rec.Requests, name)
		}
		if err != nil {
			return nil, errors.Join(err, tx.jt.SaveOrRemove())
		}
		rec.Phase = sandbox.PhaseReady // what is left in the journal is finished
		if len(todo) == 0 {
			if err := tx.jt.SaveOrRemove(); err != nil {
				return nil, err
			}
		}
		tx.log.Info("undid interfaces wired differently, broken or left by an interrupted attach", "interfaces", slices.Sorted(mapKeys(redo)))
	}
	if len(todo) > 0 {
		if err := tx.attachNew(todo); err != nil {
			return nil, err
		}
	}
	if tx.cfg.HoldFDs {
		for i := range sb.NICs {
			if slices.Contains(kept, sb.NICs[i].Name) {
				if err := tx.openQueues(&sb.NICs[i]); err != nil {
					closeNICs(sb.NICs)
					return nil, fmt.Errorf("interface %q is attached already: %w", sb.NICs[i].Name, err)
				}
			}
		}
	}
	out := *sb
	out.NICs = slices.Clone(sb.NICs)
	for i := range sb.NICs { // the files are out's now; the record keeps none
		sb.NICs[i].Files, sb.NICs[i].VhostFiles = nil, nil
	}
	return &out, nil
}

// attachNew wires the interfaces named, none of which has steps in the
// journal. On failure it undoes their steps and keeps the rest.
func (tx *txn) attachNew(names []string) error {
	rec, sb := tx.rec, &tx.rec.Sandbox
	rec.Phase = sandbox.PhaseSettingUp
	fail := func(err error) error {
		mine := map[string]bool{}
		for _, n := range names {
			mine[n] = true
		}
		tx.log.Warn("attach failed; rolling back", "error", err, "elapsed", time.Since(tx.start))
		closeNICs(sb.NICs)
		uerr := rec.Undo(context.WithoutCancel(tx.ctx), tx.h, tx.n, func(s journal.Step) bool { return mine[s.Iface] })
		sb.NICs = slices.DeleteFunc(sb.NICs, func(n NIC) bool { return mine[n.Name] })
		for _, n := range names {
			delete(rec.Requests, n)
		}
		if uerr != nil {
			// Keep what could not be undone for the next attach or teardown.
			uerr = fmt.Errorf("rolling back: %w (run teardown to retry)", uerr)
		} else {
			rec.Phase = sandbox.PhaseReady
		}
		return errors.Join(err, uerr, tx.jt.SaveOrRemove())
	}
	v, err := netview.Read(tx.h)
	if err != nil {
		return fail(err)
	}
	tx.view = v
	d, err := decide(v, tx.cfg, tx.req, names, tx.st, nil)
	if err != nil {
		return fail(err)
	}
	tx.macs = map[string]bool{}
	for _, i := range v.Links {
		tx.macs[i.MAC.String()] = true
	}
	// Each request is recorded first, so that an interrupted attach is
	// known by its network too (Collect).
	nics, err := tx.wireAll(d.ch, d.attach, func(ifc netview.Link) { rec.Requests[ifc.Name] = tx.req })
	if err != nil {
		return fail(err)
	}
	sb.NICs = append(sb.NICs, nics...)
	slices.SortFunc(sb.NICs, func(a, b NIC) int { return cmp.Compare(a.Name, b.Name) })
	sb.Model = ""
	for _, r := range rec.Requests {
		switch {
		case sb.Model == "":
			sb.Model = r.Model
		case sb.Model != r.Model:
			sb.Model = ModelMixed
		}
	}
	rec.Phase = sandbox.PhaseReady
	if err := tx.jt.Save(); err != nil {
		return fail(err)
	}
	return nil
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// Detach undoes the wiring of interface ifname of sandbox id, attached by
// Attach, and leaves its other interfaces alone; the record goes with the
// last interface. It is idempotent: an id or interface with nothing
// recorded, or whose netns is gone, succeeds without doing anything. A
// sandbox set up as a whole by Setup is refused with ErrModeConflict (an
// ErrInvalidConfig), and left as it is.
func Detach(ctx context.Context, stateDir, id, ifname string) error {
	if err := linkname.Check(ifname); err != nil {
		return fmt.Errorf("%w: interface: %w", ErrInvalidConfig, err)
	}
	start := time.Now()
	log := loggerFrom(ctx).With("id", id, "interface", ifname)
	st, rec, unlock, err := lockedRecord(ctx, stateDir, id)
	if err != nil {
		return err
	}
	defer unlock()
	if rec == nil {
		log.Info("nothing recorded; nothing to do", "state_dir", st.Dir())
		return nil
	}
	if rec.Mode != journal.ModeAttach {
		return fmt.Errorf("%w: sandbox %q was set up as a whole (netbridge setup or the OCI hook), not interface by interface; use teardown", ErrModeConflict, id)
	}
	rec.SetLog(log)
	if err := detachLocked(ctx, st, rec, id, ifname); err != nil {
		return err
	}
	log.Info("detached", "netns", rec.Sandbox.Netns, "elapsed", time.Since(start))
	return nil
}

// detachLocked is Detach once the lock of id is held and its record read.
func detachLocked(ctx context.Context, st *state.Store, rec *journal.Record, id, ifname string) error {
	mine := func(s journal.Step) bool { return s.Iface == ifname }
	_, requested := rec.Requests[ifname]
	attached := slices.ContainsFunc(rec.Sandbox.NICs, func(n NIC) bool { return n.Name == ifname })
	if !requested && !attached && !slices.ContainsFunc(rec.Journal, mine) {
		return nil
	}
	err := rec.UndoIn(ctx, mine)
	rec.Sandbox.NICs = slices.DeleteFunc(rec.Sandbox.NICs, func(n NIC) bool { return n.Name == ifname })
	if err == nil {
		delete(rec.Requests, ifname)
	}
	if err = errors.Join(err, rec.SaveOrRemove(st)); err != nil {
		return fmt.Errorf("detaching %q from sandbox %q: %w", ifname, id, err)
	}
	return nil
}

// Collect detaches the interfaces of CNI network network, from every
// sandbox whose interfaces were attached one by one, that keep rejects:
// the garbage collection of a chained CNI plugin, where keep says whether
// the runtime still knows the attachment (container id, interface). The
// interfaces of other networks, and sandboxes set up as a whole, are left
// alone. Each sandbox is decided under its lock, so an attach running at
// the same time is seen whole or not at all. It returns the attachments
// it detached, as "ID/IFNAME".
func Collect(ctx context.Context, stateDir, network string, keep func(id, ifname string) bool) ([]string, error) {
	st, ids, err := recordedIDs(stateDir)
	if err != nil {
		return nil, err
	}
	var done []string
	var errs []error
	for _, id := range ids {
		err := func() error {
			lock, err := st.Lock(ctx, id)
			if err != nil {
				return err
			}
			defer st.Release(lock, id)
			rec, err := journal.Read(st, id)
			if err != nil || rec == nil || rec.Mode != journal.ModeAttach {
				return err
			}
			for _, ifname := range slices.Sorted(mapKeys(rec.Requests)) {
				if rec.Requests[ifname].Network != network || keep(id, ifname) {
					continue
				}
				rec.SetLog(loggerFrom(ctx).With("id", id))
				if err := detachLocked(ctx, st, rec, id, ifname); err != nil {
					return err
				}
				done = append(done, id+"/"+ifname)
			}
			return nil
		}()
		if err != nil {
			errs = append(errs, err)
		}
	}
	return done, errors.Join(errs...)
}
