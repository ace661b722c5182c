package netbridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/pkg/nlretry"
	"github.com/netbridge/netbridge/pkg/sandboxid"
	"github.com/netbridge/netbridge/pkg/state"
	"github.com/netbridge/netbridge/pkg/tcredirect"
	"github.com/netbridge/netbridge/sandbox"
)

// ErrNotFound reports that no sandbox of that id is recorded.
var ErrNotFound = errors.New("no such sandbox")

// CheckError lists what is wrong with a sandbox's wiring.
type CheckError struct {
	ID       string
	Problems []string
}

func (e *CheckError) Error() string {
	return fmt.Sprintf("sandbox %q wiring is not intact: %s", e.ID, strings.Join(e.Problems, "; "))
}

// Check verifies that the recorded wiring of sandbox id is intact: every
// interface and tap exists with the recorded MAC, MTU and state, and the
// model's objects are in place. It returns nil when all is well, a
// *CheckError listing the problems, or another error when it could not
// look.
func Check(ctx context.Context, stateDir, id string) error {
	st, rec, unlock, err := lockedRecord(ctx, stateDir, id)
	if err != nil {
		return err
	}
	defer unlock()
	if rec == nil {
		return fmt.Errorf("checking sandbox %q: %w in %s", id, ErrNotFound, st.Dir())
	}
	if rec.Phase != sandbox.PhaseReady {
		return &CheckError{ID: id, Problems: []string{"setup did not finish (interrupted?); run setup again or teardown"}}
	}
	return checkIn(rec, rec.Sandbox.NICs)
}

// CheckInterface is Check for the one interface ifname of sandbox id,
// attached by Attach or set up by Setup: it returns ErrNotFound (wrapped)
// when that interface is not recorded.
func CheckInterface(ctx context.Context, stateDir, id, ifname string) error {
	st, rec, unlock, err := lockedRecord(ctx, stateDir, id)
	if err != nil {
		return err
	}
	defer unlock()
	i := -1
	if rec != nil {
		i = slices.IndexFunc(rec.Sandbox.NICs, func(n NIC) bool { return n.Name == ifname })
	}
	if i < 0 {
		return fmt.Errorf("checking interface %q of sandbox %q: %w in %s", ifname, id, ErrNotFound, st.Dir())
	}
	if rec.Phase != sandbox.PhaseReady && slices.ContainsFunc(rec.Journal, func(s journal.Step) bool { return s.Iface == ifname && !s.Done }) {
		return &CheckError{ID: id, Problems: []string{ifname + ": setup did not finish (interrupted?); attach again or detach"}}
	}
	return checkIn(rec, rec.Sandbox.NICs[i:i+1])
}

// checkIn checks the wiring of nics, of the sandbox rec records, in its
// netns.
func checkIn(rec *journal.Record, nics []NIC) error {
	id := rec.Sandbox.ID
	n, err := netns.Open(rec.Sandbox.Netns)
	if err != nil {
		return &CheckError{ID: id, Problems: []string{err.Error()}}
	}
	defer n.Close()
	if n.ID() != rec.NetnsID {
		return &CheckError{ID: id, Problems: []string{fmt.Sprintf("netns %q is another namespace than the one set up (%s, now %s)", rec.Sandbox.Netns, rec.NetnsID, n.ID())}}
	}
	h, err := journal.OpenHandle(n)
	if err != nil {
		return err
	}
	defer h.Close()
	if p := checkNICs(h, n.Fd(), id, nics); len(p) > 0 {
		return &CheckError{ID: id, Problems: p}
	}
	return nil
}

// lockedRecord opens the store, takes id's lock and reads its record (nil
// when there is none). unlock releases the lock.
func lockedRecord(ctx context.Context, stateDir, id string) (*state.Store, *journal.Record, func(), error) {
	if err := sandboxid.Check(id); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	st, err := state.Open(state.Dir(stateDir))
	if err != nil {
		return nil, nil, nil, err
	}
	lock, err := st.Lock(ctx, id)
	if err != nil {
		return nil, nil, nil, err
	}
	rec, err := journal.Read(st, id)
	if err != nil {
		st.Release(lock, id)
		return nil, nil, nil, err
	}
	return st, rec, func() { st.Release(lock, id) }, nil
}

// checker collects problems found in one netns.
type checker struct {
	h        *netlink.Handle
	netnsFd  int
	id       string
	problems []string
}

