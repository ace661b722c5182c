package ethframe

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xaa}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xbb}
)

// verifies reports whether the one's complement sum of the given parts is
// 0xffff, that is whether a checksum inside them is right.
func verifies(parts ...[]byte) bool {
	var s uint32
	for _, p := range parts {
		s = sum(s, p)
	}
	return fold(s) == 0xffff
}

func pseudoHeader6(src, dst netip.Addr, proto uint8, n int) []byte {
	s, d := src.As16(), dst.As16()
	b := append(append([]byte{}, s[:]...), d[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	return append(b, 0, 0, 0, proto)
}

func TestUDP4RoundTrip(t *testing.T) {
	src, dst := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("255.255.255.255")
	for _, payload := range [][]byte{nil, []byte("x"), []byte("an even payload!"), bytes.Repeat([]byte{0xff}, 1001)} {
		f, err := UDP4(macA, macB, src, dst, 67, 68, payload)
		if err != nil {
			t.Fatal(err)
		}
		ip := f[EthernetHeaderLen:]
		if !verifies(ip[:IPv4HeaderLen]) {
			t.Errorf("IPv4 header checksum wrong: % x", ip[:IPv4HeaderLen])
		}
		udp := ip[IPv4HeaderLen:]
		s, d := src.As4(), dst.As4()
		ph := append(append(s[:], d[:]...), 0, ProtoUDP, byte(len(udp)>>8), byte(len(udp)))
		if !verifies(ph, udp) {
			t.Errorf("UDP checksum wrong for payload of %d bytes", len(payload))
		}
		// Ethernet padding after the IP packet is ignored.
		padded := append(append([]byte{}, f...), make([]byte, 30)...)
		p, err := Parse(padded)
		if err != nil {
			t.Fatalf("Parse(UDP4 frame): %v", err)
		}
		if !bytes.Equal(p.Src, macA) || !bytes.Equal(p.Dst, macB) || p.EtherType != EtherTypeIPv4 ||
			p.SrcIP != src || p.DstIP != dst || p.Proto != ProtoUDP || p.HopLimit != 64 ||
			p.SrcPort != 67 || p.DstPort != 68 || !bytes.Equal(p.Payload, payload) {
			t.Errorf("Parse(UDP4 frame) = %+v", p)
		}
	}
}

func TestUDP6AndICMPv6RoundTrip(t *testing.T) {
	src, dst := netip.MustParseAddr("fe80::1"), netip.MustParseAddr("ff02::1:2")
	payload := []byte("odd payload")
	f, err := UDP6(macA, macB, src, dst, 1, 546, 547, payload)
	if err != nil {
		t.Fatal(err)
	}
	udp := f[EthernetHeaderLen+IPv6HeaderLen:]
	if !verifies(pseudoHeader6(src, dst, ProtoUDP, len(udp)), udp) {
		t.Error("UDP/IPv6 checksum wrong")
	}
	p, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	if p.SrcIP != src || p.DstIP != dst || p.HopLimit != 1 || p.SrcPort != 546 || p.DstPort != 547 || !bytes.Equal(p.Payload, payload) {
		t.Errorf("Parse(UDP6 frame) = %+v", p)
	}

	msg := []byte{133, 0, 0xde, 0xad, 0, 0, 0, 0, 1, 1, 2, 0, 0, 0, 0, 0xaa}
	orig := append([]byte{}, msg...)
	f, err = ICMPv6(macA, macB, src, dst, 255, msg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(msg, orig) {
		t.Error("ICMPv6 modified its msg argument")
	}
	m := f[EthernetHeaderLen+IPv6HeaderLen:]
	if !verifies(pseudoHeader6(src, dst, ProtoICMPv6, len(m)), m) {
		t.Error("ICMPv6 checksum wrong")
	}
	p, err = Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	if p.Proto != ProtoICMPv6 || p.HopLimit != 255 || p.Payload[0] != 133 || len(p.Payload) != len(msg) {
		t.Errorf("Parse(ICMPv6 frame) = %+v", p)
	}
}

// TestGoldenRouterSolicitation parses a router solicitation as Linux sends
// it, with a hop-by-hop header in front to exercise the extension-header
// walk.
func TestGoldenRouterSolicitation(t *testing.T) {
	const rs = "3333000000025254001234568" + "6dd" +
		"60000000001800fffe80000000000000505400fffe123456ff020000000000000000000000000002" +
		"3a00010000000000" + // hop-by-hop: next header 58, 8 bytes, PadN
		"85007b3a00000000" + "0101525400123456"
	b, err := hex.DecodeString(rs)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.Src.String() != "52:54:00:12:34:56" || p.Dst.String() != "33:33:00:00:00:02" ||
		p.SrcIP != netip.MustParseAddr("fe80::5054:ff:fe12:3456") || p.DstIP != netip.MustParseAddr("ff02::2") ||
		p.Proto != ProtoICMPv6 || p.HopLimit != 255 || len(p.Payload) != 16 || p.Payload[0] != 133 {
		t.Errorf("Parse(RS) = %+v", p)
	}
}

func TestParseRefuses(t *testing.T) {
	good, err := UDP4(macA, macB, netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), 68, 67, []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	good6, err := UDP6(macA, macB, netip.MustParseAddr("fe80::1"), netip.MustParseAddr("ff02::1:2"), 1, 546, 547, []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(base []byte, f func(b []byte) []byte) []byte {
		return f(append([]byte{}, base...))
	}
	for _, tc := range []struct {
		name  string
		frame []byte
		want  error
	}{
		{"empty", nil, ErrMalformed},
		{"short Ethernet", good[:13], ErrMalformed},
		{"giant", make([]byte, MaxFrame+1), ErrUnsupported},
		{"ARP", edit(good, func(b []byte) []byte { b[12], b[13] = 0x08, 0x06; return b }), ErrUnsupported},
		{"VLAN", edit(good, func(b []byte) []byte { b[12], b[13] = 0x81, 0x00; return b }), ErrUnsupported},
		{"IPv4 truncated", good[:EthernetHeaderLen+10], ErrMalformed},
		{"IPv4 wrong version", edit(good, func(b []byte) []byte { b[14] = 0x65; return b }), ErrMalformed},
		{"IPv4 IHL too small", edit(good, func(b []byte) []byte { b[14] = 0x44; return b }), ErrMalformed},
		{"IPv4 total beyond frame", edit(good, func(b []byte) []byte { b[16], b[17] = 0xff, 0xff; return b }), ErrMalformed},
		{"IPv4 total below IHL", edit(good, func(b []byte) []byte { b[16], b[17] = 0, 10; return b }), ErrMalformed},
		{"IPv4 fragment", edit(good, func(b []byte) []byte { b[20] = 0x20; return b }), ErrUnsupported},
		{"IPv4 TCP", edit(good, func(b []byte) []byte { b[23] = 6; return b }), ErrUnsupported},
		{"UDP length beyond packet", edit(good, func(b []byte) []byte { b[38], b[39] = 0xff, 0xff; return b }), ErrMalformed},
		{"UDP length below header", edit(good, func(b []byte) []byte { b[38], b[39] = 0, 4; return b }), ErrMalformed},
		{"UDP truncated", edit(good, func(b []byte) []byte { b[16], b[17] = 0, 24; return b[:EthernetHeaderLen+24] }), ErrMalformed},
		{"IPv6 truncated", good6[:EthernetHeaderLen+39], ErrMalformed},
		{"IPv6 wrong version", edit(good6, func(b []byte) []byte { b[14] = 0x40; return b }), ErrMalformed},
		{"IPv6 payload beyond frame", edit(good6, func(b []byte) []byte { b[18], b[19] = 0xff, 0xff; return b }), ErrMalformed},
		{"IPv6 fragment header", edit(good6, func(b []byte) []byte { b[20] = 44; return b }), ErrUnsupported},
		{"IPv6 TCP", edit(good6, func(b []byte) []byte { b[20] = 6; return b }), ErrUnsupported},
		{"IPv6 extension header beyond payload", edit(good6, func(b []byte) []byte { b[20] = 0; b[55] = 0xff; return b }), ErrMalformed},
		{"ICMPv6 truncated", edit(good6, func(b []byte) []byte { b[18], b[19] = 0, 2; b[20] = 58; return b }), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.frame)
			if !errors.Is(err, tc.want) {
				t.Errorf("Parse = %v, want an error wrapping %v", err, tc.want)
			}
		})
	}
}

func TestExtensionHeaderChainBounded(t *testing.T) {
	// A chain of destination-options headers longer than the bound.
	n := maxExtensionHeaders + 2
	payload := make([]byte, 0, n*8)
	for i := 0; i < n; i++ {
		payload = append(payload, 60, 0, 1, 4, 0, 0, 0, 0)
	}
	f, err := ipv6(macA, macB, netip.MustParseAddr("fe80::1"), netip.MustParseAddr("ff02::2"), 60, 255, len(payload))
	if err != nil {
		t.Fatal(err)
	}
	copy(f[EthernetHeaderLen+IPv6HeaderLen:], payload)
	if _, err := Parse(f); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "extension headers") {
		t.Errorf("Parse(long chain) = %v, want unsupported: extension headers", err)
	}
}

func TestBuildRefuses(t *testing.T) {
	v4, v6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("fe80::1")
	if _, err := UDP4(macA, macB, v6, v4, 1, 2, nil); err == nil {
		t.Error("UDP4 with an IPv6 address succeeded")
	}
	if _, err := UDP4(macA[:5], macB, v4, v4, 1, 2, nil); err == nil {
		t.Error("UDP4 with a 5-byte MAC succeeded")
	}
	if _, err := UDP4(macA, macB, v4, v4, 1, 2, make([]byte, 0x10000)); err == nil {
		t.Error("UDP4 with a 64 KiB payload succeeded")
	}
	if _, err := UDP6(macA, macB, v4, v6, 1, 1, 2, nil); err == nil {
		t.Error("UDP6 with an IPv4 address succeeded")
	}
	if _, err := ICMPv6(macA, macB, v6, v6, 255, []byte{1, 2}); err == nil {
		t.Error("ICMPv6 with a 2-byte message succeeded")
	}
}

// FuzzParse checks that Parse never panics, that what it returns lies
// inside the frame, and that a parsed UDP packet rebuilds into a frame that
// parses back to the same fields.
func FuzzParse(f *testing.F) {
	if b, err := UDP4(macA, macB, netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("255.255.255.255"), 68, 67, []byte("dhcp")); err == nil {
		f.Add(b)
	}
	if b, err := UDP6(macA, macB, netip.MustParseAddr("fe80::1"), netip.MustParseAddr("ff02::1:2"), 1, 546, 547, []byte("dhcpv6")); err == nil {
		f.Add(b)
	}
	if b, err := ICMPv6(macA, macB, netip.MustParseAddr("fe80::1"), netip.MustParseAddr("ff02::2"), 255, []byte{133, 0, 0, 0, 0, 0, 0, 0}); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("Parse error %v wraps neither ErrMalformed nor ErrUnsupported", err)
			}
			return
		}
		if len(p.Payload) > len(b) {
			t.Fatalf("payload of %d bytes from a frame of %d", len(p.Payload), len(b))
		}
		if p.Proto != ProtoUDP {
			return
		}
		var rb []byte
		if p.EtherType == EtherTypeIPv4 {
			rb, err = UDP4(p.Src, p.Dst, p.SrcIP, p.DstIP, p.SrcPort, p.DstPort, p.Payload)
		} else {
			rb, err = UDP6(p.Src, p.Dst, p.SrcIP, p.DstIP, p.HopLimit, p.SrcPort, p.DstPort, p.Payload)
		}
		if err != nil {
			t.Fatalf("rebuilding %+v: %v", p, err)
		}
		q, err := Parse(rb)
		if err != nil {
			t.Fatalf("parsing the rebuilt frame: %v", err)
		}
		if q.SrcIP != p.SrcIP || q.DstIP != p.DstIP || q.SrcPort != p.SrcPort || q.DstPort != p.DstPort || !bytes.Equal(q.Payload, p.Payload) {
			t.Fatalf("rebuilt frame parses to %+v, want %+v", q, p)
		}
	})
}
