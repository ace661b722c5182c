// Package tcredirect builds and recognises the tc objects that connect two
// links of one netns directly: an ingress qdisc on each, holding at Priority
// a filter that matches every frame and redirects it (mirred) to the egress
// of the other link. netbridge's tcfilter model wires with them, its undo and
// check find them, and the benchmark floor does the same work without the
// rest of netbridge.
package tcredirect

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Priority is the tc priority of netbridge's redirect filters. It is
// reserved for netbridge on the ingress qdiscs of the links it wires:
// teardown and check find exactly its filters by it among any others, and
// teardown removes the filters of that priority only. (A fixed handle would
// not do: u32 numbers its hash tables per priority as the kernel pleases.)
const Priority = 0x4e42 // 20034, "NB"

// IngressParent is the handle of the ingress qdisc, the parent of the
// filters on it.
var IngressParent = netlink.MakeHandle(0xffff, 0)

// ErrPriorityTaken reports a filter of someone else at Priority on an
// ingress qdisc netbridge would wire.
var ErrPriorityTaken = errors.New("tc filter priority taken")

// Classifier is the tc classifier of a redirect filter.
type Classifier string

// Classifiers. U32 is in every kernel with tc filters; Matchall is tried
// only where u32 is missing.
const (
	U32      Classifier = "u32"
	Matchall Classifier = "matchall"
)

// Classifiers lists the classifiers in the order netbridge tries them:
// u32, which every kernel with tc filters has, then matchall, only where
// u32 is missing (trying matchall first costs a module load attempt, a
// modprobe run by the kernel, on every kernel without it).
var Classifiers = []Classifier{U32, Matchall}

// Preferred returns the first of Classifiers that has reports present,
// and whether there is one.
func Preferred(has func(Classifier) bool) (Classifier, bool) {
	for _, c := range Classifiers {
		if has(c) {
			return c, true
		}
	}
	return "", false
}

// Ingress returns the ingress qdisc of the link of ifindex index, to add.
func Ingress(index int) *netlink.Ingress {
	return &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: index,
		Parent:    netlink.HANDLE_INGRESS,
		Handle:    IngressParent,
	}}
}

// Filter returns a filter of classifier c at Priority on the ingress of
// the link of ifindex src that matches every frame and redirects it to the
// egress of the link of ifindex dst.
func Filter(c Classifier, src, dst int) netlink.Filter {
	attrs := netlink.FilterAttrs{
		LinkIndex: src,
		Parent:    IngressParent,
		Priority:  Priority,
		Protocol:  unix.ETH_P_ALL,
	}
	redirect := []netlink.Action{netlink.NewMirredAction(dst)}
	if c == Matchall {
		return &netlink.MatchAll{FilterAttrs: attrs, Actions: redirect}
	}
	return &netlink.U32{FilterAttrs: attrs, Actions: redirect}
}

// Target returns the ifindex the egress redirect of f's mirred action goes
// to (0 when that link is gone), and whether f has one. Only u32 and
// matchall filters are looked into.
func Target(f netlink.Filter) (int, bool) {
	var actions []netlink.Action
	switch f := f.(type) {
	case *netlink.U32:
		actions = f.Actions
	case *netlink.MatchAll:
		actions = f.Actions
	}
	for _, a := range actions {
		if m, ok := a.(*netlink.MirredAction); ok && m.MirredAction == netlink.TCA_EGRESS_REDIR {
			return m.Ifindex, true
		}
	}
	return 0, false
}

// Redirects reports whether f is a filter such as Filter makes, at
// priority prio: of protocol all, matching every frame (a u32 filter with
// one key of mask 0, or a matchall filter) and redirecting to the link of
// ifindex target (0: to a link that is gone).
func Redirects(f netlink.Filter, prio uint16, target int) bool {
	a := f.Attrs()
	if a.Priority != prio || a.Protocol != unix.ETH_P_ALL {
		return false
	}
	if to, ok := Target(f); !ok || to != target {
		return false
	}
	u, ok := f.(*netlink.U32)
	return !ok || (u.Sel != nil && len(u.Sel.Keys) == 1 && u.Sel.Keys[0].Mask == 0)
}

// IsU32Header reports whether f is the hash table a u32 filter priority
// lists before its rules: it matches and redirects nothing itself.
func IsU32Header(f netlink.Filter) bool {
	u, ok := f.(*netlink.U32)
	return ok && u.Sel == nil && len(u.Actions) == 0
}

// IngressOf returns the ingress qdisc among qs of the link called name of
// ifindex index, nil when it has none, and an error when another kind of
// qdisc holds its ingress hook.
func IngressOf(qs []netlink.Qdisc, name string, index int) (netlink.Qdisc, error) {
	for _, q := range qs {
		if q.Attrs().LinkIndex != index || q.Attrs().Parent != netlink.HANDLE_INGRESS {
			continue
		}
		if _, ok := q.(*netlink.Ingress); ok {
			return q, nil
		}
		return nil, fmt.Errorf("%q has a %s qdisc at the ingress hook; the tcfilter model needs a plain ingress qdisc there", name, q.Type())
	}
	return nil, nil
}
