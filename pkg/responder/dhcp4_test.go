package responder

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

func routesString(rs []*dhcpv4.Route) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.Dest.String()+" "+r.Router.String())
	}
	return strings.Join(s, ", ")
}

func TestDHCPv4OfferCarriesTheNIC(t *testing.T) {
	r := mustNew(t, bridgeConfig())
	offer := one(t, r, r.Handle(dhcp4Req(t, dhcp4Msg(t, dhcpv4.MessageTypeDiscover)), t0))
	if offer.SrcIP != ip("10.1.0.1") || offer.DstIP != ip("10.1.0.5") {
		t.Errorf("OFFER %s -> %s, want 10.1.0.1 -> 10.1.0.5 (unicast: no broadcast flag)", offer.SrcIP, offer.DstIP)
	}
	m := decode4(t, offer)
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"op", m.OpCode, dhcpv4.OpcodeBootReply},
		{"message type", m.MessageType(), dhcpv4.MessageTypeOffer},
		{"xid", m.TransactionID, dhcpv4.TransactionID{1, 2, 3, 4}},
		{"chaddr", m.ClientHWAddr.String(), guestMAC.String()},
		{"yiaddr", m.YourIPAddr.String(), "10.1.0.5"},
		{"ciaddr", m.ClientIPAddr.String(), "0.0.0.0"},
		{"siaddr", m.ServerIPAddr.String(), "0.0.0.0"},
		{"server identifier", m.ServerIdentifier().String(), "10.1.0.1"},
		{"subnet mask", m.SubnetMask().String(), "ffffff00"},
		{"broadcast", m.BroadcastAddress().String(), "10.1.0.255"},
		{"router", m.Router()[0].String(), "10.1.0.1"},
		{"routers", len(m.Router()), 1},
		{"lease", m.IPAddressLeaseTime(0), 10 * time.Minute},
		{"T1", m.IPAddressRenewalTime(0), 5 * time.Minute},
		{"T2", m.IPAddressRebindingTime(0), 525 * time.Second},
		{"classless routes", routesString(m.ClasslessStaticRoute()), "192.0.2.0/24 10.1.0.254, 0.0.0.0/0 10.1.0.1"},
		{"MTU", m.Options.Get(dhcpv4.OptionInterfaceMTU), []byte{0x05, 0xaa}},
		{"DNS", m.DNS()[0].String(), "10.96.0.10"},
		{"DNS count", len(m.DNS()), 1},
		{"domain name", m.DomainName(), "default.svc.cluster.local"},
		{"search", strings.Join(m.DomainSearch().Labels, " "), "default.svc.cluster.local svc.cluster.local cluster.local"},
		{"client id echoed", m.Options.Get(dhcpv4.OptionClientIdentifier), append([]byte{1}, guestMAC...)},
		{"no 249 unasked", m.Options.Has(dhcpv4.GenericOptionCode(249)), false},
	} {
		if !bytesOrEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

func bytesOrEqual(a, b any) bool {
	if ab, ok := a.([]byte); ok {
		bb, ok := b.([]byte)
		return ok && bytes.Equal(ab, bb)
	}
	return a == b
}

// TestDHCPv4CalicoStyle checks a /32 address whose gateway is reached
// on-link: mask /32, no broadcast option, the on-link host route to the
// gateway before the default route through it.
func TestDHCPv4CalicoStyle(t *testing.T) {
	r := mustNew(t, calicoConfig())
	m := decode4(t, one(t, r, r.Handle(dhcp4Req(t, dhcp4Msg(t, dhcpv4.MessageTypeDiscover)), t0)))
	if got := m.SubnetMask().String(); got != "ffffffff" {
		t.Errorf("mask %s, want ffffffff", got)
	}
	if m.Options.Has(dhcpv4.OptionBroadcastAddress) {
		t.Error("broadcast address option for a /32")
	}
	if got, want := routesString(m.ClasslessStaticRoute()), "169.254.1.1/32 0.0.0.0, 0.0.0.0/0 169.254.1.1"; got != want {
		t.Errorf("classless routes %q, want %q", got, want)
	}
	if got := m.ServerIdentifier().String(); got != "169.254.1.1" {
		t.Errorf("server identifier %s, want the gateway 169.254.1.1", got)
	}
}

// TestDHCPv4OnlinkGatewayGetsHostRoute checks that a gateway outside the
// subnet with no on-link route (an "onlink" route in the pod) gets a host
// route of its own first.
func TestDHCPv4OnlinkGatewayGetsHostRoute(t *testing.T) {
	c := Config{MAC: guestMAC, IPv4: []netip.Prefix{pfx("10.0.0.9/32")}, Routes: []Route{{Dst: pfx("0.0.0.0/0"), Gateway: ip("10.0.0.1")}}}
	r := mustNew(t, c)
	m := decode4(t, one(t, r, r.Handle(dhcp4Req(t, dhcp4Msg(t, dhcpv4.MessageTypeDiscover)), t0)))
	if got, want := routesString(m.ClasslessStaticRoute()), "10.0.0.1/32 0.0.0.0, 0.0.0.0/0 10.0.0.1"; got != want {
		t.Errorf("classless routes %q, want %q", got, want)
	}
}

// TestDHCPv4NoDefaultRouteNoRouter checks that a NIC without a default
// route (a second network) gives no router option, only its routes.
func TestDHCPv4NoDefaultRouteNoRouter(t *testing.T) {
	c := Config{MAC: guestMAC, IPv4: []netip.Prefix{pfx("172.16.5.5/24")}, Routes: []Route{
		{Dst: pfx("172.16.0.0/16"), Gateway: ip("172.16.5.1")},
		{Dst: pfx("172.16.5.0/24")},
	}}
	r := mustNew(t, c)
	m := decode4(t, one(t, r, r.Handle(dhcp4Req(t, dhcp4Msg(t, dhcpv4.MessageTypeDiscover)), t0)))
	if m.Options.Has(dhcpv4.OptionRouter) {
		t.Errorf("router option %v on a NIC without a default route", m.Router())
	}
	if got, want := routesString(m.ClasslessStaticRoute()), "172.16.0.0/16 172.16.5.1"; got != want {
		t.Errorf("classless routes %q, want %q", got, want)
	}
	if got := m.ServerIdentifier().String(); got != "172.16.5.1" {
		t.Errorf("server identifier %s, want the first gateway", got)
	}
	// No routes at all: no 121 either, and a server identifier in the subnet.
	r = mustNew(t, Config{MAC: guestMAC, IPv4: []netip.Prefix{pfx("172.16.5.5/24")}})
	m = decode4(t, one(t, r, r.Handle(dhcp4Req(t, dhcp4Msg(t, dhcpv4.MessageTypeDiscover)), t0)))
	if m.Options.Has(dhcpv4.OptionRouter) || m.Options.Has(dhcpv4.OptionClasslessStaticRoute) {
		t.Error("router or classless routes without routes")
	}
	if got := m.ServerIdentifier().String(); got != "172.16.5.254" {
		t.Errorf("server identifier %s, want 172.16.5.254", got)
	}
}

func TestDHCPv4Option249OnlyWhenAsked(t *testing.T) {
	r := mustNew(t, bridgeConfig())
	req := dhcp4Msg(t, dhcpv4.MessageTypeDiscover, dhcpv4.WithRequestedOptions(dhcpv4.OptionClasslessStaticRoute, dhcpv4.GenericOptionCode(249)))
	m := decode4(t, one(t, r, r.Handle(dhcp4Req(t, req), t0)))
	if got, want := m.Options.Get(dhcpv4.GenericOptionCode(249)), m.Options.Get(dhcpv4.OptionClasslessStaticRoute); len(want) == 0 || !bytes.Equal(got, want) {
		t.Errorf("option 249 = %x, want the same as 121 = %x", got, want)
	}
}

func TestDHCPv4BroadcastFlag(t *testing.T) {
	r := mustNew(t, bridgeConfig())
	p := one(t, r, r.Handle(dhcp4Req(t, dhcp4Msg(t, dhcpv4.MessageTypeDiscover, dhcpv4.WithBroadcast(true))), t0))
	if p.DstIP != bcast4 {
		t.Errorf("OFFER to %s with the broadcast flag, want 255.255.255.255", p.DstIP)
	}
	if !decode4(t, p).IsBroadcast() {
		t.Error("broadcast flag not echoed")
	}
}

func TestDHCPv4Request(t *testing.T) {
	r := mustNew(t, bridgeConfig())
	serverID := dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 1, 0, 1)))
	requested := func(s string) dhcpv4.Modifier {
		return dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP(s)))
	}
	for _, tc := range []struct {
		name   string
		mods   []dhcpv4.Modifier
		want   dhcpv4.MessageType // 0: no reply
		dst    string
		ciaddr string
	}{
		{"selecting", []dhcpv4.Modifier{serverID, requested("10.1.0.5")}, dhcpv4.MessageTypeAck, "10.1.0.5", "0.0.0.0"},
		{"selecting wrong address", []dhcpv4.Modifier{serverID, requested("10.1.0.6")}, dhcpv4.MessageTypeNak, "255.255.255.255", "0.0.0.0"},
		{"selecting another server", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 1, 0, 2))), requested("10.1.0.5")}, 0, "", ""},
		{"init-reboot", []dhcpv4.Modifier{requested("10.1.0.5")}, dhcpv4.MessageTypeAck, "10.1.0.5", "0.0.0.0"},
		{"init-reboot moved", []dhcpv4.Modifier{requested("192.168.9.9")}, dhcpv4.MessageTypeNak, "255.255.255.255", "0.0.0.0"},
		{"renewing", []dhcpv4.Modifier{dhcpv4.WithClientIP(net.IPv4(10, 1, 0, 5))}, dhcpv4.MessageTypeAck, "10.1.0.5", "10.1.0.5"},
		{"renewing lost address", []dhcpv4.Modifier{dhcpv4.WithClientIP(net.IPv4(10, 1, 0, 77))}, dhcpv4.MessageTypeNak, "255.255.255.255", "0.0.0.0"},
		{"no address at all", nil, 0, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := r.Stats()
			out := r.Handle(dhcp4Req(t, dhcp4Msg(t, dhcpv4.MessageTypeRequest, tc.mods...)), t0)
			if tc.want == 0 {
				none(t, out)
				if d := statsDelta(before, r.Stats()); d.Unsupported+d.Malformed != 1 {
					t.Errorf("stats delta %+v, want one unsupported or malformed", d)
				}
				return
			}
			p := one(t, r, out)
			m := decode4(t, p)
			if m.MessageType() != tc.want || p.DstIP.String() != tc.dst || m.ClientIPAddr.String() != tc.ciaddr {
				t.Fatalf("got %s to %s ciaddr %s, want %s to %s ciaddr %s", m.MessageType(), p.DstIP, m.ClientIPAddr, tc.want, tc.dst, tc.ciaddr)
			}
			if tc.want == dhcpv4.MessageTypeNak {
				if !m.YourIPAddr.IsUnspecified() || m.Options.Has(dhcpv4.OptionIPAddressLeaseTime) || m.Options.Has(dhcpv4.OptionRouter) {
					t.Errorf("NAK carries an address or configuration: %s", m.Summary())
				}
				if m.ServerIdentifier().String() != "10.1.0.1" {
					t.Error("NAK without server identifier")
				}
				return
			}
			if m.YourIPAddr.String() != "10.1.0.5" || m.IPAddressLeaseTime(0) != DefaultLeaseTime || len(m.ClasslessStaticRoute()) != 2 {
				t.Errorf("ACK lacks the lease: %s", m.Summary())
			}
		})
	}
}

