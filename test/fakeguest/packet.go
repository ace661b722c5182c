package fakeguest

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/netbridge/netbridge/test/inet"
)

// Ethernet, ARP, IPv4, IPv6 and ICMP constants used by the guest.
const (
	etherHdrLen   = 14
	etherTypeIPv4 = 0x0800
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd

	arpLen       = 28
	arpOpRequest = 1
	arpOpReply   = 2

	ipv4HdrLen = 20
	ipv6HdrLen = 40

	protoICMP   = 1
	protoICMPv6 = 58

	icmpEchoReply   = 0
	icmpEchoRequest = 8

	icmp6EchoRequest   = 128
	icmp6EchoReply     = 129
	icmp6NeighborSol   = 135
	icmp6NeighborAdv   = 136
	ndOptSourceLLAddr  = 1
	ndOptTargetLLAddr  = 2
	naFlagSolicited    = 0x40
	naFlagOverride     = 0x20
	ndHopLimit         = 255
	defaultHopLimit    = 64
	ipv4FlagDF         = 0x4000
	ipv4FragMask       = 0x3fff // MF flag and fragment offset
	virtioNetHdrLen    = 10
	virtioNeedsCsum    = 1
	maxFrameLen        = 65535
	defaultPayloadSize = 56
)

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// checksum is the Internet checksum of the concatenated parts.
func checksum(parts ...[]byte) uint16 { return inet.Checksum(parts...) }

// icmp6Checksum is the ICMPv6 checksum of msg (with its checksum field as
// it is) over the IPv6 pseudo-header of src, dst (RFC 8200 section 8.1).
func icmp6Checksum(src, dst netip.Addr, msg []byte) uint16 {
	var pseudo [40]byte
	s, d := src.As16(), dst.As16()
	copy(pseudo[0:16], s[:])
	copy(pseudo[16:32], d[:])
	binary.BigEndian.PutUint32(pseudo[32:], uint32(len(msg)))
	pseudo[39] = protoICMPv6
	return checksum(pseudo[:], msg)
}

// solicitedNode returns the solicited-node multicast address of a
// (ff02::1:ffXX:XXXX).
func solicitedNode(a netip.Addr) netip.Addr {
	b := a.As16()
	return netip.AddrFrom16([16]byte{0xff, 0x02, 10: 0, 11: 0x01, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
}

// multicastMAC returns the Ethernet address IPv6 multicast a maps to
// (33:33 followed by the low 32 bits).
func multicastMAC(a netip.Addr) net.HardwareAddr {
	b := a.As16()
	return net.HardwareAddr{0x33, 0x33, b[12], b[13], b[14], b[15]}
}

func ethernet(dst, src net.HardwareAddr, etherType uint16, payloadLen int) []byte {
	f := make([]byte, etherHdrLen+payloadLen)
	copy(f[0:6], dst)
	copy(f[6:12], src)
	binary.BigEndian.PutUint16(f[12:], etherType)
	return f
}

// putIPv4Header writes a 20-byte IPv4 header without options into b.
func putIPv4Header(b []byte, src, dst netip.Addr, proto byte, payloadLen int, id uint16) {
	b[0] = 0x45
	b[1] = 0
	binary.BigEndian.PutUint16(b[2:], uint16(ipv4HdrLen+payloadLen))
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], ipv4FlagDF)
	b[8] = defaultHopLimit
	b[9] = proto
	b[10], b[11] = 0, 0
	s, d := src.As4(), dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	binary.BigEndian.PutUint16(b[10:], checksum(b[:ipv4HdrLen]))
}

// putIPv6Header writes a 40-byte IPv6 header into b.
func putIPv6Header(b []byte, src, dst netip.Addr, nextHeader byte, payloadLen int, hopLimit byte) {
	b[0], b[1], b[2], b[3] = 0x60, 0, 0, 0
	binary.BigEndian.PutUint16(b[4:], uint16(payloadLen))
	b[6] = nextHeader
	b[7] = hopLimit
	s, d := src.As16(), dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
}

// BuildARPRequest returns an Ethernet broadcast frame carrying an ARP
// request "who has target, tell srcIP" from srcMAC.
func BuildARPRequest(srcMAC net.HardwareAddr, srcIP, target netip.Addr) []byte {
	f := ethernet(broadcastMAC, srcMAC, etherTypeARP, arpLen)
	putARP(f[etherHdrLen:], arpOpRequest, srcMAC, srcIP, nil, target)
	return f
}

// buildARPReply returns an ARP reply "ip is at mac" sent to dstMAC/dstIP.
func buildARPReply(mac net.HardwareAddr, ip netip.Addr, dstMAC net.HardwareAddr, dstIP netip.Addr) []byte {
	f := ethernet(dstMAC, mac, etherTypeARP, arpLen)
	putARP(f[etherHdrLen:], arpOpReply, mac, ip, dstMAC, dstIP)
	return f
}

