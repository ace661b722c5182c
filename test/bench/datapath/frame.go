package datapath

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/netbridge/netbridge/test/inet"
)

// Sizes of the frames the sender blasts.
const (
	ethHeaderLen  = 14
	ipv4HeaderLen = 20
	udpHeaderLen  = 8
	// payloadLen is the UDP payload of every frame: a 1442-byte Ethernet
	// frame, a 1428-byte IP packet, which fits a 1500-byte MTU.
	payloadLen = 1400
	frameLen   = ethHeaderLen + ipv4HeaderLen + udpHeaderLen + payloadLen

	// udpDiscardPort is the destination port (discard, RFC 863).
	udpDiscardPort = 9
	udpSourcePort  = 40009
)

// markerText starts the payload of every frame; a per-path random nonce
// follows it, so that a reader counts only the frames of its own path.
const markerText = "netbridge datapath "

// markerOffset is where the marker starts in a frame.
const markerOffset = ethHeaderLen + ipv4HeaderLen + udpHeaderLen

// buildFrame returns an Ethernet frame from src to dst carrying an IPv4 UDP
// datagram from srcIP to dstIP:9 whose payload starts with marker and is
// padded with a fixed pattern to payloadLen bytes. The UDP checksum is 0
// (none, allowed over IPv4), so no receiver spends time verifying it; the
// IPv4 header checksum is correct and DF is set.
func buildFrame(dst, src net.HardwareAddr, srcIP, dstIP netip.Addr, marker []byte) []byte {
	f := make([]byte, frameLen)
	copy(f[0:6], dst)
	copy(f[6:12], src)
	binary.BigEndian.PutUint16(f[12:14], 0x0800) // ETH_P_IP

	ip := f[ethHeaderLen : ethHeaderLen+ipv4HeaderLen]
	ip[0] = 0x45 // version 4, 5-word header
	binary.BigEndian.PutUint16(ip[2:4], ipv4HeaderLen+udpHeaderLen+payloadLen)
	binary.BigEndian.PutUint16(ip[6:8], 0x4000) // DF
	ip[8] = 64                                  // TTL
	ip[9] = 17                                  // UDP
	s4, d4 := srcIP.As4(), dstIP.As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	binary.BigEndian.PutUint16(ip[10:12], inet.Checksum(ip))

	udp := f[ethHeaderLen+ipv4HeaderLen : markerOffset]
	binary.BigEndian.PutUint16(udp[0:2], udpSourcePort)
	binary.BigEndian.PutUint16(udp[2:4], udpDiscardPort)
	binary.BigEndian.PutUint16(udp[4:6], udpHeaderLen+payloadLen)

	payload := f[markerOffset:]
	for i := range payload {
		payload[i] = byte(i)
	}
	copy(payload, marker)
	return f
}

// ours reports whether frame is one of the sender's frames of this path:
// an IPv4 frame whose payload starts with marker.
func ours(frame, marker []byte) bool {
	return len(frame) >= markerOffset+len(marker) &&
		frame[12] == 0x08 && frame[13] == 0x00 &&
		bytes.Equal(frame[markerOffset:markerOffset+len(marker)], marker)
}