func TestDHCPv4Inform(t *testing.T) {
	r := mustNew(t, bridgeConfig())
	req := dhcp4Msg(t, dhcpv4.MessageTypeInform, dhcpv4.WithClientIP(net.IPv4(10, 1, 0, 6)))
	p := one(t, r, r.Handle(dhcp4Req(t, req), t0))
	m := decode4(t, p)
	if m.MessageType() != dhcpv4.MessageTypeAck || p.DstIP != ip("10.1.0.6") || m.ClientIPAddr.String() != "10.1.0.6" {
		t.Errorf("INFORM answered with %s to %s, ciaddr %s", m.MessageType(), p.DstIP, m.ClientIPAddr)
	}
	if !m.YourIPAddr.IsUnspecified() || m.Options.Has(dhcpv4.OptionIPAddressLeaseTime) || m.Options.Has(dhcpv4.OptionRenewTimeValue) {
		t.Errorf("INFORM ACK carries a lease: %s", m.Summary())
	}
	if len(m.DNS()) != 1 || len(m.ClasslessStaticRoute()) != 2 || len(m.Router()) != 1 {
		t.Errorf("INFORM ACK lacks the configuration: %s", m.Summary())
	}
	// Without ciaddr an INFORM is malformed.
	before := r.Stats()
	none(t, r.Handle(dhcp4Req(t, dhcp4Msg(t, dhcpv4.MessageTypeInform)), t0))
	if d := statsDelta(before, r.Stats()); d.Malformed != 1 {
		t.Errorf("stats delta %+v, want one malformed", d)
	}
}

