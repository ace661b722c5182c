package responder

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestConfigRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want string
	}{
		{"no MAC", func(c *Config) { c.MAC = nil }, "guest MAC"},
		{"multicast MAC", func(c *Config) { c.MAC = net.HardwareAddr{1, 0, 0x5e, 0, 0, 1} }, "not a unicast"},
		{"zero MAC", func(c *Config) { c.MAC = make(net.HardwareAddr, 6) }, "not a unicast"},
		{"responder MAC is the guest's", func(c *Config) { c.ResponderMAC = guestMAC }, "guest's own MAC"},
		{"MTU", func(c *Config) { c.MTU = 40 }, "MTU"},
		{"lease too short", func(c *Config) { c.LeaseTime = time.Second }, "lease time"},
		{"lease fraction", func(c *Config) { c.LeaseTime = 2500 * time.Millisecond }, "lease time"},
		{"router lifetime", func(c *Config) { c.RouterLifetime = 10000 * time.Second }, "router lifetime"},
		{"IPv6 in IPv4", func(c *Config) { c.IPv4 = []netip.Prefix{pfx("fd00::1/64")} }, "not an IPv4 prefix"},
		{"IPv4 multicast", func(c *Config) { c.IPv4 = []netip.Prefix{pfx("224.0.0.1/24")} }, "not a unicast"},
		{"IPv4 broadcast", func(c *Config) { c.IPv4 = []netip.Prefix{pfx("255.255.255.255/32")} }, "not a unicast"},
		{"IPv4 in IPv6", func(c *Config) { c.IPv6 = []netip.Prefix{pfx("10.0.0.1/24")} }, "not an IPv6 prefix"},
		{"IPv6 link-local", func(c *Config) { c.IPv6 = []netip.Prefix{pfx("fe80::5/64")} }, "link-local"},
		{"IPv6 unspecified", func(c *Config) { c.IPv6 = []netip.Prefix{pfx("::/0")} }, "not a unicast"},
		{"route gateway family", func(c *Config) { c.Routes = []Route{{Dst: pfx("0.0.0.0/0"), Gateway: ip("fd00::1")}} }, "other family"},
		{"route invalid", func(c *Config) { c.Routes = []Route{{}} }, "not a prefix"},
		{"DNS server", func(c *Config) { c.DNS.Servers = []netip.Addr{ip("0.0.0.0")} }, "DNS server"},
		{"search empty label", func(c *Config) { c.DNS.Search = []string{"a..b"} }, "empty label"},
		{"search long label", func(c *Config) { c.DNS.Search = []string{strings.Repeat("a", 64) + ".org"} }, "63"},
		{"search control byte", func(c *Config) { c.DNS.Search = []string{"a\x00b.org"} }, "printable"},
		{"gateway not link-local", func(c *Config) { c.Gateway6.LinkLocal = ip("fd00::1") }, "not link-local"},
		{"gateway MAC", func(c *Config) { c.Gateway6.MAC = net.HardwareAddr{1, 2, 3} }, "IPv6 gateway MAC"},
		{"server id IPv6", func(c *Config) { c.ServerIPv4 = ip("fd00::1") }, "not IPv4"},
		{"server id is the guest", func(c *Config) { c.ServerIPv4 = ip("10.1.0.5") }, "guest's own address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := bridgeConfig()
			tc.edit(&c)
			_, err := New(c)
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an ErrInvalidConfig mentioning %q", err, tc.want)
			}
		})
	}
}

func TestSetConfigKeepsMAC(t *testing.T) {
	r := mustNew(t, bridgeConfig())
	c := bridgeConfig()
	c.MAC = otherMAC
	if err := r.SetConfig(c); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("SetConfig with another MAC = %v, want ErrInvalidConfig", err)
	}
	c = bridgeConfig()
	c.MTU = 1
	if err := r.SetConfig(c); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("SetConfig with a bad MTU = %v, want ErrInvalidConfig", err)
	}
}

