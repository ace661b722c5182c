package journal

import (
	"fmt"

	"github.com/vishvananda/netlink"

	"github.com/netbridge/netbridge/pkg/nlretry"
	"github.com/netbridge/netbridge/pkg/tcredirect"
)

// defaultTxQLen is the txqueuelen the kernel gives a link of txqueuelen 0
// when an ingress qdisc is added to it (DEFAULT_TX_QUEUE_LEN).
const defaultTxQLen = 1000

// maxDeleters bounds the netlink handles deleting links at once.
const maxDeleters = 32

// FindIngress returns the ingress qdisc of link, nil when it has none.
func FindIngress(h *netlink.Handle, link netlink.Link) (netlink.Qdisc, error) {
	qs, err := nlretry.Dump(func() ([]netlink.Qdisc, error) { return h.QdiscList(link) })
	if err != nil {
		return nil, fmt.Errorf("listing qdiscs of %q: %w", link.Attrs().Name, err)
	}
	return tcredirect.IngressOf(qs, link.Attrs().Name, link.Attrs().Index)
}

// ourFilters returns the filters of add-filter step s on link, a CNI
// interface, that are netbridge's: at the step's priority, of protocol
// all, matching every frame and redirecting it to tap, the tap made for
// the interface (nil when it is not there: then to a link gone since).
// Filters of someone else are not, at our priority too.
func ourFilters(h *netlink.Handle, link netlink.Link, s Step, tap netlink.Link) ([]netlink.Filter, error) {
	fs, err := nlretry.Dump(func() ([]netlink.Filter, error) { return h.FilterList(link, s.Parent) })
	if err != nil {
		return nil, fmt.Errorf("listing the filters of %q: %w", link.Attrs().Name, err)
	}
	target := 0
	if tap != nil {
		target = tap.Attrs().Index
	}
	var ours []netlink.Filter
	for _, f := range fs {
		if tcredirect.Redirects(f, s.Prio, target) {
			ours = append(ours, f)
		}
	}
	return ours, nil
}

// delFilter deletes the one filter f, by its handle.
func delFilter(h *netlink.Handle, f netlink.Filter) error {
	a := f.Attrs()
	return IgnoreNotFound(h.FilterDel(&netlink.GenericFilter{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: a.LinkIndex, Parent: a.Parent, Priority: a.Priority, Protocol: a.Protocol, Handle: a.Handle},
		FilterType:  f.Type(),
	}))
}