func TestDHCPv4ReleaseAndDecline(t *testing.T) {
	r := mustNew(t, bridgeConfig())
	none(t, r.Handle(dhcp4Req(t, dhcp4Msg(t, dhcpv4.MessageTypeRelease, dhcpv4.WithClientIP(net.IPv4(10, 1, 0, 5)))), t0))
	none(t, r.Handle(dhcp4Req(t, dhcp4Msg(t, dhcpv4.MessageTypeDecline, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 1, 0, 5))))), t0))
	s := r.Stats()
	if s.Silent != 2 || s.Declined != 1 || s.Answered != 0 {
		t.Errorf("stats %+v, want 2 silent, 1 declined", s)
	}
}

// TestDHCPv4AddressChangeAtRenewal checks that after SetConfig a renewal of
// the old address is refused, by a NAK from the server the client knows
// (clients ignore a NAK from another server), and that the client's new
// DISCOVER gets the new address.
func TestDHCPv4AddressChangeAtRenewal(t *testing.T) {
	c := bridgeConfig()
	r := mustNew(t, c)
	renewMsg := dhcp4Msg(t, dhcpv4.MessageTypeRequest, dhcpv4.WithClientIP(net.IPv4(10, 1, 0, 5)))
	// Renewing: unicast to the server identifier. Rebinding: broadcast.
	renew := dhcp4Frame(t, guestMAC, ip("10.1.0.5"), ip("10.1.0.1"), renewMsg.ToBytes())
	rebind := dhcp4Frame(t, guestMAC, ip("10.1.0.5"), bcast4, renewMsg.ToBytes())
	if m := decode4(t, one(t, r, r.Handle(renew, t0))); m.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("renewal before the change: %s", m.MessageType())
	}
	c.IPv4 = []netip.Prefix{pfx("10.2.0.9/16")}
	c.Routes = []Route{{Dst: pfx("0.0.0.0/0"), Gateway: ip("10.2.0.1")}}
	if err := r.SetConfig(c); err != nil {
		t.Fatal(err)
	}
	p := one(t, r, r.Handle(renew, t0))
	if m := decode4(t, p); m.MessageType() != dhcpv4.MessageTypeNak || m.ServerIdentifier().String() != "10.1.0.1" || p.SrcIP != ip("10.1.0.1") {
		t.Fatalf("renewal of the old address after the change: %s from %s (%s), want a NAK from 10.1.0.1", m.MessageType(), m.ServerIdentifier(), p.SrcIP)
	}
	out := r.Handle(rebind, t0)
	var servers []string
	for _, f := range out {
		m := decode4(t, checkFrame(t, r, f))
		if m.MessageType() != dhcpv4.MessageTypeNak {
			t.Errorf("rebinding answered with %s", m.MessageType())
		}
		servers = append(servers, m.ServerIdentifier().String())
	}
	if got := strings.Join(servers, " "); got != "10.2.0.1 10.1.0.1" {
		t.Errorf("rebinding NAKed from %q, want from every server identifier used, newest first", got)
	}
	m := decode4(t, one(t, r, r.Handle(dhcp4Req(t, dhcp4Msg(t, dhcpv4.MessageTypeDiscover)), t0)))
	if m.YourIPAddr.String() != "10.2.0.9" || m.SubnetMask().String() != "ffff0000" || m.Router()[0].String() != "10.2.0.1" || m.ServerIdentifier().String() != "10.2.0.1" {
		t.Errorf("offer after the change: %s", m.Summary())
	}
	// A REQUEST for an offer made before the change is answered (NAK).
	sel := dhcp4Msg(t, dhcpv4.MessageTypeRequest, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 1, 0, 1))), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 1, 0, 5))))
	if m := decode4(t, one(t, r, r.Handle(dhcp4Req(t, sel), t0))); m.MessageType() != dhcpv4.MessageTypeNak || m.ServerIdentifier().String() != "10.1.0.1" {
		t.Errorf("selecting an old offer: %s from %s, want a NAK from 10.1.0.1", m.MessageType(), m.ServerIdentifier())
	}
	// The address goes away entirely: renewals are refused, discovers unanswered.
	c.IPv4, c.Routes = nil, nil
	if err := r.SetConfig(c); err != nil {
		t.Fatal(err)
	}
	if m := decode4(t, one(t, r, r.Handle(renew, t0))); m.MessageType() != dhcpv4.MessageTypeNak {
		t.Errorf("renewal with no address: %s, want NAK", m.MessageType())
	}
	none(t, r.Handle(dhcp4Req(t, dhcp4Msg(t, dhcpv4.MessageTypeDiscover)), t0))
}