func putARP(b []byte, op uint16, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) {
	binary.BigEndian.PutUint16(b[0:], 1) // Ethernet
	binary.BigEndian.PutUint16(b[2:], etherTypeIPv4)
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:], op)
	copy(b[8:14], sha)
	s := spa.As4()
	copy(b[14:18], s[:])
	copy(b[18:24], tha) // nil leaves zeros
	t := tpa.As4()
	copy(b[24:28], t[:])
}

// BuildEcho returns an Ethernet frame from srcMAC to dstMAC carrying an
// ICMP echo request (src and dst IPv4) or ICMPv6 echo request (IPv6) with
// the given identifier, sequence number and payload, with valid checksums.
// IPv4 packets have DF set.
func BuildEcho(srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, id, seq uint16, payload []byte) []byte {
	return buildEcho(srcMAC, dstMAC, src, dst, id, seq, payload, false)
}

func buildEcho(srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, id, seq uint16, payload []byte, reply bool) []byte {
	icmpLen := 8 + len(payload)
	if src.Is4() {
		f := ethernet(dstMAC, srcMAC, etherTypeIPv4, ipv4HdrLen+icmpLen)
		putIPv4Header(f[etherHdrLen:], src, dst, protoICMP, icmpLen, seq)
		m := f[etherHdrLen+ipv4HdrLen:]
		m[0] = icmpEchoRequest
		if reply {
			m[0] = icmpEchoReply
		}
		binary.BigEndian.PutUint16(m[4:], id)
		binary.BigEndian.PutUint16(m[6:], seq)
		copy(m[8:], payload)
		binary.BigEndian.PutUint16(m[2:], checksum(m))
		return f
	}
	f := ethernet(dstMAC, srcMAC, etherTypeIPv6, ipv6HdrLen+icmpLen)
	putIPv6Header(f[etherHdrLen:], src, dst, protoICMPv6, icmpLen, defaultHopLimit)
	m := f[etherHdrLen+ipv6HdrLen:]
	m[0] = icmp6EchoRequest
	if reply {
		m[0] = icmp6EchoReply
	}
	binary.BigEndian.PutUint16(m[4:], id)
	binary.BigEndian.PutUint16(m[6:], seq)
	copy(m[8:], payload)
	binary.BigEndian.PutUint16(m[2:], icmp6Checksum(src, dst, m))
	return f
}

// BuildNeighborSolicitation returns a frame carrying an ICMPv6 neighbour
// solicitation for target from src/srcMAC, sent to target's solicited-node
// multicast group, with a source link-layer address option.
func BuildNeighborSolicitation(srcMAC net.HardwareAddr, src, target netip.Addr) []byte {
	dst := solicitedNode(target)
	const msgLen = 24 + 8
	f := ethernet(multicastMAC(dst), srcMAC, etherTypeIPv6, ipv6HdrLen+msgLen)
	putIPv6Header(f[etherHdrLen:], src, dst, protoICMPv6, msgLen, ndHopLimit)
	m := f[etherHdrLen+ipv6HdrLen:]
	m[0] = icmp6NeighborSol
	t := target.As16()
	copy(m[8:24], t[:])
	m[24], m[25] = ndOptSourceLLAddr, 1
	copy(m[26:32], srcMAC)
	binary.BigEndian.PutUint16(m[2:], icmp6Checksum(src, dst, m))
	return f
}

// buildNeighborAdvert returns a neighbour advertisement for target (one of
// our addresses, also the IPv6 source) with the given flags and a target
// link-layer address option.
func buildNeighborAdvert(mac net.HardwareAddr, target netip.Addr, dstMAC net.HardwareAddr, dst netip.Addr, flags byte) []byte {
	const msgLen = 24 + 8
	f := ethernet(dstMAC, mac, etherTypeIPv6, ipv6HdrLen+msgLen)
	putIPv6Header(f[etherHdrLen:], target, dst, protoICMPv6, msgLen, ndHopLimit)
	m := f[etherHdrLen+ipv6HdrLen:]
	m[0] = icmp6NeighborAdv
	m[4] = flags
	t := target.As16()
	copy(m[8:24], t[:])
	m[24], m[25] = ndOptTargetLLAddr, 1
	copy(m[26:32], mac)
	binary.BigEndian.PutUint16(m[2:], icmp6Checksum(target, dst, m))
	return f
}

