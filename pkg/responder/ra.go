package responder

import (
	"net/netip"
	"slices"

	"github.com/mdlayher/ndp"

	"github.com/netbridge/netbridge/pkg/ethframe"
)

// ndHopLimit is the hop limit of every Neighbor Discovery message: a
// receiver drops any other (RFC 4861 section 6.1).
const ndHopLimit = 255

// raHopLimit is the Cur Hop Limit advertised to the guest.
const raHopLimit = 64

// maxRA is the largest router advertisement sent, as an IPv6 payload: it
// must fit the IPv6 minimum MTU of 1280 whatever the NIC's MTU is.
const maxRA = 1280 - ethframe.IPv6HeaderLen

// routerSolicitation answers a router solicitation with a router
// advertisement (RFC 4861 section 6.2.6): unicast to the soliciting
// address, or to all nodes when that is unspecified.
func (r *Responder) routerSolicitation(p *plan, pkt ethframe.Packet) ([][]byte, outcome) {
	if pkt.HopLimit != ndHopLimit || pkt.Payload[1] != 0 {
		return nil, malformedMsg
	}
	m, err := ndp.ParseMessage(pkt.Payload)
	if err != nil {
		return nil, malformedMsg
	}
	rs, ok := m.(*ndp.RouterSolicitation)
	if !ok {
		return nil, malformedMsg
	}
	dst := pkt.SrcIP
	switch {
	case dst.IsUnspecified():
		// RFC 4861 6.1.1: no source link-layer option from the unspecified
		// address.
		for _, o := range rs.Options {
			if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Source {
				return nil, malformedMsg
			}
		}
		dst = netip.IPv6LinkLocalAllNodes()
	case !dst.IsLinkLocalUnicast():
		return nil, unsupported
	}
	out := r.advertisements(p, dst.WithZone(""))
	if len(out) == 0 {
		return nil, unsupported
	}
	return out, answered
}

// advertisements builds the router advertisement(s) of p for dst, with the
// withdrawals still due after a SetConfig; it counts one final
// advertisement per call while withdrawals are due.
func (r *Responder) advertisements(p *plan, dst netip.Addr) [][]byte {
	var old *plan
	if r.withdraw != nil && r.finals > 0 {
		old = r.withdraw
		r.finals--
		if r.finals == 0 {
			r.withdraw = nil
		}
	}
	var out [][]byte
	if old != nil && (old.raSource != p.raSource || !p.hasIPv6) {
		// The old router goes: its lifetime ends now, and so does what it
		// advertised that the new configuration does not (prefixes and DNS
		// servers are not per router in a client). Sent first, so it cannot
		// undo what the new advertisement says.
		ra := &ndp.RouterAdvertisement{CurrentHopLimit: raHopLimit}
		if old.raSLLA != nil {
			ra.Options = append(ra.Options, &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: old.raSLLA})
		}
		addWithdrawals(ra, old, p)
		if f := marshalRA(p, old.raSource, dst, ra); f != nil {
			out = append(out, f)
		}
	}
	if p.hasIPv6 {
		ra := buildRA(p, old)
		if f := marshalRA(p, p.raSource, dst, ra); f != nil {
			out = append(out, f)
		}
	}
	return out
}

// buildRA returns p's router advertisement; when old has the same router,
// what old advertised and p does not is withdrawn with lifetime 0.
func buildRA(p *plan, old *plan) *ndp.RouterAdvertisement {
	life := p.routerLife
	ra := &ndp.RouterAdvertisement{
		CurrentHopLimit: raHopLimit,
		// M: addresses come from DHCPv6. O: other configuration (DNS) too.
		ManagedConfiguration: len(p.addrs6) > 0,
		OtherConfiguration:   len(p.addrs6) > 0 || len(p.dns6) > 0 || len(p.search) > 0,
		RouterLifetime:       p.raLife,
	}
	if p.raSLLA != nil {
		ra.Options = append(ra.Options, &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: p.raSLLA})
	}
	if p.mtu >= 1280 {
		ra.Options = append(ra.Options, ndp.NewMTU(uint32(p.mtu)))
	}
	for _, pfx := range p.onlink6 {
		// On-link, not autonomous: the guest takes its addresses from
		// DHCPv6 only, never one it makes up from the prefix.
		ra.Options = append(ra.Options, &ndp.PrefixInformation{
			PrefixLength: uint8(pfx.Bits()), OnLink: true,
			ValidLifetime: life, PreferredLifetime: life, Prefix: pfx.Addr(),
		})
	}
	for _, pfx := range p.routes6 {
		ra.Options = append(ra.Options, &ndp.RouteInformation{
			PrefixLength: uint8(pfx.Bits()), Preference: ndp.Medium, RouteLifetime: life, Prefix: pfx.Addr(),
		})
	}
	if len(p.dns6) > 0 {
		ra.Options = append(ra.Options, &ndp.RecursiveDNSServer{Lifetime: life, Servers: slices.Clone(p.dns6)})
	}
	if len(p.search) > 0 {
		ra.Options = append(ra.Options, &ndp.DNSSearchList{Lifetime: life, DomainNames: slices.Clone(p.search)})
	}
	if old != nil && old.raSource == p.raSource {
		addWithdrawals(ra, old, p)
	}
	return ra
}

// addWithdrawals appends to ra, with lifetime 0, what old advertised and
// cur does not.
func addWithdrawals(ra *ndp.RouterAdvertisement, old, cur *plan) {
	curOnlink, curRoutes, curDNS, curSearch := cur.onlink6, cur.routes6, cur.dns6, cur.search
	if !cur.hasIPv6 {
		curSearch = nil
	}
	for _, pfx := range old.onlink6 {
		if !slices.Contains(curOnlink, pfx) {
			ra.Options = append(ra.Options, &ndp.PrefixInformation{PrefixLength: uint8(pfx.Bits()), OnLink: true, Prefix: pfx.Addr()})
		}
	}
	for _, pfx := range old.routes6 {
		if !slices.Contains(curRoutes, pfx) {
			ra.Options = append(ra.Options, &ndp.RouteInformation{PrefixLength: uint8(pfx.Bits()), Preference: ndp.Medium, Prefix: pfx.Addr()})
		}
	}
	var gone []netip.Addr
	for _, s := range old.dns6 {
		if !slices.Contains(curDNS, s) {
			gone = append(gone, s)
		}
	}
	if len(gone) > 0 {
		ra.Options = append(ra.Options, &ndp.RecursiveDNSServer{Servers: gone})
	}
	var goneDomains []string
	for _, d := range old.search {
		if !slices.Contains(curSearch, d) {
			goneDomains = append(goneDomains, d)
		}
	}
	if len(goneDomains) > 0 {
		ra.Options = append(ra.Options, &ndp.DNSSearchList{DomainNames: goneDomains})
	}
}

// marshalRA frames ra from src to dst (Ethernet: the responder to the
// guest). Options that would make it longer than maxRA are left out from
// the end (withdrawals, then the search list, DNS servers, routes); nil if
// it cannot be marshalled.
func marshalRA(p *plan, src, dst netip.Addr, ra *ndp.RouterAdvertisement) []byte {
	for {
		msg, err := ndp.MarshalMessage(ra)
		if err != nil {
			return nil
		}
		if len(msg) <= maxRA || len(ra.Options) == 0 {
			f, err := ethframe.ICMPv6(p.respMAC, p.mac, src, dst, ndHopLimit, msg)
			if err != nil {
				return nil
			}
			return f
		}
		ra.Options = ra.Options[:len(ra.Options)-1]
	}
}
