package netbridge

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/pkg/nlretry"
	"github.com/netbridge/netbridge/pkg/tcredirect"
	"github.com/netbridge/netbridge/sandbox"
)

// tcfilter connects interface and tap with an ingress qdisc on each and a
// match-all filter whose mirred action redirects every frame to the other's
// egress. Equivalent to, for each direction:
//
//	tc qdisc add dev SRC ingress
//	tc filter add dev SRC parent ffff: prio 20034 protocol all \
//	    u32 match u8 0 0 action mirred egress redirect dev DST
type tcfilter struct{}

func (tcfilter) name() Model                           { return ModelTCFilter }
func (tcfilter) supports(ifc *sandbox.Interface) error { return supportsKind(ModelTCFilter, ifc) }

func (m tcfilter) wire(tx *txn, nic *NIC) error {
	steps, err := m.plan(tx, nic)
	if err == nil {
		err = tx.createAll(steps...)
	}
	if err != nil {
		return err
	}
	return tx.tapCreated(nic)
}

// plan returns the steps making the tap, the qdiscs and the filters; they
// refer to nic, which must stay in place until they ran.
func (tcfilter) plan(tx *txn, nic *NIC) ([]journal.Planned, error) {
	tapStep, err := tx.tapStep(nic)
	if err != nil {
		return nil, err
	}
	steps := []journal.Planned{tapStep}
	var ref *journal.LinkRef
	txqlen := -1
	var q netlink.Qdisc
	if l := tx.view.Find(nic.Index); l != nil {
		ref, txqlen = l.Ref, l.TxQLen
		q, err = l.Ingress()
	}
	switch {
	case err != nil:
		return nil, err
	case q == nil:
		s := tx.ingressStep(nic.Name, &nic.Index)
		s.Step.Ref = ref
		if txqlen >= 0 {
			s.Step.TxQLen = &txqlen
		}
		steps = append(steps, s)
	default: // reused, and left in place at teardown
		if err := tx.priorityFree(nic.Name, nic.Index); err != nil {
			return nil, err
		}
	}
	redirect := tx.redirectStep(nic.Name, &nic.Index, &nic.TapIndex)
	redirect.Step.Ref = ref
	return append(steps,
		redirect,
		tx.ingressStep(nic.Tap, &nic.TapIndex), // a new tap has none
		tx.redirectStep(nic.Tap, &nic.TapIndex, &nic.Index)), nil
}

// ErrFilterPriorityTaken reports that the ingress qdisc of an interface
// holds a filter of someone else at netbridge's priority, which netbridge
// keeps for its redirect.
var ErrFilterPriorityTaken = tcredirect.ErrPriorityTaken

// priorityFree checks that the ingress qdisc of interface name (of index
// index) holds no filter at tcredirect.Priority: netbridge's filter would join
// one of protocol all and be torn down with it, and the kernel refuses it
// next to one of another protocol.
func (tx *txn) priorityFree(name string, index int) error {
	fs, err := nlretry.Dump(func() ([]netlink.Filter, error) {
		return tx.h.FilterList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: index}}, tcredirect.IngressParent)
	})
	if err != nil {
		return fmt.Errorf("listing the filters of %q: %w", name, err)
	}
	for _, f := range fs {
		if f.Attrs().Priority == tcredirect.Priority {
			return fmt.Errorf("%w: the ingress qdisc of %q holds a %s filter at priority %d, which netbridge keeps for its redirect; delete it (tc filter del dev %s ingress prio %d) or move it to another priority",
				ErrFilterPriorityTaken, name, f.Type(), tcredirect.Priority, name, tcredirect.Priority)
		}
	}
	return nil
}

func (tcfilter) check(c *checker, nic *NIC) {
	c.tap(nic)
	c.redirect(nic.Name, nic.Tap)
	c.redirect(nic.Tap, nic.Name)
}

// ingressStep is the step adding an ingress qdisc to link name, whose
// index *index holds by the time the step runs.
func (tx *txn) ingressStep(name string, index *int) journal.Planned {
	return journal.Planned{Step: journal.Step{Op: journal.OpQdisc, Link: name, Iface: tx.iface}, Make: func() error {
		return tx.h.QdiscAdd(tcredirect.Ingress(*index))
	}}
}

// redirectStep is the step adding our filter on link src (index *src by
// the time it runs) that redirects every frame to the egress of the link
// of index *dst. It uses u32, which every kernel with tc filters has, and
// matchall only when u32 is missing: trying matchall first costs a module
// load attempt (a modprobe run by the kernel, milliseconds) per setup on
// kernels without it. The choice is made once per sandbox.
func (tx *txn) redirectStep(src string, srcIndex, dstIndex *int) journal.Planned {
	s := journal.Step{Op: journal.OpFilter, Link: src, Parent: tcredirect.IngressParent, Prio: tcredirect.Priority, Iface: tx.iface}
	return journal.Planned{Step: s, Make: func() error {
		if tx.rec.Classifier != "" {
			return tx.h.FilterAdd(tcredirect.Filter(tx.rec.Classifier, *srcIndex, *dstIndex))
		}
		for _, c := range []tcredirect.Classifier{tcredirect.U32, tcredirect.Matchall} {
			err := tx.h.FilterAdd(tcredirect.Filter(c, *srcIndex, *dstIndex))
			if err == nil {
				tx.rec.Classifier = c
			}
			if err == nil || !(errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP)) {
				return err
			}
		}
		return fmt.Errorf("neither u32 nor matchall: %w", unix.EOPNOTSUPP)
	}}
}
