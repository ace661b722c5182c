package netbridge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/netbridge/internal/model"
	"github.com/netbridge/netbridge/netbridge/internal/netview"
	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/sandbox"
)

// ErrNetnsGone reports that the netns of a recorded sandbox is gone (or
// was replaced by another at its path): there is nothing left to follow.
var ErrNetnsGone = errors.New("the sandbox's network namespace is gone")

// EventKind is what happened to one NIC of a followed sandbox.
type EventKind string

// Event kinds.
const (
	// EventAdded: an interface was wired (and hot-plugged, with a
	// HotPlugger) into the sandbox.
	EventAdded EventKind = "added"
	// EventRemoved: the interface of a NIC vanished; the NIC was unplugged
	// and its wiring undone.
	EventRemoved EventKind = "removed"
	// EventChanged: the addresses, routes or MTU of a NIC's interface
	// changed; the record (and the tap's MTU) follow.
	EventChanged EventKind = "changed"
)

// Event is one change Reconcile made to a sandbox, for one NIC.
type Event struct {
	// Kind is what happened.
	Kind EventKind `json:"event"`
	// Interface is the CNI interface of the NIC.
	Interface string `json:"interface"`
	// Device is the id of the VM's device for the NIC, with a HotPlugger.
	Device string `json:"device,omitempty"`
	// Tap is the device the NIC's guest side uses.
	Tap string `json:"tap,omitempty"`
	// GuestMAC is the MAC the guest sees.
	GuestMAC string `json:"guest_mac,omitempty"`
	// Hotplugged reports that the hypervisor was told (the NIC plugged in
	// or out) without error.
	Hotplugged bool `json:"hotplugged"`
	// Changed names what changed (EventChanged): "addresses", "routes",
	// "mtu".
	Changed []string `json:"changed,omitempty"`
	// NIC is the NIC as recorded after the change (before it, for
	// EventRemoved): what a per-NIC service (a DHCP responder) needs.
	NIC sandbox.NIC `json:"-"`
	// Err is the hot-plug failure, when there was one; the wiring is right
	// all the same.
	Err error `json:"-"`
}

// HotPlugger is the hypervisor side of Reconcile: it plugs one NIC into a
// running VM and out of it, and says which it holds, by device ids it
// derives from the NIC's interface name alone (so that a later process
// finds the same ids).
type HotPlugger interface {
	// DeviceID returns the id the VM's device for the NIC of interface
	// ifname has.
	DeviceID(ifname string) string
	// Plugged returns the ids of the NIC devices the VM holds, as DeviceID
	// makes them (devices of other ids are not the HotPlugger's).
	Plugged(ctx context.Context) ([]string, error)
	// Plug adds nic, whose queue files (and vhost files) are open; the
	// caller closes them once Plug returns.
	Plug(ctx context.Context, nic sandbox.NIC) error
	// Unplug removes device id, waiting until the guest released it; a
	// device the VM does not hold is not an error.
	Unplug(ctx context.Context, id string) error
}

