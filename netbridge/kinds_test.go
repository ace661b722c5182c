package netbridge

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/netbridge/internal/model"
	"github.com/netbridge/netbridge/netbridge/internal/netview"
	"github.com/netbridge/netbridge/pkg/probe"
	"github.com/netbridge/netbridge/sandbox"
)

// This file feeds the classifier link data as the kernel reports it, for
// kinds this machine's kernel may not have (ipvlan, dummy), and checks the
// auto model's choice against injected probe results. Nothing here needs
// root or touches the kernel.

func recAttrs(name string, index int, mac string, up bool) netlink.LinkAttrs {
	a := netlink.NewLinkAttrs()
	a.Name, a.Index, a.MTU = name, index, 1500
	if mac != "" {
		hw, err := net.ParseMAC(mac)
		if err != nil {
			panic(err)
		}
		a.HardwareAddr = hw
	}
	a.Flags = net.FlagBroadcast | net.FlagMulticast
	a.RawFlags = unix.IFF_BROADCAST | unix.IFF_MULTICAST
	if up {
		a.Flags |= net.FlagUp | net.FlagRunning
		a.RawFlags |= unix.IFF_UP | unix.IFF_LOWER_UP | unix.IFF_RUNNING
	}
	return a
}

func recAddr(index int, cidr string) netlink.Addr {
	ip, n, err := net.ParseCIDR(cidr)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return netlink.Addr{IPNet: n, LinkIndex: index}
}

func recRoute(index int, dst, gw string, proto netlink.RouteProtocol) netlink.Route {
	r := netlink.Route{LinkIndex: index, Protocol: proto, Type: unix.RTN_UNICAST, Table: unix.RT_TABLE_MAIN, Family: unix.AF_INET}
	if strings.Contains(dst+gw, ":") {
		r.Family = unix.AF_INET6
	}
	if dst != "" {
		_, n, err := net.ParseCIDR(dst)
		if err != nil {
			panic(err)
		}
		r.Dst = n
	}
	if gw != "" {
		r.Gw = net.ParseIP(gw)
	}
	return r
}

