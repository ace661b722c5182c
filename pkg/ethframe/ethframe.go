// Package ethframe parses and builds the few kinds of Ethernet frames a
// guest-facing configuration responder deals with: IPv4 or IPv6 carrying
// UDP, and IPv6 carrying ICMPv6. It is deliberately small and strict: a
// frame that is truncated, fragmented, VLAN-tagged, longer than [MaxFrame]
// or otherwise not exactly what it claims to be is refused with an error
// wrapping [ErrMalformed] or [ErrUnsupported], never a panic.
//
// Checksums of received frames are not verified: the frames come from a
// virtual link (a tap or a veth), where corruption does not happen and where
// transmit checksum offload leaves partial checksums in frames a guest sent
// through its kernel. Checksums of built frames are always complete.
//
// The package imports no other netbridge package and does no I/O.
package ethframe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// EtherType values this package understands.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeIPv6 = 0x86dd
)

// IP protocol numbers this package understands.
const (
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// Sizes of the headers this package reads and writes.
const (
	EthernetHeaderLen = 14
	IPv4HeaderLen     = 20
	IPv6HeaderLen     = 40
	UDPHeaderLen      = 8
)

// MaxFrame is the longest frame [Parse] accepts, in bytes without the FCS:
// a 1500-byte-MTU Ethernet frame is 1514, and no configuration protocol
// message needs a jumbo frame. Longer frames are refused unread.
const MaxFrame = 4096

// maxExtensionHeaders bounds how many IPv6 extension headers Parse skips
// before it gives up, so that a chain of them costs little.
const maxExtensionHeaders = 4

// ErrMalformed is wrapped by every error of [Parse] for a frame that is
// truncated or whose length fields contradict each other.
var ErrMalformed = errors.New("malformed frame")

// ErrUnsupported is wrapped by every error of [Parse] for a well-formed
// frame this package does not handle (another EtherType, a fragment,
// another transport protocol, a frame longer than MaxFrame).
var ErrUnsupported = errors.New("unsupported frame")

// Packet is a parsed frame: the Ethernet addresses, the IP header fields a
// responder needs and the transport payload. Its slices alias the frame
// given to [Parse].
type Packet struct {
	// Dst and Src are the Ethernet destination and source addresses.
	Dst, Src net.HardwareAddr
	// EtherType is EtherTypeIPv4 or EtherTypeIPv6.
	EtherType uint16
	// SrcIP and DstIP are the IP source and destination addresses.
	SrcIP, DstIP netip.Addr
	// Proto is the transport protocol: ProtoUDP, or ProtoICMPv6 (IPv6 only).
	Proto uint8
	// HopLimit is the IPv4 TTL or the IPv6 hop limit.
	HopLimit uint8
	// SrcPort and DstPort are the UDP ports; zero for ICMPv6.
	SrcPort, DstPort uint16
	// Payload is the UDP payload, or the whole ICMPv6 message (type, code,
	// checksum and body).
	Payload []byte
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsupported, fmt.Sprintf(format, args...))
}

// Parse decodes an Ethernet II frame (without FCS) carrying IPv4/UDP,
// IPv6/UDP or IPv6/ICMPv6. Trailing bytes after the IP packet (Ethernet
// padding) are ignored. IPv6 hop-by-hop, routing and destination options
// headers are skipped (at most a few); fragments are refused.
func Parse(b []byte) (Packet, error) {
	var p Packet
	if len(b) > MaxFrame {
		return p, unsupported("frame of %d bytes is longer than %d", len(b), MaxFrame)
	}
	if len(b) < EthernetHeaderLen {
		return p, malformed("frame of %d bytes has no complete Ethernet header", len(b))
	}
	p.Dst = net.HardwareAddr(b[0:6])
	p.Src = net.HardwareAddr(b[6:12])
	p.EtherType = binary.BigEndian.Uint16(b[12:14])
	ip := b[EthernetHeaderLen:]
	var err error
	switch p.EtherType {
	case EtherTypeIPv4:
		err = p.parseIPv4(ip)
	case EtherTypeIPv6:
		err = p.parseIPv6(ip)
	default:
		return p, unsupported("EtherType %#04x", p.EtherType)
	}
	return p, err
}

