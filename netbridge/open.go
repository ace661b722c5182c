package netbridge

import (
	"context"
	"fmt"

	"github.com/vishvananda/netlink"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/netbridge/internal/model"
	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/sandbox"
)

// OpenQueues opens the queues of every NIC of the recorded sandbox id (and
// vhost-net files for NICs that use vhost), inside its netns, as a
// hypervisor started later needs them: the persistent taps by name, the
// macvtaps through their private device nodes. The caller owns the files
// and closes them with Sandbox.Close. It changes nothing.
//
// A single-queue tap accepts one opener at a time: while a hypervisor holds
// it, OpenQueues fails with EBUSY.
func (m *Manager) OpenQueues(ctx context.Context, id string) (*sandbox.Sandbox, error) {
	sb, err := m.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	n, err := netns.Open(sb.Netns)
	if err != nil {
		return nil, fmt.Errorf("opening the queues of sandbox %q: %w", id, err)
	}
	defer n.Close()
	h, err := journal.OpenHandle(n)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	if err := openAll(n, h, sb.NICs, nil); err != nil {
		return nil, fmt.Errorf("opening the queues of sandbox %q in netns %q: %w", id, sb.Netns, err)
	}
	return sb, nil
}

// openAll opens the queues of the NICs of nics that open selects (every
// one when nil), on a thread inside n, whose handle h is; on failure it
// closes every file of nics.
func openAll(n *netns.NS, h *netlink.Handle, nics []sandbox.NIC, open func(*sandbox.NIC) bool) error {
	err := n.Do(func() error {
		for i := range nics {
			if open != nil && !open(&nics[i]) {
				continue
			}
			if err := model.OpenQueues(h, &nics[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		model.CloseNICs(nics)
	}
	return err
}
