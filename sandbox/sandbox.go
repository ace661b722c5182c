// Package sandbox is netbridge's vocabulary, as plain data: what a caller
// asks for (Config), what a netns holds (Interface), and what is wired for
// a sandbox (Sandbox, NIC, and the MAC, Route, Neighbor and DNS the guest
// needs), with the typed values of each (Model, Vhost, MacvtapMode, Phase)
// and their validation. Renderers in hypervisor/ turn a Sandbox into
// hypervisor arguments with nothing but this package; it holds no kernel
// code.
package sandbox

import (
	"net/netip"
	"os"
	"slices"
)

// Route is a route of the sandbox's main routing table that the guest
// should install on the NIC it belongs to.
type Route struct {
	// Dst is the destination prefix; 0.0.0.0/0 or ::/0 for a default route.
	Dst netip.Prefix `json:"dst"`
	// Gw is the next hop; the zero Addr for an on-link route.
	Gw netip.Addr `json:"gw,omitzero"`
	// MTU is the route's MTU (RTAX_MTU), 0 when the route has none.
	MTU int `json:"mtu,omitempty"`
}

// Neighbor is a static neighbour entry the guest should install, such as
// the permanent ARP entry of a Calico-style 169.254.1.1 gateway.
type Neighbor struct {
	IP  netip.Addr `json:"ip"`
	MAC MAC        `json:"mac"`
	// Permanent reports whether the entry was NUD_PERMANENT in the sandbox.
	Permanent bool `json:"permanent,omitempty"`
}

// NIC describes one CNI interface of the sandbox and the tap that carries
// its traffic to the guest. It is plain data: renderers in hypervisor/ turn
// a list of NICs into hypervisor arguments without touching the kernel.
type NIC struct {
	// Name is the CNI interface name inside the sandbox netns (eth0, net1).
	Name string `json:"name"`
	// Network is the CNI network the interface belongs to, when the
	// caller said (Config.Network).
	Network string `json:"network,omitempty"`
	// Kind is the link kind of that interface as the kernel reports it
	// (veth, macvlan, ipvlan, tuntap).
	Kind string `json:"kind"`
	// Index is the interface's ifindex inside the sandbox netns.
	Index int `json:"index"`
	// Model is how this interface is connected to the guest: tcfilter,
	// bridge, macvtap, none, or passthrough (an existing tap, used as is).
	Model Model `json:"model"`
	// Why says why the model was chosen, when setup chose it (model auto,
	// or an existing tap).
	Why string `json:"why,omitempty"`
	// Tap is the name of the device the hypervisor opens: the tap created
	// for the guest, the macvtap (model macvtap), or the existing tap.
	Tap string `json:"tap"`
	// TapIndex is the tap's ifindex inside the sandbox netns.
	TapIndex int `json:"tap_index,omitempty"`
	// TapMAC is the tap's own (host side) MAC, derived from the sandbox id
	// and interface name. It is never the guest's MAC.
	TapMAC MAC `json:"tap_mac"`
	// GuestMAC is the MAC the guest NIC must use: the CNI interface's
	// original MAC, which the CNI network expects to see.
	GuestMAC MAC `json:"guest_mac"`
	// HostMAC is the MAC the CNI interface has while wired, when the model
	// had to change it (bridge, macvtap bridge mode): it must not keep the
	// guest's MAC, or ARP replies for the guest would stop at it.
	HostMAC MAC `json:"host_mac,omitempty"`
	// Bridge is the Linux bridge joining interface and tap (model bridge).
	Bridge string `json:"bridge,omitempty"`
	// Device is the private character device node whose opens give queues
	// of the macvtap (model macvtap). Macvtaps can only be handed to a
	// hypervisor by fd.
	Device string `json:"device,omitempty"`
	// MacvtapMode is the macvtap mode, bridge or passthru (model macvtap).
	MacvtapMode MacvtapMode `json:"macvtap_mode,omitempty"`
	// MTU is the link MTU of the CNI interface, copied to the tap.
	MTU int `json:"mtu"`
	// Queues is the number of tap queues (queue pairs for virtio-net); the
	// renderers read 0 as 1.
	Queues int `json:"queues"`
	// Vhost reports whether the hypervisor should use vhost-net.
	Vhost bool `json:"vhost,omitempty"`
	// Addresses are the interface's addresses (IPv4 and IPv6, link-local
	// IPv6 excluded) in CIDR form.
	Addresses []netip.Prefix `json:"addresses"`
	// Routes are the main-table routes through the interface, kernel
	// (proto kernel) routes excluded.
	Routes []Route `json:"routes"`
	// Neighbors are the static neighbour entries of the interface and the
	// resolved entries of its gateways.
	Neighbors []Neighbor `json:"neighbors"`

	// Files holds one open tap queue per element when the sandbox was set
	// up with HoldFDs; nil otherwise. The caller owns and closes them.
	Files []*os.File `json:"-"`
	// VhostFiles holds one open /dev/vhost-net file per queue when vhost
	// fds were opened; nil otherwise. The caller owns and closes them.
	VhostFiles []*os.File `json:"-"`
}

// Sandbox is a wired sandbox: its network namespace, the interworking model
// and one NIC per attached CNI interface, ordered by interface name.
type Sandbox struct {
	// ID is the sandbox id (the CRI sandbox or container id).
	ID string `json:"id"`
	// Netns is the path of the sandbox's network namespace.
	Netns string `json:"netns"`
	// Model is the interworking model asked for (tcfilter, bridge,
	// macvtap, none, auto); each NIC says which one it got.
	Model Model `json:"model"`
	// NICs are the attached interfaces, ordered by name.
	NICs []NIC `json:"nics"`
	// DNS is the guest's resolver configuration, when known (from the
	// Config, or from the CNI results libcni cached for the sandbox).
	DNS DNS `json:"dns,omitzero"`
	// Warnings lists interfaces that were skipped, and why.
	Warnings []string `json:"warnings,omitempty"`
}

// Close closes every queue and vhost file held by the sandbox's NICs. It
// does not tear the wiring down; persistent taps stay until Teardown.
func (s *Sandbox) Close() error {
	var first error
	for i := range s.NICs {
		for _, f := range slices.Concat(s.NICs[i].Files, s.NICs[i].VhostFiles) {
			if err := f.Close(); err != nil && first == nil {
				first = err
			}
		}
		s.NICs[i].Files, s.NICs[i].VhostFiles = nil, nil
	}
	return first
}
