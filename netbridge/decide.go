package netbridge

import (
	"fmt"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/netbridge/internal/model"
	"github.com/netbridge/netbridge/netbridge/internal/netview"
	"github.com/netbridge/netbridge/pkg/linkname"
	"github.com/netbridge/netbridge/pkg/state"
	"github.com/netbridge/netbridge/pkg/tcredirect"
	"github.com/netbridge/netbridge/sandbox"
)

// decision is what a request wires in a netns: the interfaces to attach,
// the chooser of their models, the naming of what they make, and the
// interfaces skipped with a warning.
type decision struct {
	attach  []netview.Link
	ch      *model.Chooser
	names   *model.Naming
	skipped []netview.Link
}

// decide checks a request against the netns as v shows it, with every
// check that needs no change to the netns: the interfaces named (names;
// when empty, those selected) exist, can be carried and are not wired for
// another sandbox; under Strict no interface with an address is skipped;
// something is left to attach; the names of the links to create are free
// (but for links of cfg.ID that an undo about to run deletes: gone). It
// changes nothing.
func decide(v *netview.View, cfg sandbox.Config, req journal.Request, names []string, st *state.Store, gone map[string]bool) (*decision, error) {
	d := &decision{ch: models.Chooser(req.Model), names: model.NewNaming(cfg.ID, req.TapName, v, st)}
	if err := v.Select(names, d.ch.Supports, st, cfg.ID); err != nil {
		return nil, fmt.Errorf("%w: %w", sandbox.ErrInvalidConfig, err)
	}
	for _, i := range v.Links {
		if i.Unsupported && len(i.Addresses) > 0 {
			if cfg.Strict {
				return nil, fmt.Errorf("%w: interface %q: %s", ErrStrict, i.Name, i.Reason)
			}
			d.skipped = append(d.skipped, i)
		}
	}
	d.attach = slices.DeleteFunc(slices.Clone(v.Links), func(i netview.Link) bool { return !i.Attach })
	if len(d.attach) == 0 {
		if len(v.Links) == 0 {
			return nil, fmt.Errorf("%w: the netns has no interface but the loopback (a sandbox without a network)", sandbox.ErrNoInterface)
		}
		var why []string
		for _, i := range v.Links {
			why = append(why, fmt.Sprintf("%s: %s", linkname.Show(i.Name), i.Reason))
		}
		return nil, fmt.Errorf("%w (%s)", sandbox.ErrNoInterface, strings.Join(why, "; "))
	}
	for i := range d.attach {
		ifc := &d.attach[i]
		m, _, err := d.ch.Choose(&ifc.Interface)
		if err != nil {
			return nil, fmt.Errorf("interface %q: %w", ifc.Name, err)
		}
		for _, name := range m.Makes(d.names, ifc.Name) {
			if err := v.NameFree(name, ifc.Name, cfg.ID, st, gone); err != nil {
				return nil, err
			}
		}
	}
	return d, nil
}

// precheck decides a request of sandbox cfg.ID, through h, against its
// netns as it will be once the steps of rec that undo selects are undone,
// before that undo changes anything: the links those steps made are taken
// as gone, with the filters of our priority on the links whose filters or
// ingress qdisc they remove, and the addresses they moved to the guest as
// back. sameNetns says that rec was made in this netns (else its steps
// are elsewhere).
func precheck(h *netlink.Handle, cfg sandbox.Config, req journal.Request, names []string, st *state.Store, rec *journal.Record, sameNetns bool, undo func(journal.Step) bool) error {
	v, err := netview.Read(h)
	if err != nil {
		return err
	}
	gone, filtersGone := map[string]bool{}, map[string]bool{}
	if sameNetns {
		var undone []journal.Step
		for _, s := range rec.Journal {
			if !undo(s) {
				continue
			}
			undone = append(undone, s)
			if s.Op.Creates() {
				gone[s.Link] = true
			}
			if (s.Op == journal.OpFilter && s.Prio == tcredirect.Priority) || s.Op == journal.OpQdisc {
				filtersGone[s.Link] = true
			}
		}
		v.Forget(cfg.ID, gone, filtersGone)
		v.AddressesBack(undone)
	}
	_, err = decide(v, cfg, req, names, st, gone)
	return err
}
