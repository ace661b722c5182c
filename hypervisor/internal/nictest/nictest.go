// Package nictest builds the NIC values the renderers' tests use.
package nictest

import (
	"net"
	"net/netip"
	"strconv"
	"testing"

	"github.com/netbridge/netbridge/sandbox"
)

// MAC parses s, failing the test if it is not a MAC.
func MAC(t testing.TB, s string) sandbox.MAC {
	t.Helper()
	hw, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return sandbox.MAC(hw)
}

// NIC returns a single-queue tcfilter NIC on a veth named name, with tap
// tap, guest MAC m, tap MAC fe:00:00:00:00:01 and the given MTU.
func NIC(t testing.TB, name, tap, m string, mtu int) sandbox.NIC {
	return sandbox.NIC{
		Name:     name,
		Kind:     "veth",
		Model:    "tcfilter",
		Tap:      tap,
		TapMAC:   MAC(t, "fe:00:00:00:00:01"),
		GuestMAC: MAC(t, m),
		MTU:      mtu,
		Queues:   1,
	}
}

// Sandbox returns a sandbox with the NICs of NICs and the DNS
// configuration a Kubernetes pod gets.
func Sandbox(t testing.TB, count int) sandbox.Sandbox {
	return sandbox.Sandbox{
		ID:    "bench-sandbox",
		Netns: "/run/netns/bench-sandbox",
		Model: "tcfilter",
		NICs:  NICs(t, count),
		DNS: sandbox.DNS{
			Nameservers: []netip.Addr{netip.MustParseAddr("198.51.100.53"), netip.MustParseAddr("2001:db8:64::53")},
			Search:      []string{"default.svc.cluster.local", "svc.cluster.local", "cluster.local"},
			Options:     []string{"ndots:5"},
		},
	}
}

// NICs returns the NICs of a realistic sandbox with count (1 or 4)
// interfaces: eth0 is a dual-stack veth (tcfilter) with default routes, a
// route with an MTU and a resolved gateway neighbour; net1 to net3 are
// Multus-style secondary networks (a 9000-byte macvlan, an IPv6-only
// ipvlan, a bridged veth whose MAC was changed). Every NIC has one queue,
// which every renderer (Firecracker included) accepts.
func NICs(t testing.TB, count int) []sandbox.NIC {
	t.Helper()
	mac := func(s string) sandbox.MAC { return MAC(t, s) }
	pfx := func(ss ...string) []netip.Prefix {
		out := make([]netip.Prefix, 0, len(ss))
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	rt := func(dst, gw string, mtu int) sandbox.Route {
		r := sandbox.Route{Dst: netip.MustParsePrefix(dst), MTU: mtu}
		if gw != "" {
			r.Gw = netip.MustParseAddr(gw)
		}
		return r
	}
	eth0 := NIC(t, "eth0", "nb-eth0", "0a:58:c6:33:64:02", 1450)
	eth0.Index, eth0.TapIndex = 2, 3
	eth0.TapMAC = mac("ce:2e:e9:52:27:3b")
	eth0.Addresses = pfx("198.51.100.2/24", "2001:db8:64::2/64")
	eth0.Routes = []sandbox.Route{
		rt("0.0.0.0/0", "198.51.100.1", 0),
		rt("203.0.113.0/24", "198.51.100.254", 1400),
		rt("::/0", "2001:db8:64::1", 0),
	}
	eth0.Neighbors = []sandbox.Neighbor{{IP: netip.MustParseAddr("198.51.100.1"), MAC: mac("0a:58:c6:33:64:01")}}
	nics := []sandbox.NIC{eth0}
	if count == 1 {
		return nics
	}

	net1 := NIC(t, "net1", "nb-net1", "6e:e1:8f:52:b9:92", 9000)
	net1.Kind, net1.Index, net1.TapIndex = "macvlan", 4, 5
	net1.TapMAC = mac("8a:47:c1:0b:96:2e")
	net1.Addresses = pfx("198.51.101.7/24")
	net1.Routes = []sandbox.Route{rt("192.0.2.0/25", "198.51.101.1", 0)}

	net2 := NIC(t, "net2", "nb-net2", "1e:f6:75:f1:83:8b", 1500)
	net2.Kind, net2.Index, net2.TapIndex = "ipvlan", 6, 7
	net2.TapMAC = mac("8a:47:c1:0b:96:2f")
	net2.Addresses = pfx("2001:db8:65::7/64", "2001:db8:65::8/64")
	net2.Routes = []sandbox.Route{rt("2001:db8:ff::/48", "2001:db8:65::1", 1480)}

	net3 := NIC(t, "net3", "nb-net3", "02:42:c0:00:02:0a", 1500)
	net3.Model, net3.Index, net3.TapIndex = "bridge", 8, 9
	net3.TapMAC = mac("8a:47:c1:0b:96:30")
	net3.HostMAC = mac("8a:47:c1:0b:96:31")
	net3.Bridge = "nbr-net3"
	net3.Addresses = pfx("192.0.2.10/24")
	net3.Routes = []sandbox.Route{rt("192.0.2.128/25", "", 0)}
	net3.Neighbors = []sandbox.Neighbor{{IP: netip.MustParseAddr("192.0.2.1"), MAC: mac("02:42:c0:00:02:01"), Permanent: true}}
	return append(nics, net1, net2, net3)
}

// Bench runs a renderer benchmark on the sandboxes of Sandbox with 1 and 4
// NICs, as sub-benchmarks nics=1 and nics=4: prepare gets the sandbox
// (outside the timer) and returns the operation timed.
func Bench(b *testing.B, prepare func(b *testing.B, s sandbox.Sandbox) func() error) {
	for _, count := range []int{1, 4} {
		b.Run("nics="+strconv.Itoa(count), func(b *testing.B) {
			op := prepare(b, Sandbox(b, count))
			b.ReportAllocs()
			for b.Loop() {
				if err := op(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