// TestServerIDHistoryBounded checks that a long run of changes keeps only
// the last few server identifiers (one NAK each at most).
func TestServerIDHistoryBounded(t *testing.T) {
	c := bridgeConfig()
	r := mustNew(t, c)
	for i := 0; i < 10; i++ {
		c.ServerIPv4 = netip.AddrFrom4([4]byte{10, 1, 0, byte(100 + i)})
		if err := r.SetConfig(c); err != nil {
			t.Fatal(err)
		}
	}
	c.ServerIPv4 = ip("10.1.0.105") // used before: moves to the front
	if err := r.SetConfig(c); err != nil {
		t.Fatal(err)
	}
	out := r.Handle(dhcp4Req(t, dhcp4Msg(t, dhcpv4.MessageTypeRequest, dhcpv4.WithClientIP(net.IPv4(10, 1, 0, 99)))), t0)
	var servers []string
	for _, f := range out {
		servers = append(servers, decode4(t, checkFrame(t, r, f)).ServerIdentifier().String())
	}
	if got := strings.Join(servers, " "); got != "10.1.0.105 10.1.0.109 10.1.0.108 10.1.0.107" {
		t.Errorf("NAKs from %q", got)
	}
}

// TestDHCPv4MaxMessageSize checks that a reply too large for the client
// leaves out the search list rather than being dropped by it.
func TestDHCPv4MaxMessageSize(t *testing.T) {
	c := bridgeConfig()
	for i := 0; i < 12; i++ {
		c.DNS.Search = append(c.DNS.Search, strings.Repeat("x", 20)+".example.org")
	}
	r := mustNew(t, c)
	m := decode4(t, one(t, r, r.Handle(dhcp4Req(t, dhcp4Msg(t, dhcpv4.MessageTypeDiscover)), t0)))
	if m.Options.Has(dhcpv4.OptionDNSDomainSearchList) || len(m.ToBytes()) > 576-28 {
		t.Errorf("reply of %d bytes to a client without max size keeps the search list", len(m.ToBytes()))
	}
	if len(m.ClasslessStaticRoute()) != 2 {
		t.Error("routes were dropped instead of the search list")
	}
	big := dhcp4Msg(t, dhcpv4.MessageTypeDiscover, dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(1500)))
	m = decode4(t, one(t, r, r.Handle(dhcp4Req(t, big), t0)))
	if got := len(m.DomainSearch().Labels); got != len(c.DNS.Search) {
		t.Errorf("search list of %d domains to a client accepting 1500 bytes, want %d", got, len(c.DNS.Search))
	}
}

