package fakeguest

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
)

// identity is what the guest answers for: its MAC and its addresses.
type identity struct {
	mac   net.HardwareAddr
	addrs []netip.Prefix
}

// owns reports whether a is one of the guest's unicast addresses.
func (id *identity) owns(a netip.Addr) bool {
	for _, p := range id.addrs {
		if p.Addr() == a {
			return true
		}
	}
	return false
}

// verdict says what handling a frame amounted to; it drives the counters.
type verdict int

const (
	verdictIgnored verdict = iota
	verdictMalformed
	verdictBadChecksum
	verdictARPReply
	verdictNeighborAdvert
	verdictEchoReply
	verdictLearned
	verdictEchoReplyReceived
)

// neighbor is an IP to MAC mapping the guest learnt from a frame.
type neighbor struct {
	ip  netip.Addr
	mac net.HardwareAddr
}

// echoSeen is an echo reply addressed to the guest.
type echoSeen struct {
	src      netip.Addr
	id, seq  uint16
	payload  []byte
	totalLen int // length of the IP packet
}

// outcome is the result of handling one frame: at most one frame to send
// back, what was learnt, and the verdict.
type outcome struct {
	verdict verdict
	reply   []byte
	learned *neighbor
	echo    *echoSeen
}

// handle processes one received Ethernet frame (virtio-net header already
// removed). It is pure: it does no I/O and does not change id, so it can be
// fuzzed. skipL4Csum is set when the virtio-net header announced a partial
// (not yet computed) transport checksum.
func (id *identity) handle(frame []byte, skipL4Csum bool) outcome {
	if len(frame) < etherHdrLen {
		return outcome{verdict: verdictMalformed}
	}
	dstMAC := net.HardwareAddr(frame[0:6])
	srcMAC := net.HardwareAddr(frame[6:12])
	if !bytes.Equal(dstMAC, id.mac) && !bytes.Equal(dstMAC, broadcastMAC) && !(dstMAC[0] == 0x33 && dstMAC[1] == 0x33) {
		return outcome{verdict: verdictIgnored} // not for us
	}
	payload := frame[etherHdrLen:]
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case etherTypeARP:
		return id.handleARP(payload)
	case etherTypeIPv4:
		return id.handleIPv4(srcMAC, payload, skipL4Csum)
	case etherTypeIPv6:
		return id.handleIPv6(srcMAC, payload, skipL4Csum)
	}
	return outcome{verdict: verdictIgnored}
}

func validMAC(m net.HardwareAddr) bool {
	return len(m) == 6 && m[0]&1 == 0 && !bytes.Equal(m, make(net.HardwareAddr, 6))
}

func (id *identity) handleARP(b []byte) outcome {
	a, ok := parseARP(b)
	if !ok {
		return outcome{verdict: verdictMalformed}
	}
	var learned *neighbor
	if validMAC(a.sha) && !a.spa.IsUnspecified() {
		learned = &neighbor{ip: a.spa, mac: append(net.HardwareAddr(nil), a.sha...)}
	}
	switch a.op {
	case arpOpRequest:
		if !id.owns(a.tpa) || !validMAC(a.sha) {
			return outcome{verdict: verdictIgnored}
		}
		return outcome{
			verdict: verdictARPReply,
			reply:   buildARPReply(id.mac, a.tpa, a.sha, a.spa),
			learned: learned,
		}
	case arpOpReply:
		if learned != nil {
			return outcome{verdict: verdictLearned, learned: learned}
		}
	}
	return outcome{verdict: verdictIgnored}
}

func (id *identity) handleIPv4(srcMAC net.HardwareAddr, b []byte, skipL4Csum bool) outcome {
	ip, ok := parseIPv4(b)
	if !ok {
		return outcome{verdict: verdictMalformed}
	}
	if !ip.headerOK {
		return outcome{verdict: verdictBadChecksum}
	}
	if ip.fragment || ip.proto != protoICMP || !id.owns(ip.dst) {
		return outcome{verdict: verdictIgnored}
	}
	m := ip.payload
	if len(m) < 8 {
		return outcome{verdict: verdictMalformed}
	}
	if !skipL4Csum && checksum(m) != 0 {
		return outcome{verdict: verdictBadChecksum}
	}
	if m[1] != 0 {
		return outcome{verdict: verdictIgnored}
	}
	switch m[0] {
	case icmpEchoRequest:
		if !validMAC(srcMAC) {
			return outcome{verdict: verdictIgnored}
		}
		f := ethernet(srcMAC, id.mac, etherTypeIPv4, ipv4HdrLen+len(m))
		putIPv4Header(f[etherHdrLen:], ip.dst, ip.src, protoICMP, len(m), binary.BigEndian.Uint16(b[4:]))
		r := f[etherHdrLen+ipv4HdrLen:]
		copy(r, m)
		r[0] = icmpEchoReply
		r[2], r[3] = 0, 0
		binary.BigEndian.PutUint16(r[2:], checksum(r))
		return outcome{verdict: verdictEchoReply, reply: f}
	case icmpEchoReply:
		return outcome{verdict: verdictEchoReplyReceived, echo: &echoSeen{
			src:      ip.src,
			id:       binary.BigEndian.Uint16(m[4:]),
			seq:      binary.BigEndian.Uint16(m[6:]),
			payload:  append([]byte(nil), m[8:]...),
			totalLen: ip.totalLen,
		}}
	}
	return outcome{verdict: verdictIgnored}
}

