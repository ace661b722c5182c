package netview

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/pkg/nlretry"
	"github.com/netbridge/netbridge/pkg/sandboxid"
	"github.com/netbridge/netbridge/pkg/state"
	"github.com/netbridge/netbridge/pkg/tcredirect"
	"github.com/netbridge/netbridge/sandbox"
)

// This file tells which interfaces of a netns netbridge wired already, and
// for which sandbox, from the kernel alone: whatever state directory that
// sandbox was set up with, its wiring shows on the interface. An interface
// wired for one sandbox is refused to another: two sandboxes on one
// interface would both redirect its frames, and the teardown of either
// would break the other.

// ErrInterfaceTaken is the cause of a *TakenError: the interface is wired
// by netbridge for another sandbox already.
var ErrInterfaceTaken = errors.New("interface wired for another sandbox")

// wiring is one sign, in a netns, that netbridge wired an interface: a
// link netbridge makes for an interface, found connected to it.
type wiring struct {
	owner  string // the sandbox id of that link's tag; "" when it has none
	link   string // that link: a tap, a bridge or a macvtap
	via    string // how it is connected, for messages
	filter bool   // shown by a filter on the interface's ingress
}

// wiringsOf returns the signs that netbridge wired ifc: its master is a
// bridge netbridge made, a macvtap netbridge made sits on it, or a filter
// at tcredirect.Priority on its ingress redirects its frames (to a tap, which
// names the sandbox by its tag). A filter at that priority to a link
// without our tag counts too: the priority is reserved for netbridge, and
// a second redirect there would split the interface's frames.
func wiringsOf(h *netlink.Handle, ifc *Link, byIndex map[int]netlink.Link, links []netlink.Link) ([]wiring, error) {
	self, ok := byIndex[ifc.Index]
	if !ok {
		return nil, nil
	}
	var out []wiring
	if m, ok := byIndex[self.Attrs().MasterIndex]; ok && self.Attrs().MasterIndex != 0 {
		if owner, ok := ownerOf(m); ok {
			out = append(out, wiring{owner: owner, link: m.Attrs().Name, via: fmt.Sprintf("it is a port of bridge %q", m.Attrs().Name)})
		}
	}
	for _, l := range links {
		if l.Type() != "macvtap" || l.Attrs().ParentIndex != ifc.Index {
			continue
		}
		if owner, ok := ownerOf(l); ok {
			out = append(out, wiring{owner: owner, link: l.Attrs().Name, via: fmt.Sprintf("macvtap %q sits on it", l.Attrs().Name)})
		}
	}
	if q, err := ifc.Ingress(); err != nil || q == nil {
		return out, nil // no plain ingress qdisc: none of our filters
	}
	fs, err := nlretry.Dump(func() ([]netlink.Filter, error) { return h.FilterList(self, tcredirect.IngressParent) })
	if err != nil {
		return nil, fmt.Errorf("listing the ingress filters of %q: %w", ifc.Name, err)
	}
	for _, f := range fs {
		if f.Attrs().Priority != tcredirect.Priority || tcredirect.IsU32Header(f) {
			continue
		}
		to, _ := tcredirect.Target(f)
		t, ok := byIndex[to]
		if !ok {
			out = append(out, wiring{via: fmt.Sprintf("a tc filter at priority %d, which netbridge reserves for its redirects, is on its ingress (to ifindex %d)", tcredirect.Priority, to), filter: true})
			continue
		}
		name := t.Attrs().Name
		if owner, ok := ownerOf(t); ok {
			out = append(out, wiring{owner: owner, link: name, via: fmt.Sprintf("a tc redirect at priority %d sends its frames to %q", tcredirect.Priority, name), filter: true})
			continue
		}
		out = append(out, wiring{link: name, via: fmt.Sprintf("a tc filter at priority %d, which netbridge reserves for its redirects, sends its frames to %q, which no netbridge tag names", tcredirect.Priority, name), filter: true})
	}
	return out, nil
}

