package netbridge

import "github.com/netbridge/netbridge/sandbox"

// Transitional names of the sandbox package's, while the library moves.
type (
	NIC      = sandbox.NIC
	Sandbox  = sandbox.Sandbox
	MAC      = sandbox.MAC
	Route    = sandbox.Route
	Neighbor = sandbox.Neighbor
	DNS      = sandbox.DNS
)

const (
	ModelTCFilter    = sandbox.ModelTCFilter
	ModelBridge      = sandbox.ModelBridge
	ModelMacvtap     = sandbox.ModelMacvtap
	ModelNone        = sandbox.ModelNone
	ModelAuto        = sandbox.ModelAuto
	ModelPassthrough = sandbox.ModelPassthrough
	ModelMixed       = sandbox.ModelMixed
	MacvtapBridge    = sandbox.MacvtapBridge
	MacvtapPassthru  = sandbox.MacvtapPassthru
	VhostOff         = sandbox.VhostOff
	VhostOn          = sandbox.VhostOn
	VhostAuto        = sandbox.VhostAuto
	MaxQueues        = sandbox.MaxQueues
)

var Models = sandbox.Models

var DNSFromCNICache = sandbox.DNSFromCNICache

type (
	Model       = sandbox.Model
	Vhost       = sandbox.Vhost
	MacvtapMode = sandbox.MacvtapMode
)
