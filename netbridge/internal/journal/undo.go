package journal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"

	"github.com/netbridge/netbridge/netbridge/internal/linkchange"
	"github.com/netbridge/netbridge/pkg/linkname"
	"github.com/netbridge/netbridge/pkg/macvtap"
	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/pkg/nlretry"
	"github.com/netbridge/netbridge/pkg/state"
	"github.com/netbridge/netbridge/pkg/tcredirect"
)

// All selects every step.
func All(Step) bool { return true }

// OfIface returns the selector of the steps of interface iface.
func OfIface(iface string) func(Step) bool {
	return func(s Step) bool { return s.Iface == iface }
}

// Undo removes, newest first, every object the steps match selects
// recorded, in r's netns (h and n are its handle and namespace), and drops
// each step undone from the journal; the other steps stay. Objects already
// gone are fine; objects that are not ours are left alone. It keeps going
// after an error, and returns them all.
//
// Each step's link is found by what identifies it (Step.Ref, or for a
// record of an older netbridge the NICs' indexes), not by its name alone:
// a renamed CNI interface is followed, and a link that took its name after
// it was deleted is left alone with a warning. A link a step created is
// ours only with proof: our tag or link group, or the temporary name of a
// tap being made; a link of its name without it is someone else's, even
// when the step was not done.
//
// The links of ours go first, all at once: the kernel spends most of a
// link's deletion (about 18 ms here) waiting for RCU grace periods, which
// one batch shares, so that 16 taps go in about the time of one instead
// of 16 times that. They are deleted by their link group when the group
// holds exactly them, else concurrently. The objects on those links go
// with them. The remaining steps (a MAC, addresses, a master, a qdisc on
// the CNI interface) are then undone newest first, as recorded. ctx ends
// the waits of an undo (for IPv6 duplicate address detection); the steps
// it cuts short stay in the journal.
func (r *Record) Undo(ctx context.Context, h *netlink.Handle, n *netns.NS, match func(Step) bool) error {
	links, err := nlretry.Dump(h.LinkList)
	if err != nil {
		return fmt.Errorf("listing links: %w", err)
	}
	u := newUndoer(r, h, r.Sandbox.ID, links)
	p := u.plan(match)
	errs := p.errs
	for i, err := range deleteLinks(h, n, r.Sandbox.ID, links, p.doomed) {
		if err != nil {
			errs = append(errs, fmt.Errorf("deleting %q: %w", p.doomed[i].Attrs().Name, err))
			p.failed[p.ours[i].Link] = true
		}
	}
	errs = append(errs, r.newestFirst(match, func(i int, s Step) (bool, error) {
		switch {
		case s.Op == OpDevice:
			return false, r.undoDevice(r.Sandbox.ID, s)
		case p.created[s.Link]:
			// A link we created and deleted above, or one of that name
			// that is not ours (left alone), or an object that went with
			// such a link; a link whose deletion failed stays recorded.
			return p.failed[s.Link], nil
		}
		return false, u.undoOnIface(ctx, s, p.filters[i], p.ourTap[s.Iface] != nil)
	}))
	return errors.Join(errs...)
}

// newestFirst runs undo on each step that match selects, newest first,
// and drops from the journal the steps undone: those for which undo
// reports neither that the step stays nor an error. It returns the errors,
// each naming its step.
func (r *Record) newestFirst(match func(Step) bool, undo func(i int, s Step) (stays bool, err error)) error {
	var errs []error
	stays := make([]bool, len(r.Journal))
	for i := len(r.Journal) - 1; i >= 0; i-- {
		s := r.Journal[i]
		if !match(s) {
			stays[i] = true
			continue
		}
		keep, err := undo(i, s)
		if err != nil {
			errs = append(errs, fmt.Errorf("undoing %s: %w", s, err))
			keep = true
		}
		stays[i] = keep
	}
	i := 0
	r.Journal = slices.DeleteFunc(r.Journal, func(Step) bool { i++; return !stays[i-1] })
	return errors.Join(errs...)
}