func (p *Packet) parseIPv4(b []byte) error {
	if len(b) < IPv4HeaderLen {
		return malformed("IPv4 header truncated at %d bytes", len(b))
	}
	if v := b[0] >> 4; v != 4 {
		return malformed("IP version %d in an IPv4 EtherType", v)
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if ihl < IPv4HeaderLen || total < ihl || total > len(b) {
		return malformed("IPv4 header length %d, total length %d, %d bytes present", ihl, total, len(b))
	}
	if frag := binary.BigEndian.Uint16(b[6:8]); frag&0x3fff != 0 {
		return unsupported("IPv4 fragment")
	}
	p.HopLimit = b[8]
	p.Proto = b[9]
	p.SrcIP = netip.AddrFrom4([4]byte(b[12:16]))
	p.DstIP = netip.AddrFrom4([4]byte(b[16:20]))
	if p.Proto != ProtoUDP {
		return unsupported("IPv4 protocol %d", p.Proto)
	}
	return p.parseUDP(b[ihl:total])
}

func (p *Packet) parseIPv6(b []byte) error {
	if len(b) < IPv6HeaderLen {
		return malformed("IPv6 header truncated at %d bytes", len(b))
	}
	if v := b[0] >> 4; v != 6 {
		return malformed("IP version %d in an IPv6 EtherType", v)
	}
	plen := int(binary.BigEndian.Uint16(b[4:6]))
	if IPv6HeaderLen+plen > len(b) {
		return malformed("IPv6 payload length %d, %d bytes present", plen, len(b)-IPv6HeaderLen)
	}
	next := b[6]
	p.HopLimit = b[7]
	p.SrcIP = netip.AddrFrom16([16]byte(b[8:24]))
	p.DstIP = netip.AddrFrom16([16]byte(b[24:40]))
	rest := b[IPv6HeaderLen : IPv6HeaderLen+plen]
	for i := 0; ; i++ {
		switch next {
		case ProtoUDP:
			p.Proto = next
			return p.parseUDP(rest)
		case ProtoICMPv6:
			p.Proto = next
			if len(rest) < 4 {
				return malformed("ICMPv6 message of %d bytes", len(rest))
			}
			p.Payload = rest
			return nil
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if i >= maxExtensionHeaders {
				return unsupported("more than %d IPv6 extension headers", maxExtensionHeaders)
			}
			if len(rest) < 8 {
				return malformed("IPv6 extension header truncated at %d bytes", len(rest))
			}
			n := (int(rest[1]) + 1) * 8
			if n > len(rest) {
				return malformed("IPv6 extension header of %d bytes, %d present", n, len(rest))
			}
			next = rest[0]
			rest = rest[n:]
		default:
			return unsupported("IPv6 next header %d", next)
		}
	}
}

func (p *Packet) parseUDP(b []byte) error {
	if len(b) < UDPHeaderLen {
		return malformed("UDP header truncated at %d bytes", len(b))
	}
	ulen := int(binary.BigEndian.Uint16(b[4:6]))
	if ulen < UDPHeaderLen || ulen > len(b) {
		return malformed("UDP length %d, %d bytes present", ulen, len(b))
	}
	p.SrcPort = binary.BigEndian.Uint16(b[0:2])
	p.DstPort = binary.BigEndian.Uint16(b[2:4])
	p.Payload = b[UDPHeaderLen:ulen]
	return nil
}

// UDP4 builds an Ethernet frame carrying an IPv4/UDP datagram with the given
// addresses, ports and payload, TTL 64, and complete IPv4 and UDP
// checksums. srcIP and dstIP must be IPv4 addresses and srcMAC and dstMAC
// 6 bytes long; payload must fit an IPv4 packet.
func UDP4(srcMAC, dstMAC net.HardwareAddr, srcIP, dstIP netip.Addr, srcPort, dstPort uint16, payload []byte) ([]byte, error) {
	if !srcIP.Is4() || !dstIP.Is4() {
		return nil, fmt.Errorf("building IPv4/UDP frame %s -> %s: both addresses must be IPv4", srcIP, dstIP)
	}
	total := IPv4HeaderLen + UDPHeaderLen + len(payload)
	if total > 0xffff {
		return nil, fmt.Errorf("building IPv4/UDP frame: payload of %d bytes does not fit an IPv4 packet", len(payload))
	}
	b, err := ethernet(srcMAC, dstMAC, EtherTypeIPv4, total)
	if err != nil {
		return nil, err
	}
	ip := b[EthernetHeaderLen:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(total))
	ip[8] = 64
	ip[9] = ProtoUDP
	s, d := srcIP.As4(), dstIP.As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	binary.BigEndian.PutUint16(ip[10:12], ^fold(sum(0, ip[:IPv4HeaderLen])))
	udp := ip[IPv4HeaderLen:]
	putUDP(udp, srcPort, dstPort, payload)
	ps := sum(0, s[:])
	ps = sum(ps, d[:])
	ps += ProtoUDP + uint32(len(udp))
	binary.BigEndian.PutUint16(udp[6:8], udpChecksum(ps, udp))
	return b, nil
}

// UDP6 builds an Ethernet frame carrying an IPv6/UDP datagram with the given
// addresses, ports, payload and hop limit, with a complete UDP checksum.
func UDP6(srcMAC, dstMAC net.HardwareAddr, srcIP, dstIP netip.Addr, hopLimit uint8, srcPort, dstPort uint16, payload []byte) ([]byte, error) {
	n := UDPHeaderLen + len(payload)
	b, err := ipv6(srcMAC, dstMAC, srcIP, dstIP, ProtoUDP, hopLimit, n)
	if err != nil {
		return nil, err
	}
	udp := b[EthernetHeaderLen+IPv6HeaderLen:]
	putUDP(udp, srcPort, dstPort, payload)
	binary.BigEndian.PutUint16(udp[6:8], udpChecksum(pseudo6(srcIP, dstIP, ProtoUDP, n), udp))
	return b, nil
}

// ICMPv6 builds an Ethernet frame carrying an IPv6/ICMPv6 message with the
// given addresses and hop limit. msg is the whole ICMPv6 message starting
// with its type; its checksum field (bytes 2 and 3) is overwritten with the
// computed checksum in the frame (msg itself is not modified).
func ICMPv6(srcMAC, dstMAC net.HardwareAddr, srcIP, dstIP netip.Addr, hopLimit uint8, msg []byte) ([]byte, error) {
	if len(msg) < 4 {
		return nil, fmt.Errorf("building ICMPv6 frame: message of %d bytes has no complete header", len(msg))
	}
	b, err := ipv6(srcMAC, dstMAC, srcIP, dstIP, ProtoICMPv6, hopLimit, len(msg))
	if err != nil {
		return nil, err
	}
	m := b[EthernetHeaderLen+IPv6HeaderLen:]
	copy(m, msg)
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint16(m[2:4], ^fold(sum(pseudo6(srcIP, dstIP, ProtoICMPv6, len(m)), m)))
	return b, nil
}

func ethernet(srcMAC, dstMAC net.HardwareAddr, etherType uint16, ipLen int) ([]byte, error) {
	if len(srcMAC) != 6 || len(dstMAC) != 6 {
		return nil, fmt.Errorf("building frame: MAC addresses %q and %q must be 6 bytes long", srcMAC, dstMAC)
	}
	b := make([]byte, EthernetHeaderLen+ipLen)
	copy(b[0:6], dstMAC)
	copy(b[6:12], srcMAC)
	binary.BigEndian.PutUint16(b[12:14], etherType)
	return b, nil
}

func ipv6(srcMAC, dstMAC net.HardwareAddr, srcIP, dstIP netip.Addr, proto, hopLimit uint8, payloadLen int) ([]byte, error) {
	if !srcIP.Is6() || !dstIP.Is6() || srcIP.Is4In6() || dstIP.Is4In6() {
		return nil, fmt.Errorf("building IPv6 frame %s -> %s: both addresses must be IPv6", srcIP, dstIP)
	}
	if payloadLen > 0xffff {
		return nil, fmt.Errorf("building IPv6 frame: payload of %d bytes needs a jumbogram", payloadLen)
	}
	b, err := ethernet(srcMAC, dstMAC, EtherTypeIPv6, IPv6HeaderLen+payloadLen)
	if err != nil {
		return nil, err
	}
	ip := b[EthernetHeaderLen:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:6], uint16(payloadLen))
	ip[6] = proto
	ip[7] = hopLimit
	s, d := srcIP.As16(), dstIP.As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], d[:])
	return b, nil
}

func putUDP(udp []byte, srcPort, dstPort uint16, payload []byte) {
	binary.BigEndian.PutUint16(udp[0:2], srcPort)
	binary.BigEndian.PutUint16(udp[2:4], dstPort)
	binary.BigEndian.PutUint16(udp[4:6], uint16(len(udp)))
	copy(udp[UDPHeaderLen:], payload)
}

func pseudo6(src, dst netip.Addr, proto uint8, n int) uint32 {
	s, d := src.As16(), dst.As16()
	ps := sum(0, s[:])
	ps = sum(ps, d[:])
	return ps + uint32(n>>16) + uint32(n&0xffff) + uint32(proto)
}

// udpChecksum returns the UDP checksum of udp (its checksum field zero)
// given the pseudo-header sum; a computed 0 is sent as 0xffff (RFC 768).
func udpChecksum(pseudo uint32, udp []byte) uint16 {
	c := ^fold(sum(pseudo, udp))
	if c == 0 {
		c = 0xffff
	}
	return c
}

// sum adds b as big-endian 16-bit words to s (one's complement sum, not
// yet folded); an odd final byte is padded with zero.
func sum(s uint32, b []byte) uint32 {
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}