// recordedPod is a pod netns as the four netlink dumps would report it,
// with one link of each kind netbridge has to classify. The ipvlans share
// the MAC of their parent (outside the netns), as ipvlans do; the macvlan
// and ipvlans have their parent in the node netns (ParentIndex of another
// namespace).
func recordedPod() (links []netlink.Link, addrs []netlink.Addr, routes []netlink.Route, neighs []netlink.Neigh) {
	lo := recAttrs("lo", 1, "00:00:00:00:00:00", true)
	lo.Flags |= net.FlagLoopback
	lo.MTU = 65536

	eth0 := recAttrs("eth0", 2, "0a:58:c6:33:64:02", true)
	net1 := recAttrs("net1", 3, "9e:10:00:00:00:03", true)
	net1.ParentIndex, net1.NetNsID = 7, 0
	net2 := recAttrs("net2", 4, "52:54:00:aa:bb:cc", true)
	net2.ParentIndex, net2.NetNsID = 8, 0
	net3 := recAttrs("net3", 5, "52:54:00:aa:bb:cc", true) // same parent as net2
	net3.ParentIndex, net3.NetNsID = 8, 0
	net3.RawFlags |= unix.IFF_NOARP
	tap0 := recAttrs("tap0", 6, "fe:00:00:00:00:06", true)
	tap1 := recAttrs("tap1", 7, "fe:00:00:00:00:07", false)
	ours := recAttrs("nb-eth0", 8, "02:aa:00:00:00:08", true)
	ours.Alias = "netbridge:other-sandbox"
	vx0 := recAttrs("vx0", 9, "aa:00:00:00:00:09", true)
	dm0 := recAttrs("dm0", 10, "aa:00:00:00:00:0a", true)
	mvt0 := recAttrs("mvt0", 11, "aa:00:00:00:00:0b", true)
	mvt0.ParentIndex = 2
	noCarrier := recAttrs("net4", 12, "0a:58:c0:00:02:04", true)
	noCarrier.Flags &^= net.FlagRunning
	noCarrier.RawFlags &^= unix.IFF_LOWER_UP | unix.IFF_RUNNING

	links = []netlink.Link{
		&netlink.Device{LinkAttrs: lo},
		&netlink.Veth{LinkAttrs: eth0},
		&netlink.Macvlan{LinkAttrs: net1, Mode: netlink.MACVLAN_MODE_BRIDGE},
		&netlink.IPVlan{LinkAttrs: net2, Mode: netlink.IPVLAN_MODE_L2, Flag: netlink.IPVLAN_FLAG_BRIDGE},
		&netlink.IPVlan{LinkAttrs: net3, Mode: netlink.IPVLAN_MODE_L3, Flag: netlink.IPVLAN_FLAG_PRIVATE},
		&netlink.Tuntap{LinkAttrs: tap0, Mode: netlink.TUNTAP_MODE_TAP, Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_VNET_HDR},
		&netlink.Tuntap{LinkAttrs: tap1, Mode: netlink.TUNTAP_MODE_TAP, Flags: netlink.TUNTAP_NO_PI},
		&netlink.Tuntap{LinkAttrs: ours, Mode: netlink.TUNTAP_MODE_TAP, Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_VNET_HDR},
		&netlink.Vxlan{LinkAttrs: vx0, VxlanId: 42, Port: 4789},
		&netlink.Dummy{LinkAttrs: dm0},
		&netlink.Macvtap{Macvlan: netlink.Macvlan{LinkAttrs: mvt0, Mode: netlink.MACVLAN_MODE_BRIDGE}},
		&netlink.Veth{LinkAttrs: noCarrier},
	}
	addrs = []netlink.Addr{
		recAddr(1, "127.0.0.1/8"),
		recAddr(2, "198.51.100.2/24"), recAddr(2, "2001:db8:1::2/64"), recAddr(2, "fe80::858:c6ff:fe33:6402/64"),
		recAddr(3, "203.0.113.5/24"),
		recAddr(4, "192.0.2.5/24"), recAddr(4, "2001:db8:2::5/64"),
		recAddr(5, "192.0.2.6/32"),
		recAddr(6, "198.51.100.66/24"),
		recAddr(8, "fe80::aa:ff:fe00:8/64"), // link-local only: no address for attaching
		recAddr(9, "203.0.113.9/24"),
		recAddr(11, "203.0.113.11/24"),
		recAddr(12, "192.0.2.44/24"),
	}
	linkdown := recRoute(12, "", "192.0.2.1", unix.RTPROT_BOOT)
	linkdown.Dst = &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	linkdown.Flags = unix.RTNH_F_LINKDOWN
	routes = []netlink.Route{
		recRoute(2, "198.51.100.0/24", "", unix.RTPROT_KERNEL),
		recRoute(2, "", "198.51.100.1", unix.RTPROT_BOOT),
		recRoute(2, "", "2001:db8:1::1", unix.RTPROT_BOOT),
		recRoute(3, "203.0.113.0/24", "", unix.RTPROT_KERNEL),
		recRoute(3, "198.18.0.0/15", "203.0.113.1", unix.RTPROT_STATIC),
		recRoute(4, "192.0.2.0/24", "", unix.RTPROT_KERNEL),
		recRoute(4, "2001:db8:2::/64", "", unix.RTPROT_KERNEL),
		recRoute(5, "0.0.0.0/0", "", unix.RTPROT_BOOT), // ipvlan L3: default route on-link
		linkdown,
	}
	// A route with an MTU smaller than the link's.
	mtuRoute := recRoute(4, "203.0.113.0/24", "192.0.2.1", unix.RTPROT_STATIC)
	mtuRoute.MTU = 1400
	routes = append(routes, mtuRoute)
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	neighs = []netlink.Neigh{
		{LinkIndex: 2, IP: net.ParseIP("198.51.100.1"), HardwareAddr: mac("0a:58:c6:33:64:01"), State: netlink.NUD_REACHABLE},
		{LinkIndex: 3, IP: net.ParseIP("203.0.113.1"), HardwareAddr: mac("02:00:00:00:71:01"), State: netlink.NUD_STALE},
		{LinkIndex: 4, IP: net.ParseIP("192.0.2.1"), HardwareAddr: mac("02:00:00:00:02:01"), State: netlink.NUD_PERMANENT},
		{LinkIndex: 5, IP: net.ParseIP("192.0.2.99"), HardwareAddr: mac("52:54:00:aa:bb:cc"), State: netlink.NUD_NOARP}, // no gateway, not permanent
	}
	return links, addrs, routes, neighs
}

