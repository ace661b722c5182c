package netbridge

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/pkg/probe"
	"github.com/netbridge/netbridge/sandbox"
)

// model connects one attached interface to the guest.
// planner is a model whose objects can all be journaled before any of
// them is made, so that several interfaces share one write of the record.
type planner interface {
	// plan returns the steps that wire nic, in order.
	plan(tx *txn, nic *NIC) ([]journal.Planned, error)
}

type model interface {
	// name returns the model's name, as recorded in the state.
	name() Model
	// supports reports why the model cannot carry ifc, or nil.
	supports(ifc *sandbox.Interface) error
	// wire creates what connects nic's interface to the guest, each object
	// through tx so that it is journaled before it exists, and fills in
	// nic's Tap, TapMAC and model fields.
	wire(tx *txn, nic *NIC) error
	// check records in c what is missing from nic's wiring.
	check(c *checker, nic *NIC)
}

// models maps the concrete models' names to them.
var models = map[Model]model{
	ModelTCFilter:    tcfilter{},
	ModelBridge:      bridge{},
	ModelMacvtap:     macvtapModel{},
	ModelNone:        none{},
	ModelPassthrough: passthrough{},
}

func modelByName(name Model) (model, error) {
	if name == "" {
		name = ModelTCFilter
	}
	if m, ok := models[name]; ok && name != ModelPassthrough {
		return m, nil
	}
	return nil, fmt.Errorf("%w: unknown model %q (choose one of %s)", ErrInvalidConfig, name, modelList(Models))
}

// Link kinds, as the kernel names them.
const (
	kindVeth    = "veth"
	kindMacvlan = "macvlan"
	kindIpvlan  = "ipvlan"
)

// kindSupport says, per model, which kinds it carries and why not others.
var kindSupport = map[Model]map[string]string{
	ModelTCFilter: {kindVeth: "", kindMacvlan: "", kindIpvlan: ""},
	ModelNone:     {kindVeth: "", kindMacvlan: "", kindIpvlan: ""},
	ModelBridge: {
		kindVeth:    "",
		kindMacvlan: "a macvlan only receives frames for its own MAC, and the bridge model moves that MAC to the guest: use tcfilter",
		kindIpvlan:  "an ipvlan shares its parent's MAC and cannot carry the guest's frames through a bridge: use tcfilter",
	},
	ModelMacvtap: {
		kindVeth:    "",
		kindMacvlan: "a macvtap on a macvlan attaches to the macvlan's parent, outside this netns: use tcfilter",
		kindIpvlan:  "a macvtap cannot sit on an ipvlan, which shares its parent's MAC: use tcfilter",
	},
}

func supportsKind(model Model, ifc *sandbox.Interface) error {
	if ifc.Kind == journal.KindTuntap {
		return nil // an existing tap is passed through by every model
	}
	why, ok := kindSupport[model][ifc.Kind]
	switch {
	case ok && why == "" && ifc.MTU > tapMaxMTU && model != ModelMacvtap:
		return fmt.Errorf("MTU %d is more than a tap takes (%d: 65535 less the 14-byte Ethernet header); lower the MTU of %q to %d, or use the macvtap model", ifc.MTU, tapMaxMTU, ifc.Name, tapMaxMTU)
	case ok && why == "":
		return nil
	case ok:
		return fmt.Errorf("the %s model cannot carry %s %q: %s", model, ifc.Kind, ifc.Name, why)
	}
	return fmt.Errorf("kind %q is not supported (netbridge carries veth, macvlan, ipvlan and existing taps)", ifc.Kind)
}

// tapMaxMTU is the largest MTU the tun driver gives a tap: 65535 less the
// Ethernet header. The tcfilter, none and bridge models give the tap the
// interface's MTU.
const tapMaxMTU = 65535 - 14

// chooser picks the model of each interface.
type chooser struct {
	requested Model
	features  probe.Features // probed lazily for auto
	probeErr  error
	probed    bool
}

func (c *chooser) probe() (probe.Features, error) {
	if !c.probed {
		c.features, c.probeErr = probe.Run()
		c.probed = true
	}
	return c.features, c.probeErr
}

// supports reports whether the requested model (for auto: any model) can
// carry ifc.
func (c *chooser) supports(ifc *sandbox.Interface) error {
	if c.requested != ModelAuto {
		return supportsKind(c.requested, ifc)
	}
	return supportsKind(ModelTCFilter, ifc) // tcfilter carries every kind any model does
}

// choose returns the model for ifc and, when setup chose it, why.
func (c *chooser) choose(ifc *sandbox.Interface) (model, string, error) {
	if ifc.Kind == journal.KindTuntap {
		return passthrough{}, "an existing tap: handed to the guest as it is", nil
	}
	if c.requested != ModelAuto {
		m, err := modelByName(c.requested)
		return m, "", err
	}
	f, err := c.probe()
	if err != nil {
		return nil, "", fmt.Errorf("probing the kernel for model auto: %w", err)
	}
	if missing := f.Missing(probe.Tun); len(missing) > 0 {
		return nil, "", fmt.Errorf("no model can work: the kernel has no %s", strings.Join(missing, ", "))
	}
	tcMissing := missingFor(ModelTCFilter, f)
	if len(tcMissing) == 0 {
		return tcfilter{}, "auto: the kernel has ingress, mirred and " + map[bool]string{true: "matchall", false: "u32"}[f.Has(probe.Matchall)], nil
	}
	if ifc.Kind != kindVeth {
		return nil, "", fmt.Errorf("model auto: only tcfilter can carry %s %q, and the kernel lacks %s for it", ifc.Kind, ifc.Name, strings.Join(tcMissing, ", "))
	}
	if f.Has(probe.Bridge) {
		return bridge{}, "auto: no tc redirect (missing " + strings.Join(tcMissing, ", ") + "), so a bridge", nil
	}
	if f.Has(probe.Macvtap) {
		return macvtapModel{}, "auto: neither tc redirect (missing " + strings.Join(tcMissing, ", ") + ") nor bridge, so a macvtap", nil
	}
	return nil, "", fmt.Errorf("model auto: the kernel lacks %s (tcfilter), bridge and macvtap", strings.Join(tcMissing, ", "))
}

