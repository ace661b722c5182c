package responder

import (
	"bytes"
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/mdlayher/ndp"

	"github.com/netbridge/netbridge/pkg/ethframe"
)

// fuzzResponder is a dual-stack responder whose rate limit never bites, so
// that every fuzz input reaches the parsers.
func fuzzResponder(t testing.TB) *Responder {
	c := bridgeConfig()
	c.Burst, c.Rate = 1<<30, 1<<30
	return mustNew(t, c)
}

// seedRequests returns one frame of every request kind the responder
// answers.
func seedRequests(t testing.TB) [][]byte {
	r := fuzzResponder(t)
	req := func(mt dhcpv4.MessageType, mods ...dhcpv4.Modifier) []byte {
		return dhcp4Req(t, dhcp4Msg(t, mt, mods...))
	}
	return [][]byte{
		req(dhcpv4.MessageTypeDiscover, dhcpv4.WithRequestedOptions(dhcpv4.OptionClasslessStaticRoute, dhcpv4.GenericOptionCode(249))),
		req(dhcpv4.MessageTypeRequest, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 1, 0, 1))), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 1, 0, 5)))),
		req(dhcpv4.MessageTypeRequest, dhcpv4.WithClientIP(net.IPv4(10, 1, 0, 5))),
		req(dhcpv4.MessageTypeInform, dhcpv4.WithClientIP(net.IPv4(10, 1, 0, 5))),
		req(dhcpv4.MessageTypeDecline),
		dhcp6Req(t, dhcp6Msg(t, dhcpv6.MessageTypeSolicit, iaNA(1), &dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionRapidCommit})),
		dhcp6Req(t, dhcp6Msg(t, dhcpv6.MessageTypeRequest, serverIDOf(r), iaNA(1), &dhcpv6.OptIAPD{})),
		dhcp6Req(t, dhcp6Msg(t, dhcpv6.MessageTypeRenew, serverIDOf(r), iaNA(1, "fd00:1::5", "fd00:9::1"))),
		dhcp6Req(t, dhcp6Msg(t, dhcpv6.MessageTypeConfirm, iaNA(1, "fd00:1::5"))),
		dhcp6Req(t, dhcp6Msg(t, dhcpv6.MessageTypeInformationRequest)),
		rsFrame(t, guestLL, 255, &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: guestMAC}),
	}
}

// checkReplies checks what every reply must be: a well-formed frame from
// the responder to the guest, at most one per server identifier (NAKs) or
// two (a retiring and a current router advertisement).
func checkReplies(t *testing.T, r *Responder, out [][]byte) []ethframe.Packet {
	if len(out) > maxServerIDs {
		t.Fatalf("%d replies to one frame", len(out))
	}
	var ps []ethframe.Packet
	for _, f := range out {
		p, err := ethframe.Parse(f)
		if err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		if !bytes.Equal(p.Dst, guestMAC) || !bytes.Equal(p.Src, r.ResponderMAC()) {
			t.Fatalf("reply %s -> %s, want responder -> guest", p.Src, p.Dst)
		}
		ps = append(ps, p)
	}
	return ps
}

// FuzzHandle feeds whole frames: every layer's parser, and the dispatch.
func FuzzHandle(f *testing.F) {
	for _, s := range seedRequests(f) {
		f.Add(s)
	}
	r := fuzzResponder(f)
	f.Fuzz(func(t *testing.T, frame []byte) {
		before := r.Stats()
		out := r.Handle(frame, t0)
		checkReplies(t, r, out)
		d := statsDelta(before, r.Stats())
		if d.Frames != 1 || d.NotConfig+d.NotGuest+d.RateLimited+d.Malformed+d.Unsupported+d.Answered+d.Silent != 1 {
			t.Fatalf("stats delta %+v: the frame is not counted exactly once", d)
		}
		if len(out) > 0 && (len(frame) < 12 || !bytes.Equal(frame[6:12], guestMAC)) {
			t.Fatal("answered a frame that is not from the guest")
		}
	})
}

// FuzzDHCPv4 feeds DHCPv4 payloads in a well-formed frame from the guest.
func FuzzDHCPv4(f *testing.F) {
	for _, s := range seedRequests(f)[:5] {
		p, _ := ethframe.Parse(s)
		f.Add(p.Payload)
	}
	r := fuzzResponder(f)
	f.Fuzz(func(t *testing.T, payload []byte) {
		if len(payload) > 1400 {
			return
		}
		out := r.Handle(dhcp4Frame(t, guestMAC, zero4, bcast4, payload), t0)
		for _, p := range checkReplies(t, r, out) {
			m := decode4(t, p)
			if m.OpCode != dhcpv4.OpcodeBootReply || !bytes.Equal(m.ClientHWAddr, guestMAC) {
				t.Fatalf("reply %s", m.Summary())
			}
		}
	})
}

// FuzzDHCPv6 feeds DHCPv6 payloads in a well-formed frame from the guest.
func FuzzDHCPv6(f *testing.F) {
	for _, s := range seedRequests(f)[5:10] {
		p, _ := ethframe.Parse(s)
		f.Add(p.Payload)
	}
	r := fuzzResponder(f)
	f.Fuzz(func(t *testing.T, payload []byte) {
		if len(payload) > 1400 {
			return
		}
		out := r.Handle(dhcp6Frame(t, guestMAC, guestLL, payload), t0)
		for _, p := range checkReplies(t, r, out) {
			m := decode6(t, p)
			if m.MessageType != dhcpv6.MessageTypeAdvertise && m.MessageType != dhcpv6.MessageTypeReply {
				t.Fatalf("reply of type %s", m.MessageType)
			}
		}
	})
}

// FuzzRouterSolicitation feeds ICMPv6 router solicitation bodies (type
// 133 is forced, so every input reaches the ND option parser).
func FuzzRouterSolicitation(f *testing.F) {
	p, _ := ethframe.Parse(seedRequests(f)[10])
	f.Add(p.Payload[1:])
	r := fuzzResponder(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) < 3 || len(body) > 1400 {
			return
		}
		frame, err := ethframe.ICMPv6(guestMAC, net.HardwareAddr{0x33, 0x33, 0, 0, 0, 2}, guestLL, ip("ff02::2"), 255, append([]byte{icmpRS}, body...))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range checkReplies(t, r, r.Handle(frame, t0)) {
			decodeRA(t, p)
		}
	})
}