// byName returns the interface called name, failing the test if absent.
func byName(t *testing.T, ifs []netview.Link, name string) netview.Link {
	t.Helper()
	for _, i := range ifs {
		if i.Name == name {
			return i
		}
	}
	t.Fatalf("no interface %q in %v", name, ifs)
	return netview.Link{}
}

func TestInterfacesFromRecordedLinks(t *testing.T) {
	ifs := netview.FromDumps(recordedPod())
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	want := []string{"dm0", "eth0", "mvt0", "nb-eth0", "net1", "net2", "net3", "net4", "tap0", "tap1", "vx0"}
	if !slices.Equal(names, want) {
		t.Fatalf("interfaces %v, want %v (sorted, without lo)", names, want)
	}
	kinds := map[string]string{
		"dm0": "dummy", "eth0": string(model.KindVeth), "mvt0": "macvtap", "nb-eth0": journal.KindTuntap, "net1": string(model.KindMacvlan), "net2": string(model.KindIpvlan),
		"net3": string(model.KindIpvlan), "net4": string(model.KindVeth), "tap0": journal.KindTuntap, "tap1": journal.KindTuntap, "vx0": "vxlan",
	}
	for _, i := range ifs {
		if i.Kind != kinds[i.Name] {
			t.Errorf("%s: kind %q, want %q", i.Name, i.Kind, kinds[i.Name])
		}
	}

	net2, net3 := byName(t, ifs, "net2"), byName(t, ifs, "net3")
	if net2.MAC.String() != "52:54:00:aa:bb:cc" || net3.MAC.String() != net2.MAC.String() {
		t.Errorf("ipvlan MACs %s, %s: want both the parent's 52:54:00:aa:bb:cc", net2.MAC, net3.MAC)
	}
	if got := prefixesString(net2.Addresses); got != "192.0.2.5/24 2001:db8:2::5/64" {
		t.Errorf("net2 addresses %s", got)
	}
	if len(net2.Routes) != 1 || net2.Routes[0].Dst.String() != "203.0.113.0/24" || net2.Routes[0].MTU != 1400 {
		t.Errorf("net2 routes %+v, want only the static 203.0.113.0/24 route with MTU 1400 (kernel routes dropped)", net2.Routes)
	}
	if len(net2.Neighbors) != 1 || !net2.Neighbors[0].Permanent {
		t.Errorf("net2 neighbours %+v, want the permanent 192.0.2.1", net2.Neighbors)
	}
	if len(net3.Routes) != 1 || net3.Routes[0].Dst.String() != "0.0.0.0/0" || net3.Routes[0].Gw.IsValid() {
		t.Errorf("net3 (ipvlan L3) routes %+v, want the on-link default route", net3.Routes)
	}
	if len(net3.Neighbors) != 0 {
		t.Errorf("net3 neighbours %+v: a NOARP entry that is no gateway is not carried", net3.Neighbors)
	}
	eth0 := byName(t, ifs, "eth0")
	if got := prefixesString(eth0.Addresses); got != "198.51.100.2/24 2001:db8:1::2/64" {
		t.Errorf("eth0 addresses %s: want the link-local one left out", got)
	}
	if len(eth0.Routes) != 2 || len(eth0.Neighbors) != 1 || eth0.Neighbors[0].Permanent {
		t.Errorf("eth0 routes %+v neighbours %+v: want two default routes and the resolved gateway", eth0.Routes, eth0.Neighbors)
	}
	net1 := byName(t, ifs, "net1")
	if len(net1.Routes) != 1 || len(net1.Neighbors) != 1 || net1.Neighbors[0].IP.String() != "203.0.113.1" {
		t.Errorf("net1 (macvlan) routes %+v neighbours %+v", net1.Routes, net1.Neighbors)
	}
	net4 := byName(t, ifs, "net4")
	if len(net4.Routes) != 1 || net4.Routes[0].Gw.String() != "192.0.2.1" {
		t.Errorf("net4 (no carrier) routes %+v: a linkdown route is still the interface's", net4.Routes)
	}
	if nb := byName(t, ifs, "nb-eth0"); nb.Owner != "other-sandbox" {
		t.Errorf("nb-eth0 owner %q, want other-sandbox", nb.Owner)
	}
	if tap := byName(t, ifs, "tap0"); tap.Owner != "" || tap.Up != true {
		t.Errorf("tap0 = %+v: want no owner, up", tap)
	}
}

