package responder

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Defaults of [Config] and the timing of router advertisements; see the
// package documentation for why these values.
const (
	// DefaultLeaseTime is the DHCPv4 lease time and the DHCPv6 address
	// lifetime: 10 minutes, so that a client renews (T1, half the lease)
	// every 5 minutes and a change reaches it within 5 minutes, while it
	// keeps its addresses through a responder outage of 5 to 10 minutes.
	DefaultLeaseTime = 10 * time.Minute
	// DefaultRouterLifetime is the router lifetime of router advertisements
	// and the lifetime of their prefix, route and DNS options: three times
	// [AdvertiseInterval], as RFC 4861 recommends.
	DefaultRouterLifetime = 30 * time.Minute
	// AdvertiseInterval is the time between unsolicited router
	// advertisements in the steady state (RFC 4861's default
	// MaxRtrAdvInterval).
	AdvertiseInterval = 10 * time.Minute
	// InitialAdvertiseInterval is the time between the first few
	// unsolicited advertisements after New or SetConfig, and while
	// withdrawals are due (RFC 4861's MAX_INITIAL_RTR_ADVERT_INTERVAL).
	InitialAdvertiseInterval = 16 * time.Second
	// MinDelayBetweenAdvertisements is the least time between two
	// unsolicited advertisements (RFC 4861's MIN_DELAY_BETWEEN_RAS).
	MinDelayBetweenAdvertisements = 3 * time.Second
	// MinLeaseTime is the shortest LeaseTime a Config may ask for.
	MinLeaseTime = 2 * time.Second
	// DefaultRate and DefaultBurst bound how many configuration messages
	// per second (sustained, and in a burst) the responder answers for one
	// NIC; more are dropped and counted in [Stats].RateLimited.
	DefaultRate  = 4
	DefaultBurst = 32
)

// ErrInvalidConfig is wrapped by every error [New] and
// [Responder.SetConfig] return for a Config they refuse.
var ErrInvalidConfig = errors.New("invalid responder configuration")

// Config is what one guest NIC must be told: the CNI interface's
// addresses, routes, MTU and DNS as the pod's network namespace has them,
// and what the responder knows of the real IPv6 gateway. The zero values of
// the optional fields select the defaults documented on each.
type Config struct {
	// MAC is the guest NIC's MAC address. The responder answers only
	// frames whose Ethernet source (and, for DHCPv4, client hardware
	// address) it is, and sends every reply to it alone. Required.
	MAC net.HardwareAddr
	// MTU is the interface MTU, sent as DHCPv4 option 26 and in the router
	// advertisement's MTU option (when at least 1280). 0 sends none.
	MTU int
	// IPv4 are the interface's IPv4 addresses with their prefix lengths.
	// The first is the one DHCPv4 hands out (DHCP gives one address per
	// client); the others cannot be served by DHCP and must reach the guest
	// another way (the guest network document).
	IPv4 []netip.Prefix
	// IPv6 are the interface's global or unique-local IPv6 addresses with
	// their prefix lengths, all handed out by DHCPv6 in the client's first
	// IA_NA. A prefix shorter than /128 is also advertised as on-link.
	IPv6 []netip.Prefix
	// Routes are the interface's routes in the pod, both families, except
	// the kernel's prefix routes of its own addresses (those are skipped if
	// given). A route with Dst 0.0.0.0/0 or ::/0 is a default route.
	Routes []Route
	// DNS is the resolver configuration for the guest.
	DNS DNS
	// Gateway6 is the real IPv6 gateway of the CNI network, which router
	// advertisements name as the guest's router.
	Gateway6 Gateway
	// ServerIPv4 is the DHCPv4 server identifier and source address. The
	// default is the gateway of the IPv4 default route, else the gateway of
	// the first IPv4 route that has one, else an address of the primary
	// subnet that is not the guest's, else 169.254.0.1. Clients send
	// renewals to it by unicast, so whatever carries frames to the
	// responder must catch DHCP by UDP port, whatever the destination.
	ServerIPv4 netip.Addr
	// ResponderMAC is the Ethernet source of every frame the responder
	// sends (never a MAC the network knows). The default is
	// [DefaultResponderMAC] of MAC.
	ResponderMAC net.HardwareAddr
	// LeaseTime is the DHCPv4 lease time and DHCPv6 address lifetime, in
	// whole seconds, at least MinLeaseTime; the default is DefaultLeaseTime.
	LeaseTime time.Duration
	// RouterLifetime is the router lifetime of advertisements naming
	// Gateway6; the default is DefaultRouterLifetime.
	RouterLifetime time.Duration
	// Rate and Burst override DefaultRate and DefaultBurst when positive.
	Rate, Burst int
}

