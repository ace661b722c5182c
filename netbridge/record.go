package netbridge

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/netbridge/netbridge/pkg/macvtap"
	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/pkg/nlretry"
	"github.com/netbridge/netbridge/pkg/state"
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
	Classifier string `json:"classifier,omitempty"`
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
	Done  bool   `json:"done"`
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
// The links of ours go first, all at once: the kernel spends most of a
// link's deletion (about 18 ms here) waiting for RCU grace periods, which
// one batch shares, so that 16 taps go in about the time of one instead
// of 16 times that. They are deleted by their link group when the group
// holds exactly them, else concurrently. The objects on those links go
// with them. The remaining steps (a MAC, addresses, a master, a qdisc on
// the CNI interface) are then undone newest first, as recorded.
func (r *record) undoWhere(h *netlink.Handle, n *netns.NS, id string, match func(step) bool) error {
	var ours []step
	for _, s := range r.Journal {
		if _, creates := ownedKinds[s.Op]; creates && match(s) {
			ours = append(ours, s)
		}
	}
	gone := map[string]bool{}   // links deleted, or gone already, by name
	failed := map[string]bool{} // links whose deletion failed
	var errs []error
	if len(ours) > 0 {
		links, err := nlretry.Dump(h.LinkList)
		if err != nil {
			return fmt.Errorf("listing links: %w", err)
		}
		byName := map[string]netlink.Link{}
		for _, l := range links {
			byName[l.Attrs().Name] = l
		}
		var doomed []netlink.Link
		for _, s := range ours {
			switch l, ok := byName[s.Link]; {
			case !ok:
				gone[s.Link] = true // gone already, with what was on it
			case isOurLink(l, id, s):
				doomed = append(doomed, l)
			}
		}
		for i, err := range deleteLinks(h, n, id, links, doomed) {
			name := doomed[i].Attrs().Name
			if err != nil {
				errs = append(errs, fmt.Errorf("deleting %q: %w", name, err))
				failed[name] = true
				continue
			}
			gone[name] = true
		}
	}
	// A filter on a qdisc netbridge added goes with the qdisc.
	ourQdisc := map[string]bool{}
	for _, s := range r.Journal {
		if s.Op == opQdisc && match(s) {
			ourQdisc[s.Link] = true
		}
	}
	for i := len(r.Journal) - 1; i >= 0; i-- {
		s := r.Journal[i]
		if !match(s) {
			continue
		}
		if s.Op == opFilter && ourQdisc[s.Link] {
			r.Journal = append(r.Journal[:i], r.Journal[i+1:]...)
			continue
		}
		if _, creates := ownedKinds[s.Op]; creates || gone[s.Link] {
			// A link deleted above, or one of that name that is not
			// ours (left alone), or an object that went with a link;
			// a link whose deletion failed stays recorded.
			if !failed[s.Link] {
				r.Journal = append(r.Journal[:i], r.Journal[i+1:]...)
			}
			continue
		}
		var err error
		if s.Op == opDevice {
			err = r.undoDevice(id, s)
		} else {
			err = undoStep(h, id, s)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("undoing %s: %w", s, err))
			continue
		}
		r.Journal = append(r.Journal[:i], r.Journal[i+1:]...)
	}
	return errors.Join(errs...)
}

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
	case r.dir == "" || validLinkName(name) != nil:
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

func undoStep(h *netlink.Handle, id string, s step) error {
	link, err := h.LinkByName(s.Link)
	if err != nil {
		if errors.As(err, new(netlink.LinkNotFoundError)) {
			return nil // gone, and with it everything on it
		}
		return err
	}
	switch s.Op {
	case opTap, opBridge, opMacvtap:
		if !isOurLink(link, id, s) {
			return nil // someone else's link of that name: not ours to delete
		}
		return ignoreNotFound(h.LinkDel(link))
	case opSetMAC:
		return undoSetMAC(h, link, s)
	case opRemoveAddrs:
		return restoreAddresses(h, link, s)
	case opSetMaster:
		return undoSetMaster(h, link, s)
	case opKeepNeighbors:
		return restoreNeighbors(h, link, s)
	case opQdisc:
		qs, err := nlretry.Dump(func() ([]netlink.Qdisc, error) { return h.QdiscList(link) })
		if err != nil {
			return err
		}
		for _, q := range qs {
			if _, ok := q.(*netlink.Ingress); ok {
				return ignoreNotFound(h.QdiscDel(q))
			}
		}
		return nil
	case opFilter:
		return delPriority(h, link, s.Parent, s.Prio)
	}
	return fmt.Errorf("unknown journal operation %q (state written by a newer netbridge?)", s.Op)
}

// isOurLink reports whether link is the one journal step s of sandbox id
// created: tagged with our alias, or, for a step interrupted before the tag
// was set, an untagged link of the kind the step creates (the name was free
// when the step began, and creation is exclusive).
func isOurLink(link netlink.Link, id string, s step) bool {
	if link.Attrs().Alias == ownerTag(id) {
		return true
	}
	return !s.Done && link.Type() == ownedKinds[s.Op] && link.Attrs().Alias == ""
}
