package netbridge

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/netbridge/netbridge/pkg/linkname"
	"github.com/netbridge/netbridge/pkg/macvtap"
	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/pkg/nlretry"
	"github.com/netbridge/netbridge/pkg/state"
	"github.com/netbridge/netbridge/pkg/tcredirect"
)

// recordVersion is the version of the state record format. A record of
// another version is refused with an error rather than misread.
const recordVersion = 1

// Record phases.
const (
	phaseSettingUp = "setting-up" // the journal may hold unfinished steps
	phaseReady     = "ready"      // every step is done; the wiring is complete
)

// record is what netbridge keeps per sandbox id in the state directory: the
// sandbox as set up, and the journal of every object created, in creation
// order, so that any later process can undo exactly that.
type record struct {
	Version int `json:"version"`
	// Mode is modeAttach for a sandbox whose interfaces are attached one
	// by one, empty for one set up as a whole.
	Mode    string    `json:"mode,omitempty"`
	Phase   string    `json:"phase"`
	Created time.Time `json:"created"`
	// NetnsID identifies the namespace the journal applies to, so a path
	// later reused by another namespace is never touched.
	NetnsID netns.ID `json:"netns_id"`
	// NetnsCookie is the namespace's cookie, which the kernel never
	// reuses (inode numbers it does): with it, teardown may look for the
	// namespace beyond its path. 0 in older records, or without cookies.
	NetnsCookie uint64 `json:"netns_cookie,omitempty"`
	// Classifier is the tc classifier of the tcfilter model, u32 or matchall.
	Classifier tcredirect.Classifier `json:"classifier,omitempty"`
	// Request is what the setup was asked for (Setup).
	Request request `json:"request"`
	// Requests is what each interface was attached with (Attach).
	Requests map[string]request `json:"requests,omitempty"`
	Sandbox  Sandbox            `json:"sandbox"`
	Journal  []step             `json:"journal"`
	// dir is the state directory the record lives in: the device nodes
	// of its sandbox are only ever under dir/ID.dev, whatever path a
	// step names.
	dir string
	// netnsGone is set by undo when the netns was nowhere to be found:
	// its objects went with it, and only files were removed.
	netnsGone bool

	// log receives undo's warnings; nil logs nothing.
	log *slog.Logger
}

// logger returns r's logger.
func (r *record) logger() *slog.Logger {
	if r.log != nil {
		return r.log
	}
	return discard
}

// Step operations.
const (
	opTap         = "create-tap"       // a tap device named Link
	opBridge      = "create-bridge"    // a bridge named Link
	opMacvtap     = "create-macvtap"   // a macvtap named Link
	opDevice      = "create-device"    // a private device node at Path
	opQdisc       = "add-qdisc"        // an ingress qdisc on Link
	opFilter      = "add-filter"       // the filters of priority Prio on Link at Parent
	opSetMAC      = "set-mac"          // Link's MAC changed from MAC to NewMAC
	opRemoveAddrs = "remove-addresses" // Addrs removed from Link, and Routes with them
	opSetMaster   = "set-master"       // Link enslaved to Master
	// opKeepNeighbors records Link's permanent neighbours (Neighs), which
	// the kernel drops with a MAC change or the last IPv4 address.
	opKeepNeighbors = "keep-neighbors"
)

// ownedKinds maps the operations that create links to the link type.
var ownedKinds = map[string]string{opTap: "tuntap", opBridge: "bridge", opMacvtap: "macvtap"}

// step is one journal entry. It is written before its object is created
// (Done false) and marked done once it exists; a crash in between leaves an
// entry whose object may or may not exist, and undo handles both.
type step struct {
	Op     string        `json:"op"`
	Link   string        `json:"link"`
	Parent uint32        `json:"parent,omitempty"`
	Prio   uint16        `json:"prio,omitempty"`
	MAC    MAC           `json:"mac,omitempty"`
	NewMAC MAC           `json:"new_mac,omitempty"`
	Addrs  []addrRecord  `json:"addrs,omitempty"`
	Routes []routeRecord `json:"routes,omitempty"`
	// KernelRoutes are the destinations of the kernel's prefix routes on
	// Link when its addresses were removed.
	KernelRoutes []netip.Prefix `json:"kernel_routes,omitempty"`
	Master       string         `json:"master,omitempty"`
	Neighs       []neighRecord  `json:"neighs,omitempty"`
	Path         string         `json:"path,omitempty"`
	// DevNum is the device number ("major:minor") of the node at Path,
	// recorded at its creation: only that device is removed. Records
	// written before it lack it.
	DevNum string `json:"devnum,omitempty"`
	// Iface is the CNI interface whose wiring the step is part of.
	Iface string `json:"iface,omitempty"`
	// Ref identifies Link beyond its name: the CNI interface as it was
	// when the step was journaled, or the link a create step made, once
	// made. Undo follows it through a rename and leaves alone a link that
	// merely took its name. Records of netbridge before version 1.1 (of
	// the format) lack it; undo then takes the NICs' indexes.
	Ref *linkRef `json:"ref,omitempty"`
	// Tmp is the name a create-tap step creates its tap under, before
	// the tap gets its tag and its name Link in one request: a tap of
	// that name is ours even untagged (made by a setup interrupted in
	// between).
	Tmp string `json:"tmp,omitempty"`
	// TxQLen is Link's txqueuelen before an add-qdisc step: the kernel
	// raises a txqueuelen of 0 to 1000 when an ingress qdisc is added,
	// and undo lowers it again.
	TxQLen *int `json:"txqlen,omitempty"`
	Done   bool `json:"done"`
}

