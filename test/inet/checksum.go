// Package inet holds Internet-protocol arithmetic shared by the test
// helpers that build and check packets.
package inet

// Checksum returns the Internet checksum (RFC 1071) of the concatenation
// of parts. A part of odd length other than the last is treated as if
// padded with a zero byte, which callers avoid.
func Checksum(parts ...[]byte) uint16 {
	var sum uint32
	for _, b := range parts {
		for len(b) >= 2 {
			sum += uint32(b[0])<<8 | uint32(b[1])
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