// TestDHCPv4LongRoutesOption checks that more routes than one option holds
// are split into several instances (RFC 3396) and decode back whole.
func TestDHCPv4LongRoutesOption(t *testing.T) {
	c := bridgeConfig()
	for i := 0; i < 40; i++ {
		c.Routes = append(c.Routes, Route{Dst: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i), 0}), 24), Gateway: ip("10.1.0.254")})
	}
	r := mustNew(t, c)
	req := dhcp4Msg(t, dhcpv4.MessageTypeDiscover, dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(1500)))
	m := decode4(t, one(t, r, r.Handle(dhcp4Req(t, req), t0)))
	if got := len(m.ClasslessStaticRoute()); got != 42 {
		t.Errorf("%d classless routes decoded, want 42", got)
	}
}

// TestDHCPv4NotTheGuest checks that requests on behalf of another MAC are
// dropped: another Ethernet source, another client hardware address, an
// Ethernet client identifier of another MAC; and that a DUID client
// identifier is accepted.
func TestDHCPv4NotTheGuest(t *testing.T) {
	r := mustNew(t, bridgeConfig())
	disc := dhcp4Msg(t, dhcpv4.MessageTypeDiscover)
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"Ethernet source", dhcp4Frame(t, otherMAC, zero4, bcast4, disc.ToBytes())},
		{"chaddr", dhcp4Req(t, dhcp4Msg(t, dhcpv4.MessageTypeDiscover, dhcpv4.WithHwAddr(otherMAC)))},
		{"client id", dhcp4Req(t, dhcp4Msg(t, dhcpv4.MessageTypeDiscover, dhcpv4.WithOption(dhcpv4.OptClientIdentifier(append([]byte{1}, otherMAC...)))))},
		{"client id short", dhcp4Req(t, dhcp4Msg(t, dhcpv4.MessageTypeDiscover, dhcpv4.WithOption(dhcpv4.OptClientIdentifier([]byte{1, 0x52}))))},
		{"hardware type", dhcp4Req(t, dhcp4Msg(t, dhcpv4.MessageTypeDiscover, dhcpv4.WithHWType(iana.HWTypeInfiniband)))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := r.Stats()
			none(t, r.Handle(tc.frame, t0))
			if d := statsDelta(before, r.Stats()); d.NotGuest != 1 || d.Frames != 1 {
				t.Errorf("stats delta %+v, want one not-guest", d)
			}
		})
	}
	duid := append([]byte{255, 0, 0, 0, 1, 0, 4}, make([]byte, 16)...)
	m := decode4(t, one(t, r, r.Handle(dhcp4Req(t, dhcp4Msg(t, dhcpv4.MessageTypeDiscover, dhcpv4.WithOption(dhcpv4.OptClientIdentifier(duid)))), t0)))
	if !bytes.Equal(m.Options.Get(dhcpv4.OptionClientIdentifier), duid) {
		t.Error("DUID client identifier not echoed")
	}
}

