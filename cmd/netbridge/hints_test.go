package main

import (
	"fmt"
	"syscall"
	"testing"

	"github.com/netbridge/netbridge/hypervisor/firecracker"
	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/sandbox"
)

// TestHintsAreFlags: the command line phrases what the library's typed
// errors suggest as its own flags.
func TestHintsAreFlags(t *testing.T) {
	missing := &netbridge.MissingFeatureError{Model: sandbox.ModelTCFilter, Missing: []string{"ingress"}, Works: []sandbox.Model{sandbox.ModelTCFilter, sandbox.ModelBridge}, Err: syscall.ENOENT}
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("setting up: %w", missing), "setting up: " + missing.Error() + "; use --model tcfilter or --model bridge"},
		{fmt.Errorf("%w: interface %q: too big", netbridge.ErrStrict, "eth0"), netbridge.ErrStrict.Error() + `: interface "eth0": too big; without --strict it would be skipped`},
		{fmt.Errorf("%w (eth0: has no address)", sandbox.ErrNoInterface), sandbox.ErrNoInterface.Error() + " (eth0: has no address); name one with --interfaces"},
		{fmt.Errorf("%w: no /dev/vhost-net", netbridge.ErrNoVhost), netbridge.ErrNoVhost.Error() + ": no /dev/vhost-net; use --vhost auto or --vhost off"},
		{fmt.Errorf("NIC 0: %w", firecracker.ErrMultiQueue), "NIC 0: " + firecracker.ErrMultiQueue.Error() + "; set the sandbox up with --queues 1"},
		{syscall.EPERM, syscall.EPERM.Error()},
	} {
		if got := report(c.err); got != c.want {
			t.Errorf("report(%v)\n = %q\nwant %q", c.err, got, c.want)
		}
	}
}

// TestDiscoverReasonNamesTheFlag: an interface left out because others
// were named is "not named by --interfaces" on the command line.
func TestDiscoverReasonNamesTheFlag(t *testing.T) {
	if got := interfacesReason(sandbox.Interface{Reason: sandbox.ReasonNotNamed}); got != "not named by --interfaces" {
		t.Errorf("reason %q", got)
	}
	if got := interfacesReason(sandbox.Interface{Reason: "has no address"}); got != "has no address" {
		t.Errorf("reason %q", got)
	}
}
