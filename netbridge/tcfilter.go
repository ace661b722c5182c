package netbridge

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/pkg/nlretry"
)

// FilterPriority is the tc priority of netbridge's redirect filters. It
// is reserved for netbridge on the ingress qdiscs of the links it wires:
// teardown and check find exactly ours by it among any other filters, and
// teardown removes the filters of that priority only. (A fixed handle would
// not do: u32 numbers its hash tables per priority as the kernel pleases.)
const FilterPriority = 0x4e42 // 20034, "NB"

var ingressParent = netlink.MakeHandle(0xffff, 0)

// Classifiers.
const (
	classifierMatchall = "matchall"
	classifierU32      = "u32"
)

// tcfilter connects interface and tap with an ingress qdisc on each and a
// match-all filter whose mirred action redirects every frame to the other's
// egress. Equivalent to, for each direction:
//
//	tc qdisc add dev SRC ingress
//	tc filter add dev SRC parent ffff: prio 20034 protocol all \
//	    u32 match u8 0 0 action mirred egress redirect dev DST
type tcfilter struct{}

func (tcfilter) name() string                  { return ModelTCFilter }
func (tcfilter) supports(ifc *Interface) error { return supportsKind(ModelTCFilter, ifc) }

func (tcfilter) wire(tx *txn, nic *NIC) error {
	if err := tx.createTap(nic); err != nil {
		return err
	}
	for _, dir := range [][2]string{{nic.Name, nic.Tap}, {nic.Tap, nic.Name}} {
		src, dst := dir[0], dir[1]
		if err := tx.ensureIngress(src); err != nil {
			return err
		}
		if err := tx.addRedirect(src, dst); err != nil {
			return err
		}
	}
	return nil
}

func (tcfilter) check(c *checker, nic *NIC) {
	c.tap(nic)
	c.redirect(nic.Name, nic.Tap)
	c.redirect(nic.Tap, nic.Name)
}

// ensureIngress adds an ingress qdisc to the named link unless it has one
// already, which is then reused and left in place at teardown.
func (tx *txn) ensureIngress(name string) error {
	link, err := tx.h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("looking up %q: %w", name, err)
	}
	if q, err := findIngress(tx.h, link); err != nil || q != nil {
		return err
	}
	s := step{Op: opQdisc, Link: name}
	return tx.create(s, func() error {
		return tx.h.QdiscAdd(&netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: link.Attrs().Index,
			Parent:    netlink.HANDLE_INGRESS,
			Handle:    ingressParent,
		}})
	})
}

func findIngress(h *netlink.Handle, link netlink.Link) (netlink.Qdisc, error) {
	qs, err := nlretry.Dump(func() ([]netlink.Qdisc, error) { return h.QdiscList(link) })
	if err != nil {
		return nil, fmt.Errorf("listing qdiscs of %q: %w", link.Attrs().Name, err)
	}
	for _, q := range qs {
		if q.Attrs().Parent == netlink.HANDLE_INGRESS {
			if _, ok := q.(*netlink.Ingress); ok {
				return q, nil
			}
			return nil, fmt.Errorf("%q has a %s qdisc at the ingress hook; the tcfilter model needs a plain ingress qdisc there", link.Attrs().Name, q.Type())
		}
	}
	return nil, nil
}

// addRedirect adds our filter redirecting every frame received on src to
// the egress of dst. It prefers matchall and falls back to u32 when the
// kernel has no matchall; the choice is made once per sandbox.
func (tx *txn) addRedirect(src, dst string) error {
	srcLink, err := tx.h.LinkByName(src)
	if err != nil {
		return fmt.Errorf("looking up %q: %w", src, err)
	}
	dstLink, err := tx.h.LinkByName(dst)
	if err != nil {
		return fmt.Errorf("looking up %q: %w", dst, err)
	}
	if tx.rec.Classifier == "" {
		err := tx.addRedirectWith(classifierMatchall, srcLink, dstLink)
		if err == nil || !(errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP)) {
			return err
		}
		tx.rec.Classifier = classifierU32
		return tx.addRedirectWith(classifierU32, srcLink, dstLink)
	}
	return tx.addRedirectWith(tx.rec.Classifier, srcLink, dstLink)
}

func (tx *txn) addRedirectWith(classifier string, src, dst netlink.Link) error {
	attrs := netlink.FilterAttrs{
		LinkIndex: src.Attrs().Index,
		Parent:    ingressParent,
		Priority:  FilterPriority,
		Protocol:  unix.ETH_P_ALL,
	}
	redirect := []netlink.Action{netlink.NewMirredAction(dst.Attrs().Index)}
	var f netlink.Filter = &netlink.U32{FilterAttrs: attrs, Actions: redirect}
	if classifier == classifierMatchall {
		f = &netlink.MatchAll{FilterAttrs: attrs, Actions: redirect}
	}
	s := step{Op: opFilter, Link: src.Attrs().Name, Parent: ingressParent, Prio: FilterPriority}
	err := tx.create(s, func() error { return tx.h.FilterAdd(f) })
	if err == nil && tx.rec.Classifier == "" {
		tx.rec.Classifier = classifier
	}
	return err
}

// delPriority removes every filter of one priority from a link's qdisc, the
// way "tc filter del dev LINK parent P prio N" does. The kernel wants the
// classifier kind of that priority named, so it is taken from the listing.
func delPriority(h *netlink.Handle, link netlink.Link, parent uint32, prio uint16) error {
	fs, err := nlretry.Dump(func() ([]netlink.Filter, error) { return h.FilterList(link, parent) })
	if err != nil {
		return err
	}
	for _, f := range fs {
		a := f.Attrs()
		if a.Priority != prio {
			continue
		}
		return ignoreNotFound(h.FilterDel(&netlink.GenericFilter{
			FilterAttrs: netlink.FilterAttrs{LinkIndex: a.LinkIndex, Parent: parent, Priority: prio, Protocol: a.Protocol},
			FilterType:  f.Type(),
		}))
	}
	return nil
}

// redirectTarget returns the ifindex a filter's mirred action redirects to
// (egress), or 0.
func redirectTarget(f netlink.Filter) int {
	var actions []netlink.Action
	switch f := f.(type) {
	case *netlink.U32:
		actions = f.Actions
	case *netlink.MatchAll:
		actions = f.Actions
	}
	for _, a := range actions {
		if m, ok := a.(*netlink.MirredAction); ok && m.MirredAction == netlink.TCA_EGRESS_REDIR {
			return m.Ifindex
		}
	}
	return 0
}