// Route is one route of the interface.
type Route struct {
	// Dst is the destination prefix.
	Dst netip.Prefix
	// Gateway is the next hop, of Dst's family; the zero Addr means the
	// destination is on-link.
	Gateway netip.Addr
	// MTU is the route's MTU (0 when it has none). Neither DHCPv4 nor router
	// advertisements carry a per-route MTU; it is kept for callers and
	// documentation only.
	MTU int
}

// DNS is the resolver configuration: what resolv.conf would hold.
type DNS struct {
	// Servers are the name servers: the IPv4 ones go in DHCPv4 option 6,
	// the IPv6 ones in DHCPv6 option 23 and the RDNSS option of router
	// advertisements.
	Servers []netip.Addr
	// Search are the search domains: DHCPv4 options 119 (and 15, the
	// first), DHCPv6 option 24 and the DNSSL option.
	Search []string
	// Options are resolver options (ndots:5, …). No DHCP or ND option
	// carries them; they are accepted and not sent.
	Options []string
}

// Gateway is what is known of the real IPv6 router.
type Gateway struct {
	// LinkLocal is the router's link-local address: the source address of
	// the router advertisements, so the guest's default route resolves to
	// the real router. The default is the gateway of the IPv6 default route
	// when that is link-local. Without it, advertisements come from the
	// responder's own link-local address with router lifetime 0: the guest
	// gets prefixes, MTU and DNS but no IPv6 default route.
	LinkLocal netip.Addr
	// Global is the router's global address, when the pod's routes name
	// that one; routes through LinkLocal or Global are the ones advertised.
	// The default is the gateway of the IPv6 default route when that is
	// not link-local.
	Global netip.Addr
	// MAC is the router's MAC, sent as the source link-layer address
	// option so the guest need not resolve it first; nil sends none.
	MAC net.HardwareAddr
}

// DefaultResponderMAC returns the responder's default Ethernet source for a
// guest MAC: the guest's MAC made locally administered and unicast with
// its last byte inverted, so it is never the guest's own.
func DefaultResponderMAC(guest net.HardwareAddr) net.HardwareAddr {
	m := slices.Clone(guest)
	if len(m) != 6 {
		return m
	}
	m[0] = (m[0] | 0x02) &^ 0x01
	m[5] ^= 0xff
	return m
}

// LinkLocalFromMAC returns the modified EUI-64 link-local address (RFC
// 4291) of a 6-byte MAC: the address a Linux interface with that MAC has
// under the default addr_gen_mode. A caller that knows only the gateway's
// MAC may use it as a candidate for [Gateway].LinkLocal, after checking
// that the gateway answers a neighbour solicitation for it.
func LinkLocalFromMAC(mac net.HardwareAddr) netip.Addr {
	if len(mac) != 6 {
		return netip.Addr{}
	}
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	a[8] = mac[0] ^ 0x02
	a[9], a[10] = mac[1], mac[2]
	a[11], a[12] = 0xff, 0xfe
	a[13], a[14], a[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(a)
}

// plan is a validated Config with everything the handlers need derived
// once.
type plan struct {
	mac, respMAC net.HardwareAddr
	respLL       netip.Addr
	mtu          int
	lease        time.Duration
	routerLife   time.Duration
	rate, burst  int

	// IPv4
	addr4    netip.Prefix // primary address; invalid when none
	server4  netip.Addr
	routes4  []Route // for option 121, in the order clients can install them
	router4  netip.Addr
	dns4     []netip.Addr
	search   []string
	extra4   []netip.Prefix
	hasIPv4  bool
	hasIPv6  bool
	dns6     []netip.Addr
	addrs6   []netip.Prefix
	onlink6  []netip.Prefix // PIO
	routes6  []netip.Prefix // RIO, through the advertised router
	raSource netip.Addr
	raSLLA   net.HardwareAddr
	raLife   time.Duration // router lifetime: 0 unless a default route goes through the gateway
	duid     []byte        // the DHCPv6 server DUID (DUID-LL of respMAC)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

func checkMAC(what string, m net.HardwareAddr) error {
	if len(m) != 6 {
		return invalid("%s %q is not a 6-byte Ethernet address", what, m)
	}
	if m[0]&1 != 0 || bytes.Equal(m, make(net.HardwareAddr, 6)) {
		return invalid("%s %s is not a unicast Ethernet address", what, m)
	}
	return nil
}

func checkUnicast(what string, a netip.Addr) error {
	if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a.Is4In6() ||
		(a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255})) {
		return invalid("%s %s is not a unicast address", what, a)
	}
	return nil
}

