package netbridge

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/pkg/sandboxid"
	"github.com/netbridge/netbridge/sandbox"
)

// ErrTornDown reports that a followed sandbox was torn down (its record
// removed) while Follow ran: following ended with it.
var ErrTornDown = errors.New("the sandbox was torn down")

// ErrFollowed reports that another process follows the sandbox already;
// it is the cause of a *FollowedError.
var ErrFollowed = errors.New("the sandbox is followed already")

// FollowedError reports that process PID follows sandbox ID already: one
// follow per sandbox.
type FollowedError struct {
	ID  string
	PID int // 0 when it could not be read
}

func (e *FollowedError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("sandbox %q is followed by another process already; stop it first", e.ID)
	}
	return fmt.Sprintf("sandbox %q is followed by process %d already; stop it first", e.ID, e.PID)
}

// Unwrap returns ErrFollowed.
func (e *FollowedError) Unwrap() error { return ErrFollowed }

// FollowOptions tunes Follow.
type FollowOptions struct {
	// HotPlugger, when set, keeps the VM's NICs in step (see Reconcile).
	HotPlugger HotPlugger
	// OnEvent is called once per NIC changed, with Event.Elapsed counted
	// from the first netlink change of the burst that caused it.
	OnEvent func(FollowEvent)
	// OnError is called with an error of a reconcile that does not end
	// the follow (a hot-plug failure, a wiring that failed and is retried
	// on the next change).
	OnError func(error)
	// Settle is how long a burst of netlink changes must be quiet before
	// a reconcile runs (default 50ms).
	Settle time.Duration
	// Resync is the period of the reconcile that runs without a change,
	// which notices a record removed or a netns gone (default 2s).
	Resync time.Duration
}

// FollowEvent is an Event with the time from the netlink change that
// caused it (or from the start of the reconcile, without one) to its end.
type FollowEvent struct {
	Event
	Elapsed time.Duration `json:"-"`
}

// Follow keeps the wiring of sandbox id in step with its netns until ctx
// ends (it returns nil, the wiring left as it is), the sandbox is torn
// down (ErrTornDown) or its netns is gone (ErrNetnsGone). It reconciles at
// start, then after every burst of netlink changes (links, addresses,
// routes) in the sandbox netns, and every Resync. One Follow per id runs
// at a time: another, in any process, fails with a *FollowedError. An id
// without a record fails at start with ErrNotFound.
func (m *Manager) Follow(ctx context.Context, id string, o FollowOptions) error {
	if err := sandboxid.Check(id); err != nil {
		return fmt.Errorf("%w: %w", sandbox.ErrInvalidConfig, err)
	}
	if o.Settle <= 0 {
		o.Settle = 50 * time.Millisecond
	}
	if o.Resync <= 0 {
		o.Resync = 2 * time.Second
	}
	unlock, err := m.followLock(id)
	if err != nil {
		return err
	}
	defer unlock()
	sb, err := m.Load(ctx, id)
	if err != nil {
		return err
	}
	n, err := netns.Open(sb.Netns)
	if err != nil {
		if errors.Is(err, netns.ErrNotExist) {
			return fmt.Errorf("following sandbox %q: %w (netns %q)", id, ErrNetnsGone, sb.Netns)
		}
		return fmt.Errorf("following sandbox %q: %w", id, err)
	}
	changes, stop, err := subscribe(n)
	n.Close()
	if err != nil {
		return fmt.Errorf("following sandbox %q: watching netns %q: %w", id, sb.Netns, err)
	}
	defer stop()

	f := &follower{m: m, ctx: ctx, id: id, o: o}
	if err := f.reconcile(); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	return f.loop(changes, sb.Netns)
}

// follower is one Follow: the sandbox it follows, and the start of the
// burst of netlink changes being settled.
type follower struct {
	m     *Manager
	ctx   context.Context
	id    string
	o     FollowOptions
	first time.Time // the first change of the burst; zero: none
}