// Describe returns a one-line human-readable summary of an Ethernet frame
// (without virtio-net header), for test logs. It never panics.
func Describe(frame []byte) string {
	if len(frame) < etherHdrLen {
		return fmt.Sprintf("runt frame (%d bytes)", len(frame))
	}
	dst, src := net.HardwareAddr(frame[0:6]), net.HardwareAddr(frame[6:12])
	et := binary.BigEndian.Uint16(frame[12:14])
	p := frame[etherHdrLen:]
	head := fmt.Sprintf("%s > %s", src, dst)
	switch et {
	case etherTypeARP:
		a, ok := parseARP(p)
		if !ok {
			return head + " ARP (malformed)"
		}
		if a.op == arpOpRequest {
			return fmt.Sprintf("%s ARP who-has %s tell %s", head, a.tpa, a.spa)
		}
		return fmt.Sprintf("%s ARP op %d %s is-at %s", head, a.op, a.spa, a.sha)
	case etherTypeIPv4:
		ip, ok := parseIPv4(p)
		if !ok {
			return head + " IPv4 (malformed)"
		}
		s := fmt.Sprintf("%s IPv4 %s > %s proto %d len %d", head, ip.src, ip.dst, ip.proto, ip.totalLen)
		if ip.proto == protoICMP && len(ip.payload) >= 8 {
			s += fmt.Sprintf(" icmp type %d code %d id %d seq %d", ip.payload[0], ip.payload[1],
				binary.BigEndian.Uint16(ip.payload[4:]), binary.BigEndian.Uint16(ip.payload[6:]))
		}
		return s
	case etherTypeIPv6:
		ip, ok := parseIPv6(p)
		if !ok {
			return head + " IPv6 (malformed)"
		}
		s := fmt.Sprintf("%s IPv6 %s > %s next %d len %d", head, ip.src, ip.dst, ip.proto, len(ip.payload))
		if ip.proto == protoICMPv6 && len(ip.payload) >= 4 {
			s += fmt.Sprintf(" icmp6 type %d code %d", ip.payload[0], ip.payload[1])
		}
		return s
	}
	return fmt.Sprintf("%s ethertype 0x%04x len %d", head, et, len(frame))
}

type arpPacket struct {
	op       uint16
	sha, tha net.HardwareAddr
	spa, tpa netip.Addr
}

// parseARP parses an Ethernet/IPv4 ARP packet.
func parseARP(b []byte) (arpPacket, bool) {
	if len(b) < arpLen || binary.BigEndian.Uint16(b[0:]) != 1 ||
		binary.BigEndian.Uint16(b[2:]) != etherTypeIPv4 || b[4] != 6 || b[5] != 4 {
		return arpPacket{}, false
	}
	return arpPacket{
		op:  binary.BigEndian.Uint16(b[6:]),
		sha: net.HardwareAddr(b[8:14]),
		spa: netip.AddrFrom4([4]byte(b[14:18])),
		tha: net.HardwareAddr(b[18:24]),
		tpa: netip.AddrFrom4([4]byte(b[24:28])),
	}, true
}

type ipPacket struct {
	src, dst netip.Addr
	proto    byte
	hopLimit byte
	totalLen int
	// fragment is true for an IPv4 fragment or an IPv6 packet with a
	// fragment header.
	fragment bool
	// headerOK is false when the IPv4 header checksum does not verify.
	headerOK bool
	payload  []byte
}

// parseIPv4 parses an IPv4 packet, honouring the header length (options)
// and the total length (trailing Ethernet padding is dropped).
func parseIPv4(b []byte) (ipPacket, bool) {
	if len(b) < ipv4HdrLen || b[0]>>4 != 4 {
		return ipPacket{}, false
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:]))
	if ihl < ipv4HdrLen || total < ihl || total > len(b) {
		return ipPacket{}, false
	}
	return ipPacket{
		src:      netip.AddrFrom4([4]byte(b[12:16])),
		dst:      netip.AddrFrom4([4]byte(b[16:20])),
		proto:    b[9],
		hopLimit: b[8],
		totalLen: total,
		fragment: binary.BigEndian.Uint16(b[6:])&ipv4FragMask != 0,
		headerOK: checksum(b[:ihl]) == 0,
		payload:  b[ihl:total],
	}, true
}

// parseIPv6 parses an IPv6 packet, skipping hop-by-hop, routing and
// destination options extension headers; proto is the upper-layer protocol.
func parseIPv6(b []byte) (ipPacket, bool) {
	if len(b) < ipv6HdrLen || b[0]>>4 != 6 {
		return ipPacket{}, false
	}
	plen := int(binary.BigEndian.Uint16(b[4:]))
	if ipv6HdrLen+plen > len(b) {
		return ipPacket{}, false
	}
	p := ipPacket{
		src:      netip.AddrFrom16([16]byte(b[8:24])),
		dst:      netip.AddrFrom16([16]byte(b[24:40])),
		hopLimit: b[7],
		totalLen: ipv6HdrLen + plen,
		headerOK: true,
	}
	next := b[6]
	rest := b[ipv6HdrLen : ipv6HdrLen+plen]
loop:
	for {
		switch next {
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if len(rest) < 8 {
				return ipPacket{}, false
			}
			l := (int(rest[1]) + 1) * 8
			if l > len(rest) {
				return ipPacket{}, false
			}
			next, rest = rest[0], rest[l:]
			continue
		case 44: // fragment
			p.fragment = true
		}
		break loop
	}
	p.proto = next
	p.payload = rest
	return p, true
}
