package guest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"

	"github.com/netbridge/netbridge/pkg/linkname"
	"github.com/netbridge/netbridge/sandbox"
)

// Version is the version of the guest network document this package writes
// and the only one it reads.
const Version = 1

// Document is the guest network document: what a guest agent needs to
// configure every NIC of the VM. Its JSON form is
//
//	{"version": 1, "interfaces": {"<guest MAC>": {"name": "eth0", "mtu": 1500,
//	  "addresses": ["192.0.2.10/24"], "routes": [{"dst": "0.0.0.0/0", "gw": "192.0.2.1"}],
//	  "neighbors": [{"ip": "169.254.1.1", "mac": "ee:ee:ee:ee:ee:ee", "permanent": true}]}}}
//
// Interfaces are keyed by the guest MAC, the one identifier the guest sees
// unchanged, in lower-case colon form. Readers ignore unknown fields.
type Document struct {
	// Version is the document version, [Version].
	Version int `json:"version"`
	// Interfaces maps the canonical guest MAC of each NIC to its settings.
	Interfaces map[string]Interface `json:"interfaces"`
	// DNS is the resolver configuration, omitted when unknown.
	DNS sandbox.DNS `json:"dns,omitzero"`
}

// Interface is the configuration of one guest NIC.
type Interface struct {
	// Name is a hint for the guest interface name: "eth<k>" for the k-th
	// NIC, the name the guest kernel gives it. It may be empty.
	Name string `json:"name"`
	// MTU is the link MTU, 0 when unknown.
	MTU int `json:"mtu,omitempty"`
	// Addresses are the interface addresses with their prefix length.
	Addresses []netip.Prefix `json:"addresses"`
	// Routes are the routes to install through the interface.
	Routes []Route `json:"routes"`
	// Neighbors are static neighbour entries to install on the interface.
	Neighbors []Neighbor `json:"neighbors"`
}

// Route is a route the guest installs through its interface.
type Route struct {
	// Dst is the destination prefix, without host bits.
	Dst netip.Prefix `json:"dst"`
	// Gw is the next hop; the zero Addr (omitted) for an on-link route.
	Gw netip.Addr `json:"gw,omitzero"`
	// MTU is the route MTU, 0 (omitted) for none.
	MTU int `json:"mtu,omitempty"`
}

// Neighbor is a neighbour entry the guest installs, such as the permanent
// entry for Calico's 169.254.1.1 gateway.
type Neighbor struct {
	// IP is the neighbour's address.
	IP netip.Addr `json:"ip"`
	// MAC is the neighbour's link-layer address.
	MAC sandbox.MAC `json:"mac"`
	// Permanent reports whether the entry was permanent in the sandbox.
	Permanent bool `json:"permanent,omitempty"`
}

// NewDocument builds the guest network document of s: one interface per NIC,
// keyed by its guest MAC and named "eth<k>" after its position in s.NICs. It
// fails when a NIC has no valid guest MAC, when two NICs share a guest MAC
// (which happens with ipvlan interfaces of the same parent, and which the
// document cannot represent), or when a NIC's data is invalid.
func NewDocument(s sandbox.Sandbox) (Document, error) {
	ifcs, err := interfaces(s.NICs, "document")
	if err != nil {
		return Document{}, err
	}
	d := Document{Version: Version, Interfaces: ifcs, DNS: s.DNS}
	if err := d.Validate(); err != nil {
		return Document{}, err
	}
	return d, nil
}