// checkDomain validates a search domain and returns it without a final dot.
func checkDomain(d string) (string, error) {
	d = strings.TrimSuffix(d, ".")
	if d == "" || len(d) > 253 {
		return "", invalid("search domain %q is empty or longer than 253 bytes", d)
	}
	for _, l := range strings.Split(d, ".") {
		if l == "" || len(l) > 63 {
			return "", invalid("search domain %q has an empty label or one longer than 63 bytes", d)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if c <= ' ' || c >= 0x7f {
				return "", invalid("search domain %q has a byte %#x that is not printable ASCII", d, c)
			}
		}
	}
	return d, nil
}

func newPlan(c Config) (*plan, error) {
	p := &plan{mtu: c.MTU, lease: DefaultLeaseTime, routerLife: DefaultRouterLifetime, rate: DefaultRate, burst: DefaultBurst}
	steps := []func(Config) error{p.setBasics, p.setAddresses, p.setDNS, checkGateway6}
	for _, step := range steps {
		if err := step(c); err != nil {
			return nil, err
		}
	}
	routes4, default6, routes6, err := p.splitRoutes(c.Routes)
	if err != nil {
		return nil, err
	}
	if err := p.setIPv4Routes(c, routes4); err != nil {
		return nil, err
	}
	p.setIPv6Routes(c.Gateway6, default6, routes6)
	p.hasIPv4 = p.addr4.IsValid()
	p.hasIPv6 = len(p.addrs6) > 0 || len(p.dns6) > 0 || p.raLife > 0 || len(p.routes6) > 0 || len(p.onlink6) > 0
	return p, nil
}

// setBasics checks and takes the MACs, the MTU, the lifetimes and the rate
// limit of c.
func (p *plan) setBasics(c Config) error {
	if err := checkMAC("guest MAC", c.MAC); err != nil {
		return err
	}
	p.mac = slices.Clone(c.MAC)
	p.respMAC = DefaultResponderMAC(p.mac)
	if c.ResponderMAC != nil {
		if err := checkMAC("responder MAC", c.ResponderMAC); err != nil {
			return err
		}
		if bytes.Equal(c.ResponderMAC, c.MAC) {
			return invalid("responder MAC %s is the guest's own MAC", c.ResponderMAC)
		}
		p.respMAC = slices.Clone(c.ResponderMAC)
	}
	p.respLL = LinkLocalFromMAC(p.respMAC)
	p.duid = append([]byte{0, 3, 0, 1}, p.respMAC...)
	if c.MTU != 0 && (c.MTU < 68 || c.MTU > 65535) {
		return invalid("MTU %d is outside 68..65535", c.MTU)
	}
	if c.LeaseTime != 0 {
		if c.LeaseTime < MinLeaseTime || c.LeaseTime%time.Second != 0 || c.LeaseTime > 0xfffffffe*time.Second {
			return invalid("lease time %s is not a whole number of seconds between %s and 2^32-2 s", c.LeaseTime, MinLeaseTime)
		}
		p.lease = c.LeaseTime
	}
	if c.RouterLifetime != 0 {
		if c.RouterLifetime < time.Second || c.RouterLifetime%time.Second != 0 || c.RouterLifetime > 9000*time.Second {
			return invalid("router lifetime %s is not a whole number of seconds between 1 s and 9000 s (RFC 4861)", c.RouterLifetime)
		}
		p.routerLife = c.RouterLifetime
	}
	if c.Rate > 0 {
		p.rate = c.Rate
	}
	if c.Burst > 0 {
		p.burst = c.Burst
	}
	return nil
}