func TestConfigIsCopied(t *testing.T) {
	c := bridgeConfig()
	c.MAC, c.Gateway6.MAC = slices.Clone(guestMAC), slices.Clone(gwMAC)
	r := mustNew(t, c)
	c.MAC[5] = 0x99
	c.Gateway6.MAC[5] = 0x99
	if !bytes.Equal(r.p.mac, guestMAC) || !bytes.Equal(r.p.raSLLA, gwMAC) {
		t.Error("the responder shares the caller's slices")
	}
}

func TestDefaultResponderMAC(t *testing.T) {
	for _, m := range []net.HardwareAddr{guestMAC, {0x02, 0, 0, 0, 0, 0xff}, {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff}} {
		d := DefaultResponderMAC(m)
		if bytes.Equal(d, m) || d[0]&1 != 0 || d[0]&2 == 0 {
			t.Errorf("DefaultResponderMAC(%s) = %s: must differ, be unicast and locally administered", m, d)
		}
	}
}

func TestLinkLocalFromMAC(t *testing.T) {
	if got := LinkLocalFromMAC(guestMAC); got != guestLL {
		t.Errorf("LinkLocalFromMAC(%s) = %s, want %s", guestMAC, got, guestLL)
	}
	if got := LinkLocalFromMAC(gwMAC); got != gwLL {
		t.Errorf("LinkLocalFromMAC(%s) = %s, want %s", gwMAC, got, gwLL)
	}
	if LinkLocalFromMAC(net.HardwareAddr{1, 2}).IsValid() {
		t.Error("LinkLocalFromMAC of a 2-byte address is valid")
	}
}

func TestOrderRoutes4(t *testing.T) {
	for _, tc := range []struct {
		name   string
		addr   string
		routes []Route
		want   string
	}{
		{"default last, specific first", "10.0.0.5/24", []Route{
			{Dst: pfx("0.0.0.0/0"), Gateway: ip("10.0.0.1")},
			{Dst: pfx("10.8.0.0/16"), Gateway: ip("10.0.0.1")},
			{Dst: pfx("10.8.9.0/24"), Gateway: ip("10.0.0.2")},
		}, "10.8.9.0/24 10.0.0.2, 10.8.0.0/16 10.0.0.1, 0.0.0.0/0 10.0.0.1"},
		{"on-link first", "10.0.0.5/32", []Route{
			{Dst: pfx("0.0.0.0/0"), Gateway: ip("169.254.1.1")},
			{Dst: pfx("169.254.1.1/32")},
		}, "169.254.1.1/32 invalid IP, 0.0.0.0/0 169.254.1.1"},
		{"unreachable gateway gets a host route once", "10.0.0.5/32", []Route{
			{Dst: pfx("0.0.0.0/0"), Gateway: ip("10.0.0.1")},
			{Dst: pfx("10.9.0.0/16"), Gateway: ip("10.0.0.1")},
		}, "10.0.0.1/32 invalid IP, 10.9.0.0/16 10.0.0.1, 0.0.0.0/0 10.0.0.1"},
		{"on-link default", "10.0.0.5/24", []Route{{Dst: pfx("0.0.0.0/0")}}, "0.0.0.0/0 invalid IP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, r := range orderRoutes4(tc.routes, pfx(tc.addr)) {
				got = append(got, r.Dst.String()+" "+r.Gateway.String())
			}
			if s := strings.Join(got, ", "); s != tc.want {
				t.Errorf("got %s, want %s", s, tc.want)
			}
		})
	}
}

func TestDefaultServer4(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want string
	}{
		{"10.0.0.5/24", "10.0.0.254"},
		{"10.0.0.254/24", "10.0.0.1"},
		{"10.0.0.5/30", "10.0.0.6"},
		{"10.0.0.6/30", "10.0.0.5"},
		{"10.0.0.5/32", "169.254.0.1"},
		{"10.0.0.5/31", "169.254.0.1"},
	} {
		if got := defaultServer4(netip.Addr{}, nil, pfx(tc.addr)); got != ip(tc.want) {
			t.Errorf("defaultServer4(%s) = %s, want %s", tc.addr, got, tc.want)
		}
	}
	if got := defaultServer4(netip.Addr{}, nil, netip.Prefix{}); got != ip("169.254.0.1") {
		t.Errorf("defaultServer4 without address = %s", got)
	}
}