func prefixesString(ps []netip.Prefix) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, " ")
}

// TestSelectRecordedLinksPerModel checks, per model, which recorded links
// setup would attach, which it would skip with a warning (unsupported with
// an address) and the reasons given.
func TestSelectRecordedLinksPerModel(t *testing.T) {
	type want struct {
		attach  []string
		warned  []string          // unsupported with an address: a warning, or an error under Strict
		reasons map[string]string // a substring of the reason
	}
	common := map[string]string{
		"dm0":     `kind "dummy" is not supported`,
		"vx0":     `kind "vxlan" is not supported`,
		"mvt0":    `kind "macvtap" is not supported`,
		"nb-eth0": `created by netbridge for sandbox "other-sandbox"`,
		"tap1":    "has no address",
	}
	withCommon := func(m map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range common {
			out[k] = v
		}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	allKinds := want{
		attach:  []string{"eth0", "net1", "net2", "net3", "net4", "tap0"},
		warned:  []string{"mvt0", "vx0"},
		reasons: common,
	}
	vethOnly := func(model sandbox.Model) want {
		return want{
			attach: []string{"eth0", "net4", "tap0"},
			warned: []string{"mvt0", "net1", "net2", "net3", "vx0"},
			reasons: withCommon(map[string]string{
				"net1": "the " + string(model) + ` model cannot carry macvlan "net1"`,
				"net2": "the " + string(model) + ` model cannot carry ipvlan "net2"`,
				"net3": "the " + string(model) + ` model cannot carry ipvlan "net3"`,
			}),
		}
	}
	for m, w := range map[sandbox.Model]want{
		sandbox.ModelTCFilter: allKinds,
		sandbox.ModelNone:     allKinds,
		sandbox.ModelAuto:     allKinds,
		sandbox.ModelBridge:   vethOnly(sandbox.ModelBridge),
		sandbox.ModelMacvtap:  vethOnly(sandbox.ModelMacvtap),
	} {
		t.Run(string(m), func(t *testing.T) {
			links, addrs, routes, neighs := recordedPod()
			ifs := netview.FromDumps(links, addrs, routes, neighs)
			ch := models.Chooser(m)
			if err := netview.SelectLinks(ifs, nil, ch.Supports); err != nil {
				t.Fatal(err)
			}
			var attach, warned []string
			for _, i := range ifs {
				if i.Attach {
					attach = append(attach, i.Name)
					if i.Reason != "" {
						t.Errorf("%s attached with reason %q", i.Name, i.Reason)
					}
				}
				// The condition under which setup warns (or fails under Strict).
				if i.Unsupported && len(i.Addresses) > 0 {
					warned = append(warned, i.Name)
				}
				if sub, ok := w.reasons[i.Name]; ok && !strings.Contains(i.Reason, sub) {
					t.Errorf("%s: reason %q, want it to contain %q", i.Name, i.Reason, sub)
				}
				if i.Kind == string(model.KindMacvlan) || i.Kind == string(model.KindIpvlan) {
					if !i.Attach && !strings.Contains(i.Reason, "use tcfilter") {
						t.Errorf("%s (%s) refused without naming tcfilter: %q", i.Name, i.Kind, i.Reason)
					}
				}
			}
			if !slices.Equal(attach, w.attach) {
				t.Errorf("attached %v, want %v", attach, w.attach)
			}
			if !slices.Equal(warned, w.warned) {
				t.Errorf("warned about %v, want %v", warned, w.warned)
			}
		})
	}
}

// TestSelectNamedRecordedLinks names interfaces explicitly: a kind the
// model cannot carry is an error naming the working model; an existing tap
// without address can be named.
func TestSelectNamedRecordedLinks(t *testing.T) {
	for _, c := range []struct {
		model sandbox.Model
		names []string
		want  string // "" for success
	}{
		{sandbox.ModelTCFilter, []string{"net2", "net3"}, ""},
		{sandbox.ModelTCFilter, []string{"tap1"}, ""},
		{sandbox.ModelBridge, []string{"tap1", "eth0"}, ""},
		{sandbox.ModelBridge, []string{"net2"}, `interface "net2": the bridge model cannot carry ipvlan "net2": an ipvlan shares its parent's MAC and cannot carry the guest's frames through a bridge: use tcfilter`},
		{sandbox.ModelMacvtap, []string{"net3"}, `interface "net3": the macvtap model cannot carry ipvlan "net3": a macvtap cannot sit on an ipvlan, which shares its parent's MAC: use tcfilter`},
		{sandbox.ModelBridge, []string{"net1"}, `the bridge model cannot carry macvlan "net1"`},
		{sandbox.ModelMacvtap, []string{"net1"}, `the macvtap model cannot carry macvlan "net1"`},
		{sandbox.ModelTCFilter, []string{"vx0"}, `kind "vxlan" is not supported (netbridge carries veth, macvlan, ipvlan and existing taps)`},
		{sandbox.ModelTCFilter, []string{"dm0"}, `kind "dummy" is not supported`},
		{sandbox.ModelTCFilter, []string{"nb-eth0"}, `created by netbridge for sandbox "other-sandbox"`},
	} {
		ifs := netview.FromDumps(recordedPod())
		err := netview.SelectLinks(ifs, c.names, models.Chooser(c.model).Supports)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s %v: %v", c.model, c.names, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s %v: error %v, want one containing %q", c.model, c.names, err, c.want)
		case c.want == "":
			for _, i := range ifs {
				if i.Attach != slices.Contains(c.names, i.Name) {
					t.Errorf("%s %v: %s attach=%t", c.model, c.names, i.Name, i.Attach)
				}
			}
		}
	}
}

