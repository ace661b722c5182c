package netbridge

import (
	"strings"
	"testing"

	"github.com/netbridge/netbridge/pkg/linkname"
)

func TestTmpTapName(t *testing.T) {
	a, b := tmpTapName("pod1", "nb-eth0"), tmpTapName("pod2", "nb-eth0")
	if a == b || a == tmpTapName("pod1", "nb-net1") || a != tmpTapName("pod1", "nb-eth0") {
		t.Errorf("temporary names not one per sandbox and tap: %q %q", a, b)
	}
	if err := linkname.Check(a); err != nil || !strings.HasPrefix(a, "nbt") {
		t.Errorf("temporary name %q: %v", a, err)
	}
}
