package linkname

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheck(t *testing.T) {
	for _, ok := range []string{"eth0", "a", "0123456789abcde", "net-1.2_x", "éééééééa", "веth"} {
		if err := Check(ok); err != nil {
			t.Errorf("Check(%q) = %v, want nil", ok, err)
		}
	}
	for _, c := range []struct{ name, want string }{
		{"", "name missing"},
		{"0123456789abcdef", "longer than 15 bytes"},
		{".", "not a valid interface name"},
		{"..", "not a valid interface name"},
		{"a/b", "not a valid interface name"},
		{"a:b", "not a valid interface name"},
		{"a b", "not a valid interface name"},
		{"a\tb", "not a valid interface name"},
		{"a\nb", "not a valid interface name"},
		{"a\x00b", "not a valid interface name"},
		{"a\xffb", "not valid UTF-8"},
		{"eth\xc3", "not valid UTF-8"}, // a character cut in two
	} {
		err := Check(c.name)
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrInvalid) {
			t.Errorf("Check(%q) = %v, want an ErrInvalid saying %q", c.name, err, c.want)
		}
		if notUTF8 := c.want == "not valid UTF-8"; err != nil && errors.Is(err, ErrNotUTF8) != notUTF8 {
			t.Errorf("Check(%q): errors.Is(ErrNotUTF8) = %t, want %t", c.name, !notUTF8, notUTF8)
		}
		if err != nil && !utf8.ValidString(err.Error()) {
			t.Errorf("Check(%q): the message is not valid UTF-8: %q", c.name, err.Error())
		}
	}
}

func TestCut(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		{"eth0", 10, "eth0"},
		{"eth0", 2, "et"},
		{"eth0", 0, ""},
		{"ééé", 3, "é"},  // 2-byte characters: 3 bytes end inside the second
		{"ééé", 4, "éé"}, // on a boundary
		{"a€b", 3, "a"},  // 3-byte character
		{"a€b", 4, "a€"},
		{"😀x", 3, ""}, // 4-byte character
	} {
		got := Cut(c.s, c.n)
		if got != c.want || !utf8.ValidString(got) {
			t.Errorf("Cut(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
}

func TestShow(t *testing.T) {
	if got := Show("eth0"); got != "eth0" {
		t.Errorf("Show(eth0) = %q", got)
	}
	if got := Show("a\xffb"); got != `"a\xffb"` {
		t.Errorf("Show(a\\xffb) = %s", got)
	}
}