func (c *checker) problem(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

func (c *checker) link(name string) netlink.Link {
	l, err := c.h.LinkByName(name)
	if err != nil {
		c.problem("%s: %v", name, err)
		return nil
	}
	return l
}

// checkWiring returns what is wrong with rec's wiring, seen through h in
// the netns open as netnsFd.
func checkWiring(h *netlink.Handle, netnsFd int, rec *journal.Record) []string {
	return checkNICs(h, netnsFd, rec.Sandbox.ID, rec.Sandbox.NICs)
}

// checkNICs returns what is wrong with the wiring of nics of sandbox id.
func checkNICs(h *netlink.Handle, netnsFd int, id string, nics []NIC) []string {
	c := &checker{h: h, netnsFd: netnsFd, id: id}
	for i := range nics {
		nic := &nics[i]
		m, ok := models[nic.Model]
		if !ok {
			c.problem("%s: unknown model %q in the state (written by a newer netbridge?)", nic.Name, nic.Model)
			continue
		}
		if l := c.link(nic.Name); l != nil && l.Attrs().Index != nic.Index {
			c.problem("%s: ifindex is %d, was %d (the interface was recreated)", nic.Name, l.Attrs().Index, nic.Index)
		}
		m.check(c, nic)
	}
	return c.problems
}

// owned returns the link called name if it exists, is of the given type
// and carries our tag; otherwise it records the problem.
func (c *checker) owned(name, kind string) netlink.Link {
	l := c.link(name)
	switch {
	case l == nil:
		return nil
	case l.Type() != kind:
		c.problem("%s: is a %s link, not a %s", name, l.Type(), kind)
		return nil
	case l.Attrs().Alias != journal.OwnerTag(c.id):
		c.problem("%s: not tagged %q (alias %q)", name, journal.OwnerTag(c.id), l.Attrs().Alias)
		return nil
	}
	return l
}

func (c *checker) up(l netlink.Link) {
	if l.Attrs().Flags&net.FlagUp == 0 {
		c.problem("%s: is down", l.Attrs().Name)
	}
}

// tap checks the tap netbridge created for nic, and that the interface
// still has the guest's MAC.
func (c *checker) tap(nic *NIC) {
	if l := c.link(nic.Name); l != nil && nic.HostMAC == nil && !bytes.Equal(l.Attrs().HardwareAddr, nic.GuestMAC) {
		c.problem("%s: MAC is %s, was %s", nic.Name, l.Attrs().HardwareAddr, nic.GuestMAC)
	}
	l := c.owned(nic.Tap, "tuntap")
	if l == nil {
		return
	}
	c.up(l)
	if a := l.Attrs(); a.MTU != nic.MTU {
		c.problem("%s: MTU is %d, want %d", nic.Tap, a.MTU, nic.MTU)
	}
	if a := l.Attrs(); !bytes.Equal(a.HardwareAddr, nic.TapMAC) {
		c.problem("%s: MAC is %s, want %s", nic.Tap, a.HardwareAddr, nic.TapMAC)
	}
}

// hostMAC checks that the interface holds the MAC netbridge gave it.
func (c *checker) hostMAC(nic *NIC) {
	if nic.HostMAC == nil {
		return
	}
	if l := c.link(nic.Name); l != nil && !bytes.Equal(l.Attrs().HardwareAddr, nic.HostMAC) {
		c.problem("%s: MAC is %s, want %s (the guest has %s)", nic.Name, l.Attrs().HardwareAddr, nic.HostMAC, nic.GuestMAC)
	}
}

// redirect checks that src has an ingress qdisc holding our filter that
// redirects to dst.
func (c *checker) redirect(src, dst string) {
	s, d := c.link(src), c.link(dst)
	if s == nil || d == nil {
		return
	}
	q, err := journal.FindIngress(c.h, s)
	if err != nil || q == nil {
		c.problem("%s: no ingress qdisc (%v)", src, err)
		return
	}
	fs, err := nlretry.Dump(func() ([]netlink.Filter, error) { return c.h.FilterList(s, tcredirect.IngressParent) })
	if err != nil {
		c.problem("%s: listing filters: %v", src, err)
		return
	}
	for _, f := range fs {
		if to, _ := tcredirect.Target(f); f.Attrs().Priority == tcredirect.Priority && to == d.Attrs().Index {
			return
		}
	}
	c.problem("%s: no redirect filter to %s at prio %d", src, dst, tcredirect.Priority)
}
