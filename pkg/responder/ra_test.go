package responder

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
)

// raView renders a router advertisement's fields and options, one line
// each, sorted after the header line, for comparison.
func raView(ra *ndp.RouterAdvertisement) string {
	head := fmt.Sprintf("hop=%d M=%v O=%v life=%s", ra.CurrentHopLimit, ra.ManagedConfiguration, ra.OtherConfiguration, ra.RouterLifetime)
	var lines []string
	for _, o := range ra.Options {
		switch o := o.(type) {
		case *ndp.LinkLayerAddress:
			lines = append(lines, fmt.Sprintf("slla %s", o.Addr))
		case *ndp.MTU:
			lines = append(lines, fmt.Sprintf("mtu %d", o.MTU))
		case *ndp.PrefixInformation:
			lines = append(lines, fmt.Sprintf("prefix %s/%d L=%v A=%v valid=%s pref=%s", o.Prefix, o.PrefixLength, o.OnLink, o.AutonomousAddressConfiguration, o.ValidLifetime, o.PreferredLifetime))
		case *ndp.RouteInformation:
			lines = append(lines, fmt.Sprintf("route %s/%d life=%s", o.Prefix, o.PrefixLength, o.RouteLifetime))
		case *ndp.RecursiveDNSServer:
			lines = append(lines, fmt.Sprintf("rdnss %v life=%s", o.Servers, o.Lifetime))
		case *ndp.DNSSearchList:
			lines = append(lines, fmt.Sprintf("dnssl %v life=%s", o.DomainNames, o.Lifetime))
		default:
			lines = append(lines, fmt.Sprintf("other %T", o))
		}
	}
	sort.Strings(lines)
	return strings.Join(append([]string{head}, lines...), "\n")
}

func TestRouterAdvertisementNamesTheRealGateway(t *testing.T) {
	r := mustNew(t, bridgeConfig())
	p := one(t, r, r.Handle(rsFrame(t, guestLL, 255, &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: guestMAC}), t0))
	if p.SrcIP != gwLL || p.DstIP != guestLL {
		t.Errorf("RA %s -> %s, want the gateway's link-local -> the soliciting address", p.SrcIP, p.DstIP)
	}
	want := `hop=64 M=true O=true life=30m0s
dnssl [default.svc.cluster.local svc.cluster.local cluster.local] life=30m0s
mtu 1450
prefix fd00:1::/64 L=true A=false valid=30m0s pref=30m0s
rdnss [fd00:96::a] life=30m0s
route 2001:db8:77::/48 life=30m0s
slla 0a:58:0a:01:00:01`
	if got := raView(decodeRA(t, p)); got != want {
		t.Errorf("RA:\n%s\nwant:\n%s", got, want)
	}
}

func TestRouterAdvertisementCalicoStyle(t *testing.T) {
	r := mustNew(t, calicoConfig())
	p := one(t, r, r.Handle(rsFrame(t, guestLL, 255), t0))
	if p.SrcIP != ip("fe80::ecee:eeff:feee:eeee") {
		t.Errorf("RA from %s, want the link-local gateway", p.SrcIP)
	}
	want := `hop=64 M=true O=true life=30m0s
mtu 1480
slla ee:ee:ee:ee:ee:ee`
	if got := raView(decodeRA(t, p)); got != want {
		t.Errorf("RA:\n%s\nwant:\n%s", got, want)
	}
}