// linkRef identifies a link of the sandbox netns: its ifindex, which the
// kernel does not give to another link while it exists and keeps through
// a rename or a move out and back, and, against a link of another netns
// moved in under the same ifindex, its kind and parent (IFLA_LINK: a veth's
// peer, a macvlan's lower device).
type linkRef struct {
	Index  int    `json:"index"`
	Kind   string `json:"kind,omitempty"`
	Parent int    `json:"parent,omitempty"`
}

func refOf(l netlink.Link) *linkRef {
	a := l.Attrs()
	return &linkRef{Index: a.Index, Kind: l.Type(), Parent: a.ParentIndex}
}

// is reports whether l is the link r identifies.
func (r *linkRef) is(l netlink.Link) bool {
	a := l.Attrs()
	return a.Index == r.Index && (r.Kind == "" || l.Type() == r.Kind) && (r.Parent == 0 || a.ParentIndex == r.Parent)
}

func (s step) String() string {
	switch s.Op {
	case opTap:
		return fmt.Sprintf("creating tap %q", s.Link)
	case opQdisc:
		return fmt.Sprintf("adding the ingress qdisc of %q", s.Link)
	case opFilter:
		return fmt.Sprintf("adding the redirect filter on %q (prio %d)", s.Link, s.Prio)
	case opBridge:
		return fmt.Sprintf("creating bridge %q", s.Link)
	case opMacvtap:
		return fmt.Sprintf("creating macvtap %q", s.Link)
	case opDevice:
		return fmt.Sprintf("creating device node %s", s.Path)
	case opSetMAC:
		return fmt.Sprintf("changing the MAC of %q from %s to %s", s.Link, s.MAC, s.NewMAC)
	case opRemoveAddrs:
		return fmt.Sprintf("moving the %d addresses of %q to the guest", len(s.Addrs), s.Link)
	case opSetMaster:
		return fmt.Sprintf("attaching %q to %q", s.Link, s.Master)
	case opKeepNeighbors:
		return fmt.Sprintf("recording the %d permanent neighbours of %q", len(s.Neighs), s.Link)
	}
	return fmt.Sprintf("%s on %q", s.Op, s.Link)
}

// readRecord loads the record of id; nil when there is none.
func readRecord(st *state.Store, id string) (*record, error) {
	var r record
	ok, err := st.Read(id, &r)
	if err != nil || !ok {
		return nil, err
	}
	if err := r.validate(id); err != nil {
		return nil, fmt.Errorf("state of sandbox %q in %s: %w: %w", id, st.Dir(), state.ErrBadRecord, err)
	}
	r.dir = st.Dir()
	return &r, nil
}

// validate checks a decoded record of sandbox id.
func (r *record) validate(id string) error {
	if r.Version != recordVersion {
		return fmt.Errorf("record version %d; this netbridge reads version %d", r.Version, recordVersion)
	}
	if r.Mode != "" && r.Mode != modeAttach {
		return fmt.Errorf("record mode %q; this netbridge knows %q", r.Mode, modeAttach)
	}
	if r.Sandbox.ID != id {
		return fmt.Errorf("the record is of sandbox %q; remove the file if it was copied there", r.Sandbox.ID)
	}
	return nil
}

// undo removes, in reverse order, every object the journal records. Objects
// already gone are fine; objects that are not ours are left alone. It keeps
// going after an error, returns them all, and drops each undone step from
// the journal.
func (r *record) undo(h *netlink.Handle, n *netns.NS, id string) error {
	return r.undoWhere(h, n, id, func(step) bool { return true })
}

