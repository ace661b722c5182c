package qemu

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// quoteCases are argument vectors with their expected Quote output.
var quoteCases = []struct {
	args []string
	want string
}{
	{nil, ""},
	{[]string{""}, "''"},
	{[]string{"-netdev", "tap,id=net-eth0,ifname=tap_eth0,script=no,downscript=no"},
		"-netdev tap,id=net-eth0,ifname=tap_eth0,script=no,downscript=no"},
	{[]string{"-device", "virtio-net-pci,id=nic-eth0,netdev=net-eth0,mac=02:42:c0:00:02:0a,host_mtu=1500"},
		"-device virtio-net-pci,id=nic-eth0,netdev=net-eth0,mac=02:42:c0:00:02:0a,host_mtu=1500"},
	{[]string{"a b", "it's", "$HOME", "`x`", "a;b", "*", "~", "#c", "x\ny", "\\", `"q"`},
		`'a b' 'it'\''s' '$HOME' '` + "`x`" + `' 'a;b' '*' '~' '#c' '` + "x\ny" + `' '\' '"q"'`},
	{[]string{"''", "é", "a\tb"}, `''\'''\''' 'é' '` + "a\tb'"},
	{[]string{"%+,-./:=@_", "A1"}, "%+,-./:=@_ A1"},
}

func TestQuote(t *testing.T) {
	for _, tt := range quoteCases {
		if got := Quote(tt.args); got != tt.want {
			t.Errorf("Quote(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
}

// split is a test-only splitter for the subset of POSIX shell syntax that
// Quote produces: blanks between words, single-quoted parts, backslash
// escapes outside quotes and plain characters.
func split(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var word strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted:
			if c == '\'' {
				quoted = false
			} else {
				word.WriteByte(c)
			}
		case c == '\'':
			quoted, inWord = true, true
		case c == '\\':
			if i+1 == len(line) {
				t.Fatalf("trailing backslash in %q", line)
			}
			i++
			word.WriteByte(line[i])
			inWord = true
		case c == ' ':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			if strings.IndexByte(shellSafe, c) < 0 {
				t.Fatalf("unquoted special character %q in %q", c, line)
			}
			word.WriteByte(c)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("unterminated quote in %q", line)
	}
	if inWord {
		words = append(words, word.String())
	}
	return words
}

func TestQuoteRoundTrip(t *testing.T) {
	for _, tt := range quoteCases {
		got := split(t, Quote(tt.args))
		if len(got) != len(tt.args) || (len(got) > 0 && strings.Join(got, "\x00") != strings.Join(tt.args, "\x00")) {
			t.Errorf("split(Quote(%q)) = %q", tt.args, got)
		}
	}
}

// TestQuoteShell has a real shell split the quoted line back.
func TestQuoteShell(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh in PATH")
	}
	for _, tt := range quoteCases {
		if len(tt.args) == 0 {
			continue
		}
		out, err := exec.Command(sh, "-c", `printf '%s\0' `+Quote(tt.args)).Output()
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			t.Fatalf("sh: %v: %s", err, exitErr.Stderr)
		} else if err != nil {
			t.Fatal(err)
		}
		got := strings.Split(string(bytes.TrimSuffix(out, []byte{0})), "\x00")
		if strings.Join(got, "\x00") != strings.Join(tt.args, "\x00") || len(got) != len(tt.args) {
			t.Errorf("sh split %q into %q, want %q", Quote(tt.args), got, tt.args)
		}
	}
}

func FuzzQuote(f *testing.F) {
	for _, tt := range quoteCases {
		f.Add(strings.Join(tt.args, "\x00"))
	}
	f.Fuzz(func(t *testing.T, joined string) {
		args := strings.Split(joined, "\x00")
		got := split(t, Quote(args))
		if strings.Join(got, "\x00") != joined || len(got) != len(args) {
			t.Fatalf("split(Quote(%q)) = %q", args, got)
		}
	})
}
