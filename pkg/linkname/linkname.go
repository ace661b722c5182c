// Package linkname holds the one rule netbridge applies to network
// interface names: the names it is given (flags, CNI_IFNAME, a tap name in
// a configuration), the names of the links it finds in a netns, and the
// names it derives for the links it creates.
//
// The kernel (dev_valid_name) takes 1 to 15 bytes other than "." and "..",
// without '/', ':' or white space; a NUL ends the name early, so it is
// refused too. The kernel takes any other byte, but netbridge records names
// as JSON text, which cannot carry bytes that are not UTF-8: such a name
// would come back from the state record as another name (each bad byte
// turned into U+FFFD) and the record would no longer find its links. So
// netbridge also wants names that are valid UTF-8, and cuts derived names
// only between characters.
package linkname

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxLen is the longest interface name the kernel takes, in bytes
// (IFNAMSIZ - 1).
const MaxLen = 15

// ErrInvalid is the cause of every error Check returns.
var ErrInvalid = errors.New("invalid interface name")

// ErrNotUTF8 is also the cause of the error of a name that the kernel
// takes but that is not valid UTF-8.
var ErrNotUTF8 = errors.New("interface name not valid UTF-8")

// Error says why a name cannot be used. It wraps ErrInvalid, and
// ErrNotUTF8 when that is why.
type Error struct {
	Name string
	// Why completes "name NAME ...".
	Why     string
	notUTF8 bool
}

func (e *Error) Error() string {
	if e.Name == "" {
		return "name missing"
	}
	return fmt.Sprintf("name %q %s", e.Name, e.Why)
}

// Unwrap returns ErrInvalid, and ErrNotUTF8 when that is why.
func (e *Error) Unwrap() []error {
	if e.notUTF8 {
		return []error{ErrInvalid, ErrNotUTF8}
	}
	return []error{ErrInvalid}
}

// Check reports why name cannot name an interface netbridge works with, or
// nil. The error is an *Error; its message starts with "name", so that a
// caller can put what the name is for in front ("tap " + err).
func Check(name string) error {
	switch {
	case name == "":
		return &Error{Name: name}
	case len(name) > MaxLen:
		return &Error{Name: name, Why: fmt.Sprintf("longer than %d bytes", MaxLen)}
	case name == "." || name == "..":
		return &Error{Name: name, Why: "is not a valid interface name (. and .. are not allowed)"}
	case strings.ContainsAny(name, "/: \t\n\v\f\r\x00"):
		return &Error{Name: name, Why: "is not a valid interface name (it must not contain '/', ':', white space or NUL)"}
	case !utf8.ValidString(name):
		return &Error{Name: name, Why: "is not valid UTF-8 (netbridge records interface names as JSON text, which cannot carry other bytes); rename the interface", notUTF8: true}
	}
	return nil
}

// Cut returns the longest start of s that is at most n bytes long and does
// not end inside a multi-byte character of s.
func Cut(s string, n int) string {
	if n >= len(s) {
		return s
	}
	if n <= 0 {
		return ""
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Show returns name as it can be printed in a message or JSON: as it is
// when it is valid UTF-8 without control characters, else quoted with Go
// escapes, so that bytes that are not UTF-8 are not lost or garbled.
func Show(name string) string {
	if utf8.ValidString(name) && !strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return name
	}
	return fmt.Sprintf("%q", name)
}
