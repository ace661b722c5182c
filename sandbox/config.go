package sandbox

import (
	"fmt"
	"strings"

	"github.com/netbridge/netbridge/pkg/linkname"
	"github.com/netbridge/netbridge/pkg/sandboxid"
)

// Config says what to wire for a sandbox.
type Config struct {
	// ID is the sandbox id: letters, digits, '_', '.', '-', at most 128
	// bytes. It keys the state record and seeds the derived MACs.
	ID string
	// Netns is the path of the sandbox netns (/run/netns/NAME, /proc/PID/ns/net).
	Netns string
	// Model is the interworking model, ModelTCFilter when empty.
	Model Model
	// Interfaces, when non-empty, names exactly the interfaces to attach;
	// otherwise every supported interface with an address is attached.
	Interfaces []string
	// Queues is the number of queues per tap; zero means one.
	Queues int
	// Vhost is VhostOff (or empty), VhostOn or VhostAuto.
	Vhost Vhost
	// TapOwner and TapGroup, when non-nil, restrict who may open the taps.
	TapOwner, TapGroup *uint32
	// MacvtapMode is the mode of the macvtap model: MacvtapBridge (the
	// default) or MacvtapPassthru.
	MacvtapMode MacvtapMode
	// TapName, when set, names the device the hypervisor opens (the tap,
	// or the macvtap of model macvtap) instead of the derived nb-IFNAME
	// (nbm-IFNAME). It needs exactly one interface in Interfaces.
	TapName string
	// Network, when set, names the CNI network the interfaces belong to;
	// each NIC carries it, so that the CNI plugin's garbage collection of
	// one network leaves the interfaces of the others alone.
	Network string
	// Strict makes setup fail, instead of skipping the interface with a
	// warning, when an interface with an address is of a kind netbridge
	// cannot carry.
	Strict bool
	// HoldFDs keeps the tap queues open and returns them in NIC.Files (and
	// vhost-net files in NIC.VhostFiles when vhost is used), for a
	// hypervisor that takes fds. The taps are persistent either way.
	HoldFDs bool
	// DNS is the guest's resolver configuration. When it is empty and
	// CNICacheDir is set, it is read from the CNI results libcni cached
	// for the sandbox id there.
	DNS DNS
	// CNICacheDir is libcni's cache directory (normally /var/lib/cni).
	CNICacheDir string
}

// Validate checks c; its errors wrap ErrInvalidConfig.
func (c *Config) Validate() error {
	if err := sandboxid.Check(c.ID); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if c.Netns == "" {
		return fmt.Errorf("%w: no netns path given", ErrInvalidConfig)
	}
	if c.Queues < 0 || c.Queues > MaxQueues {
		return fmt.Errorf("%w: %d queues; use 1 to %d", ErrInvalidConfig, c.Queues, MaxQueues)
	}
	if !c.Vhost.Valid() {
		return fmt.Errorf("%w: vhost %q; use on, off or auto", ErrInvalidConfig, c.Vhost)
	}
	if !c.Model.Valid() {
		names := make([]string, len(Models))
		for i, m := range Models {
			names[i] = string(m)
		}
		return fmt.Errorf("%w: unknown model %q (choose one of %s)", ErrInvalidConfig, c.Model, strings.Join(names, ", "))
	}
	if !c.MacvtapMode.Valid() {
		return fmt.Errorf("%w: macvtap mode %q; use bridge or passthru", ErrInvalidConfig, c.MacvtapMode)
	}
	return c.validateNames()
}

// validateNames checks the interface names and the tap name.
func (c *Config) validateNames() error {
	seen := map[string]bool{}
	for _, n := range c.Interfaces {
		if err := linkname.Check(n); err != nil {
			return fmt.Errorf("%w: interface: %w", ErrInvalidConfig, err)
		}
		if seen[n] {
			return fmt.Errorf("%w: interface %q named twice", ErrInvalidConfig, n)
		}
		seen[n] = true
	}
	if c.TapName == "" {
		return nil
	}
	if len(c.Interfaces) != 1 {
		return fmt.Errorf("%w: a tap name (%q) needs exactly one interface named, not %d", ErrInvalidConfig, c.TapName, len(c.Interfaces))
	}
	if err := linkname.Check(c.TapName); err != nil {
		return fmt.Errorf("%w: tap name: %w", ErrInvalidConfig, err)
	}
	if c.TapName == c.Interfaces[0] {
		return fmt.Errorf("%w: the tap name %q is the interface's own name", ErrInvalidConfig, c.TapName)
	}
	return nil
}