// TestRouterAdvertisementWithoutGateway checks that with no known gateway
// link-local address the RA comes from the responder, with router lifetime
// 0, and that a default route through another gateway gives lifetime 0 too.
func TestRouterAdvertisementWithoutGateway(t *testing.T) {
	c := bridgeConfig()
	c.Gateway6 = Gateway{}
	r := mustNew(t, c)
	p := one(t, r, r.Handle(rsFrame(t, guestLL, 255), t0))
	if p.SrcIP != LinkLocalFromMAC(r.ResponderMAC()) {
		t.Errorf("RA from %s, want the responder's link-local", p.SrcIP)
	}
	want := `hop=64 M=true O=true life=0s
dnssl [default.svc.cluster.local svc.cluster.local cluster.local] life=30m0s
mtu 1450
prefix fd00:1::/64 L=true A=false valid=30m0s pref=30m0s
rdnss [fd00:96::a] life=30m0s
slla ` + r.ResponderMAC().String()
	if got := raView(decodeRA(t, p)); got != want {
		t.Errorf("RA:\n%s\nwant:\n%s", got, want)
	}

	c = bridgeConfig()
	c.Routes = []Route{{Dst: pfx("::/0"), Gateway: ip("fd00:1::fe")}}
	c.Gateway6.Global = ip("fd00:1::1")
	r = mustNew(t, c)
	if ra := decodeRA(t, one(t, r, r.Handle(rsFrame(t, guestLL, 255), t0))); ra.RouterLifetime != 0 {
		t.Errorf("router lifetime %s for a default route through another gateway", ra.RouterLifetime)
	}
}

func TestRouterSolicitationChecks(t *testing.T) {
	r := mustNew(t, bridgeConfig())
	// From the unspecified address: to all nodes.
	p := one(t, r, r.Handle(rsFrame(t, netip.IPv6Unspecified(), 255), t0))
	if p.DstIP != ip("ff02::1") {
		t.Errorf("RA to %s for a solicitation from ::, want ff02::1", p.DstIP)
	}
	for _, tc := range []struct {
		name  string
		frame []byte
		want  string
	}{
		{"hop limit 64", rsFrame(t, guestLL, 64), "malformed"},
		{"unspecified with SLLA", rsFrame(t, netip.IPv6Unspecified(), 255, &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: guestMAC}), "malformed"},
		{"global source", rsFrame(t, ip("fd00:1::5"), 255), "unsupported"},
		{"bad option length", func() []byte {
			f := rsFrame(t, guestLL, 255, &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: guestMAC})
			f[len(f)-7] = 0 // option length 0
			return f
		}(), "malformed"},
		{"code 1", func() []byte {
			f := rsFrame(t, guestLL, 255)
			f[ethHeader+40+1] = 1
			return f
		}(), "malformed"},
		{"truncated", func() []byte {
			f := rsFrame(t, guestLL, 255)
			f[ethHeader+5] = 4 // payload length: type, code, checksum only
			return f[:ethHeader+40+4]
		}(), "malformed"},
		{"another MAC", func() []byte {
			f := rsFrame(t, guestLL, 255)
			copy(f[6:12], otherMAC)
			return f
		}(), "notguest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := r.Stats()
			none(t, r.Handle(tc.frame, t0))
			d := statsDelta(before, r.Stats())
			got := map[bool]string{true: "malformed"}[d.Malformed == 1]
			if d.Unsupported == 1 {
				got = "unsupported"
			}
			if d.NotGuest == 1 {
				got = "notguest"
			}
			if got != tc.want {
				t.Errorf("stats delta %+v, want one %s", d, tc.want)
			}
		})
	}
}

func TestNoIPv6NoAdvertisement(t *testing.T) {
	r := mustNew(t, Config{MAC: guestMAC, IPv4: []netip.Prefix{pfx("10.1.0.5/24")}, DNS: DNS{Servers: []netip.Addr{ip("10.0.0.53")}}})
	none(t, r.Handle(rsFrame(t, guestLL, 255), t0))
	if out, next := r.Advertise(t0); len(out) != 0 || next != t0.Add(AdvertiseInterval) {
		t.Errorf("Advertise without IPv6 = %d frames, next %s", len(out), next)
	}
}

