package fakeguest

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzHandleFrame feeds arbitrary bytes to the frame handler: it must never
// panic, and every reply it produces must be well-formed with valid
// checksums.
func FuzzHandleFrame(f *testing.F) {
	f.Add(BuildARPRequest(hostMAC, hostV4, guestV4))
	f.Add(BuildEcho(hostMAC, guestMAC, hostV4, guestV4, 1, 1, []byte("payload")))
	f.Add(ipv4WithOptions([]byte("options")))
	f.Add(BuildEcho(hostMAC, guestMAC, hostV6, guestV6, 1, 1, []byte("payload6")))
	f.Add(BuildNeighborSolicitation(hostMAC, hostV6, guestV6))
	f.Add(buildNeighborAdvert(hostMAC, hostV6, guestMAC, guestV6, naFlagSolicited))
	f.Add(buildEcho(hostMAC, guestMAC, hostV4, guestV4, 1, 1, nil, true))
	f.Add([]byte{})
	f.Add(make([]byte, 14))
	f.Fuzz(func(t *testing.T, frame []byte) {
		id := testIdentity()
		_ = Describe(frame)
		for _, skip := range []bool{false, true} {
			out := id.handle(frame, skip)
			_ = Describe(out.reply)
			if out.reply == nil {
				continue
			}
			r := out.reply
			if len(r) < etherHdrLen || !bytes.Equal(r[6:12], guestMAC) || r[0]&1 == 1 && r[0] != 0x33 {
				t.Fatalf("reply with bad Ethernet header: % x", r)
			}
			switch binary.BigEndian.Uint16(r[12:14]) {
			case etherTypeARP:
				if a, ok := parseARP(r[etherHdrLen:]); !ok || a.op != arpOpReply || !id.owns(a.spa) {
					t.Fatalf("bad ARP reply % x", r)
				}
			case etherTypeIPv4:
				ip, ok := parseIPv4(r[etherHdrLen:])
				if !ok || !ip.headerOK || checksum(ip.payload) != 0 || !id.owns(ip.src) {
					t.Fatalf("bad IPv4 reply % x", r)
				}
			case etherTypeIPv6:
				ip, ok := parseIPv6(r[etherHdrLen:])
				if !ok || icmp6Checksum(ip.src, ip.dst, ip.payload) != 0 || !id.owns(ip.src) {
					t.Fatalf("bad IPv6 reply % x", r)
				}
			default:
				t.Fatalf("reply of unknown type % x", r)
			}
		}
	})
}