// ownerOf returns the sandbox id of the netbridge tag (alias) of link.
func ownerOf(link netlink.Link) (string, bool) { return journal.OwnerOf(link) }

// markWired finds, for every interface of ifs that netbridge did not make,
// the signs that netbridge wired it, and sets its WiredFor.
func markWired(h *netlink.Handle, ifs []Link, links []netlink.Link, qdiscs []netlink.Qdisc) error {
	byIndex := map[int]netlink.Link{}
	for _, l := range links {
		byIndex[l.Attrs().Index] = l
	}
	for i := range ifs {
		ifc := &ifs[i]
		ifc.ingress, ifc.ingressErr = tcredirect.IngressOf(qdiscs, ifc.Name, ifc.Index)
		if ifc.Owner != "" {
			continue
		}
		w, err := wiringsOf(h, ifc, byIndex, links)
		if err != nil {
			return err
		}
		ifc.setWirings(w)
	}
	return nil
}

func (ifc *Link) setWirings(w []wiring) {
	ifc.wirings, ifc.WiredFor = w, ""
	for _, x := range w {
		if x.owner != "" {
			ifc.WiredFor = x.owner
			break
		}
	}
}

// Forget drops the signs of wiring that an undo about to run
// removes: those shown by a link of sandbox self that the undo deletes
// (gone names them), and the filters on an interface whose filters of our
// priority, or ingress qdisc, the undo deletes (filtersGone names it):
// such as a redirect left pointing nowhere by a tap deleted behind our
// back.
func (v *View) Forget(self string, gone, filtersGone map[string]bool) {
	ifs := v.Links
	for i := range ifs {
		ifc := &ifs[i]
		ifc.setWirings(slices.DeleteFunc(slices.Clone(ifc.wirings), func(w wiring) bool {
			return (w.owner == self && gone[w.link]) || (w.filter && filtersGone[ifc.Name])
		}))
	}
}

// TakenError reports an interface that netbridge wired for another sandbox
// (or for this one, through another state directory), and how to free it.
// It wraps ErrInterfaceTaken and ErrInvalidConfig: nothing was changed.
type TakenError struct {
	// Interface is the interface asked for.
	Interface string
	// Owner is the sandbox it is wired for; empty when the link that shows
	// the wiring carries no netbridge tag.
	Owner string
	// Via says what shows the wiring.
	Via string
	// Self reports that Owner is the sandbox being set up.
	Self bool
	// StateDir is the state directory looked in; empty when none was.
	StateDir string
	// Recorded reports that StateDir has a record of Owner; Attached that
	// it was attached interface by interface (by the CNI plugin).
	Recorded, Attached bool
}

func (e *TakenError) Error() string {
	what := fmt.Sprintf("interface %q is wired by netbridge", e.Interface)
	switch {
	case e.Owner == "":
		return fmt.Sprintf("interface %q: %s; remove that filter first", e.Interface, e.Via)
	case e.Self:
		return fmt.Sprintf("%s for this same sandbox %q (%s), but not through the record in %s: set up with another state directory? tear it down with that state directory first", what, e.Owner, e.Via, e.StateDir)
	case e.StateDir == "":
		return fmt.Sprintf("%s for sandbox %q (%s); tear that sandbox down first", what, e.Owner, e.Via)
	case e.Recorded && e.Attached:
		return fmt.Sprintf("%s for sandbox %q (%s), attached interface by interface (CNI plugin) as recorded in %s: detach it first (its CNI DEL, or a teardown of %q)", what, e.Owner, e.Via, e.StateDir, e.Owner)
	case e.Recorded:
		return fmt.Sprintf("%s for sandbox %q (%s), as recorded in %s: tear sandbox %q down first", what, e.Owner, e.Via, e.StateDir, e.Owner)
	}
	return fmt.Sprintf("%s for sandbox %q (%s), which has no record in %s (set up with another state directory?): tear it down with the state directory it was set up with", what, e.Owner, e.Via, e.StateDir)
}

