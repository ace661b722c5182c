package fakeguest

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
)

var (
	guestMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x00, 0x02}
	hostMAC  = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x00, 0x01}
	guestV4  = netip.MustParseAddr("198.51.100.2")
	hostV4   = netip.MustParseAddr("198.51.100.1")
	guestV6  = netip.MustParseAddr("2001:db8:1::2")
	hostV6   = netip.MustParseAddr("2001:db8:1::1")
)

func testIdentity() *identity {
	return &identity{mac: guestMAC, addrs: []netip.Prefix{
		netip.PrefixFrom(guestV4, 24),
		netip.PrefixFrom(guestV6, 64),
	}}
}

func TestChecksum(t *testing.T) {
	// RFC 1071 section 3 example: the one's complement sum is ddf2.
	if got := checksum([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}); got != ^uint16(0xddf2) {
		t.Errorf("checksum = %#04x, want %#04x", got, ^uint16(0xddf2))
	}
	// A well-known IPv4 header whose checksum field is b861.
	hdr := []byte{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61,
		0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7}
	if got := checksum(hdr); got != 0 {
		t.Errorf("checksum of a valid header = %#04x, want 0", got)
	}
	hdr[10], hdr[11] = 0, 0
	if got := checksum(hdr); got != 0xb861 {
		t.Errorf("header checksum = %#04x, want 0xb861", got)
	}
	// Odd length: the last byte is padded with zero.
	if checksum([]byte{0x01}) != ^uint16(0x0100) {
		t.Error("odd-length checksum wrong")
	}
}

func TestSolicitedNode(t *testing.T) {
	a := netip.MustParseAddr("2001:db8:1::12:3456")
	if got, want := solicitedNode(a), netip.MustParseAddr("ff02::1:ff12:3456"); got != want {
		t.Errorf("solicitedNode = %s, want %s", got, want)
	}
	if got, want := multicastMAC(solicitedNode(a)).String(), "33:33:ff:12:34:56"; got != want {
		t.Errorf("multicastMAC = %s, want %s", got, want)
	}
}

func TestARPRequestReply(t *testing.T) {
	id := testIdentity()
	out := id.handle(BuildARPRequest(hostMAC, hostV4, guestV4), false)
	if out.verdict != verdictARPReply || out.reply == nil {
		t.Fatalf("verdict %d, reply %v", out.verdict, out.reply)
	}
	r := out.reply
	if !bytes.Equal(r[0:6], hostMAC) || !bytes.Equal(r[6:12], guestMAC) || binary.BigEndian.Uint16(r[12:]) != etherTypeARP {
		t.Errorf("bad Ethernet header: %s", Describe(r))
	}
	a, ok := parseARP(r[etherHdrLen:])
	if !ok || a.op != arpOpReply || !bytes.Equal(a.sha, guestMAC) || a.spa != guestV4 || !bytes.Equal(a.tha, hostMAC) || a.tpa != hostV4 {
		t.Errorf("bad ARP reply %+v", a)
	}
	if out.learned == nil || out.learned.ip != hostV4 || !bytes.Equal(out.learned.mac, hostMAC) {
		t.Errorf("did not learn the requester: %+v", out.learned)
	}
	// Requests for other addresses are ignored.
	if out := id.handle(BuildARPRequest(hostMAC, hostV4, netip.MustParseAddr("198.51.100.3")), false); out.verdict != verdictIgnored || out.reply != nil {
		t.Errorf("answered ARP for a foreign address: %d", out.verdict)
	}
	// Replies teach the guest.
	reply := buildARPReply(hostMAC, hostV4, guestMAC, guestV4)
	if out := id.handle(reply, false); out.verdict != verdictLearned || out.learned.ip != hostV4 {
		t.Errorf("ARP reply not learnt: %+v", out)
	}
}