// interfaces converts and validates nics into the document's interfaces,
// keyed by guest MAC; what names the output in errors.
func interfaces(nics []sandbox.NIC, what string) (map[string]Interface, error) {
	ifcs := make(map[string]Interface, len(nics))
	owner := make(map[string]int, len(nics))
	for k := range nics {
		n := &nics[k]
		if err := sandbox.CheckGuestMAC(n.GuestMAC); err != nil {
			return nil, fmt.Errorf("guest: %s: %s: %w", what, label(n, k), err)
		}
		key := n.GuestMAC.String()
		if j, dup := owner[key]; dup {
			return nil, fmt.Errorf("guest: %s: %s: guest MAC %s is also that of %s; interfaces are matched by guest MAC", what, label(n, k), key, label(&nics[j], j))
		}
		owner[key] = k
		ifc := Interface{
			Name:      "eth" + strconv.Itoa(k),
			MTU:       n.MTU,
			Addresses: slices.Clone(n.Addresses),
			Routes:    make([]Route, 0, len(n.Routes)),
			Neighbors: make([]Neighbor, 0, len(n.Neighbors)),
		}
		if ifc.Addresses == nil {
			ifc.Addresses = []netip.Prefix{}
		}
		for _, r := range n.Routes {
			ifc.Routes = append(ifc.Routes, Route{Dst: r.Dst, Gw: r.Gw, MTU: r.MTU})
		}
		for _, nb := range n.Neighbors {
			ifc.Neighbors = append(ifc.Neighbors, Neighbor{
				IP:        nb.IP,
				MAC:       sandbox.MAC(slices.Clone(nb.MAC)),
				Permanent: nb.Permanent,
			})
		}
		if err := ifc.validate(); err != nil {
			return nil, fmt.Errorf("guest: %s: %s: %w", what, label(n, k), err)
		}
		ifcs[key] = ifc
	}
	return ifcs, nil
}

// JSON returns the guest network document of s (see [NewDocument]) as
// indented JSON ending in a newline. The output is deterministic: interfaces
// are sorted by MAC, and addresses, routes and neighbours keep the order of
// the NIC.
func JSON(s sandbox.Sandbox) ([]byte, error) {
	d, err := NewDocument(s)
	if err != nil {
		return nil, err
	}
	return Marshal(d)
}

// Marshal validates d and returns it as indented JSON ending in a newline.
// Nil lists are written as empty ones.
func Marshal(d Document) ([]byte, error) {
	d = d.normalized()
	if err := d.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("guest: encoding the document: %w", err)
	}
	return append(b, '\n'), nil
}

// ParseJSON decodes and validates a guest network document. It accepts the
// MAC keys in any form net.ParseMAC accepts and returns them in lower-case
// colon form; missing or null lists become empty ones; unknown fields are
// ignored. It rejects other versions than [Version], MACs that are not
// 6-byte unicast addresses, invalid or duplicate addresses, routes whose
// destination has host bits set, gateways and neighbours that are not valid
// addresses or carry a zone, MTUs outside 68..65535, and duplicate names.
func ParseJSON(b []byte) (Document, error) {
	var d Document
	if err := json.Unmarshal(b, &d); err != nil {
		return Document{}, fmt.Errorf("guest: parsing the document: %w", err)
	}
	if d.Version != Version {
		return Document{}, fmt.Errorf("guest: parsing the document: unsupported version %d, want %d", d.Version, Version)
	}
	ifcs := make(map[string]Interface, len(d.Interfaces))
	for key, ifc := range d.Interfaces {
		hw, err := net.ParseMAC(key)
		if err != nil {
			return Document{}, fmt.Errorf("guest: parsing the document: interface key %q: %w", key, err)
		}
		canon := hw.String()
		if _, dup := ifcs[canon]; dup {
			return Document{}, fmt.Errorf("guest: parsing the document: interface key %q: MAC %s appears twice", key, canon)
		}
		ifcs[canon] = ifc
	}
	d.Interfaces = ifcs
	d = d.normalized()
	if err := d.Validate(); err != nil {
		return Document{}, err
	}
	return d, nil
}

// normalized returns d with a non-nil Interfaces map and non-nil lists. It
// shares the lists' elements with d.
func (d Document) normalized() Document {
	ifcs := make(map[string]Interface, len(d.Interfaces))
	for key, ifc := range d.Interfaces {
		if ifc.Addresses == nil {
			ifc.Addresses = []netip.Prefix{}
		}
		if ifc.Routes == nil {
			ifc.Routes = []Route{}
		}
		if ifc.Neighbors == nil {
			ifc.Neighbors = []Neighbor{}
		}
		ifcs[key] = ifc
	}
	d.Interfaces = ifcs
	// An empty list is no list, as when it is absent (the JSON form omits
	// both), and empty lists alone are no DNS.
	if len(d.DNS.Nameservers) == 0 {
		d.DNS.Nameservers = nil
	}
	if len(d.DNS.Search) == 0 {
		d.DNS.Search = nil
	}
	if len(d.DNS.Options) == 0 {
		d.DNS.Options = nil
	}
	return d
}

