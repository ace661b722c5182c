// Package model says what an interworking model is: how one CNI interface
// of a sandbox is connected to the guest. Each model is a package of its
// own below this one and implements Model; the library registers them in
// a Registry, which also picks the model of "auto". A model gets its
// inputs explicitly, in a Job: the interface as found, the NIC to fill in,
// the journal scope of that interface, the naming of the sandbox's links,
// and the options of the request. This package also holds what several
// models share: the tap most of them make, the queues a hypervisor opens,
// and the checker of a wiring.
package model

import (
	"context"
	"fmt"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/netbridge/internal/netview"
	"github.com/netbridge/netbridge/pkg/probe"
	"github.com/netbridge/netbridge/sandbox"
)

// Model connects one attached interface to the guest.
type Model interface {
	// Name returns the model's name, as recorded in the NIC.
	Name() sandbox.Model
	// Carries says which interfaces the model can carry.
	Carries() Carriage
	// Missing returns the kernel features the model needs that f lacks.
	Missing(f probe.Features) []string
	// Makes returns the names of the links the model creates for
	// interface ifname, which must be free in the netns.
	Makes(n *Naming, ifname string) []string
	// Wire creates what connects the job's interface to the guest, each
	// object journaled through j.Steps before it exists, and fills in the
	// NIC's device fields (Tap, TapIndex, TapMAC, and its own).
	Wire(ctx context.Context, j *Job) error
	// Check records in c what is missing from nic's wiring.
	Check(c *Checker, nic *sandbox.NIC)
}

// Planner is a model whose objects can all be journaled before any of
// them is made, so that several interfaces share one write of the record.
// The first step it plans makes the NIC's tap; once the steps are done,
// TapMade finishes the NIC.
type Planner interface {
	Model
	// Plan returns the steps that wire the job's interface, in order.
	// They refer to j.NIC, which must stay in place until they ran.
	Plan(j *Job) ([]journal.Planned, error)
}

// Job is one interface for a model to connect to the guest.
type Job struct {
	// NIC is the NIC being wired, with the interface's fields filled in;
	// the model fills in the fields of what it makes.
	NIC *sandbox.NIC
	// Link is the interface as the netns showed it before wiring.
	Link *netview.Link
	// Steps journals each object under the interface before it is made.
	Steps journal.Scope
	// Names names the links made for the sandbox's interfaces, and
	// derives their MACs.
	Names *Naming
	// Opts is what the request asks beyond the NIC.
	Opts *Options
}

// Options is what a request asks of every model beyond the NIC.
type Options struct {
	// HoldFDs keeps the queues open in the NIC's Files (and vhost-net
	// files in VhostFiles).
	HoldFDs bool
	// TapOwner and TapGroup, when set, restrict who may open a tap.
	TapOwner, TapGroup *uint32
	// MacvtapMode is the mode of the macvtap model.
	MacvtapMode sandbox.MacvtapMode
	// NodeDir is where the sandbox's private device nodes go.
	NodeDir string
}

// Kind is a link kind, as the kernel names it.
type Kind string

// Link kinds of the CNI interfaces netbridge carries.
const (
	KindVeth    Kind = "veth"
	KindMacvlan Kind = "macvlan"
	KindIpvlan  Kind = "ipvlan"
	KindTuntap  Kind = journal.KindTuntap
)

// CNIKinds are the kinds of CNI interface netbridge knows.
var CNIKinds = []Kind{KindVeth, KindMacvlan, KindIpvlan}

// NoClassifier is how a model's Missing names the lack of both tc
// classifiers a redirect can use.
const NoClassifier = "u32 or matchall"

// TapMaxMTU is the largest MTU the tun driver gives a tap: 65535 less the
// Ethernet header.
const TapMaxMTU = 65535 - 14

// Carriage says which interfaces a model carries.
type Carriage struct {
	// Kinds are the link kinds the model carries.
	Kinds []Kind
	// Refused says why the model cannot carry some other kinds of CNI
	// interface, and which model can.
	Refused map[Kind]string
	// OnTap reports that the guest's frames go through a tap of the
	// interface's MTU, which the tun driver caps at TapMaxMTU.
	OnTap bool
}

// Check reports why model m, which carries c, cannot carry ifc, or nil.
// An existing tap is passed through by every model.
func (c Carriage) Check(m sandbox.Model, ifc *sandbox.Interface) error {
	kind := Kind(ifc.Kind)
	if kind == KindTuntap {
		return nil
	}
	for _, k := range c.Kinds {
		if k != kind {
			continue
		}
		if c.OnTap && ifc.MTU > TapMaxMTU {
			return fmt.Errorf("MTU %d is more than a tap takes (%d: 65535 less the 14-byte Ethernet header); lower the MTU of %q to %d, or use the macvtap model", ifc.MTU, TapMaxMTU, ifc.Name, TapMaxMTU)
		}
		return nil
	}
	if why, ok := c.Refused[kind]; ok {
		return fmt.Errorf("the %s model cannot carry %s %q: %s", m, ifc.Kind, ifc.Name, why)
	}
	return fmt.Errorf("kind %q is not supported (netbridge carries veth, macvlan, ipvlan and existing taps)", ifc.Kind)
}

// Carries reports why m cannot carry ifc, or nil.
func Carries(m Model, ifc *sandbox.Interface) error { return m.Carries().Check(m.Name(), ifc) }
