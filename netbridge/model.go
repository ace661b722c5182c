package netbridge

import (
	"fmt"
	"github.com/netbridge/netbridge/pkg/probe"
	"slices"
	"strings"
)

// Model names.
const (
	// ModelTCFilter connects interface and tap by a tc mirred redirect in
	// each direction. The interface keeps its MAC and addresses.
	ModelTCFilter = "tcfilter"
	// ModelNone creates the taps and connects nothing, for users who wire
	// their own datapath (Open vSwitch, eBPF).
	ModelNone = "none"
	// ModelAuto picks the model the kernel supports.
	ModelAuto = "auto"
)

// Models lists the model names Config.Model accepts.
var Models = []string{ModelTCFilter, ModelNone, ModelAuto}

// model connects one attached interface to its tap.
type model interface {
	// name returns the model's name, as recorded in the state.
	name() string
	// supports reports why the model cannot carry ifc, or nil.
	supports(ifc *Interface) error
	// wire connects nic's interface to its tap, creating every object
	// through tx so that it is journaled before it exists.
	wire(tx *txn, nic *NIC) error
	// check appends to problems what is missing from nic's wiring.
	check(c *checker, nic *NIC)
}

func modelByName(name string) (model, error) {
	switch name {
	case ModelTCFilter, "":
		return tcfilter{}, nil
	case ModelNone:
		return none{}, nil
	}
	return nil, fmt.Errorf("%w: unknown model %q (choose one of %s)", ErrInvalidConfig, name, strings.Join(Models, ", "))
}

// tcfilterKinds are the link kinds a tc redirect can carry: any Ethernet
// link of the sandbox.
var tcfilterKinds = []string{"veth", "macvlan", "ipvlan"}

func supportsKind(model string, kinds []string, ifc *Interface) error {
	if slices.Contains(kinds, ifc.Kind) {
		return nil
	}
	return fmt.Errorf("kind %q is not supported by the %s model (supported: %s)", ifc.Kind, model, strings.Join(kinds, ", "))
}

// none creates the taps and wires nothing.
type none struct{}

func (none) name() string                  { return ModelNone }
func (none) supports(ifc *Interface) error { return supportsKind(ModelNone, tcfilterKinds, ifc) }
func (none) wire(*txn, *NIC) error         { return nil }
func (none) check(*checker, *NIC)          {}

// ModelAvailable says whether a model works with the probed kernel.
type ModelAvailable struct {
	Model string `json:"model"`
	Works bool   `json:"works"`
	// Detail names the missing features, or what auto would pick.
	Detail string `json:"detail,omitempty"`
}

// ModelSupport reports, for each model, whether the kernel features f
// let it work.
func ModelSupport(f probe.Features) []ModelAvailable {
	avail := func(name string, need ...string) ModelAvailable {
		if m := f.Missing(need...); len(m) > 0 {
			return ModelAvailable{Model: name, Detail: "missing " + strings.Join(m, ", ")}
		}
		return ModelAvailable{Model: name, Works: true}
	}
	tc := avail(ModelTCFilter, probe.Tun, probe.Ingress, probe.Mirred)
	if tc.Works && !f.Has(probe.U32) && !f.Has(probe.Matchall) {
		tc = ModelAvailable{Model: ModelTCFilter, Detail: "missing u32 and matchall"}
	} else if tc.Works {
		tc.Detail = "classifier " + map[bool]string{true: "matchall", false: "u32"}[f.Has(probe.Matchall)]
	}
	auto := ModelAvailable{Model: ModelAuto, Works: tc.Works, Detail: "picks tcfilter"}
	if !tc.Works {
		auto.Detail = "no model works: " + tc.Detail
	}
	return []ModelAvailable{tc, avail(ModelNone, probe.Tun), auto}
}
