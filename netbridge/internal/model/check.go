package model

import (
	"bytes"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/pkg/nlretry"
	"github.com/netbridge/netbridge/pkg/tcredirect"
	"github.com/netbridge/netbridge/sandbox"
)

// Checker collects the problems found in the wiring of one sandbox, in its
// netns.
type Checker struct {
	h        *netlink.Handle
	netnsFd  int
	id       string
	problems []string
}

// NetnsFd returns the file descriptor of the sandbox netns.
func (c *Checker) NetnsFd() int { return c.netnsFd }

// Problem records a problem.
func (c *Checker) Problem(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// Link returns the link called name, or records that it is missing.
func (c *Checker) Link(name string) netlink.Link {
	l, err := c.h.LinkByName(name)
	if err != nil {
		c.Problem("%s: %v", name, err)
		return nil
	}
	return l
}

// Check returns what is wrong with the wiring of nics of sandbox id, seen
// through h in the netns open as netnsFd.
func (r *Registry) Check(h *netlink.Handle, netnsFd int, id string, nics []sandbox.NIC) []string {
	c := &Checker{h: h, netnsFd: netnsFd, id: id}
	for i := range nics {
		nic := &nics[i]
		m, ok := r.Get(nic.Model)
		if !ok {
			c.Problem("%s: unknown model %q in the state (written by a newer netbridge?)", nic.Name, nic.Model)
			continue
		}
		if l := c.Link(nic.Name); l != nil && l.Attrs().Index != nic.Index {
			c.Problem("%s: ifindex is %d, was %d (the interface was recreated)", nic.Name, l.Attrs().Index, nic.Index)
		}
		m.Check(c, nic)
	}
	return c.problems
}

// Owned returns the link called name if it exists, is of the given type
// and carries our tag; otherwise it records the problem.
func (c *Checker) Owned(name, kind string) netlink.Link {
	l := c.Link(name)
	switch {
	case l == nil:
		return nil
	case l.Type() != kind:
		c.Problem("%s: is a %s link, not a %s", name, l.Type(), kind)
		return nil
	case l.Attrs().Alias != journal.OwnerTag(c.id):
		c.Problem("%s: not tagged %q (alias %q)", name, journal.OwnerTag(c.id), l.Attrs().Alias)
		return nil
	}
	return l
}

// Up records a problem when l is down.
func (c *Checker) Up(l netlink.Link) {
	if l.Attrs().Flags&net.FlagUp == 0 {
		c.Problem("%s: is down", l.Attrs().Name)
	}
}

// Tap checks the tap netbridge created for nic, and that the interface
// still has the guest's MAC.
func (c *Checker) Tap(nic *sandbox.NIC) {
	if l := c.Link(nic.Name); l != nil && nic.HostMAC == nil && !bytes.Equal(l.Attrs().HardwareAddr, nic.GuestMAC) {
		c.Problem("%s: MAC is %s, was %s", nic.Name, l.Attrs().HardwareAddr, nic.GuestMAC)
	}
	l := c.Owned(nic.Tap, "tuntap")
	if l == nil {
		return
	}
	c.Up(l)
	if a := l.Attrs(); a.MTU != nic.MTU {
		c.Problem("%s: MTU is %d, want %d", nic.Tap, a.MTU, nic.MTU)
	}
	if a := l.Attrs(); !bytes.Equal(a.HardwareAddr, nic.TapMAC) {
		c.Problem("%s: MAC is %s, want %s", nic.Tap, a.HardwareAddr, nic.TapMAC)
	}
}

// HostMAC checks that the interface holds the MAC netbridge gave it.
func (c *Checker) HostMAC(nic *sandbox.NIC) {
	if nic.HostMAC == nil {
		return
	}
	if l := c.Link(nic.Name); l != nil && !bytes.Equal(l.Attrs().HardwareAddr, nic.HostMAC) {
		c.Problem("%s: MAC is %s, want %s (the guest has %s)", nic.Name, l.Attrs().HardwareAddr, nic.HostMAC, nic.GuestMAC)
	}
}

// Redirect checks that src has an ingress qdisc holding our filter that
// redirects to dst.
func (c *Checker) Redirect(src, dst string) {
	s, d := c.Link(src), c.Link(dst)
	if s == nil || d == nil {
		return
	}
	q, err := journal.FindIngress(c.h, s)
	if err != nil || q == nil {
		c.Problem("%s: no ingress qdisc (%v)", src, err)
		return
	}
	fs, err := nlretry.Dump(func() ([]netlink.Filter, error) { return c.h.FilterList(s, tcredirect.IngressParent) })
	if err != nil {
		c.Problem("%s: listing filters: %v", src, err)
		return
	}
	for _, f := range fs {
		if to, _ := tcredirect.Target(f); f.Attrs().Priority == tcredirect.Priority && to == d.Attrs().Index {
			return
		}
	}
	c.Problem("%s: no redirect filter to %s at prio %d", src, dst, tcredirect.Priority)
}
