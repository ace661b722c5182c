package digest

import (
	"crypto/sha256"
	"strings"
	"testing"
)

// TestSum256MatchesTheStandardLibrary: every length around the block and
// padding boundaries, and the published test vectors, give crypto/sha256's
// sum (the names and MACs derived from it must not change).
func TestSum256MatchesTheStandardLibrary(t *testing.T) {
	for n := 0; n <= 300; n++ {
		in := []byte(strings.Repeat("nb\x00é", n)[:n])
		if got, want := Sum256(in), sha256.Sum256(in); got != want {
			t.Fatalf("Sum256 of %d bytes = %x, want %x", n, got, want)
		}
	}
	for in, want := range map[string]string{
		"":    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"abc": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq": "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
	} {
		sum := Sum256([]byte(in))
		if got := hexOf(sum[:]); got != want {
			t.Errorf("Sum256(%q) = %s, want %s", in, got, want)
		}
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	s := make([]byte, 0, 2*len(b))
	for _, c := range b {
		s = append(s, digits[c>>4], digits[c&15])
	}
	return string(s)
}