// undoWhere is undo for the steps match selects; the other steps stay in
// the journal. h and n are the sandbox netns's handle and namespace.
//
// Each step's link is found by what identifies it (step.Ref, or for a
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
// the CNI interface) are then undone newest first, as recorded.
func (r *record) undoWhere(h *netlink.Handle, n *netns.NS, id string, match func(step) bool) error {
	links, err := nlretry.Dump(h.LinkList)
	if err != nil {
		return fmt.Errorf("listing links: %w", err)
	}
	u := newUndoer(r, h, id, links)
	created := map[string]bool{} // the names create steps give their links
	for _, s := range r.Journal {
		if _, creates := ownedKinds[s.Op]; creates {
			created[s.Link] = true
		}
	}
	var errs []error
	// Our links, found before any is deleted.
	var ours []step
	var doomed []netlink.Link
	ourTap := map[string]netlink.Link{} // by interface: the tap made for it
	for _, s := range r.Journal {
		if _, creates := ownedKinds[s.Op]; !creates || !match(s) {
			continue
		}
		l := u.ownedLink(s)
		if l == nil {
			continue
		}
		if s.Op == opTap {
			ourTap[s.Iface] = l
		}
		ours = append(ours, s)
		doomed = append(doomed, l)
	}
	// Our filters on the CNI interfaces, found while the taps they
	// redirect to exist.
	filters := map[int][]netlink.Filter{} // by journal index
	for i, s := range r.Journal {
		if s.Op != opFilter || !match(s) || created[s.Link] {
			continue
		}
		l := u.ifaceLink(s)
		if l == nil {
			continue
		}
		fs, err := ourFilters(h, l, s, ourTap[s.Iface])
		if err != nil {
			errs = append(errs, fmt.Errorf("undoing %s: %w", s, err))
			continue
		}
		filters[i] = fs
	}
	failed := map[string]bool{} // created links whose deletion failed, by step name
	for i, err := range deleteLinks(h, n, id, links, doomed) {
		if err != nil {
			errs = append(errs, fmt.Errorf("deleting %q: %w", doomed[i].Attrs().Name, err))
			failed[ours[i].Link] = true
		}
	}
	for i := len(r.Journal) - 1; i >= 0; i-- {
		s := r.Journal[i]
		if !match(s) {
			continue
		}
		if s.Op == opDevice {
			if err := r.undoDevice(id, s); err != nil {
				errs = append(errs, fmt.Errorf("undoing %s: %w", s, err))
				continue
			}
		} else if created[s.Link] {
			// A link we created and deleted above, or one of that
			// name that is not ours (left alone), or an object that
			// went with such a link; a link whose deletion failed
			// stays recorded.
			if failed[s.Link] {
				continue
			}
		} else if err := u.undoOnIface(s, filters[i], ourTap[s.Iface] != nil); err != nil {
			errs = append(errs, fmt.Errorf("undoing %s: %w", s, err))
			continue
		}
		r.Journal = append(r.Journal[:i], r.Journal[i+1:]...)
	}
	return errors.Join(errs...)
}

// undoer resolves the links of a record's steps in its netns.
type undoer struct {
	r       *record
	h       *netlink.Handle
	id      string
	byIndex map[int]netlink.Link
	byName  map[string]netlink.Link
	// legacy holds what identifies the interfaces and taps of a record
	// whose steps have no Ref (an older netbridge's): their NICs'
	// indexes, by name.
	legacy map[string]*linkRef
	told   map[string]bool // the links warned about already
}

func newUndoer(r *record, h *netlink.Handle, id string, links []netlink.Link) *undoer {
	u := &undoer{r: r, h: h, id: id, byIndex: map[int]netlink.Link{}, byName: map[string]netlink.Link{}, legacy: map[string]*linkRef{}, told: map[string]bool{}}
	for _, l := range links {
		u.byIndex[l.Attrs().Index] = l
		u.byName[l.Attrs().Name] = l
	}
	for _, nic := range r.Sandbox.NICs {
		if nic.Index > 0 {
			u.legacy[nic.Name] = &linkRef{Index: nic.Index, Kind: nic.Kind}
		}
		if nic.TapIndex > 0 && nic.Tap != nic.Name {
			u.legacy[nic.Tap] = &linkRef{Index: nic.TapIndex}
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
	return a.Alias == ownerTag(u.id) || (a.Group == ownerGroup(u.id) && l.Type() == kind)
}

// ownedLink returns the link create step s made, nil when it is gone or
// was never made: found by its recorded ifindex (through a rename), else
// by its name, else by the temporary name of a tap being made. A link of
// its name without our proof is someone else's: left alone, with a
// warning.
func (u *undoer) ownedLink(s step) netlink.Link {
	kind := ownedKinds[s.Op]
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
			"kind", l.Type(), "alias", l.Attrs().Alias, "group", l.Attrs().Group, "tag", ownerTag(u.id))
	}
	return nil
}

