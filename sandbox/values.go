package sandbox

import "slices"

// Model is how an interface is connected to the guest.
type Model string

// Models.
const (
	// ModelTCFilter connects interface and tap by a tc mirred redirect in
	// each direction. The interface keeps its MAC and addresses.
	ModelTCFilter Model = "tcfilter"
	// ModelBridge joins interface and tap in a Linux bridge. The interface
	// gets a derived MAC and gives its addresses to the guest.
	ModelBridge Model = "bridge"
	// ModelMacvtap puts a macvtap on the interface; the hypervisor opens its
	// queues by fd. The interface gives its addresses to the guest, and in
	// bridge mode its MAC (it gets a derived one).
	ModelMacvtap Model = "macvtap"
	// ModelNone creates the taps and connects nothing, for users who wire
	// their own datapath (Open vSwitch, eBPF).
	ModelNone Model = "none"
	// ModelAuto picks, per interface, a model the kernel and the interface
	// kind support: tcfilter, else bridge, else macvtap.
	ModelAuto Model = "auto"
	// ModelPassthrough is what an existing tap in the netns gets: it is
	// handed to the guest as it is, nothing created or wired.
	ModelPassthrough Model = "passthrough"
	// ModelMixed is Sandbox.Model of a sandbox whose interfaces were
	// attached with different models.
	ModelMixed Model = "mixed"
)

// Models lists the models a caller may ask for.
var Models = []Model{ModelTCFilter, ModelBridge, ModelMacvtap, ModelNone, ModelAuto}

// Valid reports whether m may be asked for (the empty model means
// ModelTCFilter). Records also hold ModelPassthrough and ModelMixed.
func (m Model) Valid() bool { return m == "" || slices.Contains(Models, m) }

// Vhost says whether the hypervisor uses vhost-net.
type Vhost string

// Vhost choices.
const (
	VhostOff  Vhost = "off"  // never use vhost-net (the default)
	VhostOn   Vhost = "on"   // require vhost-net; fail if the kernel has none
	VhostAuto Vhost = "auto" // use vhost-net when /dev/vhost-net exists
)

// Valid reports whether v is a vhost choice (the empty one means VhostOff).
func (v Vhost) Valid() bool { return v == "" || v == VhostOff || v == VhostOn || v == VhostAuto }

// MacvtapMode is the mode of the macvtap model's macvtap.
type MacvtapMode string

// Macvtap modes.
const (
	// MacvtapBridge gives the macvtap the interface's MAC for the guest,
	// and the interface a derived one.
	MacvtapBridge MacvtapMode = "bridge"
	// MacvtapPassthru lets the macvtap take the interface over, MAC
	// included.
	MacvtapPassthru MacvtapMode = "passthru"
)

// Valid reports whether m is a macvtap mode (the empty one means
// MacvtapBridge).
func (m MacvtapMode) Valid() bool { return m == "" || m == MacvtapBridge || m == MacvtapPassthru }

// MaxQueues is the largest number of queues per tap, and so of queue pairs
// per NIC: the Linux tap driver allows at most 256 (MAX_TAP_QUEUES).
const MaxQueues = 256

// ReasonNotNamed is the Reason of an Interface that a request naming
// interfaces leaves out.
const ReasonNotNamed = "not among the interfaces named"

// Phase is how far the setup of a recorded sandbox got.
type Phase string

// Phases.
const (
	// PhaseSettingUp is a setup under way, or interrupted: the record may
	// hold unfinished steps.
	PhaseSettingUp Phase = "setting-up"
	// PhaseReady is a finished setup: every step is done.
	PhaseReady Phase = "ready"
)
