package netview

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/sandbox"
)

func TestRoutesOfFiltersKernelAndKeepsMTU(t *testing.T) {
	_, dst, _ := net.ParseCIDR("203.0.113.0/24")
	_, link, _ := net.ParseCIDR("198.51.100.0/24")
	routes := []netlink.Route{
		{LinkIndex: 2, Dst: &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}, Gw: net.ParseIP("198.51.100.1"), Protocol: unix.RTPROT_BOOT, Type: unix.RTN_UNICAST, Family: unix.AF_INET},
		{LinkIndex: 2, Dst: link, Protocol: unix.RTPROT_KERNEL, Type: unix.RTN_UNICAST, Family: unix.AF_INET},
		{LinkIndex: 2, Dst: dst, Gw: net.ParseIP("198.51.100.1"), MTU: 1400, Protocol: unix.RTPROT_STATIC, Type: unix.RTN_UNICAST, Family: unix.AF_INET},
		{LinkIndex: 2, Dst: dst, Protocol: unix.RTPROT_STATIC, Type: unix.RTN_BLACKHOLE, Family: unix.AF_INET},
		{LinkIndex: 3, Dst: dst, Protocol: unix.RTPROT_STATIC, Type: unix.RTN_UNICAST, Family: unix.AF_INET},
		{LinkIndex: 2, Gw: net.ParseIP("fe80::1"), Protocol: unix.RTPROT_RA, Type: unix.RTN_UNICAST, Family: unix.AF_INET6},
	}
	got := routesOf(routes, 2)
	want := []sandbox.Route{
		{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: netip.MustParseAddr("198.51.100.1")},
		{Dst: netip.MustParsePrefix("203.0.113.0/24"), Gw: netip.MustParseAddr("198.51.100.1"), MTU: 1400},
		{Dst: netip.MustParsePrefix("::/0"), Gw: netip.MustParseAddr("fe80::1")},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("routesOf =\n%v\nwant\n%v", got, want)
	}
}

func TestNeighborsOfKeepsPermanentAndGateways(t *testing.T) {
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	neighs := []netlink.Neigh{
		{LinkIndex: 2, IP: net.ParseIP("169.254.1.1"), HardwareAddr: mac("ee:ee:ee:ee:ee:ee"), State: netlink.NUD_PERMANENT},
		{LinkIndex: 2, IP: net.ParseIP("198.51.100.1"), HardwareAddr: mac("02:00:00:00:00:01"), State: netlink.NUD_REACHABLE},
		{LinkIndex: 2, IP: net.ParseIP("198.51.100.7"), HardwareAddr: mac("02:00:00:00:00:07"), State: netlink.NUD_REACHABLE}, // not a gateway
		{LinkIndex: 2, IP: net.ParseIP("198.51.100.8"), State: netlink.NUD_FAILED},
		{LinkIndex: 2, IP: net.ParseIP("ff02::1"), HardwareAddr: mac("33:33:00:00:00:01"), State: netlink.NUD_NOARP},
		{LinkIndex: 3, IP: net.ParseIP("192.0.2.1"), HardwareAddr: mac("02:00:00:00:00:02"), State: netlink.NUD_PERMANENT},
	}
	routes := []sandbox.Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: netip.MustParseAddr("198.51.100.1")}}
	got := neighborsOf(neighs, 2, routes)
	if len(got) != 2 || got[0].IP.String() != "169.254.1.1" || !got[0].Permanent || got[1].IP.String() != "198.51.100.1" || got[1].Permanent {
		t.Errorf("neighborsOf = %+v, want the permanent 169.254.1.1 and the gateway 198.51.100.1", got)
	}
}

func TestAddressesOfSkipsIPv6LinkLocal(t *testing.T) {
	mk := func(s string) netlink.Addr {
		ip, n, _ := net.ParseCIDR(s)
		n.IP = ip
		return netlink.Addr{IPNet: n, LinkIndex: 2}
	}
	got := addressesOf([]netlink.Addr{mk("198.51.100.2/24"), mk("fe80::1/64"), mk("2001:db8::2/64"), mk("169.254.3.3/32")}, 2)
	if fmt.Sprint(got) != "[198.51.100.2/24 2001:db8::2/64 169.254.3.3/32]" {
		t.Errorf("addressesOf = %v", got)
	}
}

func TestSelectInterfaces(t *testing.T) {
	ifs := func() []Link {
		return []Link{
			{Interface: sandbox.Interface{Name: "eth0", Kind: "veth", Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.2/24")}}},
			{Interface: sandbox.Interface{Name: "nb-eth0", Kind: "tuntap", Owner: "x"}},
			{Interface: sandbox.Interface{Name: "net1", Kind: "veth"}},
			{Interface: sandbox.Interface{Name: "vx0", Kind: "vxlan", Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.3/24")}}},
		}
	}
	got := ifs()
	if err := SelectLinks(got, nil, carriesAll); err != nil {
		t.Fatal(err)
	}
	if !got[0].Attach || got[1].Attach || got[2].Attach || got[3].Attach || !strings.Contains(got[3].Reason, "vxlan") {
		t.Errorf("default selection = %+v", got)
	}
	got = ifs()
	if err := SelectLinks(got, []string{"net1"}, carriesAll); err != nil || got[0].Attach || !got[2].Attach {
		t.Errorf("--interfaces net1 selection = %+v, %v", got, err)
	}
	for _, names := range [][]string{{"nope"}, {"nb-eth0"}, {"vx0"}} {
		if err := SelectLinks(ifs(), names, carriesAll); err == nil {
			t.Errorf("selecting %v succeeded", names)
		}
	}
}

// carriesAll is a model that carries veth, macvlan and ipvlan.
func carriesAll(ifc *sandbox.Interface) error {
	switch ifc.Kind {
	case "veth", "macvlan", "ipvlan", "tuntap":
		return nil
	}
	return fmt.Errorf("kind %q is not supported", ifc.Kind)
}
