package netbridge

import (
	"testing"

	"github.com/netbridge/netbridge/pkg/tap"
	"github.com/netbridge/netbridge/sandbox"
)

// TestEveryModelIsRegistered: every model a Config may ask for, auto
// aside, and passthrough, which a record may hold, has its package in the
// registry.
func TestEveryModelIsRegistered(t *testing.T) {
	for _, name := range append(sandbox.Models, sandbox.ModelPassthrough) {
		if name == sandbox.ModelAuto {
			continue
		}
		m, ok := models.Get(name)
		if !ok || m.Name() != name {
			t.Errorf("model %s is not registered under its name", name)
		}
	}
}

// TestQueueLimitsAgree: the data's queue limit is the tap driver's.
func TestQueueLimitsAgree(t *testing.T) {
	if sandbox.MaxQueues != tap.MaxQueues {
		t.Errorf("sandbox.MaxQueues %d, tap.MaxQueues %d", sandbox.MaxQueues, tap.MaxQueues)
	}
}
