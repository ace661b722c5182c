package main

import (
	"errors"
	"strings"

	"github.com/netbridge/netbridge/hypervisor/firecracker"
	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/sandbox"
)

// hint returns what the command line adds to the report of err: the flags
// that do what the library's typed errors suggest, "" when none.
func hint(err error) string {
	var mf *netbridge.MissingFeatureError
	switch {
	case errors.As(err, &mf) && len(mf.Works) > 0:
		return "use " + flagChoices("--model", mf.Works)
	case errors.Is(err, netbridge.ErrStrict):
		return "without --strict it would be skipped"
	case errors.Is(err, sandbox.ErrNoInterface):
		return "name one with --interfaces"
	case errors.Is(err, netbridge.ErrNoVhost):
		return "use " + flagChoices("--vhost", []sandbox.Vhost{sandbox.VhostAuto, sandbox.VhostOff})
	case errors.Is(err, firecracker.ErrMultiQueue):
		return "set the sandbox up with --queues 1"
	}
	return ""
}

// interfacesReason is the Reason of ifc as the command line says it: the
// interfaces named are those of --interfaces.
func interfacesReason(ifc sandbox.Interface) string {
	if ifc.Reason == sandbox.ReasonNotNamed {
		return "not named by --interfaces"
	}
	return ifc.Reason
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