// setAddresses checks and takes the IPv4 and IPv6 addresses of c; an IPv6
// prefix shorter than /128 is on-link.
func (p *plan) setAddresses(c Config) error {
	for i, a := range c.IPv4 {
		if !a.IsValid() || !a.Addr().Is4() {
			return invalid("IPv4 address %s is not an IPv4 prefix", a)
		}
		if err := checkUnicast("IPv4 address", a.Addr()); err != nil {
			return err
		}
		if i == 0 {
			p.addr4 = a
		} else {
			p.extra4 = append(p.extra4, a)
		}
	}
	for _, a := range c.IPv6 {
		if !a.IsValid() || !a.Addr().Is6() || a.Addr().Is4In6() {
			return invalid("IPv6 address %s is not an IPv6 prefix", a)
		}
		if err := checkUnicast("IPv6 address", a.Addr()); err != nil {
			return err
		}
		if a.Addr().IsLinkLocalUnicast() {
			return invalid("IPv6 address %s is link-local: the guest makes its own", a)
		}
		if a.Addr().Zone() != "" {
			return invalid("IPv6 address %s has a zone", a)
		}
		p.addrs6 = append(p.addrs6, a)
		if a.Bits() < 128 && !slices.Contains(p.onlink6, a.Masked()) {
			p.onlink6 = append(p.onlink6, a.Masked())
		}
	}
	return nil
}

// setDNS checks and takes the DNS servers and search domains of c.
func (p *plan) setDNS(c Config) error {
	for _, s := range c.DNS.Servers {
		if err := checkUnicast("DNS server", s); err != nil {
			return err
		}
		if s.Is4() {
			p.dns4 = append(p.dns4, s)
		} else {
			p.dns6 = append(p.dns6, s.WithZone(""))
		}
	}
	for _, d := range c.DNS.Search {
		d, err := checkDomain(d)
		if err != nil {
			return err
		}
		p.search = append(p.search, d)
	}
	return nil
}

// checkGateway6 checks the IPv6 gateway of c.
func checkGateway6(c Config) error {
	gw := c.Gateway6
	if gw.LinkLocal.IsValid() && (!gw.LinkLocal.Is6() || !gw.LinkLocal.IsLinkLocalUnicast()) {
		return invalid("IPv6 gateway link-local address %s is not link-local", gw.LinkLocal)
	}
	if gw.Global.IsValid() {
		if err := checkUnicast("IPv6 gateway address", gw.Global); err != nil {
			return err
		}
		if !gw.Global.Is6() {
			return invalid("IPv6 gateway address %s is not IPv6", gw.Global)
		}
	}
	if gw.MAC != nil {
		if err := checkMAC("IPv6 gateway MAC", gw.MAC); err != nil {
			return err
		}
	}
	return nil
}

// splitRoutes checks routes and sorts them: the IPv4 ones (but the prefix
// route of the primary address, which is implied), the first IPv6
// default route, and the other IPv6 ones (but the on-link routes of the
// addresses' prefixes).
func (p *plan) splitRoutes(routes []Route) (routes4 []Route, default6 *Route, routes6 []Route, err error) {
	for _, r := range routes {
		if !r.Dst.IsValid() {
			return nil, nil, nil, invalid("route destination %s is not a prefix", r.Dst)
		}
		r.Dst = r.Dst.Masked()
		v4 := r.Dst.Addr().Is4()
		if r.Gateway.IsValid() {
			if r.Gateway.Is4() != v4 || r.Gateway.Is4In6() {
				return nil, nil, nil, invalid("route to %s has a gateway %s of the other family", r.Dst, r.Gateway)
			}
			if err := checkUnicast("gateway of the route to "+r.Dst.String(), r.Gateway); err != nil {
				return nil, nil, nil, err
			}
		}
		switch {
		case v4 && !r.Gateway.IsValid() && p.addr4.IsValid() && r.Dst == p.addr4.Masked():
		case v4:
			routes4 = append(routes4, r)
		case !r.Gateway.IsValid() && slices.Contains(p.onlink6, r.Dst):
		case r.Dst.Bits() == 0:
			if default6 == nil {
				rr := r
				default6 = &rr
			}
		default:
			routes6 = append(routes6, r)
		}
	}
	return routes4, default6, routes6, nil
}

// setIPv4Routes orders the IPv4 routes for option 121, takes the router of
// the default route, and the DHCPv4 server identifier.
func (p *plan) setIPv4Routes(c Config, routes4 []Route) error {
	p.routes4 = orderRoutes4(routes4, p.addr4)
	for _, r := range p.routes4 {
		if r.Dst.Bits() == 0 && r.Gateway.IsValid() && !p.router4.IsValid() {
			p.router4 = r.Gateway
		}
	}
	p.server4 = c.ServerIPv4
	if p.server4.IsValid() {
		if !p.server4.Is4() {
			return invalid("DHCPv4 server identifier %s is not IPv4", p.server4)
		}
		if err := checkUnicast("DHCPv4 server identifier", p.server4); err != nil {
			return err
		}
	} else {
		p.server4 = defaultServer4(p.router4, p.routes4, p.addr4)
	}
	if p.addr4.IsValid() && p.server4 == p.addr4.Addr() {
		return invalid("DHCPv4 server identifier %s is the guest's own address", p.server4)
	}
	return nil
}