// TestAdvertiseWithdrawsAfterChange checks the unsolicited advertisements:
// multicast to all nodes, and after SetConfig, three with lifetime 0 for
// what went away, then none; and a changed gateway retires the old router.
func TestAdvertiseWithdrawsAfterChange(t *testing.T) {
	c := bridgeConfig()
	r := mustNew(t, c)
	out, _ := r.Advertise(t0)
	p := one(t, r, out)
	if p.DstIP != ip("ff02::1") || p.SrcIP != gwLL {
		t.Errorf("unsolicited RA %s -> %s", p.SrcIP, p.DstIP)
	}
	c.IPv6 = []netip.Prefix{pfx("fd00:2::5/64")}
	c.Routes = []Route{{Dst: pfx("::/0"), Gateway: gwLL}}
	c.DNS.Servers = []netip.Addr{ip("fd00:96::b")}
	if err := r.SetConfig(c); err != nil {
		t.Fatal(err)
	}
	want := `hop=64 M=true O=true life=30m0s
dnssl [default.svc.cluster.local svc.cluster.local cluster.local] life=30m0s
mtu 1450
prefix fd00:1::/64 L=true A=false valid=0s pref=0s
prefix fd00:2::/64 L=true A=false valid=30m0s pref=30m0s
rdnss [fd00:96::a] life=0s
rdnss [fd00:96::b] life=30m0s
route 2001:db8:77::/48 life=0s
slla 0a:58:0a:01:00:01`
	for i := 0; i < 3; i++ {
		// The first withdrawal goes in an answer to a solicitation, the
		// others in unsolicited advertisements.
		var out [][]byte
		if i == 0 {
			out = r.Handle(rsFrame(t, guestLL, 255), t0)
		} else {
			out, _ = r.Advertise(t0.Add(time.Duration(i) * time.Minute))
		}
		if got := raView(decodeRA(t, one(t, r, out))); got != want {
			t.Fatalf("advertisement %d after the change:\n%s\nwant:\n%s", i, got, want)
		}
	}
	out, _ = r.Advertise(t0.Add(3 * time.Minute))
	if got := raView(decodeRA(t, one(t, r, out))); strings.Contains(got, "=0s") {
		t.Errorf("a fourth advertisement still withdraws:\n%s", got)
	}

	// A new gateway: the new router is advertised and the old one retired.
	c.Gateway6 = Gateway{LinkLocal: ip("fe80::99"), MAC: net.HardwareAddr{2, 0, 0, 0, 0, 0x99}}
	c.Routes = []Route{{Dst: pfx("::/0"), Gateway: ip("fe80::99")}}
	if err := r.SetConfig(c); err != nil {
		t.Fatal(err)
	}
	out, _ = r.Advertise(t0.Add(4 * time.Minute))
	if len(out) != 2 {
		t.Fatalf("%d advertisements after a gateway change, want 2", len(out))
	}
	oldRA, newRA := checkFrame(t, r, out[0]), checkFrame(t, r, out[1])
	if newRA.SrcIP != ip("fe80::99") || decodeRA(t, newRA).RouterLifetime != DefaultRouterLifetime {
		t.Errorf("new router's RA from %s", newRA.SrcIP)
	}
	// What the new router advertises too is not withdrawn.
	wantOld := `hop=64 M=false O=false life=0s
slla 0a:58:0a:01:00:01`
	if oldRA.SrcIP != gwLL {
		t.Errorf("retiring RA from %s, want the old gateway %s", oldRA.SrcIP, gwLL)
	}
	if got := raView(decodeRA(t, oldRA)); got != wantOld {
		t.Errorf("retiring RA:\n%s\nwant:\n%s", got, wantOld)
	}

	// IPv6 removed altogether: only the retiring advertisement.
	c.IPv6, c.Routes, c.DNS, c.Gateway6 = nil, nil, DNS{}, Gateway{}
	if err := r.SetConfig(c); err != nil {
		t.Fatal(err)
	}
	out, _ = r.Advertise(t0.Add(5 * time.Minute))
	if len(out) != 1 {
		t.Fatalf("%d advertisements after IPv6 went away, want 1", len(out))
	}
	wantGone := `hop=64 M=false O=false life=0s
dnssl [default.svc.cluster.local svc.cluster.local cluster.local] life=0s
prefix fd00:2::/64 L=true A=false valid=0s pref=0s
rdnss [fd00:96::b] life=0s
slla 02:00:00:00:00:99`
	if got := raView(decodeRA(t, checkFrame(t, r, out[0]))); got != wantGone {
		t.Errorf("retiring RA:\n%s\nwant:\n%s", got, wantGone)
	}
}

