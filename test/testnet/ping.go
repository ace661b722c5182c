package testnet

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/test/inet"
)

// ErrNoReply is wrapped by the error [Ping] returns when no matching echo
// reply arrived in time.
var ErrNoReply = errors.New("no echo reply")

// pingInterval is the time between two echo requests of one [Ping] call.
const pingInterval = 200 * time.Millisecond

// Ping sends ICMP (IPv4) or ICMPv6 echo requests from inside n to dst until
// a matching reply arrives or timeout passes, sending a new request every
// 200 ms. A reply matches when it comes from dst, carries this call's random
// identifier and one of its sequence numbers, and returns the payload
// unchanged.
//
// When size > 0 the IP packet is exactly size bytes (IPv4: 20-byte header +
// 8-byte ICMP header + payload; IPv6: 40 + 8 + payload), otherwise the
// payload is 56 bytes like ping(8). Fragmentation is forbidden (IPv4 DF,
// IPv6 IPV6_PMTUDISC_DO), so a packet larger than the path MTU fails at once
// with EMSGSIZE instead of being fragmented. A link-local IPv6 dst needs a
// zone naming the outgoing link inside n, for example fe80::1%eth0.
//
// The raw socket is opened on a thread locked inside n (a socket stays in the
// namespace it was created in), then used from ordinary goroutines.
func Ping(n ns.NetNS, dst netip.Addr, size int, timeout time.Duration) error {
	dst = dst.Unmap()
	if !dst.IsValid() {
		return errors.New("ping: invalid destination address")
	}
	ipHdr := 20
	if dst.Is6() {
		ipHdr = 40
	}
	payloadLen := 56
	if size > 0 {
		payloadLen = size - ipHdr - 8
		if payloadLen < 0 {
			return fmt.Errorf("ping: size %d is smaller than the %d-byte IP and ICMP headers", size, ipHdr+8)
		}
	}
	f, err := openICMP(n, dst)
	if err != nil {
		return err
	}
	defer f.Close()

	var idb [2]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return fmt.Errorf("ping: random identifier: %w", err)
	}
	id := binary.BigEndian.Uint16(idb[:])
	payload := make([]byte, payloadLen)
	for i := range payload {
		payload[i] = byte(i*7 + 3)
	}

	deadline := time.Now().Add(timeout)
	buf := make([]byte, 65536)
	var lastErr error
	sent := 0
	for seq := uint16(1); ; seq++ {
		now := time.Now()
		if !now.Before(deadline) {
			break
		}
		if _, err := f.Write(echoRequest(dst.Is6(), id, seq, payload)); err != nil {
			if errors.Is(err, unix.EMSGSIZE) {
				return fmt.Errorf("ping %s (%d bytes) from netns %s: %w", dst, ipHdr+8+payloadLen, Name(n), err)
			}
			lastErr = err
		} else {
			sent++
		}
		wait := now.Add(pingInterval)
		if wait.After(deadline) {
			wait = deadline
		}
		if err := f.SetReadDeadline(wait); err != nil {
			return fmt.Errorf("ping: setting deadline: %w", err)
		}
		for {
			k, err := f.Read(buf)
			if err != nil {
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					// For example EHOSTUNREACH from a failed neighbour
					// resolution; retry after the interval.
					lastErr = err
					time.Sleep(time.Until(wait))
				}
				break
			}
			if isEchoReply(dst.Is6(), buf[:k], id, seq, payload) {
				return nil
			}
		}
	}
	msg := fmt.Sprintf("ping %s (%d bytes) from netns %s: %d requests in %s", dst, ipHdr+8+payloadLen, Name(n), sent, timeout)
	if lastErr != nil {
		return fmt.Errorf("%s: %w (last error: %w)", msg, ErrNoReply, lastErr)
	}
	return fmt.Errorf("%s: %w", msg, ErrNoReply)
}

// openICMP opens a raw ICMP or ICMPv6 socket inside n, forbids
// fragmentation and connects it to dst, so that the kernel only delivers
// packets from dst to it. The returned file is non-blocking and supports
// deadlines.
func openICMP(n ns.NetNS, dst netip.Addr) (*os.File, error) {
	var fd int
	err := n.Do(func(ns.NetNS) error {
		var sa unix.Sockaddr
		family, proto := unix.AF_INET, unix.IPPROTO_ICMP
		if dst.Is6() {
			family, proto = unix.AF_INET6, unix.IPPROTO_ICMPV6
			sa6 := &unix.SockaddrInet6{Addr: dst.As16()}
			if z := dst.Zone(); z != "" {
				ifi, err := net.InterfaceByName(z)
				if err != nil {
					return fmt.Errorf("zone %q: %w", z, err)
				}
				sa6.ZoneId = uint32(ifi.Index)
			}
			sa = sa6
		} else {
			sa = &unix.SockaddrInet4{Addr: dst.As4()}
		}
		s, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return fmt.Errorf("raw socket: %w", err)
		}
		if dst.Is6() {
			err = unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DO)
		} else {
			err = unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO)
		}
		if err != nil {
			unix.Close(s)
			return fmt.Errorf("forbidding fragmentation: %w", err)
		}
		if err := unix.Connect(s, sa); err != nil {
			unix.Close(s)
			return fmt.Errorf("connect to %s: %w", dst, err)
		}
		fd = s
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ping %s from netns %s: %w", dst, Name(n), err)
	}
	return os.NewFile(uintptr(fd), "icmp:"+dst.String()), nil
}

// echoRequest builds an ICMP (v6=false) or ICMPv6 echo request. The ICMPv6
// checksum is left zero: the kernel fills it in for raw ICMPv6 sockets.
func echoRequest(v6 bool, id, seq uint16, payload []byte) []byte {
	m := make([]byte, 8+len(payload))
	m[0] = 8
	if v6 {
		m[0] = 128
	}
	binary.BigEndian.PutUint16(m[4:], id)
	binary.BigEndian.PutUint16(m[6:], seq)
	copy(m[8:], payload)
	if !v6 {
		binary.BigEndian.PutUint16(m[2:], inet.Checksum(m))
	}
	return m
}

// isEchoReply reports whether pkt, as read from the raw socket (IPv4: with
// IP header; IPv6: ICMPv6 message only), is an echo reply for identifier id,
// a sequence number up to maxSeq and the given payload.
func isEchoReply(v6 bool, pkt []byte, id, maxSeq uint16, payload []byte) bool {
	want := byte(0)
	if v6 {
		want = 129
	} else {
		if len(pkt) < 20 || pkt[0]>>4 != 4 {
			return false
		}
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < 20 || len(pkt) < ihl || pkt[9] != unix.IPPROTO_ICMP {
			return false
		}
		pkt = pkt[ihl:]
		if inet.Checksum(pkt) != 0 {
			return false
		}
	}
	if len(pkt) < 8 || pkt[0] != want || pkt[1] != 0 {
		return false
	}
	seq := binary.BigEndian.Uint16(pkt[6:])
	return binary.BigEndian.Uint16(pkt[4:]) == id && seq >= 1 && seq <= maxSeq && bytes.Equal(pkt[8:], payload)
}
