package netbridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/netbridge/internal/linkchange"
	"github.com/netbridge/netbridge/pkg/linkname"
	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/pkg/nlretry"
	"github.com/netbridge/netbridge/pkg/state"
)

// Interface is a link found in a sandbox netns, with what setup would do
// with it.
type Interface struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Index int    `json:"index"`
	MAC   MAC    `json:"mac"`
	MTU   int    `json:"mtu"`
	Up    bool   `json:"up"`
	// Owner is the sandbox id of the netbridge setup that created this
	// link (from its alias tag), empty for a link netbridge did not create.
	Owner string `json:"owner,omitempty"`
	// WiredFor is the sandbox id netbridge wired this interface for (a tc
	// redirect at netbridge's filter priority to its tap, its bridge as the master, or
	// its macvtap on top), whatever state directory that setup used; empty
	// when netbridge did not wire it. Setup and Attach refuse such an
	// interface to every other sandbox.
	WiredFor  string         `json:"wired_for,omitempty"`
	Addresses []netip.Prefix `json:"addresses"`
	Routes    []Route        `json:"routes"`
	Neighbors []Neighbor     `json:"neighbors"`
	// Attach reports whether setup would attach the interface.
	Attach bool `json:"attach"`
	// Reason says why the interface would not be attached.
	Reason string `json:"reason,omitempty"`

	unsupported bool             // of a kind no model carries, or unusable as it is
	ref         *journal.LinkRef // what identifies the link beyond its name
	txqlen      int              // its txqueuelen
	wirings     []wiring         // the signs that netbridge wired it
}

// Discover lists every link of the netns at path except loopback, with its
// addresses, routes and neighbours, and marks those setup would attach:
// exactly the named ones when names is non-empty, else every supported link
// that has an address. It changes nothing.
func Discover(ctx context.Context, path string, names []string) ([]Interface, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n, err := netns.Open(path)
	if err != nil {
		return nil, err
	}
	defer n.Close()
	h, err := journal.OpenHandle(n)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	v, err := discover(h)
	if err != nil {
		return nil, fmt.Errorf("discovering interfaces in netns %q: %w", path, err)
	}
	if err := v.selectInterfaces(names, (&chooser{requested: ModelTCFilter}).supports, nil, ""); err != nil {
		return nil, fmt.Errorf("netns %q: %w", path, err)
	}
	return v.ifs, nil
}

// netnsView is what one look at a sandbox netns found: its interfaces,
// loopback aside, which of them netbridge wired already, and the qdiscs.
type netnsView struct {
	ifs       []Interface
	loopbacks []string
	qdiscs    []netlink.Qdisc
}

// discover reads every link with its addresses, routes and neighbours,
// and the qdiscs, with five netlink dumps, and finds which interfaces
// netbridge wired already (listing the filters of those with an ingress
// qdisc).
func discover(h *netlink.Handle) (*netnsView, error) {
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
	v := &netnsView{ifs: interfacesFrom(links, addrs, routes, neighs), qdiscs: qdiscs}
	for _, l := range links {
		if l.Attrs().Flags&net.FlagLoopback != 0 {
			v.loopbacks = append(v.loopbacks, l.Attrs().Name)
		}
	}
	if err := markWired(h, v.ifs, links, qdiscs); err != nil {
		return nil, err
	}
	return v, nil
}

// interfacesFrom builds the interfaces from the four dumps, sorted by name.
func interfacesFrom(links []netlink.Link, addrs []netlink.Addr, routes []netlink.Route, neighs []netlink.Neigh) []Interface {
	var out []Interface
	for _, l := range links {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 {
			continue
		}
		ifc := Interface{
			Name:  a.Name,
			Kind:  l.Type(),
			Index: a.Index,
			MAC:   MAC(a.HardwareAddr),
			MTU:   a.MTU,
			Up:    a.Flags&net.FlagUp != 0,
			ref:   journal.RefOf(l), txqlen: a.TxQLen,
		}
		ifc.Owner, _ = journal.OwnerOf(l)
		ifc.Addresses = addressesOf(addrs, a.Index)
		ifc.Routes = routesOf(routes, a.Index)
		ifc.Neighbors = neighborsOf(neighs, a.Index, ifc.Routes)
		out = append(out, ifc)
	}
	slices.SortFunc(out, func(x, y Interface) int { return strings.Compare(x.Name, y.Name) })
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

func routesOf(routes []netlink.Route, index int) []Route {
	out := []Route{}
	for _, r := range routes {
		if r.LinkIndex != index || r.Protocol == unix.RTPROT_KERNEL || r.Type != unix.RTN_UNICAST || len(r.MultiPath) > 0 {
			continue
		}
		if rr := linkchange.RouteOf(r); rr != nil {
			out = append(out, Route{Dst: rr.Dst, Gw: rr.Gw, MTU: rr.MTU})
		}
	}
	return out
}

func neighborsOf(neighs []netlink.Neigh, index int, routes []Route) []Neighbor {
	out := []Neighbor{}
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
		gateway := slices.ContainsFunc(routes, func(r Route) bool { return r.Gw == ip })
		resolved := n.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE|netlink.NUD_NOARP) != 0
		if permanent || (gateway && resolved) {
			out = append(out, Neighbor{IP: ip, MAC: MAC(n.HardwareAddr), Permanent: permanent})
		}
	}
	slices.SortFunc(out, func(a, b Neighbor) int { return a.IP.Compare(b.IP) })
	return out
}