// ndOption returns the link-layer address carried by the first option of
// type typ in opts (the options part of an ND message), nil if there is
// none, and ok=false if the options are malformed.
func ndOption(opts []byte, typ byte) (mac net.HardwareAddr, ok bool) {
	for len(opts) > 0 {
		if len(opts) < 2 {
			return nil, false
		}
		l := int(opts[1]) * 8
		if l == 0 || l > len(opts) {
			return nil, false
		}
		if opts[0] == typ && mac == nil && l >= 8 {
			mac = append(net.HardwareAddr(nil), opts[2:8]...)
		}
		opts = opts[l:]
	}
	return mac, true
}

var allNodes = netip.MustParseAddr("ff02::1")

func (id *identity) handleIPv6(srcMAC net.HardwareAddr, b []byte, skipL4Csum bool) outcome {
	ip, ok := parseIPv6(b)
	if !ok {
		return outcome{verdict: verdictMalformed}
	}
	if ip.fragment || ip.proto != protoICMPv6 {
		return outcome{verdict: verdictIgnored}
	}
	// Accept our unicast addresses, all-nodes and our solicited-node groups.
	forUs := id.owns(ip.dst) || ip.dst == allNodes
	if !forUs && ip.dst.IsMulticast() {
		for _, p := range id.addrs {
			if p.Addr().Is6() && solicitedNode(p.Addr()) == ip.dst {
				forUs = true
				break
			}
		}
	}
	if !forUs {
		return outcome{verdict: verdictIgnored}
	}
	m := ip.payload
	if len(m) < 8 {
		return outcome{verdict: verdictMalformed}
	}
	if !skipL4Csum && icmp6Checksum(ip.src, ip.dst, m) != 0 {
		return outcome{verdict: verdictBadChecksum}
	}
	if m[1] != 0 {
		return outcome{verdict: verdictIgnored}
	}
	switch m[0] {
	case icmp6EchoRequest:
		if !id.owns(ip.dst) || !validMAC(srcMAC) || ip.src.IsMulticast() || ip.src.IsUnspecified() {
			return outcome{verdict: verdictIgnored}
		}
		f := ethernet(srcMAC, id.mac, etherTypeIPv6, ipv6HdrLen+len(m))
		putIPv6Header(f[etherHdrLen:], ip.dst, ip.src, protoICMPv6, len(m), defaultHopLimit)
		r := f[etherHdrLen+ipv6HdrLen:]
		copy(r, m)
		r[0] = icmp6EchoReply
		r[2], r[3] = 0, 0
		binary.BigEndian.PutUint16(r[2:], icmp6Checksum(ip.dst, ip.src, r))
		return outcome{verdict: verdictEchoReply, reply: f}
	case icmp6EchoReply:
		return outcome{verdict: verdictEchoReplyReceived, echo: &echoSeen{
			src:      ip.src,
			id:       binary.BigEndian.Uint16(m[4:]),
			seq:      binary.BigEndian.Uint16(m[6:]),
			payload:  append([]byte(nil), m[8:]...),
			totalLen: ip.totalLen,
		}}
	case icmp6NeighborSol:
		return id.handleNS(srcMAC, ip, m)
	case icmp6NeighborAdv:
		if ip.hopLimit != ndHopLimit || len(m) < 24 {
			return outcome{verdict: verdictMalformed}
		}
		target := netip.AddrFrom16([16]byte(m[8:24]))
		mac, ok := ndOption(m[24:], ndOptTargetLLAddr)
		if !ok {
			return outcome{verdict: verdictMalformed}
		}
		if mac == nil {
			mac = append(net.HardwareAddr(nil), srcMAC...)
		}
		if target.IsMulticast() || !validMAC(mac) {
			return outcome{verdict: verdictIgnored}
		}
		return outcome{verdict: verdictLearned, learned: &neighbor{ip: target, mac: mac}}
	}
	return outcome{verdict: verdictIgnored}
}

// handleNS answers a neighbour solicitation for one of our addresses
// (RFC 4861 sections 7.1.1 and 7.2.4).
func (id *identity) handleNS(srcMAC net.HardwareAddr, ip ipPacket, m []byte) outcome {
	if ip.hopLimit != ndHopLimit || len(m) < 24 {
		return outcome{verdict: verdictMalformed}
	}
	target := netip.AddrFrom16([16]byte(m[8:24]))
	if !id.owns(target) {
		return outcome{verdict: verdictIgnored}
	}
	if ip.dst != target && ip.dst != solicitedNode(target) {
		return outcome{verdict: verdictIgnored}
	}
	slla, ok := ndOption(m[24:], ndOptSourceLLAddr)
	if !ok {
		return outcome{verdict: verdictMalformed}
	}
	if ip.src.IsUnspecified() {
		// Duplicate address detection probe: answer all nodes, unsolicited.
		if slla != nil || !ip.dst.IsMulticast() {
			return outcome{verdict: verdictMalformed}
		}
		return outcome{
			verdict: verdictNeighborAdvert,
			reply:   buildNeighborAdvert(id.mac, target, multicastMAC(allNodes), allNodes, naFlagOverride),
		}
	}
	if ip.src.IsMulticast() {
		return outcome{verdict: verdictMalformed}
	}
	dstMAC := slla
	if dstMAC == nil {
		dstMAC = srcMAC
	}
	if !validMAC(dstMAC) {
		return outcome{verdict: verdictIgnored}
	}
	var learned *neighbor
	if slla != nil {
		learned = &neighbor{ip: ip.src, mac: slla}
	}
	return outcome{
		verdict: verdictNeighborAdvert,
		reply:   buildNeighborAdvert(id.mac, target, dstMAC, ip.src, naFlagSolicited|naFlagOverride),
		learned: learned,
	}
}
