package model

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/netbridge/netbridge/pkg/linkname"
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
		for _, prefix := range []string{TapPrefix, BridgePrefix, MacvtapPrefix} {
			got := NameFor(prefix, n)
			if len(got) > 15 || !strings.HasPrefix(got, prefix) || !utf8.ValidString(got) {
				t.Errorf("NameFor(%q, %q) = %q: longer than 15 bytes, without the prefix, or not valid UTF-8", prefix, n, got)
			}
			if other, ok := seen[got]; ok {
				t.Errorf("nameFor gives %q for both %s and %s", got, other, prefix+n)
			}
			seen[got] = prefix + n
		}
	}
}

func TestTapNamesFitAndDiffer(t *testing.T) {
	seen := map[string]string{}
	names := []string{"eth0", "net1", "abcdefghijkl", "abcdefghijklm", "abcdefghijklmn", "abcdefghijklmno", "abcdefXXXXXXXXX", "abcdefYYYYYYYYY"}
	for i := range 1000 {
		names = append(names, fmt.Sprintf("if%013d", i))
	}
	for _, n := range names {
		tap := tapNameForTest(n)
		if len(tap) > 15 || !strings.HasPrefix(tap, TapPrefix) {
			t.Errorf("tapNameForTest(%q) = %q: longer than 15 bytes or without prefix", n, tap)
		}
		if tapNameForTest(n) != tap {
			t.Errorf("tapNameForTest(%q) is not deterministic", n)
		}
		if prev, ok := seen[tap]; ok {
			t.Errorf("tapNameForTest(%q) = tapNameForTest(%q) = %q", n, prev, tap)
		}
		seen[tap] = n
	}
	if got := tapNameForTest("eth0"); got != "nb-eth0" {
		t.Errorf("tapNameForTest(eth0) = %q, want nb-eth0", got)
	}
}

func tapNameForTest(ifname string) string { return NameFor(TapPrefix, ifname) }

func TestTmpTapName(t *testing.T) {
	a, b := tmpTapName("pod1", "nb-eth0"), tmpTapName("pod2", "nb-eth0")
	if a == b || a == tmpTapName("pod1", "nb-net1") || a != tmpTapName("pod1", "nb-eth0") {
		t.Errorf("temporary names not one per sandbox and tap: %q %q", a, b)
	}
	if err := linkname.Check(a); err != nil || !strings.HasPrefix(a, "nbt") {
		t.Errorf("temporary name %q: %v", a, err)
	}
}