// features returns probe results with exactly the named features available.
func features(names ...string) probe.Features {
	var f probe.Features
	for _, n := range probe.Names {
		r := probe.Result{Name: n, Available: slices.Contains(names, n)}
		if !r.Available {
			r.Detail = "not in this (pretend) kernel"
		}
		f = append(f, r)
	}
	return f
}

// injected returns an auto chooser that uses f instead of probing.
func injected(f probe.Features) *model.Chooser {
	return models.Chooser(sandbox.ModelAuto).WithFeatures(f, nil)
}

func TestAutoChooser(t *testing.T) {
	veth := &sandbox.Interface{Name: "eth0", Kind: string(model.KindVeth)}
	macvlan := &sandbox.Interface{Name: "net1", Kind: string(model.KindMacvlan)}
	ipvlan := &sandbox.Interface{Name: "net2", Kind: string(model.KindIpvlan)}
	tap := &sandbox.Interface{Name: "tap0", Kind: journal.KindTuntap}
	all := features(probe.Names...)
	noU32 := features(probe.Tun, probe.Ingress, probe.Matchall, probe.Mirred)
	noMatchall := features(probe.Tun, probe.VhostNet, probe.Ingress, probe.Clsact, probe.U32, probe.Mirred, probe.Bridge, probe.Macvtap)
	noClassifier := features(probe.Tun, probe.Ingress, probe.Clsact, probe.Mirred, probe.Bridge, probe.Macvtap)
	noMirred := features(probe.Tun, probe.Ingress, probe.U32, probe.Matchall, probe.Bridge, probe.Macvtap)
	noTCNoBridge := features(probe.Tun, probe.Macvtap)
	tunOnly := features(probe.Tun)
	nothing := features()

	for _, c := range []struct {
		name   string
		f      probe.Features
		ifc    *sandbox.Interface
		model  sandbox.Model // "" when an error is expected
		why    string        // a substring of the reason, or of the error
		notWhy string        // must not appear in the error
	}{
		{"all/veth", all, veth, sandbox.ModelTCFilter, "ingress, mirred and u32", ""},
		{"all/macvlan", all, macvlan, sandbox.ModelTCFilter, "u32", ""},
		{"matchall only/veth", noU32, veth, sandbox.ModelTCFilter, "ingress, mirred and matchall", ""},
		{"all/ipvlan", all, ipvlan, sandbox.ModelTCFilter, "u32", ""},
		{"u32 only/veth", noMatchall, veth, sandbox.ModelTCFilter, "ingress, mirred and u32", ""},
		{"u32 only/ipvlan", noMatchall, ipvlan, sandbox.ModelTCFilter, "u32", ""},
		{"no classifier/veth", noClassifier, veth, sandbox.ModelBridge, "missing u32 or matchall", ""},
		{"no classifier/macvlan", noClassifier, macvlan, "", `only tcfilter can carry macvlan "net1", and the kernel lacks u32 or matchall for it`, "ingress"},
		{"no classifier/ipvlan", noClassifier, ipvlan, "", `only tcfilter can carry ipvlan "net2", and the kernel lacks u32 or matchall for it`, "mirred"},
		{"no mirred/veth", noMirred, veth, sandbox.ModelBridge, "missing mirred", ""},
		{"no mirred/ipvlan", noMirred, ipvlan, "", "the kernel lacks mirred", "u32"},
		{"no tc, no bridge/veth", noTCNoBridge, veth, sandbox.ModelMacvtap, "neither tc redirect (missing ingress, mirred, u32 or matchall) nor bridge", ""},
		{"no tc, no bridge/macvlan", noTCNoBridge, macvlan, "", "only tcfilter can carry macvlan", ""},
		{"tun only/veth", tunOnly, veth, "", "the kernel lacks ingress, mirred, u32 or matchall (tcfilter), bridge and macvtap", ""},
		{"nothing/veth", nothing, veth, "", "no model can work: the kernel has no tun", ""},
		{"nothing/ipvlan", nothing, ipvlan, "", "no model can work: the kernel has no tun", ""},
		{"nothing/existing tap", nothing, tap, sandbox.ModelPassthrough, "an existing tap", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			ch := injected(c.f)
			m, why, err := ch.Choose(c.ifc)
			if c.model == "" {
				if err == nil {
					t.Fatalf("choose = %s (%q), want an error containing %q", m.Name(), why, c.why)
				}
				if !strings.Contains(err.Error(), c.why) || (c.notWhy != "" && strings.Contains(err.Error(), c.notWhy)) {
					t.Errorf("error %q, want it to contain %q (and not %q)", err, c.why, c.notWhy)
				}
				return
			}
			if err != nil {
				t.Fatalf("choose: %v", err)
			}
			if m.Name() != c.model || !strings.Contains(why, c.why) {
				t.Errorf("choose = %s (%q), want %s (reason containing %q)", m.Name(), why, c.model, c.why)
			}
			if err := model.Carries(m, c.ifc); err != nil {
				t.Errorf("the chosen %s model refuses %s: %v", m.Name(), c.ifc.Kind, err)
			}
		})
	}
}

