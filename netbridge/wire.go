package netbridge

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/netbridge/internal/model"
	"github.com/netbridge/netbridge/netbridge/internal/netview"
	"github.com/netbridge/netbridge/sandbox"
)

// wireAll connects the interfaces d attaches to the guest, each with the
// model d chooses for it, in the record of tx, and returns their NICs in
// the same order; before each, when set, is called with the interface. The
// objects of every interface whose model can plan them (tcfilter, none)
// are journaled in one write and then made; the other interfaces are wired
// one by one after them. Every object is journaled under its interface's
// name. On failure the NICs' files are closed and what was made stays
// journaled for the caller's rollback.
func (s *session) wireAll(ctx context.Context, tx *journal.Tx, d *decision, before func(netview.Link)) ([]sandbox.NIC, error) {
	names, opts := d.names, s.options()
	jobs := make([]*model.Job, len(d.attach))
	ms := make([]model.Model, len(d.attach))
	fail := func(err error) ([]sandbox.NIC, error) {
		for _, j := range jobs {
			if j != nil {
				model.CloseNICs([]sandbox.NIC{*j.NIC})
			}
		}
		return nil, err
	}
	var batch []journal.Planned
	for i := range d.attach {
		link := &d.attach[i]
		if before != nil {
			before(*link)
		}
		m, why, err := d.ch.Choose(&link.Interface)
		if err != nil {
			return fail(fmt.Errorf("interface %q: %w", link.Name, err))
		}
		nic := &sandbox.NIC{
			Name: link.Name, Network: s.req.Network, Kind: link.Kind, Index: link.Index, Model: m.Name(), Why: why,
			GuestMAC: link.MAC, MTU: link.MTU, Queues: s.req.Queues, Vhost: s.req.Vhost,
			Addresses: link.Addresses, Routes: link.Routes, Neighbors: link.Neighbors,
		}
		jobs[i], ms[i] = &model.Job{NIC: nic, Link: link, Steps: tx.For(link.Name), Names: names, Opts: opts}, m
		if p, ok := m.(model.Planner); ok {
			steps, err := p.Plan(jobs[i])
			if err != nil {
				return fail(fmt.Errorf("interface %q: %w", link.Name, err))
			}
			batch = append(batch, steps...)
		}
	}
	if len(batch) > 0 {
		if k, err := tx.Do(ctx, batch...); err != nil {
			iface := batch[k].Step.Iface
			i := slices.IndexFunc(d.attach, func(l netview.Link) bool { return l.Name == iface })
			return fail(fmt.Errorf("interface %q: %w", iface, models.Explain(err, ms[i])))
		}
	}
	out := make([]sandbox.NIC, len(jobs))
	for i, j := range jobs {
		var err error
		if _, ok := ms[i].(model.Planner); ok {
			err = model.TapMade(j)
		} else {
			err = ms[i].Wire(ctx, j)
		}
		if err != nil {
			return fail(fmt.Errorf("interface %q: %w", j.NIC.Name, models.Explain(err, ms[i])))
		}
		nic := j.NIC
		s.log.Info("wired", "interface", nic.Name, "kind", nic.Kind, "tap", nic.Tap, "model", nic.Model, "mtu", nic.MTU, "queues", nic.Queues, "elapsed", time.Since(s.start))
		out[i] = *nic
	}
	return out, nil
}