// undoPlan is what an undo finds before it changes anything: the links of
// ours that go, and our filters on the CNI interfaces.
type undoPlan struct {
	created map[string]bool          // the names create steps give their links
	ours    []Step                   // the create steps whose links are ours
	doomed  []netlink.Link           // their links, in the same order
	ourTap  map[string]netlink.Link  // by interface: the tap made for it
	filters map[int][]netlink.Filter // by journal index: our filters found
	failed  map[string]bool          // created links whose deletion failed
	errs    []error
}

// plan finds the links of the create steps match selects that are ours,
// and, while the taps they redirect to exist, our filters on the CNI
// interfaces.
func (u *undoer) plan(match func(Step) bool) *undoPlan {
	p := &undoPlan{created: map[string]bool{}, ourTap: map[string]netlink.Link{}, filters: map[int][]netlink.Filter{}, failed: map[string]bool{}}
	for _, s := range u.r.Journal {
		if s.Op.Creates() {
			p.created[s.Link] = true
		}
	}
	for _, s := range u.r.Journal {
		if !s.Op.Creates() || !match(s) {
			continue
		}
		if l := u.ownedLink(s); l != nil {
			if s.Op == OpTap {
				p.ourTap[s.Iface] = l
			}
			p.ours, p.doomed = append(p.ours, s), append(p.doomed, l)
		}
	}
	for i, s := range u.r.Journal {
		if s.Op != OpFilter || !match(s) || p.created[s.Link] {
			continue
		}
		l := u.ifaceLink(s)
		if l == nil {
			continue
		}
		fs, err := ourFilters(u.h, l, s, p.ourTap[s.Iface])
		if err != nil {
			p.errs = append(p.errs, fmt.Errorf("undoing %s: %w", s, err))
			continue
		}
		p.filters[i] = fs
	}
	return p
}

// UndoGone undoes the steps match selects of a record whose netns is gone
// and took every object in it along: only the device nodes, files on the
// host, are left to remove (a node outliving its macvtap would open
// whatever device later gets its number). The other steps are dropped.
func (r *Record) UndoGone(match func(Step) bool) error {
	return r.newestFirst(match, func(_ int, s Step) (bool, error) {
		if s.Op == OpDevice {
			return false, r.undoDevice(r.Sandbox.ID, s)
		}
		return false, nil
	})
}

// UndoIn undoes the steps of r that match selects, in r's netns, found by
// its recorded identity: at its path, or, when the record has its cookie,
// wherever it still lives when that path is gone or names another
// namespace now (a bind mount, a process). When it is nowhere, the objects
// in it went with it: only the device nodes on the host are removed, and
// the other steps dropped.
func (r *Record) UndoIn(ctx context.Context, match func(Step) bool) error {
	n, err := netns.Find(r.Sandbox.Netns, r.NetnsID, r.NetnsCookie)
	switch {
	case errors.Is(err, netns.ErrNotExist):
		r.netnsGone = true
		return r.UndoGone(match)
	case err != nil:
		return err
	}
	defer n.Close()
	h, err := OpenHandle(n)
	if err != nil {
		return err
	}
	defer h.Close()
	return r.Undo(ctx, h, n, match)
}

// UndoAll undoes all of r in its netns and removes it from st. A netns that
// no longer exists, or whose path now names another namespace, took every
// object with it: the record is simply removed. When something cannot be
// undone, st keeps what is left.
func (r *Record) UndoAll(ctx context.Context, st *state.Store) error {
	if err := r.UndoIn(ctx, All); err != nil {
		if werr := r.Save(st); werr != nil {
			err = errors.Join(err, werr)
		}
		return err
	}
	return st.Remove(r.Sandbox.ID)
}

// undoer resolves the links of a record's Steps in its netns.
type undoer struct {
	r       *Record
	h       *netlink.Handle
	id      string
	byIndex map[int]netlink.Link
	byName  map[string]netlink.Link
	// legacy holds what identifies the interfaces and taps of a record
	// whose steps have no Ref (an older netbridge's): their NICs'
	// indexes, by name.
	legacy map[string]*LinkRef
	told   map[string]bool // the links warned about already
}

