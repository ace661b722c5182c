package guest

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/golden"
)

func TestCmdline(t *testing.T) {
	mac := func(s string) sandbox.MAC {
		var m sandbox.MAC
		if err := m.UnmarshalText([]byte(s)); err != nil {
			t.Fatal(err)
		}
		return m
	}
	nics := []sandbox.NIC{
		{
			Name: "eth0", GuestMAC: mac("0a:58:c6:33:64:02"), MTU: 1500,
			Addresses: []netip.Prefix{netip.MustParsePrefix("198.51.100.2/24"), netip.MustParsePrefix("2001:db8:1::2/64")},
			Routes: []sandbox.Route{
				{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: netip.MustParseAddr("198.51.100.1")},
				{Dst: netip.MustParsePrefix("::/0"), Gw: netip.MustParseAddr("2001:db8:1::1")},
				{Dst: netip.MustParsePrefix("203.0.113.0/24"), Gw: netip.MustParseAddr("198.51.100.1"), MTU: 1400},
			},
		},
		{
			Name: "net1", GuestMAC: mac("ee:ee:ee:00:00:07"), MTU: 9000,
			Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.7/32")},
			Routes: []sandbox.Route{
				{Dst: netip.MustParsePrefix("169.254.1.1/32")},
				{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: netip.MustParseAddr("169.254.1.1")},
			},
			Neighbors: []sandbox.Neighbor{{IP: netip.MustParseAddr("169.254.1.1"), MAC: mac("ee:ee:ee:ee:ee:ee"), Permanent: true}},
		},
	}
	got, err := Cmdline(nics)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "cmdline_two_nics", []byte(got+"\n"))
	if strings.Count(got, CmdlineKey+"=") != 2 || strings.ContainsAny(got, "\n\"'") {
		t.Errorf("Cmdline = %q", got)
	}
	if _, err := Cmdline([]sandbox.NIC{{Name: "x"}}); err == nil {
		t.Error("Cmdline of a NIC without MAC succeeded")
	}
}

func TestKernelIPAndJSONCarryDNS(t *testing.T) {
	var m sandbox.MAC
	if err := m.UnmarshalText([]byte("0a:58:c6:33:64:02")); err != nil {
		t.Fatal(err)
	}
	sb := sandbox.Sandbox{
		ID: "dns",
		NICs: []sandbox.NIC{{
			Name: "eth0", GuestMAC: m, MTU: 1500,
			Addresses: []netip.Prefix{netip.MustParsePrefix("198.51.100.2/24")},
			Routes:    []sandbox.Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: netip.MustParseAddr("198.51.100.1")}},
		}},
		DNS: sandbox.DNS{
			Nameservers: []netip.Addr{netip.MustParseAddr("2001:db8::53"), netip.MustParseAddr("198.51.100.53"), netip.MustParseAddr("203.0.113.53"), netip.MustParseAddr("192.0.2.53")},
			Domain:      "pod.example", Search: []string{"svc.example"}, Options: []string{"ndots:5"},
		},
	}
	got, err := KernelIP(sb.NICs, sb.DNS.Nameservers...)
	if err != nil {
		t.Fatal(err)
	}
	if want := "ip=198.51.100.2::198.51.100.1:255.255.255.0::eth0:off:198.51.100.53:203.0.113.53"; got != want {
		t.Errorf("KernelIP = %q, want %q (first two IPv4 nameservers)", got, want)
	}
	b, err := JSON(sb)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "json_dns", b)
	d, err := ParseJSON(b)
	if err != nil || d.DNS.Domain != "pod.example" || len(d.DNS.Nameservers) != 4 {
		t.Errorf("ParseJSON of a document with DNS = %+v, %v", d.DNS, err)
	}
}
