package responder

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/mdlayher/ndp"

	"github.com/netbridge/netbridge/pkg/ethframe"
)

var (
	guestMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	otherMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0x65, 0x43, 0x21}
	gwMAC    = net.HardwareAddr{0x0a, 0x58, 0x0a, 0x01, 0x00, 0x01}
	guestLL  = netip.MustParseAddr("fe80::5054:ff:fe12:3456")
	gwLL     = netip.MustParseAddr("fe80::858:aff:fe01:1")
	t0       = time.Unix(1_700_000_000, 0)
	bcast4   = netip.MustParseAddr("255.255.255.255")
	zero4    = netip.MustParseAddr("0.0.0.0")
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

// bridgeConfig is a NIC on a bridge-plugin-style network, dual stack, with
// one extra route per family.
func bridgeConfig() Config {
	return Config{
		MAC:  guestMAC,
		MTU:  1450,
		IPv4: []netip.Prefix{pfx("10.1.0.5/24"), pfx("10.1.0.6/24")},
		IPv6: []netip.Prefix{pfx("fd00:1::5/64")},
		Routes: []Route{
			{Dst: pfx("0.0.0.0/0"), Gateway: ip("10.1.0.1")},
			{Dst: pfx("10.1.0.0/24")}, // the prefix route: implied
			{Dst: pfx("192.0.2.0/24"), Gateway: ip("10.1.0.254"), MTU: 1400},
			{Dst: pfx("::/0"), Gateway: ip("fd00:1::1")},
			{Dst: pfx("fd00:1::/64")},
			{Dst: pfx("2001:db8:77::/48"), Gateway: ip("fd00:1::1")},
		},
		DNS: DNS{
			Servers: []netip.Addr{ip("10.96.0.10"), ip("fd00:96::a")},
			Search:  []string{"default.svc.cluster.local", "svc.cluster.local", "cluster.local."},
			Options: []string{"ndots:5"},
		},
		Gateway6: Gateway{LinkLocal: gwLL, MAC: gwMAC},
	}
}

// calicoConfig is a Calico-style NIC: /32 and /128 addresses, gateways
// reached on-link.
func calicoConfig() Config {
	return Config{
		MAC:  guestMAC,
		MTU:  1480,
		IPv4: []netip.Prefix{pfx("10.244.1.7/32")},
		IPv6: []netip.Prefix{pfx("fd00:244::7/128")},
		Routes: []Route{
			{Dst: pfx("0.0.0.0/0"), Gateway: ip("169.254.1.1")},
			{Dst: pfx("169.254.1.1/32")},
			{Dst: pfx("::/0"), Gateway: ip("fe80::ecee:eeff:feee:eeee")},
		},
		Gateway6: Gateway{LinkLocal: ip("fe80::ecee:eeff:feee:eeee"), MAC: net.HardwareAddr{0xee, 0xee, 0xee, 0xee, 0xee, 0xee}},
	}
}

func mustNew(t testing.TB, c Config) *Responder {
	t.Helper()
	r, err := New(c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

// --- requests -----------------------------------------------------------

func dhcp4Msg(t testing.TB, mt dhcpv4.MessageType, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{
		dhcpv4.WithHwAddr(guestMAC),
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithTransactionID(dhcpv4.TransactionID{1, 2, 3, 4}),
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier(append([]byte{1}, guestMAC...))),
	}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func dhcp4Frame(t testing.TB, src net.HardwareAddr, srcIP, dstIP netip.Addr, payload []byte) []byte {
	t.Helper()
	f, err := ethframe.UDP4(src, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, srcIP, dstIP, 68, 67, payload)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func dhcp4Req(t testing.TB, m *dhcpv4.DHCPv4) []byte {
	t.Helper()
	src := zero4
	if c := addr4(m.ClientIPAddr); c.IsValid() {
		src = c
	}
	return dhcp4Frame(t, guestMAC, src, bcast4, m.ToBytes())
}

var clientDUID = &dhcpv6.DUIDLLT{HWType: iana.HWTypeEthernet, Time: 12345, LinkLayerAddr: guestMAC}

func dhcp6Msg(t testing.TB, mt dhcpv6.MessageType, opts ...dhcpv6.Option) *dhcpv6.Message {
	t.Helper()
	m := &dhcpv6.Message{MessageType: mt, TransactionID: dhcpv6.TransactionID{9, 8, 7}}
	m.AddOption(dhcpv6.OptClientID(clientDUID))
	m.AddOption(dhcpv6.OptElapsedTime(0))
	for _, o := range opts {
		m.AddOption(o)
	}
	return m
}

func iaNA(id byte, addrs ...string) *dhcpv6.OptIANA {
	ia := &dhcpv6.OptIANA{IaId: [4]byte{0, 0, 0, id}}
	for _, a := range addrs {
		ia.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP(a), PreferredLifetime: time.Hour, ValidLifetime: time.Hour})
	}
	return ia
}

func serverIDOf(r *Responder) dhcpv6.Option {
	return dhcpv6.OptServerID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: r.ResponderMAC()})
}