// ipv4WithOptions returns an Ethernet frame with an IPv4 echo request whose
// header carries 4 bytes of options, followed by Ethernet padding.
func ipv4WithOptions(payload []byte) []byte {
	icmp := make([]byte, 8+len(payload))
	icmp[0] = icmpEchoRequest
	binary.BigEndian.PutUint16(icmp[4:], 0xbeef)
	binary.BigEndian.PutUint16(icmp[6:], 3)
	copy(icmp[8:], payload)
	binary.BigEndian.PutUint16(icmp[2:], checksum(icmp))
	hdr := make([]byte, 24)
	hdr[0] = 0x46
	binary.BigEndian.PutUint16(hdr[2:], uint16(len(hdr)+len(icmp)))
	binary.BigEndian.PutUint16(hdr[4:], 0x1234)
	hdr[8] = 64
	hdr[9] = protoICMP
	copy(hdr[12:16], hostV4.AsSlice())
	copy(hdr[16:20], guestV4.AsSlice())
	hdr[20], hdr[21], hdr[22], hdr[23] = 1, 1, 1, 0 // NOP NOP NOP EOL
	binary.BigEndian.PutUint16(hdr[10:], checksum(hdr))
	f := ethernet(guestMAC, hostMAC, etherTypeIPv4, len(hdr)+len(icmp)+10)
	copy(f[etherHdrLen:], hdr)
	copy(f[etherHdrLen+len(hdr):], icmp)
	for i := etherHdrLen + len(hdr) + len(icmp); i < len(f); i++ {
		f[i] = 0xaa // padding that must not be echoed
	}
	return f
}

func checkIPv4EchoReply(t *testing.T, r []byte, wantPayload []byte) {
	t.Helper()
	if !bytes.Equal(r[0:6], hostMAC) || !bytes.Equal(r[6:12], guestMAC) {
		t.Fatalf("bad Ethernet addresses: %s", Describe(r))
	}
	ip, ok := parseIPv4(r[etherHdrLen:])
	if !ok || !ip.headerOK {
		t.Fatalf("reply has a bad IPv4 header: %s", Describe(r))
	}
	if r[etherHdrLen] != 0x45 || ip.src != guestV4 || ip.dst != hostV4 || ip.proto != protoICMP {
		t.Fatalf("bad reply header: %s", Describe(r))
	}
	if ip.totalLen != len(r)-etherHdrLen {
		t.Errorf("total length %d, frame carries %d", ip.totalLen, len(r)-etherHdrLen)
	}
	m := ip.payload
	if checksum(m) != 0 || m[0] != icmpEchoReply || m[1] != 0 {
		t.Fatalf("bad ICMP reply: % x", m[:8])
	}
	if !bytes.Equal(m[8:], wantPayload) {
		t.Errorf("payload not echoed verbatim")
	}
}

func TestEchoIPv4WithOptions(t *testing.T) {
	id := testIdentity()
	payload := []byte("0123456789abcdef")
	out := id.handle(ipv4WithOptions(payload), false)
	if out.verdict != verdictEchoReply {
		t.Fatalf("verdict %d", out.verdict)
	}
	checkIPv4EchoReply(t, out.reply, payload)
	m := out.reply[etherHdrLen+ipv4HdrLen:]
	if binary.BigEndian.Uint16(m[4:]) != 0xbeef || binary.BigEndian.Uint16(m[6:]) != 3 {
		t.Errorf("identifier/sequence not kept")
	}
}

func TestEchoIPv4Large(t *testing.T) {
	id := testIdentity()
	payload := bytes.Repeat([]byte{0x5a}, 9000-28)
	out := id.handle(BuildEcho(hostMAC, guestMAC, hostV4, guestV4, 1, 1, payload), false)
	if out.verdict != verdictEchoReply {
		t.Fatalf("verdict %d", out.verdict)
	}
	checkIPv4EchoReply(t, out.reply, payload)
	if len(out.reply) != etherHdrLen+9000 {
		t.Errorf("reply frame is %d bytes, want %d", len(out.reply), etherHdrLen+9000)
	}
}