// ifaceLink returns the link (a CNI interface) step s changed, nil when
// it is no longer in the netns. It is found by the identity the step
// recorded, or for a record of an older netbridge by the NIC's, through
// a rename; a link that took its name is not it, and is left alone with
// a warning. A step of an older netbridge's record that neither has
// applies to the link of its name, with a warning.
func (u *undoer) ifaceLink(s step) netlink.Link {
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
	if l := u.byIndex[ref.Index]; l != nil && ref.is(l) {
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

// undoOnIface undoes step s on a CNI interface: its link found by
// identity (nothing to do when it is gone), filters the filters of ours
// found on it (an add-filter step), tapOurs whether the tap of its
// interface was found ours (which proves that a setup interrupted got as
// far as its steps on the interface).
func (u *undoer) undoOnIface(s step, filters []netlink.Filter, tapOurs bool) error {
	switch s.Op {
	case opSetMAC, opRemoveAddrs, opSetMaster, opKeepNeighbors, opQdisc, opFilter:
	default:
		return fmt.Errorf("unknown journal operation %q (state written by a newer netbridge?)", s.Op)
	}
	link := u.ifaceLink(s)
	if link == nil {
		return nil // gone, and with it everything on it
	}
	h := u.h
	switch s.Op {
	case opSetMAC:
		return undoSetMAC(h, link, s)
	case opRemoveAddrs:
		return restoreAddresses(h, link, s, u.r.logger())
	case opSetMaster:
		return undoSetMaster(h, link, s)
	case opKeepNeighbors:
		return restoreNeighbors(h, link, s)
	case opQdisc:
		return u.undoQdisc(link, s, tapOurs)
	case opFilter:
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
func (u *undoer) undoQdisc(link netlink.Link, s step, tapOurs bool) error {
	name := link.Attrs().Name
	q, err := findIngress(u.h, link)
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
	if err := ignoreNotFound(u.h.QdiscDel(q)); err != nil {
		return err
	}
	if s.TxQLen != nil && *s.TxQLen == 0 && link.Attrs().TxQLen == defaultTxQLen {
		if err := u.h.LinkSetTxQLen(link, 0); err != nil {
			return fmt.Errorf("setting the txqueuelen of %q back to 0: %w", name, err)
		}
	}
	return nil
}

// defaultTxQLen is the txqueuelen the kernel gives a link of txqueuelen 0
// when an ingress qdisc is added to it (DEFAULT_TX_QUEUE_LEN).
const defaultTxQLen = 1000

// maxDeleters bounds the netlink handles deleting links at once.
const maxDeleters = 32

// deleteLinks deletes doomed, links of sandbox id among all the links of
// its netns n, and returns each deletion's error (nil when it went, or was
// gone already): with one request for their link group when the group
// holds exactly them, else concurrently through several handles.
func deleteLinks(h *netlink.Handle, n *netns.NS, id string, all, doomed []netlink.Link) []error {
	errs := make([]error, len(doomed))
	if len(doomed) > 1 && groupHoldsExactly(ownerGroup(id), all, doomed) {
		if err := deleteGroup(n, ownerGroup(id)); err == nil {
			return errs
		}
		// Fall back to deleting them one by one (each gone one is fine).
	}
	hs := []*netlink.Handle{h}
	for len(hs) < min(len(doomed), maxDeleters) {
		extra, err := openHandle(n)
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
				errs[i] = ignoreNotFound(hk.LinkDel(doomed[i]))
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

// undoGone undoes the steps match selects of a record whose netns is gone
// and took every object in it along: only the device nodes, files on the
// host, are left to remove (a node outliving its macvtap would open
// whatever device later gets its number). The other steps are dropped.
func (r *record) undoGone(id string, match func(step) bool) error {
	var errs []error
	for i := len(r.Journal) - 1; i >= 0; i-- {
		s := r.Journal[i]
		if !match(s) {
			continue
		}
		if s.Op == opDevice {
			if err := r.undoDevice(id, s); err != nil {
				errs = append(errs, fmt.Errorf("undoing %s: %w", s, err))
				continue
			}
		}
		r.Journal = append(r.Journal[:i], r.Journal[i+1:]...)
	}
	return errors.Join(errs...)
}

// undoDevice removes the device node of step s (opDevice) of sandbox id,
// and the sandbox's node directory with its last node. Whatever path the
// record names, only r.dir/ID.dev/NAME is ever touched, never through a
// symbolic link, and only when it is the device the step recorded.
func (r *record) undoDevice(id string, s step) error {
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
func (r *record) devicePath(id, recorded string) (string, error) {
	devDir := filepath.Join(r.dir, id+".dev")
	name := filepath.Base(recorded)
	ours := filepath.Join(devDir, name)
	clean, parent := filepath.Clean(recorded), filepath.Dir(filepath.Clean(recorded))
	switch {
	case r.dir == "" || linkname.Check(name) != nil:
	case clean == ours:
		return ours, nil
	case !filepath.IsAbs(clean) && filepath.Base(parent) == id+".dev":
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
func nodeCheck(s step) (func(macvtap.Device) error, error) {
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