// setIPv6Routes makes the router advertised the real gateway, when its
// link-local address is known: routes through it become the router
// lifetime (the default route) and route information options; on-link
// routes become on-link prefixes.
func (p *plan) setIPv6Routes(gw Gateway, default6 *Route, routes6 []Route) {
	global := gw.Global
	if default6 != nil && default6.Gateway.IsValid() {
		switch g := default6.Gateway.WithZone(""); {
		case !g.IsLinkLocalUnicast() && !global.IsValid():
			global = g
		case g.IsLinkLocalUnicast() && !gw.LinkLocal.IsValid():
			// A default route through a link-local address (Calico) names
			// the gateway's link-local address itself.
			gw.LinkLocal = g
		}
	}
	viaGateway := func(r Route) bool {
		if !r.Gateway.IsValid() {
			return false
		}
		g := r.Gateway.WithZone("")
		return (gw.LinkLocal.IsValid() && g == gw.LinkLocal.WithZone("")) || (global.IsValid() && g == global)
	}
	p.raSource, p.raSLLA = p.respLL, p.respMAC
	if gw.LinkLocal.IsValid() {
		p.raSource, p.raSLLA = gw.LinkLocal.WithZone(""), slices.Clone(gw.MAC)
		if default6 != nil && viaGateway(*default6) {
			p.raLife = p.routerLife
		}
		for _, r := range routes6 {
			if viaGateway(r) && !slices.Contains(p.routes6, r.Dst) {
				p.routes6 = append(p.routes6, r.Dst)
			}
		}
	}
	for _, r := range routes6 {
		if !r.Gateway.IsValid() && !slices.Contains(p.onlink6, r.Dst) {
			p.onlink6 = append(p.onlink6, r.Dst)
		}
	}
}

// orderRoutes4 returns the IPv4 routes in an order in which a client can
// install them one by one: on-link routes first, then routes through a
// gateway, most specific first, the default route last. A gateway that is
// neither inside the primary subnet nor covered by an on-link route (a
// Calico- or Cilium-style /32 whose gateway is reached "onlink") gets an
// on-link host route of its own in front, so the routes through it can be
// installed.
func orderRoutes4(routes []Route, addr netip.Prefix) []Route {
	var onlink, via []Route
	for _, r := range routes {
		if r.Gateway.IsValid() {
			via = append(via, r)
		} else {
			onlink = append(onlink, r)
		}
	}
	reachable := func(g netip.Addr) bool {
		if addr.IsValid() && addr.Contains(g) {
			return true
		}
		for _, r := range onlink {
			if r.Dst.Contains(g) {
				return true
			}
		}
		return false
	}
	for _, r := range via {
		if !reachable(r.Gateway) {
			onlink = append(onlink, Route{Dst: netip.PrefixFrom(r.Gateway, 32)})
		}
	}
	slices.SortStableFunc(via, func(a, b Route) int { return cmp.Compare(b.Dst.Bits(), a.Dst.Bits()) })
	return append(onlink, via...)
}

func defaultServer4(router netip.Addr, routes []Route, addr netip.Prefix) netip.Addr {
	if router.IsValid() {
		return router
	}
	for _, r := range routes {
		if r.Gateway.IsValid() {
			return r.Gateway
		}
	}
	if addr.IsValid() && addr.Bits() <= 30 {
		// The last host address of the subnet, or the first if that is the
		// guest's own.
		base := addr.Masked().Addr().As4()
		n := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
		last := n | (1<<(32-addr.Bits()) - 1) - 1
		cand := netip.AddrFrom4([4]byte{byte(last >> 24), byte(last >> 16), byte(last >> 8), byte(last)})
		if cand == addr.Addr() {
			cand = netip.AddrFrom4([4]byte{byte((n + 1) >> 24), byte((n + 1) >> 16), byte((n + 1) >> 8), byte(n + 1)})
		}
		return cand
	}
	return netip.AddrFrom4([4]byte{169, 254, 0, 1})
}