func newUndoer(r *Record, h *netlink.Handle, id string, links []netlink.Link) *undoer {
	u := &undoer{r: r, h: h, id: id, byIndex: map[int]netlink.Link{}, byName: map[string]netlink.Link{}, legacy: map[string]*LinkRef{}, told: map[string]bool{}}
	for _, l := range links {
		u.byIndex[l.Attrs().Index] = l
		u.byName[l.Attrs().Name] = l
	}
	for _, nic := range r.Sandbox.NICs {
		if nic.Index > 0 {
			u.legacy[nic.Name] = &LinkRef{Index: nic.Index, Kind: nic.Kind}
		}
		if nic.TapIndex > 0 && nic.Tap != nic.Name {
			u.legacy[nic.Tap] = &LinkRef{Index: nic.TapIndex}
		}
	}
	return u
}

// warnOnce logs a warning about link name, once per undo.
func (u *undoer) warnOnce(name, msg string, args ...any) {
	if u.told[name] {
		return
	}
	u.told[name] = true
	u.r.logger().Warn(msg, append([]any{"link", name}, args...)...)
}

// ours reports whether l carries the proof of being a link of kind that
// sandbox id made: our alias, or our link group (set in the request that
// created it).
func (u *undoer) ours(l netlink.Link, kind string) bool {
	a := l.Attrs()
	return a.Alias == OwnerTag(u.id) || (a.Group == OwnerGroup(u.id) && l.Type() == kind)
}

// ownedLink returns the link create step s made, nil when it is gone or
// was never made: found by its recorded ifindex (through a rename), else
// by its name, else by the temporary name of a tap being made. A link of
// its name without our proof is someone else's: left alone, with a
// warning.
func (u *undoer) ownedLink(s Step) netlink.Link {
	kind := s.Op.LinkKind()
	ref := s.Ref
	if ref == nil {
		ref = u.legacy[s.Link]
	}
	if ref != nil {
		if l := u.byIndex[ref.Index]; l != nil && l.Type() == kind && u.ours(l, kind) {
			return l
		}
	}
	l := u.byName[s.Link]
	if l != nil && u.ours(l, kind) {
		return l
	}
	if s.Tmp != "" {
		if t := u.byName[s.Tmp]; t != nil && t.Type() == kind {
			return t
		}
	}
	if l != nil {
		u.warnOnce(s.Link, "a link of the name netbridge gave its own carries no tag of this sandbox: someone else's, left alone; delete it yourself if it is a leftover",
			"kind", l.Type(), "alias", l.Attrs().Alias, "group", l.Attrs().Group, "tag", OwnerTag(u.id))
	}
	return nil
}

// ifaceLink returns the link (a CNI interface) step s changed, nil when
// it is no longer in the netns. It is found by the identity the step
// recorded, or for a record of an older netbridge by the NIC's, through
// a rename; a link that took its name is not it, and is left alone with
// a warning. A step of an older netbridge's record that neither has
// applies to the link of its name, with a warning.
func (u *undoer) ifaceLink(s Step) netlink.Link {
	ref := s.Ref
	if ref == nil {
		ref = u.legacy[s.Link]
	}
	if ref == nil {
		l := u.byName[s.Link]
		if l != nil {
			u.warnOnce(s.Link, "the record, of an older netbridge, does not say which interface it changed beyond its name: restoring onto the link of that name, which may have been replaced since setup")
		}
		return l
	}
	if l := u.byIndex[ref.Index]; l != nil && ref.Is(l) {
		if name := l.Attrs().Name; name != s.Link && !u.told[s.Link] {
			u.told[s.Link] = true
			u.r.logger().Info("following the interface under its new name", "link", s.Link, "now", name, "ifindex", ref.Index)
		}
		return l
	}
	if other := u.byName[s.Link]; other != nil {
		u.warnOnce(s.Link, "the interface netbridge changed was replaced by another link of its name: the recorded changes are dropped, and the new link is left alone",
			"ifindex", ref.Index, "new_ifindex", other.Attrs().Index, "new_kind", other.Type())
	} else if !u.told[s.Link] {
		u.told[s.Link] = true
		u.r.logger().Info("the interface netbridge changed is gone from the netns, with what was on it", "link", s.Link, "ifindex", ref.Index)
	}
	return nil
}