func dhcp6Frame(t testing.TB, src net.HardwareAddr, srcIP netip.Addr, payload []byte) []byte {
	t.Helper()
	f, err := ethframe.UDP6(src, net.HardwareAddr{0x33, 0x33, 0, 1, 0, 2}, srcIP, ip("ff02::1:2"), 1, 546, 547, payload)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func dhcp6Req(t testing.TB, m *dhcpv6.Message) []byte {
	return dhcp6Frame(t, guestMAC, guestLL, m.ToBytes())
}

func rsFrame(t testing.TB, src netip.Addr, hop uint8, opts ...ndp.Option) []byte {
	t.Helper()
	msg, err := ndp.MarshalMessage(&ndp.RouterSolicitation{Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	f, err := ethframe.ICMPv6(guestMAC, net.HardwareAddr{0x33, 0x33, 0, 0, 0, 2}, src, ip("ff02::2"), hop, msg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// --- replies ------------------------------------------------------------

// one checks that exactly one frame came back, addressed at Ethernet level
// from the responder to the guest, and returns it parsed.
func one(t testing.TB, r *Responder, frames [][]byte) ethframe.Packet {
	t.Helper()
	if len(frames) != 1 {
		t.Fatalf("got %d frames, want 1", len(frames))
	}
	return checkFrame(t, r, frames[0])
}

func checkFrame(t testing.TB, r *Responder, f []byte) ethframe.Packet {
	t.Helper()
	p, err := ethframe.Parse(f)
	if err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	if !bytes.Equal(p.Dst, guestMAC) {
		t.Errorf("reply Ethernet destination %s, want the guest %s", p.Dst, guestMAC)
	}
	if !bytes.Equal(p.Src, r.ResponderMAC()) {
		t.Errorf("reply Ethernet source %s, want the responder %s", p.Src, r.ResponderMAC())
	}
	return p
}

func none(t testing.TB, frames [][]byte) {
	t.Helper()
	if len(frames) != 0 {
		t.Fatalf("got %d frames, want none", len(frames))
	}
}

func decode4(t testing.TB, p ethframe.Packet) *dhcpv4.DHCPv4 {
	t.Helper()
	if p.Proto != ethframe.ProtoUDP || p.SrcPort != 67 || p.DstPort != 68 {
		t.Fatalf("reply is not DHCPv4 server to client: %+v", p)
	}
	m, err := dhcpv4.FromBytes(p.Payload)
	if err != nil {
		t.Fatalf("reply is not DHCPv4: %v", err)
	}
	return m
}

func decode6(t testing.TB, p ethframe.Packet) *dhcpv6.Message {
	t.Helper()
	if p.Proto != ethframe.ProtoUDP || p.SrcPort != 547 || p.DstPort != 546 {
		t.Fatalf("reply is not DHCPv6 server to client: %+v", p)
	}
	m, err := dhcpv6.MessageFromBytes(p.Payload)
	if err != nil {
		t.Fatalf("reply is not DHCPv6: %v", err)
	}
	return m
}

func decodeRA(t testing.TB, p ethframe.Packet) *ndp.RouterAdvertisement {
	t.Helper()
	if p.Proto != ethframe.ProtoICMPv6 || p.HopLimit != 255 {
		t.Fatalf("reply is not ICMPv6 with hop limit 255: %+v", p)
	}
	m, err := ndp.ParseMessage(p.Payload)
	if err != nil {
		t.Fatalf("reply is not NDP: %v", err)
	}
	ra, ok := m.(*ndp.RouterAdvertisement)
	if !ok {
		t.Fatalf("reply is a %T, want a router advertisement", m)
	}
	return ra
}

func statsDelta(before, after Stats) Stats {
	return Stats{
		Frames:      after.Frames - before.Frames,
		NotConfig:   after.NotConfig - before.NotConfig,
		NotGuest:    after.NotGuest - before.NotGuest,
		RateLimited: after.RateLimited - before.RateLimited,
		Malformed:   after.Malformed - before.Malformed,
		Unsupported: after.Unsupported - before.Unsupported,
		Answered:    after.Answered - before.Answered,
		Silent:      after.Silent - before.Silent,
		Replies:     after.Replies - before.Replies,
		Declined:    after.Declined - before.Declined,
	}
}
