package netbridge

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// Derived names are cut between characters, never inside one: a name cut
// inside a character is not valid UTF-8, and comes back from the JSON
// record as another name.
func TestDerivedNamesCutAtCharacters(t *testing.T) {
	names := []string{
		"ééééééé",         // 14 bytes of 2-byte characters: the cut falls inside one
		"aéééééé",         // 13 bytes, the cut on a boundary
		"€€€€€",           // 3-byte characters
		"x😀😀😀",            // 4-byte characters
		"eth-€-long-name", // 17 bytes
	}
	seen := map[string]string{}
	for _, n := range names {
		for _, prefix := range []string{tapPrefix, bridgePrefix, macvtapPrefix} {
			got := nameFor(prefix, n)
			if len(got) > 15 || !strings.HasPrefix(got, prefix) || !utf8.ValidString(got) {
				t.Errorf("nameFor(%q, %q) = %q: longer than 15 bytes, without the prefix, or not valid UTF-8", prefix, n, got)
			}
			if other, ok := seen[got]; ok {
				t.Errorf("nameFor gives %q for both %s and %s", got, other, prefix+n)
			}
			seen[got] = prefix + n
		}
	}
}