func TestEchoIPv4Rejects(t *testing.T) {
	id := testIdentity()
	good := BuildEcho(hostMAC, guestMAC, hostV4, guestV4, 1, 1, []byte("x"))

	badICMP := append([]byte(nil), good...)
	badICMP[len(badICMP)-1] ^= 0xff
	if out := id.handle(badICMP, false); out.verdict != verdictBadChecksum {
		t.Errorf("bad ICMP checksum: verdict %d", out.verdict)
	}
	// With a partial checksum announced by the virtio-net header the ICMP
	// checksum is not checked.
	if out := id.handle(badICMP, true); out.verdict != verdictEchoReply {
		t.Errorf("partial checksum: verdict %d", out.verdict)
	}
	badIP := append([]byte(nil), good...)
	badIP[etherHdrLen+8]-- // TTL without checksum update
	if out := id.handle(badIP, true); out.verdict != verdictBadChecksum {
		t.Errorf("bad IP header checksum: verdict %d", out.verdict)
	}
	frag := append([]byte(nil), good...)
	binary.BigEndian.PutUint16(frag[etherHdrLen+6:], 0x2000) // MF
	binary.BigEndian.PutUint16(frag[etherHdrLen+10:], 0)
	binary.BigEndian.PutUint16(frag[etherHdrLen+10:], checksum(frag[etherHdrLen:etherHdrLen+20]))
	if out := id.handle(frag, false); out.verdict != verdictIgnored {
		t.Errorf("fragment: verdict %d", out.verdict)
	}
	other := BuildEcho(hostMAC, guestMAC, hostV4, netip.MustParseAddr("198.51.100.7"), 1, 1, nil)
	if out := id.handle(other, false); out.verdict != verdictIgnored {
		t.Errorf("foreign destination: verdict %d", out.verdict)
	}
	wrongMAC := BuildEcho(hostMAC, net.HardwareAddr{2, 0, 0, 0, 0, 9}, hostV4, guestV4, 1, 1, nil)
	if out := id.handle(wrongMAC, false); out.verdict != verdictIgnored {
		t.Errorf("foreign MAC: verdict %d", out.verdict)
	}
	truncated := good[:len(good)-1]
	if out := id.handle(truncated, false); out.verdict != verdictMalformed {
		t.Errorf("truncated: verdict %d", out.verdict)
	}
}

func checkNA(t *testing.T, r []byte, dstMAC net.HardwareAddr, dst netip.Addr, flags byte) {
	t.Helper()
	if !bytes.Equal(r[0:6], dstMAC) || !bytes.Equal(r[6:12], guestMAC) {
		t.Fatalf("bad Ethernet addresses: %s", Describe(r))
	}
	ip, ok := parseIPv6(r[etherHdrLen:])
	if !ok || ip.src != guestV6 || ip.dst != dst || ip.hopLimit != 255 || ip.proto != protoICMPv6 {
		t.Fatalf("bad NA IPv6 header: %s", Describe(r))
	}
	m := ip.payload
	if len(m) != 32 || m[0] != icmp6NeighborAdv || m[1] != 0 {
		t.Fatalf("bad NA: % x", m)
	}
	if icmp6Checksum(ip.src, ip.dst, m) != 0 {
		t.Errorf("NA checksum does not verify")
	}
	if m[4] != flags {
		t.Errorf("NA flags %#x, want %#x", m[4], flags)
	}
	if netip.AddrFrom16([16]byte(m[8:24])) != guestV6 {
		t.Errorf("NA target %x", m[8:24])
	}
	if m[24] != ndOptTargetLLAddr || m[25] != 1 || !bytes.Equal(m[26:32], guestMAC) {
		t.Errorf("bad target link-layer option % x", m[24:])
	}
}

