// Package tcfilter is the tcfilter model: it connects interface and tap
// with an ingress qdisc on each and a match-all filter whose mirred action
// redirects every frame to the other's egress. The interface keeps its MAC
// and addresses. Equivalent to, for each direction:
//
//	tc qdisc add dev SRC ingress
//	tc filter add dev SRC parent ffff: prio 20034 protocol all \
//	    u32 match u8 0 0 action mirred egress redirect dev DST
package tcfilter

import (
	"context"
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/netbridge/internal/model"
	"github.com/netbridge/netbridge/pkg/nlretry"
	"github.com/netbridge/netbridge/pkg/probe"
	"github.com/netbridge/netbridge/pkg/tcredirect"
	"github.com/netbridge/netbridge/sandbox"
)

// Model is the tcfilter model.
type Model struct{}

// Name returns sandbox.ModelTCFilter.
func (Model) Name() sandbox.Model { return sandbox.ModelTCFilter }

// Carries says that the model carries every kind of CNI interface
// netbridge knows, through a tap.
func (Model) Carries() model.Carriage {
	return model.Carriage{Kinds: model.CNIKinds, OnTap: true}
}

// Missing returns what of tun, ingress, mirred and a classifier f lacks.
func (Model) Missing(f probe.Features) []string {
	m := f.Missing(probe.Tun, probe.Ingress, probe.Mirred)
	if _, ok := tcredirect.Preferred(func(c tcredirect.Classifier) bool { return f.Has(string(c)) }); !ok {
		m = append(m, model.NoClassifier)
	}
	return m
}

// Makes returns the name of the tap.
func (Model) Makes(n *model.Naming, ifname string) []string {
	return []string{n.Device(model.TapPrefix, ifname)}
}

// Wire makes the tap, the qdiscs and the filters.
func (m Model) Wire(ctx context.Context, j *model.Job) error {
	steps, err := m.Plan(j)
	if err == nil {
		err = j.Steps.Do(ctx, steps...)
	}
	if err != nil {
		return err
	}
	return model.TapMade(j)
}

// Plan returns the steps making the tap, the qdiscs and the filters.
func (Model) Plan(j *model.Job) ([]journal.Planned, error) {
	nic := j.NIC
	tapStep, err := model.TapStep(j)
	if err != nil {
		return nil, err
	}
	steps := []journal.Planned{tapStep}
	ref, txqlen := j.Link.Ref, j.Link.TxQLen
	switch q, err := j.Link.Ingress(); {
	case err != nil:
		return nil, err
	case q == nil:
		s := ingressStep(j, nic.Name, &nic.Index)
		s.Step.Ref, s.Step.TxQLen = ref, &txqlen
		steps = append(steps, s)
	default: // reused, and left in place at teardown
		if err := priorityFree(j.Steps.Netns().H, nic.Name, nic.Index); err != nil {
			return nil, err
		}
	}
	redirect := redirectStep(j, nic.Name, &nic.Index, &nic.TapIndex)
	redirect.Step.Ref = ref
	return append(steps,
		redirect,
		ingressStep(j, nic.Tap, &nic.TapIndex), // a new tap has none
		redirectStep(j, nic.Tap, &nic.TapIndex, &nic.Index)), nil
}

// priorityFree checks that the ingress qdisc of interface name (of index
// index) holds no filter at tcredirect.Priority: netbridge's filter would
// join one of protocol all and be torn down with it, and the kernel
// refuses it next to one of another protocol.
func priorityFree(h *netlink.Handle, name string, index int) error {
	fs, err := nlretry.Dump(func() ([]netlink.Filter, error) {
		return h.FilterList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: index}}, tcredirect.IngressParent)
	})
	if err != nil {
		return fmt.Errorf("listing the filters of %q: %w", name, err)
	}
	for _, f := range fs {
		if f.Attrs().Priority == tcredirect.Priority {
			return fmt.Errorf("%w: the ingress qdisc of %q holds a %s filter at priority %d, which netbridge keeps for its redirect; delete it (tc filter del dev %s ingress prio %d) or move it to another priority",
				tcredirect.ErrPriorityTaken, name, f.Type(), tcredirect.Priority, name, tcredirect.Priority)
		}
	}
	return nil
}

// Check checks the tap and both redirects.
func (Model) Check(c *model.Checker, nic *sandbox.NIC) {
	c.Tap(nic)
	c.Redirect(nic.Name, nic.Tap)
	c.Redirect(nic.Tap, nic.Name)
}

// ingressStep is the step adding an ingress qdisc to link name, whose
// index *index holds by the time the step runs.
func ingressStep(j *model.Job, name string, index *int) journal.Planned {
	h := j.Steps.Netns().H
	return j.Steps.Plan(journal.Planned{Step: journal.Step{Op: journal.OpQdisc, Link: name}, Make: func() error {
		return h.QdiscAdd(tcredirect.Ingress(*index))
	}})
}

// redirectStep is the step adding our filter on link src (index *src by
// the time it runs) that redirects every frame to the egress of the link
// of index *dst, with the first of tcredirect.Classifiers the kernel has.
// The choice is made once per sandbox, and recorded.
func redirectStep(j *model.Job, src string, srcIndex, dstIndex *int) journal.Planned {
	h, sc := j.Steps.Netns().H, j.Steps
	s := journal.Step{Op: journal.OpFilter, Link: src, Parent: tcredirect.IngressParent, Prio: tcredirect.Priority}
	return sc.Plan(journal.Planned{Step: s, Make: func() error {
		if c := sc.Classifier(); c != "" {
			return h.FilterAdd(tcredirect.Filter(c, *srcIndex, *dstIndex))
		}
		for _, c := range tcredirect.Classifiers {
			err := h.FilterAdd(tcredirect.Filter(c, *srcIndex, *dstIndex))
			if err == nil {
				sc.SetClassifier(c)
			}
			if err == nil || !(errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP)) {
				return err
			}
		}
		return fmt.Errorf("neither u32 nor matchall: %w", unix.EOPNOTSUPP)
	}})
}
