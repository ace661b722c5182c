// Package passthrough is what an existing tap in the netns gets: it is
// handed to the guest as it is, nothing created or wired.
package passthrough

import (
	"context"

	"github.com/netbridge/netbridge/netbridge/internal/model"
	"github.com/netbridge/netbridge/pkg/probe"
	"github.com/netbridge/netbridge/sandbox"
)

// Model is the passthrough model.
type Model struct{}

// Name returns sandbox.ModelPassthrough.
func (Model) Name() sandbox.Model { return sandbox.ModelPassthrough }

// Carries says that the model carries existing taps.
func (Model) Carries() model.Carriage { return model.Carriage{Kinds: []model.Kind{model.KindTuntap}} }

// Missing returns nothing: the tap exists already.
func (Model) Missing(probe.Features) []string { return nil }

// Makes returns nothing: the tap exists already.
func (Model) Makes(*model.Naming, string) []string { return nil }

// Wire hands the tap over as it is, opening its queues when the caller
// holds fds.
func (Model) Wire(_ context.Context, j *model.Job) error {
	nic := j.NIC
	nic.Tap, nic.TapIndex, nic.TapMAC = nic.Name, nic.Index, nic.GuestMAC
	if j.Opts.HoldFDs {
		return model.OpenQueues(j.Steps.Netns().H, nic)
	}
	return nil
}

// Check checks that the tap is there.
func (Model) Check(c *model.Checker, nic *sandbox.NIC) { c.Link(nic.Tap) }