// Unwrap returns ErrInterfaceTaken and ErrInvalidConfig, and
// tcredirect.ErrPriorityTaken when no netbridge tag names the link that shows
// the wiring: a filter of someone else holds netbridge's priority.
func (e *TakenError) Unwrap() []error {
	if e.Owner == "" {
		return []error{ErrInterfaceTaken, tcredirect.ErrPriorityTaken, sandbox.ErrInvalidConfig}
	}
	return []error{ErrInterfaceTaken, sandbox.ErrInvalidConfig}
}

// takenError describes why ifc is taken, looking for its owner's record in
// st (nil: no state directory to look in). self is the sandbox asking.
func takenError(ifc *Link, st *state.Store, self string) *TakenError {
	w := ifc.wirings[0]
	for _, x := range ifc.wirings {
		if x.owner != "" {
			w = x
			break
		}
	}
	e := &TakenError{Interface: ifc.Name, Owner: w.owner, Via: w.via, Self: w.owner != "" && w.owner == self}
	if st != nil && w.owner != "" {
		e.StateDir = st.Dir()
		if sandboxid.Check(w.owner) == nil {
			var r journal.Record
			if ok, err := st.Read(w.owner, &r); err == nil && ok {
				e.Recorded, e.Attached = true, r.Mode == journal.ModeAttach
			}
		}
	}
	return e
}

// ownerText describes the sandbox owner of a link netbridge made, and
// whether st has a record of it, for the message of a name that is taken.
func ownerText(st *state.Store, owner string) string {
	if st == nil {
		return fmt.Sprintf("sandbox %q", owner)
	}
	if sandboxid.Check(owner) == nil && st.Has(owner) {
		return fmt.Sprintf("sandbox %q, recorded in %s (tear it down first)", owner, st.Dir())
	}
	return fmt.Sprintf("sandbox %q, which has no record in %s (set up with another state directory?): tear it down with that state directory", owner, st.Dir())
}

// AddressesBack gives the links of v back, for a decision made
// before an undo, the addresses that the steps the undo reverses moved to
// the guest.
func (v *View) AddressesBack(steps []journal.Step) {
	ifs := v.Links
	for _, s := range steps {
		if s.Op != journal.OpRemoveAddrs {
			continue
		}
		for i := range ifs {
			if ifs[i].Name != s.Link || len(ifs[i].Addresses) > 0 {
				continue
			}
			for _, a := range s.Addrs {
				if a.Prefix.Addr().Is6() && a.Prefix.Addr().IsLinkLocalUnicast() {
					continue
				}
				ifs[i].Addresses = append(ifs[i].Addresses, netip.PrefixFrom(a.Prefix.Addr(), a.Prefix.Bits()))
			}
		}
	}
}

// NameFree checks that no link of v is called name, which netbridge would
// create for interface ifname of sandbox id, except a link of id that an
// undo about to run deletes (gone names them). st is where the owner of a
// link netbridge made for another sandbox is looked for.
func (v *View) NameFree(name, ifname, id string, st *state.Store, gone map[string]bool) error {
	for _, i := range v.Links {
		if i.Name != name {
			continue
		}
		switch {
		case i.Owner == id && gone[name]:
			return nil
		case i.Owner == id:
			return fmt.Errorf("name %q for interface %q is taken by the %s netbridge made for another interface of this sandbox; choose another tap name", name, ifname, i.Kind)
		case i.Owner != "":
			return fmt.Errorf("name %q for interface %q is taken by a link netbridge made for %s", name, ifname, ownerText(st, i.Owner))
		}
		return fmt.Errorf("name %q for interface %q is taken by an existing %s link that netbridge did not create; rename or remove it", name, ifname, i.Kind)
	}
	return nil
}
