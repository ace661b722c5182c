package main

import (
	"errors"
	"strings"

	"github.com/netbridge/netbridge/netbridge"
)

// hint returns what the command line adds to the report of err: the flags
// that do what the library's typed errors suggest, "" when none.
func hint(err error) string {
	var mf *netbridge.MissingFeatureError
	if errors.As(err, &mf) && len(mf.Works) > 0 {
		return "use " + flagChoices("--model", mf.Works)
	}
	return ""
}

// flagChoices phrases values of flag as alternatives: "--model a or
// --model b".
func flagChoices[T ~string](flag string, values []T) string {
	s := make([]string, len(values))
	for i, v := range values {
		s[i] = flag + " " + string(v)
	}
	return strings.Join(s, " or ")
}

// report is the one-line report of err, with its hint.
func report(err error) string {
	line := oneLine(err)
	if h := hint(err); h != "" {
		line += "; " + h
	}
	return line
}