// TestDHCPv4BadInput checks that malformed, relayed, server-side and
// unknown messages are dropped and counted.
func TestDHCPv4BadInput(t *testing.T) {
	r := mustNew(t, bridgeConfig())
	good := dhcp4Msg(t, dhcpv4.MessageTypeDiscover).ToBytes()
	reply := dhcp4Msg(t, dhcpv4.MessageTypeOffer)
	reply.OpCode = dhcpv4.OpcodeBootReply
	noType := dhcp4Msg(t, dhcpv4.MessageTypeDiscover)
	noType.Options.Del(dhcpv4.OptionDHCPMessageType)
	twoTypes := dhcp4Msg(t, dhcpv4.MessageTypeDiscover, dhcpv4.WithGeneric(dhcpv4.OptionDHCPMessageType, []byte{1, 1}))
	// Options truncated: the last option's length runs past the end.
	trunc := slices.Clone(good[:240])
	trunc = append(trunc, 53, 1, 1, 61, 200, 1, 2)
	for _, tc := range []struct {
		name    string
		payload []byte
		want    string
	}{
		{"empty", nil, "malformed"},
		{"header only", good[:100], "malformed"},
		{"bad cookie", append(slices.Clone(good[:236]), 1, 2, 3, 4, 255), "malformed"},
		{"truncated option", trunc, "malformed"},
		{"no end option", good[:243], "malformed"},
		{"no message type", noType.ToBytes(), "malformed"},
		{"two-byte message type", twoTypes.ToBytes(), "malformed"},
		{"BOOTREPLY from the guest", reply.ToBytes(), "unsupported"},
		{"OFFER as a request", dhcp4Msg(t, dhcpv4.MessageTypeOffer).ToBytes(), "unsupported"},
		{"unknown type", dhcp4Msg(t, dhcpv4.MessageType(99)).ToBytes(), "unsupported"},
		{"relayed", dhcp4Msg(t, dhcpv4.MessageTypeDiscover, dhcpv4.WithGatewayIP(net.IPv4(10, 9, 9, 9))).ToBytes(), "unsupported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := r.Stats()
			none(t, r.Handle(dhcp4Frame(t, guestMAC, zero4, bcast4, tc.payload), t0))
			d := statsDelta(before, r.Stats())
			got := map[bool]string{true: "malformed", false: "unsupported"}[d.Malformed == 1]
			if d.Malformed+d.Unsupported != 1 || got != tc.want {
				t.Errorf("stats delta %+v, want one %s", d, tc.want)
			}
		})
	}
	// Other UDP ports and protocols are not configuration requests.
	f := dhcp4Frame(t, guestMAC, zero4, bcast4, good)
	f[ethHeader+ipv4Header+3] = 53 // destination port 53
	before := r.Stats()
	none(t, r.Handle(f, t0))
	if d := statsDelta(before, r.Stats()); d.NotConfig != 1 {
		t.Errorf("stats delta %+v, want one not-config", d)
	}
}