// Reconcile brings the wiring of recorded sandbox id in step with its
// netns, once, level-triggered: it wires every interface that setup would
// attach under the record's request and that is not wired (a sandbox set
// up as a whole; the interfaces of one attached interface by interface are
// wired by Attach), undoes through the journal the wiring of every NIC
// whose interface vanished, and records the new addresses, routes and MTU
// of the interfaces whose ones changed (setting the tap's MTU). With hp,
// the VM then holds exactly the record's NICs: those it lacks are plugged,
// those of vanished interfaces unplugged. emit, when set, is called once
// per NIC changed. A hot-plug failure does not fail Reconcile: it is
// reported in the event of its NIC, or returned joined with nil when no
// event carries it.
//
// It returns an error wrapping ErrNotFound when id has no record, and
// ErrNetnsGone when its netns is gone. Every kernel change is journaled
// before it is made, so a Reconcile killed at any point leaves a record
// that the next Reconcile, or teardown, completes.
func (m *Manager) Reconcile(ctx context.Context, id string, hp HotPlugger, emit func(Event)) error {
	start := time.Now()
	st, rec, unlock, err := m.lockedRecord(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	if rec == nil {
		return fmt.Errorf("%w: %q (no record in %s)", ErrNotFound, id, st.Dir())
	}
	log := m.log.With("id", id)
	rec.SetLog(log)
	n, err := netns.Open(rec.Sandbox.Netns)
	if errors.Is(err, netns.ErrNotExist) || (err == nil && n.ID() != rec.NetnsID) {
		if n != nil {
			n.Close()
		}
		return fmt.Errorf("following sandbox %q: %w (netns %q)", id, ErrNetnsGone, rec.Sandbox.Netns)
	}
	if err != nil {
		return fmt.Errorf("following sandbox %q: %w", id, err)
	}
	defer n.Close()
	if err := n.Lock(ctx); err != nil {
		return err
	}
	cfg := configOf(rec)
	s := &session{cfg: cfg, req: rec.Request, st: st, n: n, log: log, start: start}
	var events []Event
	err = s.run(rec, func(tx *journal.Tx) error {
		var err error
		events, err = s.reconcile(ctx, tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("following sandbox %q in netns %q: %w", id, rec.Sandbox.Netns, err)
	}
	var hperr error
	if hp != nil {
		events, hperr = s.hotplug(ctx, rec, hp, events)
	}
	for _, e := range events {
		log.Info("followed", "event", e.Kind, "interface", e.Interface, "tap", e.Tap, "hotplugged", e.Hotplugged, "elapsed", time.Since(start))
		if emit != nil {
			emit(e)
		}
	}
	return hperr
}

// configOf returns the configuration the record was set up with, as far
// as it shapes the wiring.
func configOf(rec *journal.Record) sandbox.Config {
	r := rec.Request
	vhost := sandbox.VhostOff
	if r.Vhost {
		vhost = sandbox.VhostOn
	}
	return sandbox.Config{
		ID: rec.Sandbox.ID, Netns: rec.Sandbox.Netns, Model: r.Model, Interfaces: r.Interfaces, Queues: r.Queues,
		Vhost: vhost, TapOwner: r.TapOwner, TapGroup: r.TapGroup, MacvtapMode: r.MacvtapMode, TapName: r.TapName, Network: r.Network,
	}
}

// reconcile unwires the NICs whose interface vanished, updates those whose
// interface changed, and wires the interfaces missing, in the record of
// tx. It runs on a thread inside the netns.
func (s *session) reconcile(ctx context.Context, tx *journal.Tx) ([]Event, error) {
	rec := tx.Record()
	h := tx.Netns().H
	v, err := netview.Read(h)
	if err != nil {
		return nil, err
	}
	var events []Event
	dirty := false
	// The steps of an interface without a NIC were left by a wiring that
	// was interrupted: undo them, like any vanished NIC's.
	gone := map[string]bool{}
	for _, st := range rec.Journal {
		if !slices.ContainsFunc(rec.Sandbox.NICs, func(n sandbox.NIC) bool { return n.Name == st.Iface }) {
			gone[st.Iface] = true
		}
	}
	for _, nic := range rec.Sandbox.NICs {
		l := v.Find(nic.Index)
		if l == nil || l.Name != nic.Name {
			gone[nic.Name] = true
			events = append(events, Event{Kind: EventRemoved, Interface: nic.Name, Tap: nic.Tap, GuestMAC: nic.GuestMAC.String(), NIC: nic})
		}
	}
	if len(gone) > 0 {
		undo := func(st journal.Step) bool { return gone[st.Iface] }
		uerr := rec.Undo(ctx, h, s.n, undo)
		rec.Sandbox.NICs = slices.DeleteFunc(rec.Sandbox.NICs, func(n sandbox.NIC) bool { return gone[n.Name] })
		if uerr == nil && rec.Mode == journal.ModeAttach {
			for name := range gone {
				delete(rec.Requests, name)
			}
		}
		if uerr != nil {
			return nil, errors.Join(uerr, tx.SaveOrRemove())
		}
		dirty = true
		if rec.Mode == journal.ModeAttach && len(rec.Requests) == 0 {
			// The last attached interface went: the sandbox goes with it,
			// as Detach of the last one does.
			return events, tx.SaveOrRemove()
		}
	}
	for i := range rec.Sandbox.NICs {
		nic := &rec.Sandbox.NICs[i]
		l := v.Find(nic.Index)
		if l == nil {
			continue
		}
		changed := updateNIC(rec, nic, l)
		if len(changed) == 0 {
			continue
		}
		if slices.Contains(changed, "mtu") && nic.Tap != "" {
			if err := setTapMTU(h, nic); err != nil {
				return nil, errors.Join(err, tx.Save())
			}
		}
		dirty = true
		events = append(events, Event{Kind: EventChanged, Interface: nic.Name, Tap: nic.Tap, GuestMAC: nic.GuestMAC.String(), Changed: changed, NIC: *nic})
	}
	if rec.Mode == journal.ModeWhole {
		added, err := s.wireMissing(ctx, tx)
		if err != nil {
			return nil, err
		}
		for _, nic := range added {
			events = append(events, Event{Kind: EventAdded, Interface: nic.Name, Tap: nic.Tap, GuestMAC: nic.GuestMAC.String(), NIC: nic})
		}
		if len(added) > 0 {
			dirty = false // wireMissing saved
		}
	}
	if dirty {
		if err := tx.Save(); err != nil {
			return nil, err
		}
	}
	return events, nil
}

// updateNIC copies the addresses, routes and MTU of interface l into nic
// when they differ, and names what changed. Addresses a model moved off
// the interface (to the guest) stay as recorded.
func updateNIC(rec *journal.Record, nic *sandbox.NIC, l *netview.Link) []string {
	var changed []string
	moved := slices.ContainsFunc(rec.Journal, func(st journal.Step) bool {
		return st.Iface == nic.Name && st.Op == journal.OpRemoveAddrs
	})
	if !moved {
		if !slices.Equal(nic.Addresses, l.Addresses) {
			nic.Addresses = slices.Clone(l.Addresses)
			changed = append(changed, "addresses")
		}
		if !slices.EqualFunc(nic.Routes, l.Routes, func(a, b sandbox.Route) bool { return a == b }) {
			nic.Routes = slices.Clone(l.Routes)
			changed = append(changed, "routes")
		}
	}
	if l.MTU != nic.MTU {
		nic.MTU = l.MTU
		changed = append(changed, "mtu")
	}
	return changed
}

// setTapMTU gives the tap of nic the NIC's MTU.
func setTapMTU(h *netlink.Handle, nic *sandbox.NIC) error {
	tap, err := h.LinkByName(nic.Tap)
	if err != nil {
		return fmt.Errorf("setting the MTU of tap %q of interface %q: %w", nic.Tap, nic.Name, err)
	}
	if tap.Attrs().MTU == nic.MTU {
		return nil
	}
	if err := h.LinkSetMTU(tap, nic.MTU); err != nil {
		return fmt.Errorf("setting the MTU of tap %q of interface %q to %d: %w", nic.Tap, nic.Name, nic.MTU, err)
	}
	return nil
}

// wireMissing wires the interfaces that the record's request attaches and
// that have no NIC yet, as setup would, and returns their NICs: the named
// ones that exist, or else every interface the automatic selection takes.
func (s *session) wireMissing(ctx context.Context, tx *journal.Tx) ([]sandbox.NIC, error) {
	rec := tx.Record()
	h := tx.Netns().H
	v, err := netview.Read(h)
	if err != nil {
		return nil, err
	}
	recorded := func(name string) bool {
		return slices.ContainsFunc(rec.Sandbox.NICs, func(n sandbox.NIC) bool { return n.Name == name })
	}
	var names []string
	if len(s.req.Interfaces) > 0 {
		for _, name := range s.req.Interfaces {
			if !recorded(name) && slices.ContainsFunc(v.Links, func(l netview.Link) bool { return l.Name == name }) {
				names = append(names, name)
			}
		}
	} else {
		if err := v.Select(nil, models.Chooser(s.req.Model).Supports, s.st, s.cfg.ID); err != nil {
			return nil, err
		}
		for _, l := range v.Links {
			if l.Attach && !recorded(l.Name) {
				names = append(names, l.Name)
			}
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	v, err = netview.Read(h)
	if err != nil {
		return nil, err
	}
	d, err := decide(v, s.cfg, s.req, names, s.st, nil)
	if err != nil {
		return nil, err
	}
	rec.Phase = sandbox.PhaseSettingUp
	nics, err := s.wireAll(ctx, tx, d, nil)
	if err != nil {
		mine := func(st journal.Step) bool { return slices.Contains(names, st.Iface) }
		uerr := rec.Undo(context.WithoutCancel(ctx), h, s.n, mine)
		if uerr == nil {
			rec.Phase = sandbox.PhaseReady
		}
		return nil, errors.Join(err, uerr, tx.Save())
	}
	model.CloseNICs(nics)
	for i := range nics {
		nics[i].Files, nics[i].VhostFiles = nil, nil
	}
	rec.Sandbox.NICs = append(rec.Sandbox.NICs, nics...)
	slices.SortFunc(rec.Sandbox.NICs, func(a, b sandbox.NIC) int { return cmp.Compare(a.Name, b.Name) })
	rec.Phase = sandbox.PhaseReady
	if err := tx.Save(); err != nil {
		return nil, err
	}
	return nics, nil
}

// hotplug makes the VM behind hp hold exactly the NICs of rec: it plugs
// those it lacks and unplugs those of interfaces no longer recorded,
// marking events accordingly. A failure is reported in the event of its
// NIC (or returned, for a NIC without an event); it does not stop the
// others.
func (s *session) hotplug(ctx context.Context, rec *journal.Record, hp HotPlugger, events []Event) ([]Event, error) {
	plugged, err := hp.Plugged(ctx)
	if err != nil {
		err = fmt.Errorf("asking the VM which NICs it holds: %w", err)
		for i := range events {
			if events[i].Kind != EventChanged {
				events[i].Err = err
			}
		}
		return events, err
	}
	var errs []error
	report := func(kind EventKind, ifname, id string, err error, nic *sandbox.NIC) {
		for i := range events {
			if events[i].Kind == kind && events[i].Interface == ifname && ifname != "" {
				events[i].Err, events[i].Hotplugged, events[i].Device = err, err == nil, id
				return
			}
		}
		e := Event{Kind: kind, Interface: ifname, Device: id, Hotplugged: err == nil, Err: err}
		if nic != nil {
			e.Tap, e.GuestMAC, e.NIC = nic.Tap, nic.GuestMAC.String(), *nic
		}
		events = append(events, e)
	}
	want := map[string]bool{}
	for _, nic := range rec.Sandbox.NICs {
		want[hp.DeviceID(nic.Name)] = true
	}
	for _, id := range plugged {
		if want[id] {
			continue
		}
		// A NIC of an interface no longer recorded: its event names the
		// interface when this reconcile removed it.
		name := ""
		for _, e := range events {
			if e.Kind == EventRemoved && hp.DeviceID(e.Interface) == id {
				name = e.Interface
			}
		}
		err := hp.Unplug(ctx, id)
		if err != nil {
			err = fmt.Errorf("unplugging device %s: %w", id, err)
			errs = append(errs, err)
		}
		report(EventRemoved, name, id, err, nil)
	}
	for _, nic := range rec.Sandbox.NICs {
		if slices.Contains(plugged, hp.DeviceID(nic.Name)) {
			continue
		}
		err := s.plug(ctx, hp, nic)
		if err != nil {
			errs = append(errs, err)
		}
		report(EventAdded, nic.Name, hp.DeviceID(nic.Name), err, &nic)
	}
	return events, errors.Join(errs...)
}

// plug opens the queues of nic inside the netns and hands them to hp.
func (s *session) plug(ctx context.Context, hp HotPlugger, nic sandbox.NIC) error {
	h, err := journal.OpenHandle(s.n)
	if err != nil {
		return err
	}
	defer h.Close()
	nics := []sandbox.NIC{nic}
	if err := openAll(s.n, h, nics, nil); err != nil {
		return fmt.Errorf("opening the queues of interface %q to plug it: %w", nic.Name, err)
	}
	defer model.CloseNICs(nics)
	if err := hp.Plug(ctx, nics[0]); err != nil {
		return fmt.Errorf("plugging the NIC of interface %q: %w", nic.Name, err)
	}
	return nil
}