func TestAutoChooserProbesLazilyAndOnce(t *testing.T) {
	// An existing tap never needs the probe.
	ch := models.Chooser(sandbox.ModelAuto)
	if m, _, err := ch.Choose(&sandbox.Interface{Name: "tap0", Kind: journal.KindTuntap}); err != nil || m.Name() != sandbox.ModelPassthrough {
		t.Fatalf("choose(tap) = %v, %v", m, err)
	}
	if ch.Probed() {
		t.Error("choosing for an existing tap ran the probe")
	}
	// A failed probe is reported, with what it was for.
	boom := errors.New("boom")
	ch = models.Chooser(sandbox.ModelAuto).WithFeatures(nil, boom)
	if _, _, err := ch.Choose(&sandbox.Interface{Name: "eth0", Kind: string(model.KindVeth)}); !errors.Is(err, boom) || !strings.Contains(err.Error(), "probing the kernel for model auto") {
		t.Errorf("choose with a failed probe = %v", err)
	}
	// A requested model is used as is, without probing, whatever the kernel.
	for _, want := range []sandbox.Model{sandbox.ModelTCFilter, sandbox.ModelBridge, sandbox.ModelMacvtap, sandbox.ModelNone} {
		ch = models.Chooser(want)
		m, why, err := ch.Choose(&sandbox.Interface{Name: "eth0", Kind: string(model.KindVeth)})
		if err != nil || m.Name() != want || why != "" || ch.Probed() {
			t.Errorf("requested %s: choose = %v %q %v (probed %t)", want, m, why, err, ch.Probed())
		}
	}
	// Auto supports what tcfilter supports, without probing.
	ch = models.Chooser(sandbox.ModelAuto)
	for _, kind := range []string{string(model.KindVeth), string(model.KindMacvlan), string(model.KindIpvlan), journal.KindTuntap} {
		if err := ch.Supports(&sandbox.Interface{Name: "x", Kind: kind}); err != nil {
			t.Errorf("auto supports(%s) = %v", kind, err)
		}
	}
	if err := ch.Supports(&sandbox.Interface{Name: "vx0", Kind: "vxlan"}); err == nil {
		t.Error("auto supports vxlan")
	}
	if ch.Probed() {
		t.Error("supports ran the probe")
	}
}

