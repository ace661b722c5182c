package netbridge

import (
	"fmt"
	"slices"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/pkg/linkname"
	"github.com/netbridge/netbridge/pkg/sandboxid"
	"github.com/netbridge/netbridge/sandbox"
)

// ErrModeConflict reports a sandbox wired in the other mode: Setup of a
// sandbox whose interfaces were attached one by one (Attach), or Attach or
// Detach of a sandbox set up as a whole (Setup). Nothing was changed. It
// wraps sandbox.ErrInvalidConfig.
var ErrModeConflict = fmt.Errorf("%w: setup as a whole and attach interface by interface do not mix", sandbox.ErrInvalidConfig)

// Transitional names of the sandbox package's errors.
var (
	ErrInvalidConfig = sandbox.ErrInvalidConfig
	ErrNoInterface   = sandbox.ErrNoInterface
)

// Config says what Setup wires.
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
	// StateDir is the state directory; see state.Dir for the default.
	StateDir string
	// DNS is the guest's resolver configuration. When it is empty and
	// CNICacheDir is set, it is read from the CNI results libcni cached
	// for the sandbox id there.
	DNS DNS
	// CNICacheDir is libcni's cache directory (normally /var/lib/cni).
	CNICacheDir string
}

func (c *Config) validate() error {
	if err := sandboxid.Check(c.ID); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if c.Netns == "" {
		return fmt.Errorf("%w: no netns path given", ErrInvalidConfig)
	}
	if c.Queues < 0 || c.Queues > MaxQueues {
		return fmt.Errorf("%w: %d queues; use 1 to %d", ErrInvalidConfig, c.Queues, MaxQueues)
	}
	switch c.Vhost {
	case "", VhostOff, VhostOn, VhostAuto:
	default:
		return fmt.Errorf("%w: vhost %q; use on, off or auto", ErrInvalidConfig, c.Vhost)
	}
	if c.Model != ModelAuto {
		if _, err := models.Lookup(c.Model); err != nil {
			return err
		}
	}
	switch c.MacvtapMode {
	case "", MacvtapBridge, MacvtapPassthru:
	default:
		return fmt.Errorf("%w: macvtap mode %q; use bridge or passthru", ErrInvalidConfig, c.MacvtapMode)
	}
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
	if c.TapName != "" {
		if len(c.Interfaces) != 1 {
			return fmt.Errorf("%w: a tap name (%q) needs exactly one interface named, not %d", ErrInvalidConfig, c.TapName, len(c.Interfaces))
		}
		if err := linkname.Check(c.TapName); err != nil {
			return fmt.Errorf("%w: tap name: %w", ErrInvalidConfig, err)
		}
		if c.TapName == c.Interfaces[0] {
			return fmt.Errorf("%w: the tap name %q is the interface's own name", ErrInvalidConfig, c.TapName)
		}
	}
	return nil
}

func (c *Config) queues() int { return max(c.Queues, 1) }

func (c *Config) request(vhost bool) journal.Request {
	r := journal.Request{
		Model: c.Model, Interfaces: slices.Sorted(slices.Values(c.Interfaces)), Queues: c.queues(),
		Vhost: vhost, TapOwner: c.TapOwner, TapGroup: c.TapGroup, MacvtapMode: c.MacvtapMode,
		TapName: c.TapName, Network: c.Network,
	}
	if r.Model == "" {
		r.Model = ModelTCFilter
	}
	if r.MacvtapMode == "" {
		r.MacvtapMode = MacvtapBridge
	}
	return r
}