// Validate reports the first problem of d that would stop a guest agent from
// applying it: see [ParseJSON] for the rules. Map keys must be in canonical
// lower-case colon form. Interfaces are checked in key order, so the error is
// deterministic.
func (d Document) Validate() error {
	if d.Version != Version {
		return fmt.Errorf("guest: document: unsupported version %d, want %d", d.Version, Version)
	}
	keys := make([]string, 0, len(d.Interfaces))
	for key := range d.Interfaces {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	names := make(map[string]string, len(keys))
	for _, key := range keys {
		ifc := d.Interfaces[key]
		hw, err := net.ParseMAC(key)
		if err != nil {
			return fmt.Errorf("guest: document: interface %q: %w", key, err)
		}
		if err := sandbox.CheckGuestMAC(sandbox.MAC(hw)); err != nil {
			return fmt.Errorf("guest: document: interface %s: %w", key, err)
		}
		if canon := hw.String(); canon != key {
			return fmt.Errorf("guest: document: interface %q: MAC not in canonical form %s", key, canon)
		}
		if err := ifc.validate(); err != nil {
			return fmt.Errorf("guest: document: interface %s (%q): %w", key, ifc.Name, err)
		}
		if ifc.Name != "" {
			if other, dup := names[ifc.Name]; dup {
				return fmt.Errorf("guest: document: interface %s: name %q is also that of interface %s", key, ifc.Name, other)
			}
			names[ifc.Name] = key
		}
	}
	return nil
}

// validate checks one interface.
func (ifc Interface) validate() error {
	if err := checkIfName(ifc.Name); err != nil {
		return err
	}
	if err := sandbox.CheckMTU(ifc.MTU); err != nil {
		return err
	}
	seen := make(map[netip.Prefix]bool, len(ifc.Addresses))
	for j, a := range ifc.Addresses {
		switch {
		case !a.IsValid():
			return fmt.Errorf("address %d is not a valid prefix", j)
		case a.Addr().IsUnspecified() || a.Addr().IsMulticast():
			return fmt.Errorf("address %s is not a unicast address", a)
		case seen[a]:
			return fmt.Errorf("address %s appears twice", a)
		}
		seen[a] = true
	}
	for j, r := range ifc.Routes {
		if err := r.validate(); err != nil {
			return fmt.Errorf("route %d: %w", j, err)
		}
	}
	for j, nb := range ifc.Neighbors {
		if err := nb.validate(); err != nil {
			return fmt.Errorf("neighbor %d: %w", j, err)
		}
	}
	return nil
}

// validate checks one route.
func (r Route) validate() error {
	switch {
	case !r.Dst.IsValid():
		return errors.New("destination is not a valid prefix")
	case r.Dst != r.Dst.Masked():
		return fmt.Errorf("destination %s has host bits set (want %s)", r.Dst, r.Dst.Masked())
	}
	if r.Gw.IsValid() {
		switch {
		case r.Gw.Zone() != "":
			return fmt.Errorf("gateway %s carries a zone", r.Gw)
		case r.Gw.IsUnspecified() || r.Gw.IsMulticast():
			return fmt.Errorf("gateway %s is not a unicast address", r.Gw)
		case r.Dst.Addr().Is6() && r.Gw.Is4():
			// Linux accepts an IPv6 next hop for IPv4 (RFC 5549), not the
			// reverse.
			return fmt.Errorf("IPv6 destination %s has the IPv4 gateway %s", r.Dst, r.Gw)
		}
	}
	if err := sandbox.CheckMTU(r.MTU); err != nil {
		return err
	}
	return nil
}

// validate checks one neighbour entry.
func (nb Neighbor) validate() error {
	switch {
	case !nb.IP.IsValid():
		return errors.New("address missing or invalid")
	case nb.IP.Zone() != "":
		return fmt.Errorf("address %s carries a zone", nb.IP)
	case nb.IP.IsUnspecified() || nb.IP.IsMulticast():
		return fmt.Errorf("address %s is not a unicast address", nb.IP)
	case len(nb.MAC) == 0:
		return fmt.Errorf("%s: MAC missing", nb.IP)
	case len(nb.MAC) != 6:
		return fmt.Errorf("%s: MAC %s is not a 6-byte Ethernet address", nb.IP, nb.MAC)
	}
	return nil
}

// checkIfName checks an optional interface name with netbridge's rule for
// interface names (linkname.Check).
func checkIfName(name string) error {
	if name == "" {
		return nil
	}
	return linkname.Check(name)
}
