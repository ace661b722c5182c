package inet

import "testing"

func TestChecksum(t *testing.T) {
	// RFC 1071's worked example: the one's-complement sum is ddf2.
	if got := Checksum([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}); got != ^uint16(0xddf2) {
		t.Errorf("Checksum = %#04x, want %#04x", got, ^uint16(0xddf2))
	}
	if got := Checksum([]byte{0x00, 0x01}, []byte{0xf2, 0x03, 0xf4, 0xf5}, []byte{0xf6, 0xf7}); got != ^uint16(0xddf2) {
		t.Errorf("Checksum over parts = %#04x", got)
	}
	if Checksum([]byte{0x01}) != ^uint16(0x0100) {
		t.Error("an odd trailing byte is not padded")
	}
}