// TestRouterAdvertisementFitsMinimumMTU checks that a configuration with
// very many routes still gives an advertisement within 1280 bytes.
func TestRouterAdvertisementFitsMinimumMTU(t *testing.T) {
	c := bridgeConfig()
	for i := 0; i < 200; i++ {
		c.Routes = append(c.Routes, Route{Dst: netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i)}), 40), Gateway: gwLL})
	}
	r := mustNew(t, c)
	p := one(t, r, r.Handle(rsFrame(t, guestLL, 255), t0))
	if n := len(p.Payload) + 40; n > 1280 {
		t.Errorf("RA of %d bytes", n)
	}
	if ra := decodeRA(t, p); ra.RouterLifetime != DefaultRouterLifetime {
		t.Error("trimmed RA lost its router lifetime")
	}
}

func TestAdvertiseDoesNotUseRateBudget(t *testing.T) {
	c := bridgeConfig()
	c.Burst = 1
	r := mustNew(t, c)
	for i := 0; i < 5; i++ {
		out, _ := r.Advertise(t0.Add(time.Duration(i) * time.Minute))
		one(t, r, out)
	}
	one(t, r, r.Handle(rsFrame(t, guestLL, 255), t0))
	none(t, r.Handle(rsFrame(t, guestLL, 255), t0))
}

// TestLinkLocalDefaultRouteNamesTheGateway checks that a default route
// through a link-local address is enough to advertise that router, without
// Gateway6 (the source link-layer option then is absent).
func TestLinkLocalDefaultRouteNamesTheGateway(t *testing.T) {
	c := calicoConfig()
	c.Gateway6 = Gateway{}
	r := mustNew(t, c)
	p := one(t, r, r.Handle(rsFrame(t, guestLL, 255), t0))
	want := `hop=64 M=true O=true life=30m0s
mtu 1480`
	if got := raView(decodeRA(t, p)); p.SrcIP != ip("fe80::ecee:eeff:feee:eeee") || got != want {
		t.Errorf("RA from %s:\n%s\nwant from fe80::ecee:eeff:feee:eeee:\n%s", p.SrcIP, got, want)
	}
}

// TestAdvertiseSchedule checks when Advertise asks to be called again:
// three advertisements 16 s apart, then every 10 minutes; never two within
// 3 s; and the fast ones again after a change.
func TestAdvertiseSchedule(t *testing.T) {
	c := bridgeConfig()
	r := mustNew(t, c)
	now, last := t0, t0
	var gaps []time.Duration
	for i := 0; i < 5; i++ {
		out, next := r.Advertise(now)
		if len(out) != 1 {
			t.Fatalf("advertisement %d: %d frames", i, len(out))
		}
		gaps = append(gaps, next.Sub(now))
		last, now = now, next
	}
	if got := fmt.Sprint(gaps); got != "[16s 16s 16s 10m0s 10m0s]" {
		t.Errorf("intervals %s", got)
	}
	// Too soon: nothing, and next is when it may.
	out, next := r.Advertise(last.Add(time.Second))
	if len(out) != 0 || next != last.Add(MinDelayBetweenAdvertisements) {
		t.Errorf("an advertisement 1 s after the last: %d frames, next %s after it", len(out), next.Sub(last))
	}
	// After a change: as soon as allowed, fast again, the withdrawals
	// included.
	c.IPv6 = []netip.Prefix{pfx("fd00:3::5/64")}
	c.Routes = []Route{{Dst: pfx("::/0"), Gateway: gwLL}}
	if err := r.SetConfig(c); err != nil {
		t.Fatal(err)
	}
	now = last.Add(MinDelayBetweenAdvertisements)
	out, next = r.Advertise(now)
	if len(out) != 1 || next.Sub(now) != InitialAdvertiseInterval {
		t.Errorf("after a change: %d frames, next in %s", len(out), next.Sub(now))
	}
	if got := raView(decodeRA(t, checkFrame(t, r, out[0]))); !strings.Contains(got, "prefix fd00:1::/64 L=true A=false valid=0s") {
		t.Errorf("no withdrawal after the change:\n%s", got)
	}
}
