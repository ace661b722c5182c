// Package netbridge connects the CNI interfaces of a VM sandbox's network
// namespace to tap devices for its hypervisor, journaling every kernel
// change so that teardown undoes exactly that. This package is the API: a
// Manager on one state directory sets up, attaches, detaches, checks,
// loads, lists, prunes and tears down sandboxes.
//
// The packages, each with one job, and the one-way flow of data:
//
//	cmd/netbridge, cmd/netbridge-cni, hooks   callers: flags, CNI calls, OCI hook stages -> a sandbox.Config and a Manager call
//	netbridge                                 the API: locks, decides, wires, checks, undoes, through the packages below
//	netbridge/internal/netview                one look at a netns: its interfaces, which netbridge wired, which to attach
//	netbridge/internal/model                  what a model is; the registry, the auto choice, the tap, the checker
//	netbridge/internal/model/*                one package per model: tcfilter, bridge, macvtap, none, passthrough
//	netbridge/internal/journal                the record: record a step, then make it; undo newest first by identity
//	netbridge/internal/linkchange             what a change to a CNI interface takes away, and how it is given back
//	pkg/...                                   kernel and system helpers: netns, tap, macvtap, state, probe, tcredirect
//	sandbox                                   the data: Config, Sandbox, NIC, Interface, their values and checks
//	hypervisor/...                            renderers: a sandbox.Sandbox -> QEMU, Cloud Hypervisor, Firecracker, guest
//
// Setup and Attach: caller -> Manager -> netview (read the netns) -> model
// registry (choose a model per interface) -> each model makes its objects
// through the journal, which records each step in the state directory
// before the kernel sees it. Teardown, Detach and rollback: Manager ->
// journal (undo newest first) -> kernel. Rendering: state directory ->
// Manager.Load -> sandbox.Sandbox -> hypervisor renderers. Nothing below
// this package imports it, and no package of the library imports a
// hypervisor adapter.
package netbridge

import (
	"log/slog"

	"github.com/netbridge/netbridge/pkg/state"
)

// Manager sets up, checks and tears down the sandboxes recorded in one
// state directory, logging one line per step (the sandbox id, the
// interface, the time since the call began). Its methods may be called
// concurrently, and from several processes: each sandbox id is handled
// under its lock in the state directory.
type Manager struct {
	dir string
	log *slog.Logger
}

// New returns the Manager of the sandboxes recorded in stateDir
// (state.DefaultDir when empty), which logs to log (nil: nowhere). The
// directory is created, with mode 0700, when a method first needs it.
func New(stateDir string, log *slog.Logger) *Manager {
	if stateDir == "" {
		stateDir = state.DefaultDir
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{dir: stateDir, log: log}
}

// Dir returns the state directory.
func (m *Manager) Dir() string { return m.dir }

// store opens the state directory.
func (m *Manager) store() (*state.Store, error) { return state.Open(m.dir) }