// undoOnIface undoes Step s on a CNI interface: its link found by
// identity (nothing to do when it is gone), filters the filters of ours
// found on it (an add-filter step), tapOurs whether the tap of its
// interface was found ours (which proves that a setup interrupted got as
// far as its Steps on the interface).
func (u *undoer) undoOnIface(ctx context.Context, s Step, filters []netlink.Filter, tapOurs bool) error {
	switch s.Op {
	case OpSetMAC, OpRemoveAddrs, OpSetMaster, OpKeepNeighbors, OpQdisc, OpFilter:
	default:
		return fmt.Errorf("unknown journal operation %q (state written by a newer netbridge?)", s.Op)
	}
	link := u.ifaceLink(s)
	if link == nil {
		return nil // gone, and with it everything on it
	}
	h := u.h
	switch s.Op {
	case OpSetMAC:
		return linkchange.UndoSetMAC(h, link, s.MAC, s.NewMAC)
	case OpRemoveAddrs:
		a := &linkchange.Addresses{Addrs: s.Addrs, Routes: s.Routes, KernelRoutes: s.KernelRoutes}
		return a.Restore(ctx, h, link, s.Link, u.r.logger())
	case OpSetMaster:
		return linkchange.UndoSetMaster(h, link, s.Master)
	case OpKeepNeighbors:
		return linkchange.RestoreNeighbors(h, link, s.Neighs)
	case OpQdisc:
		return u.undoQdisc(link, s, tapOurs)
	case OpFilter:
		var errs []error
		for _, f := range filters {
			errs = append(errs, delFilter(h, f))
		}
		return errors.Join(errs...)
	}
	return nil
}

// undoQdisc undoes an add-qdisc step on link, after our filters on it
// went: the ingress qdisc goes only when it holds no filter of someone
// else, and, for a step a crash left not done, only when the tap of the
// interface exists (else the setup never got to the qdisc, which is
// someone else's). Then a txqueuelen the kernel raised with the qdisc is
// lowered again.
func (u *undoer) undoQdisc(link netlink.Link, s Step, tapOurs bool) error {
	name := link.Attrs().Name
	q, err := FindIngress(u.h, link)
	if err != nil || q == nil {
		return err
	}
	if !s.Done && !tapOurs {
		u.r.logger().Info("an ingress qdisc netbridge announced but never made: someone else's, left alone", "link", name)
		return nil
	}
	fs, err := nlretry.Dump(func() ([]netlink.Filter, error) { return u.h.FilterList(link, tcredirect.IngressParent) })
	if err != nil {
		return fmt.Errorf("listing the filters of %q: %w", name, err)
	}
	if len(fs) > 0 {
		u.r.logger().Warn("kept the ingress qdisc netbridge added: it holds filters of someone else", "link", name, "filters", len(fs))
		return nil
	}
	if err := IgnoreNotFound(u.h.QdiscDel(q)); err != nil {
		return err
	}
	if s.TxQLen != nil && *s.TxQLen == 0 && link.Attrs().TxQLen == defaultTxQLen {
		if err := u.h.LinkSetTxQLen(link, 0); err != nil {
			return fmt.Errorf("setting the txqueuelen of %q back to 0: %w", name, err)
		}
	}
	return nil
}

// deleteLinks deletes doomed, links of sandbox id among all the links of
// its netns n, and returns each deletion's error (nil when it went, or was
// gone already): with one request for their link group when the group
// holds exactly them, else concurrently through several handles.
func deleteLinks(h *netlink.Handle, n *netns.NS, id string, all, doomed []netlink.Link) []error {
	errs := make([]error, len(doomed))
	if len(doomed) > 1 && groupHoldsExactly(OwnerGroup(id), all, doomed) {
		if err := deleteGroup(n, OwnerGroup(id)); err == nil {
			return errs
		}
		// Fall back to deleting them one by one (each gone one is fine).
	}
	hs := []*netlink.Handle{h}
	for len(hs) < min(len(doomed), maxDeleters) {
		extra, err := OpenHandle(n)
		if err != nil {
			break // fewer at once, then
		}
		defer extra.Close()
		hs = append(hs, extra)
	}
	var wg sync.WaitGroup
	for k, hk := range hs {
		wg.Go(func() {
			for i := k; i < len(doomed); i += len(hs) {
				errs[i] = IgnoreNotFound(hk.LinkDel(doomed[i]))
			}
		})
	}
	wg.Wait()
	return errs
}