func TestNeighborSolicitation(t *testing.T) {
	id := testIdentity()
	// To the solicited-node group, as the kernel sends them.
	out := id.handle(BuildNeighborSolicitation(hostMAC, hostV6, guestV6), false)
	if out.verdict != verdictNeighborAdvert {
		t.Fatalf("verdict %d", out.verdict)
	}
	checkNA(t, out.reply, hostMAC, hostV6, naFlagSolicited|naFlagOverride)
	if out.learned == nil || out.learned.ip != hostV6 || !bytes.Equal(out.learned.mac, hostMAC) {
		t.Errorf("did not learn the solicitor: %+v", out.learned)
	}

	// Unicast (neighbour unreachability detection): same answer.
	ns := BuildNeighborSolicitation(hostMAC, hostV6, guestV6)
	copy(ns[0:6], guestMAC)
	copy(ns[etherHdrLen+24:etherHdrLen+40], guestV6.AsSlice())
	m := ns[etherHdrLen+ipv6HdrLen:]
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint16(m[2:], icmp6Checksum(hostV6, guestV6, m))
	out = id.handle(ns, false)
	if out.verdict != verdictNeighborAdvert {
		t.Fatalf("unicast NS: verdict %d", out.verdict)
	}
	checkNA(t, out.reply, hostMAC, hostV6, naFlagSolicited|naFlagOverride)

	// DAD probe from the unspecified address, without source option.
	dad := BuildNeighborSolicitation(hostMAC, netip.IPv6Unspecified(), guestV6)
	ip := dad[etherHdrLen:]
	binary.BigEndian.PutUint16(ip[4:], 24)
	dad = dad[:etherHdrLen+ipv6HdrLen+24]
	m = dad[etherHdrLen+ipv6HdrLen:]
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint16(m[2:], icmp6Checksum(netip.IPv6Unspecified(), solicitedNode(guestV6), m))
	out = id.handle(dad, false)
	if out.verdict != verdictNeighborAdvert {
		t.Fatalf("DAD NS: verdict %d", out.verdict)
	}
	checkNA(t, out.reply, multicastMAC(allNodes), allNodes, naFlagOverride)

	// Hop limit other than 255 must be dropped (RFC 4861 7.1.1).
	bad := BuildNeighborSolicitation(hostMAC, hostV6, guestV6)
	bad[etherHdrLen+7] = 64
	if out := id.handle(bad, false); out.verdict != verdictMalformed {
		t.Errorf("hop limit 64: verdict %d", out.verdict)
	}
	// Solicitations for other targets are ignored.
	if out := id.handle(BuildNeighborSolicitation(hostMAC, hostV6, netip.MustParseAddr("2001:db8:1::9")), false); out.verdict != verdictIgnored {
		t.Errorf("foreign target: verdict %d", out.verdict)
	}
	// A bad checksum is detected.
	bad = BuildNeighborSolicitation(hostMAC, hostV6, guestV6)
	bad[len(bad)-1] ^= 1
	if out := id.handle(bad, false); out.verdict != verdictBadChecksum {
		t.Errorf("bad checksum: verdict %d", out.verdict)
	}
	// A zero-length option is malformed.
	bad = BuildNeighborSolicitation(hostMAC, hostV6, guestV6)
	m = bad[etherHdrLen+ipv6HdrLen:]
	m[25] = 0
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint16(m[2:], icmp6Checksum(hostV6, solicitedNode(guestV6), m))
	if out := id.handle(bad, false); out.verdict != verdictMalformed {
		t.Errorf("zero-length option: verdict %d", out.verdict)
	}
}

func TestNeighborAdvertLearnt(t *testing.T) {
	id := &identity{mac: hostMAC, addrs: []netip.Prefix{netip.PrefixFrom(hostV6, 64)}}
	na := buildNeighborAdvert(guestMAC, guestV6, hostMAC, hostV6, naFlagSolicited|naFlagOverride)
	out := id.handle(na, false)
	if out.verdict != verdictLearned || out.learned.ip != guestV6 || !bytes.Equal(out.learned.mac, guestMAC) {
		t.Errorf("NA not learnt: %+v", out)
	}
}

