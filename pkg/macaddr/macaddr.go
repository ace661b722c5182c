// Package macaddr derives deterministic, locally administered unicast MAC
// addresses from a seed string.
package macaddr

import (
	"crypto/sha256"
	"net"
	"strconv"
)

// Derive returns the MAC derived from seed: the first six bytes of
// SHA-256(seed) with the locally administered bit set and the multicast bit
// cleared. The same seed always gives the same address.
func Derive(seed string) net.HardwareAddr {
	sum := sha256.Sum256([]byte(seed))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = (mac[0] | 0x02) &^ 0x01
	return mac
}

// DeriveFree returns the first of Derive(seed), Derive(seed+"#1"),
// Derive(seed+"#2"), ... that taken reports free. The sequence is fixed, so
// the result is deterministic for a given set of taken addresses. It gives
// up and returns nil after 256 attempts, which only a taken func that
// rejects everything can cause.
func DeriveFree(seed string, taken func(net.HardwareAddr) bool) net.HardwareAddr {
	for i := 0; i < 256; i++ {
		s := seed
		if i > 0 {
			s += "#" + strconv.Itoa(i)
		}
		if mac := Derive(s); !taken(mac) {
			return mac
		}
	}
	return nil
}

// IsLocalUnicast reports whether mac is a 6-byte locally administered
// unicast address.
func IsLocalUnicast(mac net.HardwareAddr) bool {
	return len(mac) == 6 && mac[0]&0x02 != 0 && mac[0]&0x01 == 0
}
