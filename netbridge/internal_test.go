package netbridge

import (
	"fmt"
	"strings"
	"testing"
)

func TestTapNamesFitAndDiffer(t *testing.T) {
	seen := map[string]string{}
	names := []string{"eth0", "net1", "abcdefghijkl", "abcdefghijklm", "abcdefghijklmn", "abcdefghijklmno", "abcdefXXXXXXXXX", "abcdefYYYYYYYYY"}
	for i := range 1000 {
		names = append(names, fmt.Sprintf("if%013d", i))
	}
	for _, n := range names {
		tap := tapNameForTest(n)
		if len(tap) > 15 || !strings.HasPrefix(tap, tapPrefix) {
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

func tapNameForTest(ifname string) string { return nameFor(tapPrefix, ifname) }