const (
	ethHeader  = 14
	ipv4Header = 20
)

// TestRateLimit checks that a flood of DISCOVERs gets at most the burst
// answered at once and the rate per second after that.
func TestRateLimit(t *testing.T) {
	c := bridgeConfig()
	c.Burst, c.Rate = 10, 2
	r := mustNew(t, c)
	f := dhcp4Req(t, dhcp4Msg(t, dhcpv4.MessageTypeDiscover))
	answered := 0
	for i := 0; i < 1000; i++ {
		answered += len(r.Handle(f, t0))
	}
	if answered != 10 {
		t.Errorf("%d of 1000 simultaneous DISCOVERs answered, want the burst of 10", answered)
	}
	answered = 0
	for i := 0; i < 1000; i++ {
		answered += len(r.Handle(f, t0.Add(3*time.Second)))
	}
	if answered != 6 {
		t.Errorf("%d answered 3 s later, want 6 (2 per second)", answered)
	}
	// A clock going backwards gives nothing back.
	if got := len(r.Handle(f, t0)); got != 0 {
		t.Errorf("answered after the clock went back: %d", got)
	}
	// Frames that are not requests do not use up the budget.
	r = mustNew(t, c)
	arp := slices.Clone(f)
	arp[12], arp[13] = 0x08, 0x06
	for i := 0; i < 100; i++ {
		r.Handle(arp, t0)
	}
	if len(r.Handle(f, t0)) != 1 {
		t.Error("non-request frames used up the rate budget")
	}
	if s := r.Stats(); s.RateLimited != 0 || s.NotConfig != 100 {
		t.Errorf("stats %+v", s)
	}
}
