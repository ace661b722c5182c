package main

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/sandbox"
)

// TestHintsAreConfigurationKeys: the plugin phrases what the library's
// typed errors suggest as keys of its network configuration, in the CNI
// error's details.
func TestHintsAreConfigurationKeys(t *testing.T) {
	missing := &netbridge.MissingFeatureError{Model: sandbox.ModelTCFilter, Missing: []string{"ingress"}, Works: []sandbox.Model{sandbox.ModelBridge}, Err: syscall.ENOENT}
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("attaching: %w", missing), `set "model" to "bridge" in the network configuration`},
		{fmt.Errorf("%w: no /dev/vhost-net", netbridge.ErrNoVhost), `set "vhost" to "auto" or "off" in the network configuration`},
		{syscall.EPERM, ""},
	} {
		var e *types.Error
		if !errors.As(cniError(c.err), &e) {
			t.Fatalf("cniError(%v) is not a *types.Error", c.err)
		}
		if details := e.Details; details != c.want {
			t.Errorf("details of %v = %q, want %q", c.err, details, c.want)
		}
	}
}
