// Package journal keeps what netbridge did to a sandbox netns, so that any
// later process can undo exactly that: the record of a sandbox (the sandbox
// as wired, the request, and the journal of steps) in the state directory,
// and the two operations on it. Do records a step, then makes its object;
// Undo reverses the steps it selects, newest first, finding each link by
// what identifies it. The reversible changes to links netbridge does not own
// (a MAC, addresses and routes, a master, neighbours) and the deletion of a
// sandbox's links by their link group live here too.
package journal

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/pkg/state"
	"github.com/netbridge/netbridge/pkg/tcredirect"
	"github.com/netbridge/netbridge/sandbox"
)

// Version is the version of the state record format. A record of another
// version is refused with an error rather than misread.
const Version = 1

// Mode says how a sandbox was wired.
type Mode string

// Modes.
const (
	// ModeWhole is a sandbox set up as a whole (Setup).
	ModeWhole Mode = ""
	// ModeAttach is a sandbox whose interfaces are attached and detached
	// one by one (Attach, Detach), as a chained CNI plugin does.
	ModeAttach Mode = "attach"
)

// Record is what netbridge keeps per sandbox id in the state directory: the
// sandbox as set up, and the journal of every object created, in creation
// order, so that any later process can undo exactly that.
type Record struct {
	Version int  `json:"version"`
	Mode    Mode `json:"mode,omitempty"`
	// Phase is sandbox.PhaseReady once every step is done.
	Phase   sandbox.Phase `json:"phase"`
	Created time.Time     `json:"created"`
	// NetnsID identifies the namespace the journal applies to, so a path
	// later reused by another namespace is never touched.
	NetnsID netns.ID `json:"netns_id"`
	// NetnsCookie is the namespace's cookie, which the kernel never
	// reuses (inode numbers it does): with it, teardown may look for the
	// namespace beyond its path. 0 in older records, or without cookies.
	NetnsCookie uint64 `json:"netns_cookie,omitempty"`
	// Classifier is the tc classifier of the tcfilter model's filters,
	// chosen by the first one made.
	Classifier tcredirect.Classifier `json:"classifier,omitempty"`
	// Request is what the setup was asked for (ModeWhole).
	Request Request `json:"request"`
	// Requests is what each interface was attached with (ModeAttach).
	Requests map[string]Request `json:"requests,omitempty"`
	Sandbox  sandbox.Sandbox    `json:"sandbox"`
	Journal  []Step             `json:"journal"`

	// dir is the state directory the record lives in: the device nodes
	// of its sandbox are only ever under dir/ID.dev, whatever path a
	// step names.
	dir string
	// netnsGone is set by undo when the netns was nowhere to be found:
	// its objects went with it, and only files were removed.
	netnsGone bool
	// log receives undo's warnings; nil logs nothing.
	log *slog.Logger
}

// Request is the part of a configuration that shapes the wiring. A ready
// record whose request equals the new one makes a setup a no-op.
type Request struct {
	Model       sandbox.Model       `json:"model"`
	Interfaces  []string            `json:"interfaces,omitempty"`
	Queues      int                 `json:"queues"`
	Vhost       bool                `json:"vhost,omitempty"`
	TapOwner    *uint32             `json:"tap_owner,omitempty"`
	TapGroup    *uint32             `json:"tap_group,omitempty"`
	MacvtapMode sandbox.MacvtapMode `json:"macvtap_mode,omitempty"`
	TapName     string              `json:"tap_name,omitempty"`
	Network     string              `json:"network,omitempty"`
}

// Equal reports whether r and o ask for the same wiring.
func (r Request) Equal(o Request) bool {
	eqPtr := func(a, b *uint32) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
	return r.Model == o.Model && slices.Equal(r.Interfaces, o.Interfaces) && r.Queues == o.Queues &&
		r.Vhost == o.Vhost && eqPtr(r.TapOwner, o.TapOwner) && eqPtr(r.TapGroup, o.TapGroup) && r.MacvtapMode == o.MacvtapMode &&
		r.TapName == o.TapName && r.Network == o.Network
}

// NewRecord returns the record of sandbox sb, about to be wired in n in
// mode: a setup under way (ModeWhole), or the empty record interfaces are
// attached to (ModeAttach).
func NewRecord(mode Mode, n *netns.NS, sb sandbox.Sandbox) *Record {
	cookie, _ := n.Cookie() // 0 when it cannot be read: then by path and inode only
	r := &Record{Version: Version, Mode: mode, Phase: sandbox.PhaseSettingUp, Created: time.Now().UTC(), NetnsID: n.ID(), NetnsCookie: cookie, Sandbox: sb}
	if mode == ModeAttach {
		r.Phase, r.Requests = sandbox.PhaseReady, map[string]Request{}
	}
	return r
}

var discard = slog.New(slog.DiscardHandler)

// SetLog makes r log undo's warnings to l.
func (r *Record) SetLog(l *slog.Logger) { r.log = l }

// logger returns r's logger.
func (r *Record) logger() *slog.Logger {
	if r.log != nil {
		return r.log
	}
	return discard
}

// NetnsGone reports whether the last undo found r's netns nowhere: its
// objects went with it, and only files were removed.
func (r *Record) NetnsGone() bool { return r.netnsGone }

// Read loads the record of id from st; nil when there is none.
func Read(st *state.Store, id string) (*Record, error) {
	var r Record
	ok, err := st.Read(id, &r)
	if err != nil || !ok {
		return nil, err
	}
	if err := r.Validate(id); err != nil {
		return nil, fmt.Errorf("state of sandbox %q in %s: %w: %w", id, st.Dir(), state.ErrBadRecord, err)
	}
	r.dir = st.Dir()
	return &r, nil
}

// Validate checks a decoded record of sandbox id.
func (r *Record) Validate(id string) error {
	if r.Version != Version {
		return fmt.Errorf("record version %d; this netbridge reads version %d", r.Version, Version)
	}
	if r.Mode != ModeWhole && r.Mode != ModeAttach {
		return fmt.Errorf("record mode %q; this netbridge knows %q", r.Mode, ModeAttach)
	}
	if r.Sandbox.ID != id {
		return fmt.Errorf("the record is of sandbox %q; remove the file if it was copied there", r.Sandbox.ID)
	}
	return nil
}

// Save writes r to st, where it lives from then on.
func (r *Record) Save(st *state.Store) error {
	r.dir = st.Dir()
	return st.Write(r.Sandbox.ID, r)
}

// SaveOrRemove writes r to st, or removes it when nothing is left in it.
func (r *Record) SaveOrRemove(st *state.Store) error {
	if len(r.Journal) == 0 && len(r.Sandbox.NICs) == 0 {
		return st.Remove(r.Sandbox.ID)
	}
	return r.Save(st)
}
