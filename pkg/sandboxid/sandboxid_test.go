package sandboxid

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	good := []string{"a", "pod-1", "0f3c_x.y", strings.Repeat("a", MaxLen)}
	bad := []string{"", "../x", "a/b", "a..b", ".hidden", "-x", "a b", "a\x00b", strings.Repeat("a", MaxLen+1), "é"}
	for _, id := range good {
		if err := Check(id); err != nil {
			t.Errorf("Check(%q) = %v, want nil", id, err)
		}
	}
	for _, id := range bad {
		if err := Check(id); !errors.Is(err, ErrInvalid) {
			t.Errorf("Check(%q) = %v, want ErrInvalid", id, err)
		}
	}
}

// idChars says what the pattern ^[A-Za-z0-9][A-Za-z0-9_.\-]*$ says.
func TestIDCharsMatchesThePattern(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.\-]*$`)
	alphabet := []byte("aZ09_.-/ :\x00é+")
	var walk func(prefix []byte, depth int)
	walk = func(prefix []byte, depth int) {
		if got, want := idChars(string(prefix)), re.Match(prefix); got != want {
			t.Errorf("idChars(%q) = %v, the pattern says %v", prefix, got, want)
		}
		if depth == 0 {
			return
		}
		for _, c := range alphabet {
			walk(append(prefix, c), depth-1)
		}
	}
	walk(nil, 3)
}
