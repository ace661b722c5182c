// Package sandboxid holds the one rule for sandbox ids: the ids netbridge
// records a sandbox under, names its state files after, and tags the links
// it makes with.
package sandboxid

import (
	"errors"
	"fmt"
	"strings"
)

// MaxLen is the longest sandbox id accepted, in bytes.
const MaxLen = 128

// ErrInvalid reports a sandbox id that cannot be used.
var ErrInvalid = errors.New("invalid sandbox id")

// Check checks id against the CNI container-id rules: it starts with a
// letter or digit, holds only letters, digits, '_', '.' and '-', contains no
// "..", and is at most MaxLen bytes.
func Check(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty", ErrInvalid)
	case len(id) > MaxLen:
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalid, len(id), MaxLen)
	case strings.Contains(id, ".."):
		return fmt.Errorf("%w %q: contains \"..\"", ErrInvalid, id)
	case !idChars(id):
		return fmt.Errorf("%w %q: use letters, digits, '_', '.' and '-', starting with a letter or digit", ErrInvalid, id)
	}
	return nil
}

// idChars reports whether id starts with a letter or digit and holds only
// letters, digits, '_', '.' and '-'. (A regular expression would do, but
// compiling it at start-up cost every netbridge process half a
// millisecond.)
func idChars(id string) bool {
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return id != ""
}
