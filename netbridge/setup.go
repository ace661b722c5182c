package netbridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/netbridge/netbridge/pkg/macaddr"
	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/pkg/probe"
	"github.com/netbridge/netbridge/pkg/state"
	"github.com/netbridge/netbridge/pkg/tap"
)

// Setup wires the sandbox: in its netns it creates one tap per attached
// interface and connects the two with the configured model, recording every
// step in the state directory first. It returns the sandbox's NICs, ordered
// by interface name.
//
// Setup is idempotent: when the id is already wired as asked in the same
// netns, it changes nothing and returns the recorded sandbox. A record left
// by a crash, by a different request or by a netns that was replaced is
// undone first. On failure, everything this call created is removed again.
func Setup(ctx context.Context, cfg Config) (*Sandbox, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	log := loggerFrom(ctx).With("id", cfg.ID)
	m, vhost, err := resolve(&cfg)
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
	defer st.Release(lock, cfg.ID)
	n, err := netns.Open(cfg.Netns)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	defer n.Close()

	req := request{Model: m.name(), Interfaces: slices.Sorted(slices.Values(cfg.Interfaces)), Queues: cfg.queues(), Vhost: vhost, TapOwner: cfg.TapOwner, TapGroup: cfg.TapGroup}
	old, err := readRecord(st, cfg.ID)
	if err != nil {
		return nil, err
	}
	if old != nil {
		if old.Phase == phaseReady && old.NetnsID == n.ID() && old.Request.equal(req) {
			sb, err := reuse(n, old, cfg)
			if err == nil {
				log.Info("already set up; nothing to do", "netns", cfg.Netns, "elapsed", time.Since(start))
				return sb, nil
			}
			if !errors.Is(err, errBroken) {
				return nil, err
			}
		}
		if err := undoRecord(st, cfg.ID, old); err != nil {
			return nil, fmt.Errorf("undoing the earlier setup of sandbox %q before setting it up again: %w", cfg.ID, err)
		}
		log.Info("undid an earlier setup (interrupted, damaged or set up differently)", "phase", old.Phase, "elapsed", time.Since(start))
	}

	rec := &record{
		Version: recordVersion,
		Phase:   phaseSettingUp,
		Created: time.Now().UTC(),
		NetnsID: n.ID(),
		Request: req,
		Sandbox: Sandbox{ID: cfg.ID, Netns: cfg.Netns, Model: m.name(), NICs: []NIC{}},
	}
	var sb *Sandbox
	err = n.Do(func() error {
		h, err := netlink.NewHandle()
		if err != nil {
			return fmt.Errorf("opening netlink: %w", err)
		}
		defer h.Close()
		tx := &txn{h: h, st: st, rec: rec, id: cfg.ID, log: log, start: start}
		sb, err = tx.setup(ctx, cfg, m)
		if err != nil {
			log.Warn("setup failed; rolling back", "error", err, "elapsed", time.Since(start))
			if uerr := rec.undo(h, cfg.ID); uerr != nil {
				// Keep what could not be undone for the next teardown.
				_ = st.Write(cfg.ID, rec)
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

// resolve picks the model and whether to use vhost-net.
func resolve(cfg *Config) (model, bool, error) {
	vhost := false
	switch cfg.Vhost {
	case VhostOn:
		if _, err := os.Stat(probe.VhostNetPath); err != nil {
			return nil, false, fmt.Errorf("vhost on: %s is not available (%w); load vhost_net or use --vhost auto or off", probe.VhostNetPath, err)
		}
		vhost = true
	case VhostAuto:
		_, err := os.Stat(probe.VhostNetPath)
		vhost = err == nil
	}
	if cfg.Model != ModelAuto {
		m, err := modelByName(cfg.Model)
		return m, vhost, err
	}
	f, err := probe.Run()
	if err != nil {
		return nil, false, fmt.Errorf("probing the kernel for model auto: %w", err)
	}
	if missing := f.Missing(probe.Tun); len(missing) > 0 {
		return nil, false, fmt.Errorf("no model can work: the kernel lacks %s", strings.Join(missing, ", "))
	}
	if !f.Has(probe.Ingress) || !f.Has(probe.Mirred) || !(f.Has(probe.U32) || f.Has(probe.Matchall)) {
		return nil, false, fmt.Errorf("model auto: tcfilter needs ingress, mirred and u32 or matchall; missing %s", strings.Join(f.Missing(probe.Ingress, probe.Mirred, probe.U32), ", "))
	}
	return tcfilter{}, vhost, nil
}

// txn creates objects in a sandbox netns, journaling each before it exists.
type txn struct {
	h     *netlink.Handle
	st    *state.Store
	rec   *record
	id    string
	ctx   context.Context
	log   *slog.Logger
	start time.Time
}

func (tx *txn) save() error { return tx.st.Write(tx.id, tx.rec) }

// create records s in the state, runs fn, then marks s done in memory; the
// next write of the record carries the mark. fn must either create its
// object completely or leave nothing; on its failure the entry is dropped.
// An entry left not done by a crash may or may not have its object, and
// undo handles both.
func (tx *txn) create(s step, fn func() error) error {
	if tx.ctx != nil {
		if err := tx.ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	tx.rec.Journal = append(tx.rec.Journal, s)
	last := len(tx.rec.Journal) - 1
	if err := tx.save(); err != nil {
		tx.rec.Journal = tx.rec.Journal[:last]
		return err
	}
	if err := fn(); err != nil {
		tx.rec.Journal = tx.rec.Journal[:last]
		return fmt.Errorf("%s: %w", s, err)
	}
	tx.rec.Journal[last].Done = true
	tx.log.Debug("done", "step", s.String(), "elapsed", time.Since(tx.start))
	return nil
}

// setup runs on a thread inside the sandbox netns.
func (tx *txn) setup(ctx context.Context, cfg Config, m model) (*Sandbox, error) {
	tx.ctx = ctx
	ifs, err := discover(tx.h)
	if err != nil {
		return nil, err
	}
	if err := selectInterfaces(ifs, cfg.Interfaces, m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	attach := slices.DeleteFunc(slices.Clone(ifs), func(i Interface) bool { return !i.Attach })
	if len(attach) == 0 {
		var why []string
		for _, i := range ifs {
			why = append(why, fmt.Sprintf("%s: %s", i.Name, i.Reason))
		}
		return nil, fmt.Errorf("%w: no interface to attach (%s); name one with --interfaces", ErrInvalidConfig, strings.Join(why, "; "))
	}
	taken := map[string]bool{}
	for _, i := range ifs {
		taken[i.MAC.String()] = true
	}
	sb := &tx.rec.Sandbox
	for _, ifc := range attach {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		nic := NIC{
			Name: ifc.Name, Kind: ifc.Kind, Index: ifc.Index,
			GuestMAC: ifc.MAC, MTU: ifc.MTU, Queues: cfg.queues(), Vhost: tx.rec.Request.Vhost,
			Addresses: ifc.Addresses, Routes: ifc.Routes, Neighbors: ifc.Neighbors,
		}
		if nic.Tap, err = tapName(ifs, ifc.Name); err != nil {
			return nil, err
		}
		nic.TapMAC = MAC(macaddr.DeriveFree(tx.id+"/"+ifc.Name+"/tap", func(m net.HardwareAddr) bool { return taken[m.String()] }))
		taken[nic.TapMAC.String()] = true
		if err := tx.createTap(&nic, cfg); err != nil {
			closeNICs(sb.NICs)
			return nil, fmt.Errorf("interface %q: %w", ifc.Name, err)
		}
		sb.NICs = append(sb.NICs, nic)
		if err := m.wire(tx, &sb.NICs[len(sb.NICs)-1]); err != nil {
			closeNICs(sb.NICs)
			return nil, fmt.Errorf("interface %q: %w", ifc.Name, err)
		}
		tx.log.Info("wired", "interface", ifc.Name, "kind", ifc.Kind, "tap", nic.Tap, "model", m.name(), "mtu", nic.MTU, "queues", nic.Queues, "elapsed", time.Since(tx.start))
	}
	tx.rec.Phase = phaseReady
	if err := tx.save(); err != nil {
		closeNICs(sb.NICs)
		return nil, err
	}
	out := *sb
	out.NICs = slices.Clone(sb.NICs)
	return &out, nil
}

// createTap creates nic's tap, tags it as ours and gives it its MAC and
// MTU, then brings it up.
func (tx *txn) createTap(nic *NIC, cfg Config) error {
	var files []*os.File
	err := tx.create(step{Op: opTap, Link: nic.Tap}, func() error {
		fs, err := tap.Create(tap.Config{Name: nic.Tap, Queues: nic.Queues, VnetHdr: true, Owner: cfg.TapOwner, Group: cfg.TapGroup, Persist: true})
		if err != nil {
			return err
		}
		link, err := tx.h.LinkByName(nic.Tap)
		if err == nil {
			err = tx.h.LinkSetAlias(link, ownerTag(tx.id))
		}
		if err != nil {
			if link != nil {
				_ = tx.h.LinkDel(link)
			}
			closeFiles(fs)
			return fmt.Errorf("tagging the new tap: %w", err)
		}
		files = fs
		return nil
	})
	if err != nil {
		return err
	}
	if !cfg.HoldFDs {
		closeFiles(files)
		files = nil
	}
	nic.Files = files
	link, err := tx.h.LinkByName(nic.Tap)
	if err != nil {
		return fmt.Errorf("looking up tap %q: %w", nic.Tap, err)
	}
	nic.TapIndex = link.Attrs().Index
	if err := tx.h.LinkSetHardwareAddr(link, net.HardwareAddr(nic.TapMAC)); err != nil {
		return fmt.Errorf("setting MAC %s on tap %q: %w", nic.TapMAC, nic.Tap, err)
	}
	if err := tx.h.LinkSetMTU(link, nic.MTU); err != nil {
		return fmt.Errorf("setting MTU %d on tap %q: %w", nic.MTU, nic.Tap, err)
	}
	if err := tx.h.LinkSetUp(link); err != nil {
		return fmt.Errorf("bringing tap %q up: %w", nic.Tap, err)
	}
	if cfg.HoldFDs && nic.Vhost {
		vf, err := openVhost(nic.Queues)
		if err != nil {
			return fmt.Errorf("tap %q: %w", nic.Tap, err)
		}
		nic.VhostFiles = vf
	}
	return nil
}

func openVhost(n int) ([]*os.File, error) {
	var files []*os.File
	for range n {
		f, err := os.OpenFile(probe.VhostNetPath, os.O_RDWR, 0)
		if err != nil {
			closeFiles(files)
			return nil, fmt.Errorf("opening %s: %w", probe.VhostNetPath, err)
		}
		files = append(files, f)
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
// reopening the tap queues when the caller holds fds. It returns errBroken
// when the wiring must be redone.
func reuse(n *netns.NS, rec *record, cfg Config) (*Sandbox, error) {
	h, err := openHandle(n)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	if problems := checkWiring(h, rec); len(problems) > 0 {
		return nil, errBroken
	}
	sb := rec.Sandbox
	sb.NICs = slices.Clone(sb.NICs)
	if !cfg.HoldFDs {
		return &sb, nil
	}
	err = n.Do(func() error {
		for i := range sb.NICs {
			nic := &sb.NICs[i]
			fs, err := tap.Open(nic.Tap, nic.Queues, true)
			if err != nil {
				return fmt.Errorf("reopening the queues of tap %q (is a hypervisor still holding them?): %w", nic.Tap, err)
			}
			nic.Files = fs
			if nic.Vhost {
				if nic.VhostFiles, err = openVhost(nic.Queues); err != nil {
					return err
				}
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
