package journal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/pkg/state"
	"github.com/netbridge/netbridge/pkg/tap"
	"github.com/netbridge/netbridge/pkg/tcredirect"
)

// Netns is netlink access to one sandbox netns: a route handle, and a raw
// route socket for requests the handle has no call for, both opened inside
// the namespace, whose functions run on a thread in it.
type Netns struct {
	H    *netlink.Handle
	Sock map[int]*nl.SocketHandle
	NS   *netns.NS
}

// Fd returns the namespace's file descriptor.
func (k *Netns) Fd() int { return k.NS.Fd() }

// In runs fn on a thread inside n, with netlink access to n.
func In(n *netns.NS, fn func(*Netns) error) error {
	return n.Do(func() error {
		h, err := newRouteHandle()
		if err != nil {
			return fmt.Errorf("opening netlink: %w", err)
		}
		defer h.Close()
		sock, err := routeSocket()
		if err != nil {
			return err
		}
		defer sock[unix.NETLINK_ROUTE].Socket.Close()
		return fn(&Netns{H: h, Sock: sock, NS: n})
	})
}

// Tx records the steps of one sandbox's record in the state directory and
// makes their objects in its netns: each step is written before its object
// exists. Its methods run on a thread inside that netns.
type Tx struct {
	k     *Netns
	st    *state.Store
	rec   *Record
	log   *slog.Logger
	start time.Time
}

// NewTx returns the transaction on rec, stored in st, whose objects go in
// k's netns. It logs each step done to log (with the time since start).
func NewTx(k *Netns, st *state.Store, rec *Record, log *slog.Logger, start time.Time) *Tx {
	rec.dir = st.Dir()
	if log == nil {
		log = discard
	}
	return &Tx{k: k, st: st, rec: rec, log: log, start: start}
}

// Netns returns the netns the objects go in.
func (t *Tx) Netns() *Netns { return t.k }

// Record returns the record.
func (t *Tx) Record() *Record { return t.rec }

// Save writes the record.
func (t *Tx) Save() error { return t.rec.Save(t.st) }

// SaveOrRemove writes the record, or removes it when nothing is left in it.
func (t *Tx) SaveOrRemove() error { return t.rec.SaveOrRemove(t.st) }

// For returns the steps of t that wire interface iface.
func (t *Tx) For(iface string) Scope { return Scope{tx: t, iface: iface} }

// Planned is a step and the function that makes its object.
type Planned struct {
	Step Step
	// Make must either make the object completely or leave nothing; on
	// its failure the entry is dropped.
	Make func() error
	// Made, when set, completes the journal entry once Make succeeded
	// (with the identity of what it made); the next write carries it.
	Made func(*Step)
}

// Do journals steps with one write of the record (an entry not done may or
// may not have its object, and undo handles both), then makes each object
// in order and marks its step done in memory; the next write of the record
// carries the marks. On a failure the entries of the steps not done are
// dropped again, and Do returns the index of the step that failed.
func (t *Tx) Do(ctx context.Context, steps ...Planned) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("%s: %w", steps[0].Step, err)
	}
	rec := t.rec
	first := len(rec.Journal)
	for _, p := range steps {
		rec.Journal = append(rec.Journal, p.Step)
	}
	if err := t.Save(); err != nil {
		rec.Journal = rec.Journal[:first]
		return 0, err
	}
	for i, p := range steps {
		k := first + i
		err := ctx.Err()
		if err == nil {
			err = beforeStep(k+1, p.Step)
		}
		if err == nil {
			err = retryBusy(ctx, p.Make)
		}
		if err != nil {
			rec.Journal = rec.Journal[:k]
			return i, fmt.Errorf("%s: %w", p.Step, err)
		}
		afterStep(k + 1)
		if p.Made != nil {
			p.Made(&rec.Journal[k])
		}
		rec.Journal[k].Done = true
		t.log.Debug("done", "step", p.Step.String(), "elapsed", time.Since(t.start))
	}
	return 0, nil
}

// Transient kernel answers (CNI may still be configuring the interface, or
// RTNL is contended) are retried with a bounded backoff.
const (
	busyFirstDelay = 5 * time.Millisecond
	busyMaxDelay   = 100 * time.Millisecond
	busyLimit      = 2 * time.Second
)

// retryBusy runs fn, again while it fails with EBUSY or EAGAIN, for at most
// busyLimit. fn must leave nothing behind when it fails (as a step's Make
// does), so running it again is safe. A tap name taken by someone else is
// EBUSY too, but final.
func retryBusy(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(busyLimit)
	delay := busyFirstDelay
	for {
		err := fn()
		transient := (errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EAGAIN)) && !errors.Is(err, tap.ErrExists)
		if !transient || time.Now().Add(delay).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, busyMaxDelay)
	}
}

// Scope is the part of a transaction that wires one interface: every step
// it makes is journaled under that interface, which owns it.
type Scope struct {
	tx    *Tx
	iface string
}

// Iface returns the interface whose steps s makes.
func (s Scope) Iface() string { return s.iface }

// Netns returns the netns the objects go in.
func (s Scope) Netns() *Netns { return s.tx.k }

// Do is Tx.Do for steps of s's interface.
func (s Scope) Do(ctx context.Context, steps ...Planned) error {
	for i := range steps {
		steps[i].Step.Iface = s.iface
	}
	_, err := s.tx.Do(ctx, steps...)
	return err
}

// Plan returns p as a step of s's interface, to be made with others by
// Tx.Do.
func (s Scope) Plan(p Planned) Planned {
	p.Step.Iface = s.iface
	return p
}

// Classifier returns the tc classifier of the sandbox's redirect filters,
// as the record holds it: the one its first filter was made with, "" when
// none was made yet.
func (s Scope) Classifier() tcredirect.Classifier { return s.tx.rec.Classifier }

// SetClassifier records c as the classifier of the sandbox's filters.
func (s Scope) SetClassifier(c tcredirect.Classifier) { s.tx.rec.Classifier = c }
