package qemu

import "strings"

// Quote joins args into one line that a POSIX shell splits back into exactly
// args. An argument made only of characters that are never special to the
// shell (letters, digits and "%+,-./:=@_") is written as is; any other
// argument, and the empty one, is wrapped in single quotes; a single quote
// inside it ends the quoted part, is written escaped with a backslash, and a
// new quoted part begins.
//
// It is meant for arguments that follow a command name; a first argument of
// the form NAME=value would be read by the shell as an assignment.
func Quote(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a != "" && strings.Trim(a, shellSafe) == "" {
			b.WriteString(a)
			continue
		}
		b.WriteByte('\'')
		b.WriteString(strings.ReplaceAll(a, "'", `'\''`))
		b.WriteByte('\'')
	}
	return b.String()
}

// shellSafe holds the characters that need no quoting anywhere in a word.
const shellSafe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789%+,-./:=@_"
