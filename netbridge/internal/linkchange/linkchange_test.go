package linkchange

import "testing"

func TestRelabel(t *testing.T) {
	for _, c := range [][4]string{
		{"eth0", "eth0", "eth9", "eth9"},
		{"eth0:1", "eth0", "eth9", "eth9:1"},
		{"eth01", "eth0", "eth9", "eth01"},
		{"", "eth0", "eth9", ""},
		{"mine", "eth0", "eth9", "mine"},
	} {
		if got := relabel(c[0], c[1], c[2]); got != c[3] {
			t.Errorf("relabel(%q, %q, %q) = %q, want %q", c[0], c[1], c[2], got, c[3])
		}
	}
}
