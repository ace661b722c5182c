package sandbox

import "net/netip"

// Interface is a link found in a sandbox netns, with what setup would do
// with it.
type Interface struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Index int    `json:"index"`
	MAC   MAC    `json:"mac"`
	MTU   int    `json:"mtu"`
	Up    bool   `json:"up"`
	// Owner is the sandbox id of the netbridge setup that created this
	// link (from its alias tag), empty for a link netbridge did not create.
	Owner string `json:"owner,omitempty"`
	// WiredFor is the sandbox id netbridge wired this interface for (a tc
	// redirect at netbridge's filter priority to its tap, its bridge as the
	// master, or its macvtap on top), whatever state directory that setup
	// used; empty when netbridge did not wire it. Setup and Attach refuse
	// such an interface to every other sandbox.
	WiredFor  string         `json:"wired_for,omitempty"`
	Addresses []netip.Prefix `json:"addresses"`
	Routes    []Route        `json:"routes"`
	Neighbors []Neighbor     `json:"neighbors"`
	// Attach reports whether setup would attach the interface.
	Attach bool `json:"attach"`
	// Reason says why the interface would not be attached.
	Reason string `json:"reason,omitempty"`
}
