package netbridge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/netbridge/internal/netview"
	"github.com/netbridge/netbridge/pkg/linkname"
	"github.com/netbridge/netbridge/pkg/macaddr"
	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/pkg/probe"
	"github.com/netbridge/netbridge/pkg/state"
	"github.com/netbridge/netbridge/pkg/tap"
	"github.com/netbridge/netbridge/pkg/tcredirect"
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
// with ErrInvalidConfig (or the error that shows it cannot) and leaves the
// earlier wiring as it was. On failure, everything this call did is undone
// again.
//
// An interface that netbridge wired for another sandbox is refused with a
// *TakenError (ErrInvalidConfig), named explicitly or under Strict, and
// skipped with a warning otherwise. A sandbox whose interfaces were
// attached one by one (Attach, the CNI plugin) is refused with
// ErrModeConflict: Setup does not take it over.
func Setup(ctx context.Context, cfg Config) (*Sandbox, error) {
	start := time.Now()
	log := loggerFrom(ctx).With("id", cfg.ID)
	c, err := begin(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer c.end()
	st, n, req := c.st, c.n, c.req
	old, err := journal.Read(st, cfg.ID)
	if err != nil {
		return nil, err
	}
	if old != nil && old.Mode == journal.ModeAttach {
		return nil, fmt.Errorf("setting up sandbox %q: %w: its interfaces (%s) were attached one by one (by the CNI plugin), as recorded in %s; setup does not take them over: detach them (CNI DEL) or tear the sandbox down first",
			cfg.ID, ErrModeConflict, strings.Join(slices.Sorted(mapKeys(old.Requests)), ", "), st.Dir())
	}
	if old != nil {
		old.SetLog(log)
		if old.Phase == sandbox.PhaseReady && old.NetnsID == n.ID() && old.Request.Equal(req) {
			sb, err := reuse(n, old, cfg)
			if err == nil {
				log.Info("already set up; nothing to do", "netns", cfg.Netns, "elapsed", time.Since(start))
				return sb, nil
			}
			if !errors.Is(err, errBroken) {
				return nil, err
			}
		}
		h, err := journal.OpenHandle(n)
		if err != nil {
			return nil, err
		}
		err = precheck(h, cfg, req, cfg.Interfaces, st, old, old.NetnsID == n.ID(), func(journal.Step) bool { return true })
		h.Close()
		if err != nil {
			return nil, fmt.Errorf("setting up sandbox %q in netns %q (its earlier setup is left as it was): %w", cfg.ID, cfg.Netns, err)
		}
		if err := old.UndoAll(ctx, st); err != nil {
			return nil, fmt.Errorf("undoing the earlier setup of sandbox %q before setting it up again: %w", cfg.ID, err)
		}
		log.Info("undid an earlier setup (interrupted, damaged or set up differently)", "phase", old.Phase, "elapsed", time.Since(start))
	}

	dns := cfg.DNS
	if dns.IsZero() && cfg.CNICacheDir != "" {
		if dns, err = DNSFromCNICache(cfg.CNICacheDir, cfg.ID); err != nil {
			log.Warn("no DNS for the guest", "error", err)
		}
	}
	rec := &journal.Record{
		Version: journal.Version,
		Phase:   sandbox.PhaseSettingUp,
		Created: time.Now().UTC(),
		NetnsID: n.ID(),
		Request: req,
		Sandbox: Sandbox{ID: cfg.ID, Netns: cfg.Netns, Model: req.Model, NICs: []NIC{}, DNS: dns},
	}
	rec.SetLog(log)
	rec.NetnsCookie = netnsCookie(n)
	var sb *Sandbox
	err = c.run(ctx, cfg, rec, log, start, func(tx *txn) error {
		sb, err = tx.setup()
		if err != nil {
			log.Warn("setup failed; rolling back", "error", err, "elapsed", time.Since(start))
			// The rollback runs to its end even when ctx ended the setup.
			if uerr := rec.Undo(context.WithoutCancel(ctx), tx.h, c.n, journal.All); uerr != nil {
				// Keep what could not be undone for the next teardown.
				_ = rec.Save(st)
				return errors.Join(err, fmt.Errorf("rolling back: %w (run teardown to retry)", uerr))
			}
			if rerr := st.Remove(cfg.ID); rerr != nil {
				return errors.Join(err, rerr)
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("setting up sandbox %q in netns %q: %w", cfg.ID, cfg.Netns, err)
	}
	log.Info("set up", "netns", cfg.Netns, "model", sb.Model, "nics", len(sb.NICs), "elapsed", time.Since(start))
	return sb, nil
}

// call is what Setup and Attach hold while they work: the state store,
// the lock of the sandbox id and its open netns.
type call struct {
	st   *state.Store
	lock *state.Lock
	id   string
	n    *netns.NS
	req  journal.Request
}

// begin validates cfg, takes the lock of its id and opens its netns.
func begin(ctx context.Context, cfg Config) (*call, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	vhost, err := resolveVhost(cfg.Vhost)
	if err != nil {
		return nil, err
	}
	st, err := state.Open(state.Dir(cfg.StateDir))
	if err != nil {
		return nil, err
	}
	lock, err := st.Lock(ctx, cfg.ID)
	if err != nil {
		return nil, err
	}
	n, err := netns.Open(cfg.Netns)
	if err != nil {
		st.Release(lock, cfg.ID)
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if err := lockNetns(ctx, n); err != nil {
		n.Close()
		st.Release(lock, cfg.ID)
		return nil, err
	}
	return &call{st: st, lock: lock, id: cfg.ID, n: n, req: cfg.request(vhost)}, nil
}

// netnsLockPoll bounds the wait between two tries of lockNetns.
const netnsLockPoll = 20 * time.Millisecond

// lockNetns takes an exclusive flock on the open netns n (the namespace's
// own inode, whichever path named it), which every Setup and Attach in
// that netns takes, whatever its sandbox and state directory: deciding
// that an interface is free and wiring it are then one step, and two
// sandboxes cannot both take one interface. Closing n releases it. It
// waits until ctx is done. A kernel that cannot lock the namespace file
// leaves it unlocked, as before.
func lockNetns(ctx context.Context, n *netns.NS) error {
	delay := time.Millisecond
	for {
		err := unix.Flock(n.Fd(), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil || !errors.Is(err, unix.EWOULDBLOCK) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for another netbridge setting up in netns %q: %w", n.Path(), ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, netnsLockPoll)
	}
}

// run runs fn on a thread inside the netns, with a transaction on rec.
func (c *call) run(ctx context.Context, cfg Config, rec *journal.Record, log *slog.Logger, start time.Time, fn func(*txn) error) error {
	return journal.In(c.n, func(k *journal.Netns) error {
		jt := journal.NewTx(k, c.st, rec, log, start)
		return fn(&txn{jt: jt, h: k.H, n: c.n, st: c.st, rec: rec, req: c.req, id: cfg.ID, cfg: cfg, netnsFd: c.n.Fd(), ctx: ctx, log: log, start: start})
	})
}

// end closes the netns and releases the lock.
func (c *call) end() {
	c.n.Close()
	c.st.Release(c.lock, c.id)
}

// resolveVhost says whether to use vhost-net.
func resolveVhost(v Vhost) (bool, error) {
	_, err := os.Stat(probe.VhostNetPath)
	switch v {
	case VhostOn:
		if err != nil {
			return false, fmt.Errorf("vhost on: %s is not available (%w); load vhost_net or use --vhost auto or off", probe.VhostNetPath, err)
		}
		return true, nil
	case VhostAuto:
		return err == nil, nil
	}
	return false, nil
}

// txn creates objects in a sandbox netns, journaling each before it exists.
// Its methods run on a thread inside that netns.
type txn struct {
	jt      *journal.Tx
	h       *netlink.Handle
	n       *netns.NS
	st      *state.Store
	rec     *journal.Record
	id      string
	cfg     Config
	netnsFd int
	ctx     context.Context
	log     *slog.Logger
	start   time.Time
	req     journal.Request // what this call wires
	iface   string          // the interface being wired, which owns the steps
	view    *netview.View   // the netns as found at the start
	macs    map[string]bool // every MAC in the netns, and those derived so far
}

// setup discovers the interfaces and wires the attached ones.
func (tx *txn) setup() (*Sandbox, error) {
	v, err := netview.Read(tx.h)
	if err != nil {
		return nil, err
	}
	tx.view = v
	d, err := decide(v, tx.cfg, tx.req, tx.cfg.Interfaces, tx.st, nil)
	if err != nil {
		return nil, err
	}
	sb := &tx.rec.Sandbox
	for _, i := range d.skipped {
		sb.Warnings = append(sb.Warnings, fmt.Sprintf("skipped %s: %s", linkname.Show(i.Name), i.Reason))
		tx.log.Warn("interface skipped", "interface", linkname.Show(i.Name), "reason", i.Reason)
	}
	tx.macs = map[string]bool{}
	for _, i := range v.Links {
		tx.macs[i.MAC.String()] = true
	}
	nics, err := tx.wireAll(d.ch, d.attach, nil)
	if err != nil {
		return nil, err
	}
	sb.NICs = nics
	tx.rec.Phase = sandbox.PhaseReady
	if err := tx.jt.Save(); err != nil {
		closeNICs(sb.NICs)
		return nil, err
	}
	out := *sb
	out.NICs = slices.Clone(sb.NICs)
	return &out, nil
}

// wireAll connects the interfaces ifcs to the guest, each with the model
// ch chooses for it, and returns their NICs in the same order; before
// each, when set, is called with the interface. The objects of every
// interface whose model can plan them (tcfilter, none) are journaled in one
// write and then made; the other interfaces are wired one by one after
// them. Every object is journaled under its interface's name. On failure
// the NICs' files are closed and what was made stays journaled for the
// caller's rollback.
func (tx *txn) wireAll(ch *chooser, ifcs []netview.Link, before func(netview.Link)) ([]NIC, error) {
	nics := make([]*NIC, len(ifcs))
	models := make([]model, len(ifcs))
	fail := func(err error) ([]NIC, error) {
		for _, n := range nics {
			if n != nil {
				closeNICs([]NIC{*n})
			}
		}
		return nil, err
	}
	var batch []journal.Planned
	for i, ifc := range ifcs {
		if before != nil {
			before(ifc)
		}
		m, why, err := ch.choose(&ifcs[i].Interface)
		if err != nil {
			return fail(fmt.Errorf("interface %q: %w", ifc.Name, err))
		}
		nic := &NIC{
			Name: ifc.Name, Network: tx.req.Network, Kind: ifc.Kind, Index: ifc.Index, Model: m.name(), Why: why,
			GuestMAC: ifc.MAC, MTU: ifc.MTU, Queues: tx.req.Queues, Vhost: tx.req.Vhost,
			Addresses: ifc.Addresses, Routes: ifc.Routes, Neighbors: ifc.Neighbors,
		}
		if m.name() == ModelBridge || m.name() == ModelMacvtap {
			nic.HostMAC = tx.deriveMAC(ifc.Name, "host")
		}
		nics[i], models[i] = nic, m
		if p, ok := m.(planner); ok {
			tx.iface = ifc.Name
			steps, err := p.plan(tx, nic)
			tx.iface = ""
			if err != nil {
				return fail(fmt.Errorf("interface %q: %w", ifc.Name, err))
			}
			batch = append(batch, steps...)
		}
	}
	if len(batch) > 0 {
		if k, err := tx.jt.Do(tx.ctx, batch...); err != nil {
			iface := batch[k].Step.Iface
			i := slices.IndexFunc(ifcs, func(ifc netview.Link) bool { return ifc.Name == iface })
			return fail(fmt.Errorf("interface %q: %w", iface, explainMissing(err, models[i].name())))
		}
	}
	for i, m := range models {
		nic := nics[i]
		var err error
		if _, ok := m.(planner); ok {
			err = tx.tapCreated(nic)
		} else {
			tx.iface = nic.Name
			err = m.wire(tx, nic)
			tx.iface = ""
		}
		if err != nil {
			return fail(fmt.Errorf("interface %q: %w", nic.Name, explainMissing(err, m.name())))
		}
		tx.log.Info("wired", "interface", nic.Name, "kind", nic.Kind, "tap", nic.Tap, "model", nic.Model, "mtu", nic.MTU, "queues", nic.Queues, "elapsed", time.Since(tx.start))
	}
	out := make([]NIC, len(nics))
	for i, n := range nics {
		out[i] = *n
	}
	return out, nil
}

// scope returns the steps of the interface being wired.
func (tx *txn) scope() journal.Scope { return tx.jt.For(tx.iface) }

func (tx *txn) create(s journal.Step, fn func() error) error {
	return tx.scope().Do(tx.ctx, journal.Planned{Step: s, Make: fn})
}

func (tx *txn) createAll(steps ...journal.Planned) error { return tx.scope().Do(tx.ctx, steps...) }

func (tx *txn) createLink(op journal.Op, link netlink.Link) error {
	return tx.scope().CreateLink(tx.ctx, op, link)
}

func (tx *txn) keepNeighbors(link netlink.Link) error { return tx.scope().KeepNeighbors(tx.ctx, link) }

func (tx *txn) removeAddresses(link netlink.Link) error {
	return tx.scope().RemoveAddresses(tx.ctx, link)
}

func (tx *txn) setMAC(link netlink.Link, mac net.HardwareAddr) error {
	return tx.scope().SetMAC(tx.ctx, link, mac)
}

func (tx *txn) setMaster(link, master netlink.Link) error {
	return tx.scope().SetMaster(tx.ctx, link, master)
}

// deriveMAC derives the MAC of interface ifname's object named purpose,
// free in the netns.
func (tx *txn) deriveMAC(ifname, purpose string) MAC {
	mac := macaddr.DeriveFree(tx.id+"/"+ifname+"/"+purpose, func(m net.HardwareAddr) bool { return tx.macs[m.String()] })
	tx.macs[mac.String()] = true
	return MAC(mac)
}

// nameFree checks that no link of the netns is called name, which netbridge
// would create for interface ifname.
func (tx *txn) nameFree(name, ifname string) error {
	return tx.view.NameFree(name, ifname, tx.id, tx.st, nil)
}

// decision is what a request wires in a netns: the interfaces to attach,
// the chooser of their models, and the interfaces skipped with a warning.
type decision struct {
	attach  []netview.Link
	ch      *chooser
	skipped []netview.Link
}

// decide checks a request against the netns as v shows it, with every
// check that needs no change to the netns: the interfaces named (names;
// when empty, those selected) exist, can be carried and are not wired for
// another sandbox; under Strict no interface with an address is skipped;
// something is left to attach; the names of the links to create are free
// (but for links of cfg.ID that an undo about to run deletes: gone). It
// changes nothing.
func decide(v *netview.View, cfg Config, req journal.Request, names []string, st *state.Store, gone map[string]bool) (*decision, error) {
	d := &decision{ch: &chooser{requested: req.Model}}
	if err := v.Select(names, d.ch.supports, st, cfg.ID); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	for _, i := range v.Links {
		if i.Unsupported && len(i.Addresses) > 0 {
			if cfg.Strict {
				return nil, fmt.Errorf("%w: interface %q: %s (without --strict it would be skipped)", ErrInvalidConfig, i.Name, i.Reason)
			}
			d.skipped = append(d.skipped, i)
		}
	}
	d.attach = slices.DeleteFunc(slices.Clone(v.Links), func(i netview.Link) bool { return !i.Attach })
	if len(d.attach) == 0 {
		if len(v.Links) == 0 {
			return nil, fmt.Errorf("%w: the netns has no interface but the loopback (a sandbox without a network)", ErrNoInterface)
		}
		var why []string
		for _, i := range v.Links {
			why = append(why, fmt.Sprintf("%s: %s", linkname.Show(i.Name), i.Reason))
		}
		return nil, fmt.Errorf("%w (%s); name one with --interfaces", ErrNoInterface, strings.Join(why, "; "))
	}
	for i := range d.attach {
		ifc := &d.attach[i]
		m, _, err := d.ch.choose(&ifc.Interface)
		if err != nil {
			return nil, fmt.Errorf("interface %q: %w", ifc.Name, err)
		}
		var made []string
		switch m.name() {
		case ModelTCFilter, ModelNone:
			made = []string{deviceName(req, tapPrefix, ifc.Name)}
		case ModelBridge:
			made = []string{deviceName(req, tapPrefix, ifc.Name), nameFor(bridgePrefix, ifc.Name)}
		case ModelMacvtap:
			made = []string{deviceName(req, macvtapPrefix, ifc.Name)}
		}
		for _, name := range made {
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
func precheck(h *netlink.Handle, cfg Config, req journal.Request, names []string, st *state.Store, rec *journal.Record, sameNetns bool, undo func(journal.Step) bool) error {
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

// createTap creates nic's tap, tags it as ours and gives it its MAC and
// MTU, then brings it up.
func (tx *txn) createTap(nic *NIC) error {
	s, err := tx.tapStep(nic)
	if err != nil {
		return err
	}
	if err := tx.scope().Do(tx.ctx, s); err != nil {
		return err
	}
	return tx.tapCreated(nic)
}

// tapStep names nic's tap, derives its MAC and returns the step that
// creates it, tags it as ours, gives it its MAC and MTU and brings it up.
// Once the step is done, tapCreated finishes the NIC.
func (tx *txn) tapStep(nic *NIC) (journal.Planned, error) {
	nic.Tap = tx.deviceName(tapPrefix, nic.Name)
	if err := tx.nameFree(nic.Tap, nic.Name); err != nil {
		return journal.Planned{}, err
	}
	nic.TapMAC = tx.deriveMAC(nic.Name, "tap")
	tmp := tmpTapName(tx.id, nic.Tap)
	s := journal.Step{Op: journal.OpTap, Link: nic.Tap, Iface: tx.iface, Tmp: tmp}
	return journal.Planned{Step: s, Make: func() error {
		// A tap cannot be tagged when it is created: it is made under a
		// name of ours, then tagged and named in one request, so that a
		// link of its name is never ours untagged.
		fs, err := tap.Create(tap.Config{Name: tmp, Queues: nic.Queues, VnetHdr: true, Owner: tx.cfg.TapOwner, Group: tx.cfg.TapGroup, Persist: true})
		if err != nil {
			return err
		}
		link, err := tx.h.LinkByName(tmp)
		if err != nil {
			closeFiles(fs)
			_ = tx.h.LinkDel(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: tmp}})
			return fmt.Errorf("looking up the new tap: %w", err)
		}
		nic.TapIndex = link.Attrs().Index
		settings := journal.LinkSettings{Alias: journal.OwnerTag(tx.id), Group: journal.OwnerGroup(tx.id), MAC: net.HardwareAddr(nic.TapMAC), MTU: nic.MTU, Up: true, Index: nic.TapIndex}
		if err := tx.jt.Netns().SetLink(nic.Tap, settings); err != nil {
			closeFiles(fs)
			_ = tx.h.LinkDel(link)
			return fmt.Errorf("configuring the new tap as %q: %w", nic.Tap, err)
		}
		nic.Files = fs // kept by tapCreated only with HoldFDs
		return nil
	}, Made: func(s *journal.Step) { s.Ref = &journal.LinkRef{Index: nic.TapIndex, Kind: journal.KindTuntap} }}, nil
}

// tmpTapName is the name the tap called name of sandbox id is created
// under, before it is tagged: "nbt" and 12 hex digits of a hash of both,
// a name nobody else gives a link.
func tmpTapName(id, name string) string {
	sum := sha256.Sum256([]byte(id + "\x00" + name))
	return "nbt" + hex.EncodeToString(sum[:6])
}

// tapCreated finishes nic once its tap exists: it keeps the queues open
// (and opens vhost-net) when the caller holds fds, else closes them.
func (tx *txn) tapCreated(nic *NIC) error {
	if !tx.cfg.HoldFDs {
		closeFiles(nic.Files)
		nic.Files = nil
		return nil
	}
	if nic.Vhost {
		vf, err := openVhost(nic.Queues)
		if err != nil {
			return fmt.Errorf("tap %q: %w", nic.Tap, err)
		}
		nic.VhostFiles = vf
	}
	return nil
}

// openQueues opens nic's queues (and vhost-net files) on a device that
// exists already: an existing tap, or a macvtap's private device node. It
// runs on a thread inside the sandbox netns.
func (tx *txn) openQueues(nic *NIC) error { return openQueues(tx.h, nic) }

func openQueues(h *netlink.Handle, nic *NIC) error {
	var err error
	switch {
	case nic.Device != "":
		nic.Files, err = openDevice(nic.Device, nic.Queues)
	default:
		link, lerr := h.LinkByName(nic.Tap)
		if lerr != nil {
			return fmt.Errorf("looking up tap %q: %w", nic.Tap, lerr)
		}
		vnetHdr := true
		if t, ok := link.(*netlink.Tuntap); ok {
			vnetHdr = t.Flags&netlink.TUNTAP_VNET_HDR != 0
			if t.Flags&netlink.TUNTAP_MULTI_QUEUE == 0 {
				nic.Queues = 1
			}
		}
		nic.Files, err = tap.Open(nic.Tap, nic.Queues, vnetHdr)
	}
	if err != nil {
		return fmt.Errorf("opening the queues of %q (is a hypervisor still holding them?): %w", nic.Tap, err)
	}
	if nic.Vhost {
		if nic.VhostFiles, err = openVhost(nic.Queues); err != nil {
			closeNICs([]NIC{*nic})
			nic.Files = nil
			return err
		}
	}
	return nil
}

func openDevice(path string, n int) ([]*os.File, error) {
	var files []*os.File
	for range n {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			closeFiles(files)
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

func openVhost(n int) ([]*os.File, error) {
	files, err := openDevice(probe.VhostNetPath, n)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", probe.VhostNetPath, err)
	}
	return files, nil
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

func closeNICs(nics []NIC) {
	for i := range nics {
		closeFiles(nics[i].Files)
		closeFiles(nics[i].VhostFiles)
		nics[i].Files, nics[i].VhostFiles = nil, nil
	}
}

// reuse returns the sandbox of a ready record whose wiring is intact,
// reopening the queues when the caller holds fds. It returns errBroken
// when the wiring must be redone.
func reuse(n *netns.NS, rec *journal.Record, cfg Config) (*Sandbox, error) {
	h, err := journal.OpenHandle(n)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	if problems := checkWiring(h, n.Fd(), rec); len(problems) > 0 {
		return nil, errBroken
	}
	sb := rec.Sandbox
	sb.NICs = slices.Clone(sb.NICs)
	if !cfg.HoldFDs {
		return &sb, nil
	}
	err = n.Do(func() error {
		for i := range sb.NICs {
			if err := openQueues(h, &sb.NICs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		closeNICs(sb.NICs)
		return nil, fmt.Errorf("sandbox %q is set up already: %w", rec.Sandbox.ID, err)
	}
	return &sb, nil
}

var errBroken = errors.New("wiring is broken")