// selectInterfaces is the package-level selectInterfaces for the
// interfaces of v; a named loopback is refused as such. st, when set, is
// where the owner of an interface wired for another sandbox is looked for;
// self is the sandbox asking.
func (v *netnsView) selectInterfaces(names []string, supports func(*Interface) error, st *state.Store, self string) error {
	for _, name := range names {
		if slices.Contains(v.loopbacks, name) {
			return fmt.Errorf("interface %q is the loopback interface of the netns, which stays there: netbridge attaches the interfaces CNI made (have: %s)", name, linkNames(v.ifs))
		}
	}
	return selectWith(v.ifs, names, supports, func(ifc *Interface) error { return takenError(ifc, st, self) }, self != "")
}

// selectInterfaces marks which interfaces to attach: exactly the named ones,
// which must exist, be supported and not be wired for another sandbox, or
// else every supported interface with an address that netbridge did not
// create or wire.
func selectInterfaces(ifs []Interface, names []string, supports func(*Interface) error) error {
	return selectWith(ifs, names, supports, func(ifc *Interface) error { return takenError(ifc, nil, "") }, false)
}

// selectWith is selectInterfaces, where taken returns the error of an
// interface wired for another sandbox. With refuseForeign (a sandbox is
// being wired, not a netns looked at), an interface it would attach whose
// filter priority someone else's filter holds is an error, not a skip.
func selectWith(ifs []Interface, names []string, supports func(*Interface) error, taken func(*Interface) error, refuseForeign bool) error {
	byName := map[string]*Interface{}
	for i := range ifs {
		byName[ifs[i].Name] = &ifs[i]
	}
	if len(names) > 0 {
		for i := range ifs {
			ifs[i].Reason = "not named by --interfaces"
		}
		for _, name := range names {
			ifc, ok := byName[name]
			if !ok {
				return fmt.Errorf("interface %q does not exist in the netns (have: %s)", name, linkNames(ifs))
			}
			if ifc.Owner != "" {
				return fmt.Errorf("interface %q was created by netbridge for sandbox %q; name the CNI interface instead", name, ifc.Owner)
			}
			if err := linkname.Check(name); err != nil {
				return fmt.Errorf("interface %w", err)
			}
			if len(ifc.wirings) > 0 {
				return taken(ifc)
			}
			if err := supports(ifc); err != nil {
				return fmt.Errorf("interface %q: %w", name, err)
			}
			ifc.Attach, ifc.Reason = true, ""
		}
		return nil
	}
	for i := range ifs {
		ifc := &ifs[i]
		switch err := supports(ifc); {
		case ifc.Owner != "":
			ifc.Reason = fmt.Sprintf("created by netbridge for sandbox %q", ifc.Owner)
		case linkname.Check(ifc.Name) != nil:
			ifc.Reason, ifc.unsupported = "interface "+linkname.Check(ifc.Name).Error(), true
		case len(ifc.wirings) > 0:
			terr := taken(ifc)
			if refuseForeign && errors.Is(terr, ErrFilterPriorityTaken) && err == nil && len(ifc.Addresses) > 0 {
				// Not another sandbox's: someone's filter holds the
				// priority of our redirects on an interface setup would
				// wire. Skipping it would leave the sandbox unwired
				// without a word; the user must free the priority.
				return terr
			}
			ifc.Reason, ifc.unsupported = terr.Error(), true
		case err != nil:
			ifc.Reason, ifc.unsupported = err.Error(), true
		case len(ifc.Addresses) == 0:
			ifc.Reason = "has no address"
		default:
			ifc.Attach = true
		}
	}
	return nil
}

func linkNames(ifs []Interface) string {
	if len(ifs) == 0 {
		return "no links but lo"
	}
	var s []string
	for _, i := range ifs {
		s = append(s, linkname.Show(i.Name))
	}
	return strings.Join(s, ", ")
}