// ErrMissingFeature reports that the kernel lacks a feature the model
// needs; the error names the feature and a model that works.
var ErrMissingFeature = errors.New("missing kernel feature")

// noClassifier is how missingFor names the lack of both classifiers
// tcfilter can use.
const noClassifier = "u32 or matchall"

// missingFor returns the features model needs that f lacks.
func missingFor(model Model, f probe.Features) []string {
	switch model {
	case ModelTCFilter:
		m := f.Missing(probe.Tun, probe.Ingress, probe.Mirred)
		if !f.Has(probe.U32) && !f.Has(probe.Matchall) {
			m = append(m, noClassifier)
		}
		return m
	case ModelBridge:
		return f.Missing(probe.Tun, probe.Bridge)
	case ModelMacvtap:
		return f.Missing(probe.Macvtap)
	case ModelNone:
		return f.Missing(probe.Tun)
	}
	return nil
}

// explainMissing turns a setup error that says the kernel lacks something
// (ENOENT or EOPNOTSUPP from creating a qdisc, filter or link) into one that
// names the missing feature and the models that work, by probing the
// kernel. Other errors, and errors the probe cannot explain, are returned
// as they are.
func explainMissing(err error, model Model) error {
	if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EOPNOTSUPP) {
		return err
	}
	f, perr := probe.Run()
	if perr != nil {
		return err
	}
	missing := missingFor(model, f)
	if len(missing) == 0 {
		return err
	}
	var works []string
	for _, m := range []Model{ModelTCFilter, ModelBridge, ModelMacvtap} {
		if len(missingFor(m, f)) == 0 {
			works = append(works, string(m))
		}
	}
	hint := "no model works on this kernel"
	if len(works) > 0 {
		hint = "use --model " + strings.Join(works, " or --model ")
	}
	return fmt.Errorf("%w: model %s cannot work: this kernel lacks %s (see netbridge probe); %s: %w", ErrMissingFeature, model, strings.Join(missing, ", "), hint, err)
}

// ModelAvailable says whether a model works with the probed kernel.
type ModelAvailable struct {
	Model Model `json:"model"`
	Works bool  `json:"works"`
	// Detail names the missing features, or what auto would pick.
	Detail string `json:"detail,omitempty"`
}

// ModelSupport reports, for each model, whether the kernel features f
// let it work.
func ModelSupport(f probe.Features) []ModelAvailable {
	avail := func(name Model) ModelAvailable {
		if m := missingFor(name, f); len(m) > 0 {
			// In a list of what is missing, neither classifier is there.
			detail := strings.ReplaceAll(strings.Join(m, ", "), noClassifier, "u32 and matchall")
			return ModelAvailable{Model: name, Detail: "missing " + detail}
		}
		return ModelAvailable{Model: name, Works: true}
	}
	tc := avail(ModelTCFilter)
	if tc.Works {
		tc.Detail = "classifier " + map[bool]string{true: "matchall", false: "u32"}[f.Has(probe.Matchall)]
	}
	br := avail(ModelBridge)
	mvt := avail(ModelMacvtap)
	auto := ModelAvailable{Model: ModelAuto, Works: true}
	switch {
	case tc.Works:
		auto.Detail = "picks tcfilter"
	case br.Works:
		auto.Detail = "picks bridge for veth; macvlan and ipvlan need tcfilter"
	case mvt.Works:
		auto.Detail = "picks macvtap for veth; macvlan and ipvlan need tcfilter"
	default:
		auto = ModelAvailable{Model: ModelAuto, Detail: "no model works"}
	}
	return []ModelAvailable{tc, br, mvt, avail(ModelNone), auto}
}

// none creates the taps and wires nothing.
type none struct{}

func (none) name() Model                           { return ModelNone }
func (none) supports(ifc *sandbox.Interface) error { return supportsKind(ModelNone, ifc) }
func (none) wire(tx *txn, nic *NIC) error          { return tx.createTap(nic) }
func (none) plan(tx *txn, nic *NIC) ([]journal.Planned, error) {
	s, err := tx.tapStep(nic)
	return []journal.Planned{s}, err
}
func (none) check(c *checker, nic *NIC) { c.tap(nic) }

// passthrough hands an existing tap to the guest as it is.
type passthrough struct{}

func (passthrough) name() Model                       { return ModelPassthrough }
func (passthrough) supports(*sandbox.Interface) error { return nil }
func (passthrough) wire(tx *txn, nic *NIC) error {
	nic.Tap, nic.TapIndex, nic.TapMAC = nic.Name, nic.Index, nic.GuestMAC
	if tx.cfg.HoldFDs {
		return tx.openQueues(nic)
	}
	return nil
}
func (passthrough) check(c *checker, nic *NIC) { c.link(nic.Tap) }

// modelList names models in a message: "a, b, c".
func modelList(ms []Model) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = string(m)
	}
	return strings.Join(s, ", ")
}
