// Package netview reads a sandbox netns in one look: its interfaces with
// their addresses, routes and neighbours, which of them netbridge wired
// already and for which sandbox, and which a request would attach. It
// changes nothing.
package netview

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/netbridge/internal/linkchange"
	"github.com/netbridge/netbridge/pkg/nlretry"
	"github.com/netbridge/netbridge/sandbox"
)

// Link is a link found in a sandbox netns: the Interface a caller sees,
// and what wiring it needs beyond that.
type Link struct {
	sandbox.Interface
	// Unsupported reports a link of a kind no model carries, or unusable
	// as it is.
	Unsupported bool
	// Ref is what identifies the link beyond its name.
	Ref *journal.LinkRef
	// TxQLen is its txqueuelen.
	TxQLen     int
	ingress    netlink.Qdisc // its ingress qdisc, nil when it has none
	ingressErr error         // why the qdisc at its ingress hook is unusable
	wirings    []wiring      // the signs that netbridge wired it
}

// Ingress returns the ingress qdisc of l, nil when it has none, and an
// error when another kind of qdisc holds its ingress hook.
func (l *Link) Ingress() (netlink.Qdisc, error) { return l.ingress, l.ingressErr }

// View is what one look at a sandbox netns found: its links, loopback
// aside, sorted by name, and which of them netbridge wired already.
type View struct {
	Links     []Link
	loopbacks []string
}

// Interfaces returns the links of v as a caller sees them.
func (v *View) Interfaces() []sandbox.Interface {
	out := make([]sandbox.Interface, len(v.Links))
	for i := range v.Links {
		out[i] = v.Links[i].Interface
	}
	return out
}

// Find returns the link of v of ifindex index, nil when there is none.
func (v *View) Find(index int) *Link {
	if i := slices.IndexFunc(v.Links, func(l Link) bool { return l.Index == index }); i >= 0 {
		return &v.Links[i]
	}
	return nil
}

// Read reads every link with its addresses, routes and neighbours,
// and the qdiscs, with five netlink dumps, and finds which interfaces
// netbridge wired already (listing the filters of those with an ingress
// qdisc).
func Read(h *netlink.Handle) (*View, error) {
	links, err := nlretry.Dump(h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	addrs, err := nlretry.Dump(func() ([]netlink.Addr, error) { return h.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("listing addresses: %w", err)
	}
	routes, err := nlretry.Dump(func() ([]netlink.Route, error) { return h.RouteList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	neighs, err := nlretry.Dump(func() ([]netlink.Neigh, error) { return h.NeighList(0, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("listing neighbours: %w", err)
	}
	qdiscs, err := nlretry.Dump(func() ([]netlink.Qdisc, error) { return h.QdiscList(nil) })
	if err != nil {
		return nil, fmt.Errorf("listing qdiscs: %w", err)
	}
	v := &View{Links: FromDumps(links, addrs, routes, neighs)}
	for _, l := range links {
		if l.Attrs().Flags&net.FlagLoopback != 0 {
			v.loopbacks = append(v.loopbacks, l.Attrs().Name)
		}
	}
	if err := markWired(h, v.Links, links, qdiscs); err != nil {
		return nil, err
	}
	return v, nil
}

// FromDumps builds the links of a view from the four dumps, sorted by name.
func FromDumps(links []netlink.Link, addrs []netlink.Addr, routes []netlink.Route, neighs []netlink.Neigh) []Link {
	var out []Link
	for _, l := range links {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 {
			continue
		}
		ifc := Link{Interface: sandbox.Interface{
			Name:  a.Name,
			Kind:  l.Type(),
			Index: a.Index,
			MAC:   sandbox.MAC(a.HardwareAddr),
			MTU:   a.MTU,
			Up:    a.Flags&net.FlagUp != 0,
		}, Ref: journal.RefOf(l), TxQLen: a.TxQLen}
		ifc.Owner, _ = journal.OwnerOf(l)
		ifc.Addresses = addressesOf(addrs, a.Index)
		ifc.Routes = routesOf(routes, a.Index)
		ifc.Neighbors = neighborsOf(neighs, a.Index, ifc.Routes)
		out = append(out, ifc)
	}
	slices.SortFunc(out, func(x, y Link) int { return strings.Compare(x.Name, y.Name) })
	return out
}

func addressesOf(addrs []netlink.Addr, index int) []netip.Prefix {
	out := []netip.Prefix{}
	for _, a := range addrs {
		if a.LinkIndex != index || a.IPNet == nil {
			continue
		}
		p, ok := linkchange.PrefixOf(a.IPNet)
		if !ok || (p.Addr().Is6() && p.Addr().IsLinkLocalUnicast()) {
			continue // the guest makes its own IPv6 link-local address
		}
		out = append(out, p)
	}
	return out
}

func routesOf(routes []netlink.Route, index int) []sandbox.Route {
	out := []sandbox.Route{}
	for _, r := range routes {
		if r.LinkIndex != index || r.Protocol == unix.RTPROT_KERNEL || r.Type != unix.RTN_UNICAST || len(r.MultiPath) > 0 {
			continue
		}
		if rr := linkchange.RouteOf(r); rr != nil {
			out = append(out, sandbox.Route{Dst: rr.Dst, Gw: rr.Gw, MTU: rr.MTU})
		}
	}
	return out
}

func neighborsOf(neighs []netlink.Neigh, index int, routes []sandbox.Route) []sandbox.Neighbor {
	out := []sandbox.Neighbor{}
	for _, n := range neighs {
		if n.LinkIndex != index || len(n.HardwareAddr) != 6 {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || ip.IsMulticast() {
			continue
		}
		ip = ip.Unmap()
		permanent := n.State&netlink.NUD_PERMANENT != 0
		gateway := slices.ContainsFunc(routes, func(r sandbox.Route) bool { return r.Gw == ip })
		resolved := n.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE|netlink.NUD_NOARP) != 0
		if permanent || (gateway && resolved) {
			out = append(out, sandbox.Neighbor{IP: ip, MAC: sandbox.MAC(n.HardwareAddr), Permanent: permanent})
		}
	}
	slices.SortFunc(out, func(a, b sandbox.Neighbor) int { return a.IP.Compare(b.IP) })
	return out
}