// groupHoldsExactly reports whether the links of all that are in group
// are exactly those of doomed.
func groupHoldsExactly(group uint32, all, doomed []netlink.Link) bool {
	want := map[int]bool{}
	for _, l := range doomed {
		if l.Attrs().Group != group {
			return false
		}
		want[l.Attrs().Index] = true
	}
	for _, l := range all {
		if l.Attrs().Group == group && !want[l.Attrs().Index] {
			return false
		}
	}
	return true
}

// undoDevice removes the device node of step s (opDevice) of sandbox id,
// and the sandbox's node directory with its last node. Whatever path the
// record names, only r.dir/ID.dev/NAME is ever touched, never through a
// symbolic link, and only when it is the device the step recorded.
func (r *Record) undoDevice(id string, s Step) error {
	path, err := r.devicePath(id, s.Path)
	if err != nil {
		return err
	}
	check, err := nodeCheck(s)
	if err != nil {
		return err
	}
	if err := macvtap.RemoveNodeIf(path, check); err != nil {
		return err
	}
	return macvtap.RemoveDir(filepath.Dir(path))
}

// devicePath returns where the node a step names as recorded is, in the
// node directory of sandbox id: r.dir/ID.dev/NAME. The recorded path must
// name that file: as written (an absolute path), as a path relative to
// the state directory of an older record, or by another name of that
// directory. Anything else was not written by netbridge and is refused.
func (r *Record) devicePath(id, recorded string) (string, error) {
	devDir := state.NodeDir(r.dir, id)
	name := filepath.Base(recorded)
	ours := filepath.Join(devDir, name)
	clean, parent := filepath.Clean(recorded), filepath.Dir(filepath.Clean(recorded))
	switch {
	case r.dir == "" || linkname.Check(name) != nil:
	case clean == ours:
		return ours, nil
	case !filepath.IsAbs(clean) && filepath.Base(parent) == filepath.Base(devDir):
		return ours, nil
	case sameDir(parent, devDir):
		return ours, nil
	}
	return "", fmt.Errorf("device node %s: %w: netbridge makes the nodes of sandbox %q only in %s; not touching it (remove the record if netbridge did not write it)", recorded, macvtap.ErrNotOurNode, id, devDir)
}

// sameDir reports whether a and b are the same directory, neither a
// symbolic link.
func sameDir(a, b string) bool {
	fa, err := os.Lstat(a)
	if err != nil || !fa.IsDir() {
		return false
	}
	fb, err := os.Lstat(b)
	return err == nil && fb.IsDir() && os.SameFile(fa, fb)
}

// nodeCheck returns what the device number of step s's node must pass to
// be removed: the recorded number; for a record written before numbers
// were recorded, the macvtap major (any node when no macvtap driver is
// loaded, so none can be live: the node is in netbridge's own directory).
func nodeCheck(s Step) (func(macvtap.Device) error, error) {
	if s.DevNum != "" {
		want, err := macvtap.ParseDevice(s.DevNum)
		if err != nil {
			return nil, fmt.Errorf("device node %s: %w: recorded number: %w", s.Path, state.ErrBadRecord, err)
		}
		return func(got macvtap.Device) error {
			if got != want {
				return fmt.Errorf("it is device %s, not the recorded %s", got, want)
			}
			return nil
		}, nil
	}
	major, ok, err := macvtap.Major()
	if err != nil {
		return nil, fmt.Errorf("device node %s: reading the macvtap major number: %w", s.Path, err)
	}
	return func(got macvtap.Device) error {
		if ok && got.Major != major {
			return fmt.Errorf("it is device %s, not a macvtap (major %d)", got, major)
		}
		return nil
	}, nil
}
