// Package none is the none model: it creates the taps and connects
// nothing, for users who wire their own datapath (Open vSwitch, eBPF).
package none

import (
	"context"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/netbridge/internal/model"
	"github.com/netbridge/netbridge/pkg/probe"
	"github.com/netbridge/netbridge/sandbox"
)

// Model is the none model.
type Model struct{}

// Name returns sandbox.ModelNone.
func (Model) Name() sandbox.Model { return sandbox.ModelNone }

// Carries says that the model takes every kind of CNI interface netbridge
// knows, next to a tap.
func (Model) Carries() model.Carriage {
	return model.Carriage{Kinds: model.CNIKinds, OnTap: true}
}

// Missing returns tun when f lacks it.
func (Model) Missing(f probe.Features) []string { return f.Missing(probe.Tun) }

// Makes returns the name of the tap.
func (Model) Makes(n *model.Naming, ifname string) []string {
	return []string{n.Device(model.TapPrefix, ifname)}
}

// Wire creates the tap.
func (Model) Wire(ctx context.Context, j *model.Job) error { return model.CreateTap(ctx, j) }

// Plan returns the step creating the tap.
func (Model) Plan(j *model.Job) ([]journal.Planned, error) {
	s, err := model.TapStep(j)
	return []journal.Planned{s}, err
}

// Check checks the tap.
func (Model) Check(c *model.Checker, nic *sandbox.NIC) { c.Tap(nic) }
