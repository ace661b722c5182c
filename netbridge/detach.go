package netbridge

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/pkg/linkname"
	"github.com/netbridge/netbridge/pkg/state"
	"github.com/netbridge/netbridge/sandbox"
)

// Detach undoes the wiring of interface ifname of sandbox id, attached by
// Attach, and leaves its other interfaces alone; the record goes with the
// last interface. It is idempotent: an id or interface with nothing
// recorded, or whose netns is gone, succeeds without doing anything. A
// sandbox set up as a whole by Setup is refused with ErrModeConflict (an
// sandbox.ErrInvalidConfig), and left as it is.
func (m *Manager) Detach(ctx context.Context, id, ifname string) error {
	_, err := m.DetachRecorded(ctx, id, ifname)
	return err
}

// DetachRecorded is Detach, and also says whether the state directory had
// anything of interface ifname of sandbox id to undo: false when Detach
// had nothing to do (no record, or none of the interface). A caller that
// looks for wiring the state directory cannot explain (made with another
// one) needs to look only when it is false.
func (m *Manager) DetachRecorded(ctx context.Context, id, ifname string) (recorded bool, err error) {
	if err := linkname.Check(ifname); err != nil {
		return false, fmt.Errorf("%w: interface: %w", sandbox.ErrInvalidConfig, err)
	}
	start := time.Now()
	log := m.log.With("id", id, "interface", ifname)
	st, rec, unlock, err := m.lockedRecord(ctx, id)
	if err != nil {
		return false, err
	}
	defer unlock()
	if rec == nil {
		log.Info("nothing recorded; nothing to do", "state_dir", st.Dir())
		return false, nil
	}
	if rec.Mode != journal.ModeAttach {
		return false, fmt.Errorf("%w: sandbox %q was set up as a whole (netbridge setup or the OCI hook), not interface by interface; use teardown", ErrModeConflict, id)
	}
	rec.SetLog(log)
	recorded, err = detachLocked(ctx, st, rec, ifname)
	if err != nil {
		return recorded, err
	}
	log.Info("detached", "netns", rec.Sandbox.Netns, "elapsed", time.Since(start))
	return recorded, nil
}

// detachLocked is Detach once the lock of the sandbox is held and its
// record read. recorded says whether the record had anything of ifname.
func detachLocked(ctx context.Context, st *state.Store, rec *journal.Record, ifname string) (recorded bool, err error) {
	mine := journal.OfIface(ifname)
	_, requested := rec.Requests[ifname]
	attached := slices.ContainsFunc(rec.Sandbox.NICs, func(n sandbox.NIC) bool { return n.Name == ifname })
	if !requested && !attached && !slices.ContainsFunc(rec.Journal, mine) {
		return false, nil
	}
	err = rec.UndoIn(ctx, mine)
	rec.Sandbox.NICs = slices.DeleteFunc(rec.Sandbox.NICs, func(n sandbox.NIC) bool { return n.Name == ifname })
	if err == nil {
		delete(rec.Requests, ifname)
	}
	if err = errors.Join(err, rec.SaveOrRemove(st)); err != nil {
		return true, fmt.Errorf("detaching %q from sandbox %q: %w", ifname, rec.Sandbox.ID, err)
	}
	return true, nil
}

// Collect detaches the interfaces of CNI network network, from every
// sandbox whose interfaces were attached one by one, that keep rejects:
// the garbage collection of a chained CNI plugin, where keep says whether
// the runtime still knows the attachment (container id, interface). The
// interfaces of other networks, and sandboxes set up as a whole, are left
// alone. Each sandbox is decided under its lock, so an attach running at
// the same time is seen whole or not at all. It returns the attachments
// it detached, as "ID/IFNAME".
func (m *Manager) Collect(ctx context.Context, network string, keep func(id, ifname string) bool) ([]string, error) {
	st, ids, err := m.recordedIDs()
	if err != nil {
		return nil, err
	}
	var done []string
	var errs []error
	for _, id := range ids {
		err := m.withRecord(ctx, st, id, func(rec *journal.Record) error {
			if rec == nil || rec.Mode != journal.ModeAttach {
				return nil
			}
			rec.SetLog(m.log.With("id", id))
			for _, ifname := range slices.Sorted(maps.Keys(rec.Requests)) {
				if rec.Requests[ifname].Network != network || keep(id, ifname) {
					continue
				}
				if _, err := detachLocked(ctx, st, rec, ifname); err != nil {
					return err
				}
				done = append(done, id+"/"+ifname)
			}
			return nil
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return done, errors.Join(errs...)
}