// reconcile runs one Reconcile, reporting its events with the time since
// the burst began. It returns an error that ends the follow: the sandbox
// torn down, its netns gone, the context ended; others go to OnError.
func (f *follower) reconcile() error {
	began := f.first
	if began.IsZero() {
		began = time.Now()
	}
	f.first = time.Time{}
	err := f.m.Reconcile(f.ctx, f.id, f.o.HotPlugger, func(e Event) {
		if f.o.OnEvent != nil {
			f.o.OnEvent(FollowEvent{Event: e, Elapsed: time.Since(began)})
		}
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("following sandbox %q: %w", f.id, ErrTornDown)
	case errors.Is(err, ErrNetnsGone), f.ctx.Err() != nil:
		return err
	}
	if f.o.OnError != nil {
		f.o.OnError(err)
	}
	return nil
}

// loop reconciles after each burst of changes has settled, and every
// Resync, until the context ends or a reconcile ends the follow.
func (f *follower) loop(changes <-chan struct{}, netnsPath string) error {
	ctx, o := f.ctx, f.o
	settle := time.NewTimer(o.Settle)
	settle.Stop()
	resync := time.NewTicker(o.Resync)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-changes:
			if !ok {
				return fmt.Errorf("following sandbox %q: the netlink watch of netns %q ended", f.id, netnsPath)
			}
			if f.first.IsZero() {
				f.first = time.Now()
			}
			settle.Reset(o.Settle)
			continue
		case <-settle.C:
		case <-resync.C:
			if !f.first.IsZero() {
				continue // a burst is settling
			}
		}
		if err := f.reconcile(); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// subscribe watches the links, addresses and routes of netns n: every
// change sends on the channel returned (dropped when a send is pending
// already: one pending change is enough to reconcile). stop ends it.
func subscribe(n *netns.NS) (<-chan struct{}, func(), error) {
	h := vnetns.NsHandle(n.Fd())
	done := make(chan struct{})
	out := make(chan struct{}, 1)
	poke := func() {
		select {
		case out <- struct{}{}:
		default:
		}
	}
	links := make(chan netlink.LinkUpdate, 64)
	addrs := make(chan netlink.AddrUpdate, 64)
	routes := make(chan netlink.RouteUpdate, 64)
	// A lost message (a full socket buffer) is a change we did not see:
	// poke, so that a reconcile looks at the netns as it is.
	onErr := func(error) { poke() }
	if err := netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{Namespace: &h, ErrorCallback: onErr}); err != nil {
		close(done)
		return nil, nil, fmt.Errorf("links: %w", err)
	}
	if err := netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{Namespace: &h, ErrorCallback: onErr}); err != nil {
		close(done)
		return nil, nil, fmt.Errorf("addresses: %w", err)
	}
	if err := netlink.RouteSubscribeWithOptions(routes, done, netlink.RouteSubscribeOptions{Namespace: &h, ErrorCallback: onErr}); err != nil {
		close(done)
		return nil, nil, fmt.Errorf("routes: %w", err)
	}
	go func() {
		for {
			select {
			case <-done:
				return
			case _, ok := <-links:
				if !ok {
					links = nil
				}
			case _, ok := <-addrs:
				if !ok {
					addrs = nil
				}
			case _, ok := <-routes:
				if !ok {
					routes = nil
				}
			}
			poke()
		}
	}()
	return out, func() { close(done) }, nil
}

// followLock takes the follow lock of id (a file in the state directory
// holding the follower's pid), without waiting: a *FollowedError names the
// process that holds it.
func (m *Manager) followLock(id string) (func(), error) {
	st, err := m.store()
	if err != nil {
		return nil, err
	}
	p := filepath.Join(st.Dir(), "."+id+".follow")
	for {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("opening the follow lock %q: %w", p, err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			b, _ := os.ReadFile(p)
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
				return nil, &FollowedError{ID: id, PID: pid}
			}
			return nil, fmt.Errorf("locking %q: %w", p, err)
		}
		fi, ferr := f.Stat()
		pi, perr := os.Lstat(p)
		if ferr != nil || perr != nil || !os.SameFile(fi, pi) {
			f.Close() // removed by the holder before us: retry
			continue
		}
		if err := f.Truncate(0); err == nil {
			_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		}
		return func() {
			os.Remove(p)
			f.Close()
		}, nil
	}
}
