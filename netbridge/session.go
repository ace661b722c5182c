package netbridge

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/netbridge/internal/model"
	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/pkg/probe"
	"github.com/netbridge/netbridge/pkg/state"
	"github.com/netbridge/netbridge/sandbox"
)

// session is what Setup and Attach hold while they work: the request, the
// state store with the lock of the sandbox id, and its open netns, locked.
type session struct {
	cfg   sandbox.Config
	req   journal.Request
	st    *state.Store
	lock  *state.Lock
	n     *netns.NS
	log   *slog.Logger
	start time.Time
}

// begin validates cfg, takes the lock of its id and opens its netns.
func (m *Manager) begin(ctx context.Context, cfg sandbox.Config) (*session, error) {
	start := time.Now()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	vhost, err := resolveVhost(cfg.Vhost)
	if err != nil {
		return nil, err
	}
	st, err := m.store()
	if err != nil {
		return nil, err
	}
	lock, err := st.Lock(ctx, cfg.ID)
	if err != nil {
		return nil, err
	}
	n, err := netns.Open(cfg.Netns)
	if err != nil {
		st.Release(lock, cfg.ID)
		return nil, fmt.Errorf("%w: %w", sandbox.ErrInvalidConfig, err)
	}
	if err := n.Lock(ctx); err != nil {
		n.Close()
		st.Release(lock, cfg.ID)
		return nil, err
	}
	log := m.log.With("id", cfg.ID)
	return &session{cfg: cfg, req: requestOf(cfg, vhost), st: st, lock: lock, n: n, log: log, start: start}, nil
}

// end closes the netns and releases the lock.
func (s *session) end() {
	s.n.Close()
	s.st.Release(s.lock, s.cfg.ID)
}

// run runs fn on a thread inside the netns, with a transaction on rec.
func (s *session) run(rec *journal.Record, fn func(*journal.Tx) error) error {
	return journal.In(s.n, func(k *journal.Netns) error {
		return fn(journal.NewTx(k, s.st, rec, s.log, s.start))
	})
}

// options returns what the request asks of every model.
func (s *session) options() *model.Options {
	return &model.Options{
		HoldFDs: s.cfg.HoldFDs, TapOwner: s.cfg.TapOwner, TapGroup: s.cfg.TapGroup,
		MacvtapMode: s.cfg.MacvtapMode, NodeDir: s.st.NodeDir(s.cfg.ID),
	}
}

// requestOf returns the part of cfg that shapes the wiring, with vhost
// resolved and the defaults filled in.
func requestOf(cfg sandbox.Config, vhost bool) journal.Request {
	r := journal.Request{
		Model: cfg.Model, Interfaces: slices.Sorted(slices.Values(cfg.Interfaces)), Queues: max(cfg.Queues, 1),
		Vhost: vhost, TapOwner: cfg.TapOwner, TapGroup: cfg.TapGroup, MacvtapMode: cfg.MacvtapMode,
		TapName: cfg.TapName, Network: cfg.Network,
	}
	if r.Model == "" {
		r.Model = sandbox.ModelTCFilter
	}
	if r.MacvtapMode == "" {
		r.MacvtapMode = sandbox.MacvtapBridge
	}
	return r
}

// resolveVhost says whether to use vhost-net.
func resolveVhost(v sandbox.Vhost) (bool, error) {
	_, err := os.Stat(probe.VhostNetPath)
	switch v {
	case sandbox.VhostOn:
		if err != nil {
			return false, fmt.Errorf("%w: vhost on: %s is not available (%w); load vhost_net, or ask for vhost auto or off", ErrNoVhost, probe.VhostNetPath, err)
		}
		return true, nil
	case sandbox.VhostAuto:
		return err == nil, nil
	}
	return false, nil
}