func TestEchoIPv6(t *testing.T) {
	id := testIdentity()
	payload := []byte("hello over IPv6")
	out := id.handle(BuildEcho(hostMAC, guestMAC, hostV6, guestV6, 7, 9, payload), false)
	if out.verdict != verdictEchoReply {
		t.Fatalf("verdict %d", out.verdict)
	}
	r := out.reply
	ip, ok := parseIPv6(r[etherHdrLen:])
	if !ok || ip.src != guestV6 || ip.dst != hostV6 || !bytes.Equal(r[0:6], hostMAC) {
		t.Fatalf("bad reply: %s", Describe(r))
	}
	m := ip.payload
	if m[0] != icmp6EchoReply || icmp6Checksum(ip.src, ip.dst, m) != 0 || !bytes.Equal(m[8:], payload) {
		t.Errorf("bad echo reply % x", m)
	}
	if binary.BigEndian.Uint16(m[4:]) != 7 || binary.BigEndian.Uint16(m[6:]) != 9 {
		t.Errorf("identifier/sequence not kept")
	}
	// Echo requests to all-nodes are not answered.
	mc := BuildEcho(hostMAC, multicastMAC(allNodes), hostV6, allNodes, 7, 9, payload)
	if out := id.handle(mc, false); out.verdict != verdictIgnored {
		t.Errorf("multicast echo: verdict %d", out.verdict)
	}
}

func TestEchoIPv6AfterHopByHop(t *testing.T) {
	id := testIdentity()
	f := BuildEcho(hostMAC, guestMAC, hostV6, guestV6, 1, 1, []byte("hbh"))
	ip := f[etherHdrLen:]
	icmp := append([]byte(nil), ip[ipv6HdrLen:]...)
	// Insert an 8-byte hop-by-hop header (PadN option) before ICMPv6.
	hbh := []byte{protoICMPv6, 0, 1, 4, 0, 0, 0, 0}
	nf := ethernet(guestMAC, hostMAC, etherTypeIPv6, ipv6HdrLen+len(hbh)+len(icmp))
	nip := nf[etherHdrLen:]
	putIPv6Header(nip, hostV6, guestV6, 0, len(hbh)+len(icmp), 64)
	copy(nip[ipv6HdrLen:], hbh)
	copy(nip[ipv6HdrLen+len(hbh):], icmp)
	if out := id.handle(nf, false); out.verdict != verdictEchoReply {
		t.Errorf("verdict %d for echo behind a hop-by-hop header", out.verdict)
	}
}

func TestEchoReplySeen(t *testing.T) {
	id := testIdentity()
	reply := buildEcho(hostMAC, guestMAC, hostV4, guestV4, 42, 5, []byte("pong"), true)
	out := id.handle(reply, false)
	if out.verdict != verdictEchoReplyReceived || out.echo == nil || out.echo.id != 42 || out.echo.seq != 5 ||
		out.echo.src != hostV4 || string(out.echo.payload) != "pong" {
		t.Errorf("echo reply not reported: %+v", out)
	}
	reply6 := buildEcho(hostMAC, guestMAC, hostV6, guestV6, 43, 6, []byte("pong6"), true)
	out = id.handle(reply6, false)
	if out.verdict != verdictEchoReplyReceived || out.echo == nil || out.echo.id != 43 || out.echo.src != hostV6 {
		t.Errorf("echo6 reply not reported: %+v", out)
	}
}

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		frame []byte
		want  string
	}{
		{BuildARPRequest(hostMAC, hostV4, guestV4), "ARP who-has 198.51.100.2 tell 198.51.100.1"},
		{BuildEcho(hostMAC, guestMAC, hostV4, guestV4, 1, 2, nil), "IPv4 198.51.100.1 > 198.51.100.2 proto 1 len 28 icmp type 8 code 0 id 1 seq 2"},
		{BuildNeighborSolicitation(hostMAC, hostV6, guestV6), "IPv6 2001:db8:1::1 > ff02::1:ff00:2 next 58 len 32 icmp6 type 135"},
		{[]byte{1, 2, 3}, "runt frame"},
	} {
		if got := Describe(tc.frame); !strings.Contains(got, tc.want) {
			t.Errorf("Describe = %q, want it to contain %q", got, tc.want)
		}
	}
}