func TestModelSupportReport(t *testing.T) {
	get := func(f probe.Features, model sandbox.Model) ModelAvailable {
		for _, m := range ModelSupport(f) {
			if m.Model == model {
				return m
			}
		}
		t.Fatalf("ModelSupport lacks %s", model)
		return ModelAvailable{}
	}
	for _, c := range []struct {
		f      probe.Features
		model  sandbox.Model
		works  bool
		detail string
	}{
		{features(probe.Names...), sandbox.ModelTCFilter, true, "classifier u32"},
		{features(probe.Tun, probe.Ingress, probe.Mirred, probe.Matchall), sandbox.ModelTCFilter, true, "classifier matchall"},
		{features(probe.Names...), sandbox.ModelAuto, true, "picks tcfilter"},
		{features(probe.Tun, probe.Ingress, probe.Mirred, probe.U32), sandbox.ModelTCFilter, true, "classifier u32"},
		{features(probe.Tun, probe.Ingress, probe.Mirred, probe.Bridge), sandbox.ModelTCFilter, false, "missing u32 and matchall"},
		{features(probe.Tun, probe.Ingress, probe.Mirred, probe.Bridge), sandbox.ModelAuto, true, "picks bridge for veth; macvlan and ipvlan need tcfilter"},
		{features(probe.Tun, probe.Macvtap), sandbox.ModelAuto, true, "picks macvtap for veth"},
		{features(probe.Tun, probe.Macvtap), sandbox.ModelBridge, false, "missing bridge"},
		{features(), sandbox.ModelAuto, false, "no model works"},
		{features(), sandbox.ModelNone, false, "missing tun"},
	} {
		got := get(c.f, c.model)
		if got.Works != c.works || !strings.Contains(got.Detail, c.detail) {
			t.Errorf("%s with %v: %+v, want works=%t detail containing %q", c.model, c.f.Missing(probe.Names...), got, c.works, c.detail)
		}
	}
}
