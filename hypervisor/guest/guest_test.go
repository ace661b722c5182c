package guest

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/netbridge/netbridge/hypervisor/internal/nictest"
	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/golden"
)

// mac and nic build test values (hypervisor/internal/nictest).
var (
	mac = nictest.MAC
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// route returns a route to dst via gw ("" for on-link) with the given MTU.
func route(dst, gw string, mtu int) sandbox.Route {
	r := sandbox.Route{Dst: netip.MustParsePrefix(dst), MTU: mtu}
	if gw != "" {
		r.Gw = netip.MustParseAddr(gw)
	}
	return r
}

// sandboxes are the golden cases, shared by the KernelIP and JSON tests.
func sandboxes(t testing.TB) map[string]sandbox.Sandbox {
	nic := func(name, guestMAC string, mtu int) sandbox.NIC {
		return sandbox.NIC{
			Name:     name,
			Kind:     "veth",
			Tap:      "tap_" + name,
			TapMAC:   mac(t, "fe:00:00:00:00:01"),
			GuestMAC: mac(t, guestMAC),
			MTU:      mtu,
			Queues:   1,
		}
	}
	sb := func(nics ...sandbox.NIC) sandbox.Sandbox {
		return sandbox.Sandbox{ID: "sandbox-1", Netns: "/run/netns/sandbox-1", Model: "tcfilter", NICs: nics}
	}

	v4 := nic("eth0", "02:42:c0:00:02:0a", 1500)
	v4.Addresses = prefixes("192.0.2.10/24")
	v4.Routes = []sandbox.Route{route("0.0.0.0/0", "192.0.2.1", 0)}

	dual := nic("eth0", "0a:58:c0:00:02:0a", 1450)
	dual.Addresses = prefixes("192.0.2.10/24", "2001:db8:1::10/64")
	dual.Routes = []sandbox.Route{
		route("0.0.0.0/0", "192.0.2.1", 0),
		route("::/0", "fe80::1", 0),
	}
	dual.Neighbors = []sandbox.Neighbor{{IP: netip.MustParseAddr("192.0.2.1"), MAC: mac(t, "0a:58:c0:00:02:01")}}

	v6 := nic("eth0", "0a:58:20:01:0d:b8", 1500)
	v6.Addresses = prefixes("2001:db8:1::10/64")
	v6.Routes = []sandbox.Route{route("::/0", "2001:db8:1::1", 0)}

	calico := nic("eth0", "6e:5f:0a:1b:2c:3d", 1480)
	calico.Addresses = prefixes("198.51.100.7/32")
	calico.Routes = []sandbox.Route{
		route("169.254.1.1/32", "", 0),
		route("0.0.0.0/0", "169.254.1.1", 0),
	}
	calico.Neighbors = []sandbox.Neighbor{{
		IP:        netip.MustParseAddr("169.254.1.1"),
		MAC:       mac(t, "ee:ee:ee:ee:ee:ee"),
		Permanent: true,
	}}

	routeMTU := nic("eth0", "02:42:cb:00:71:05", 9000)
	routeMTU.Addresses = prefixes("203.0.113.5/24")
	routeMTU.Routes = []sandbox.Route{
		route("198.51.100.0/24", "203.0.113.1", 1400),
		route("0.0.0.0/0", "203.0.113.1", 0),
	}

	first6 := nic("eth0", "0a:58:20:01:0d:b8", 1500)
	first6.Addresses = prefixes("2001:db8:1::10/64")
	first6.Routes = []sandbox.Route{route("::/0", "2001:db8:1::1", 0)}
	net1 := nic("net1", "ce:8a:c6:33:64:14", 1500)
	net1.Kind = "macvlan"
	net1.Addresses = prefixes("198.51.100.20/24")
	net1.Routes = []sandbox.Route{route("198.51.100.128/25", "198.51.100.1", 0)}
	net2 := nic("net2", "ce:8a:cb:00:71:09", 9000)
	net2.Kind = "macvlan"
	net2.Addresses = prefixes("203.0.113.9/24", "2001:db8:2::9/64")

	return map[string]sandbox.Sandbox{
		"single_v4":          sb(v4),
		"dual_stack":         sb(dual),
		"ipv6_only":          sb(v6),
		"calico":             sb(calico),
		"route_mtu":          sb(routeMTU),
		"three_nics_first6":  sb(first6, net1, net2),
		"no_nics":            sb(),
		"nic_without_config": sb(nic("eth0", "02:42:c0:00:02:0b", 0)),
	}
}

func TestKernelIPGolden(t *testing.T) {
	for name, s := range sandboxes(t) {
		t.Run(name, func(t *testing.T) {
			got, err := KernelIP(s.NICs)
			var out string
			if err != nil {
				out = "error: " + err.Error() + "\n"
			} else {
				out = got + "\n"
			}
			golden.Check(t, "kernelip_"+name, []byte(out))
		})
	}
}

func TestKernelIP(t *testing.T) {
	s := sandboxes(t)
	tests := []struct {
		name string
		want string
	}{
		{"single_v4", "ip=192.0.2.10::192.0.2.1:255.255.255.0::eth0:off"},
		{"dual_stack", "ip=192.0.2.10::192.0.2.1:255.255.255.0::eth0:off"},
		{"ipv6_only", ""},
		{"route_mtu", "ip=203.0.113.5::203.0.113.1:255.255.255.0::eth0:off"},
		{"three_nics_first6", "ip=198.51.100.20:::255.255.255.0::eth1:off"},
		{"no_nics", ""},
		{"nic_without_config", ""},
	}
	for _, tt := range tests {
		got, err := KernelIP(s[tt.name].NICs)
		if err != nil || got != tt.want {
			t.Errorf("%s: KernelIP = %q, %v; want %q", tt.name, got, err, tt.want)
		}
		if got != "" && strings.Count(got, ":") != 6 {
			t.Errorf("%s: %q does not have the 7 fields up to autoconf", tt.name, got)
		}
	}
}

func TestKernelIPErrors(t *testing.T) {
	base := func() sandbox.NIC {
		return sandbox.NIC{
			Name:      "net1",
			GuestMAC:  mac(t, "02:42:c0:00:02:0a"),
			Addresses: prefixes("192.0.2.10/24"),
		}
	}
	tests := []struct {
		name string
		edit func(n *sandbox.NIC)
		want string
	}{
		{"calico gateway off link", func(n *sandbox.NIC) {
			n.Addresses = prefixes("198.51.100.7/32")
			n.Routes = []sandbox.Route{route("0.0.0.0/0", "169.254.1.1", 0)}
		}, "gateway 169.254.1.1 is outside 198.51.100.7/32"},
		{"gateway in another subnet", func(n *sandbox.NIC) {
			n.Routes = []sandbox.Route{route("0.0.0.0/0", "192.0.3.1", 0)}
		}, "gateway 192.0.3.1 is outside"},
		{"default device route", func(n *sandbox.NIC) {
			n.Routes = []sandbox.Route{route("0.0.0.0/0", "", 0)}
		}, "no gateway"},
		{"IPv6 next hop", func(n *sandbox.NIC) {
			n.Routes = []sandbox.Route{route("0.0.0.0/0", "fe80::1", 0)}
		}, "non-IPv4 gateway fe80::1"},
		{"zero-length prefix", func(n *sandbox.NIC) {
			n.Addresses = prefixes("192.0.2.10/0")
		}, "zero-length prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nics := []sandbox.NIC{{Name: "eth0", GuestMAC: mac(t, "02:00:00:00:00:01")}, base()}
			tt.edit(&nics[1])
			got, err := KernelIP(nics)
			if err == nil {
				t.Fatalf("KernelIP = %q; want an error", got)
			}
			if !errors.Is(err, ErrUnsupported) {
				t.Errorf("error %q does not wrap ErrUnsupported", err)
			}
			for _, want := range []string{tt.want, `NIC 1 ("net1")`} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
	nics := []sandbox.NIC{{Name: "eth0", Addresses: []netip.Prefix{{}}}}
	if _, err := KernelIP(nics); err == nil || !strings.Contains(err.Error(), "address 0 is not a valid prefix") {
		t.Errorf("KernelIP with an invalid prefix: error %v", err)
	}
}

func TestJSONGolden(t *testing.T) {
	for name, s := range sandboxes(t) {
		t.Run(name, func(t *testing.T) {
			got, err := JSON(s)
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, "json_"+name, got)

			// The document parses back to what NewDocument built.
			want, err := NewDocument(s)
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := ParseJSON(got)
			if err != nil {
				t.Fatalf("ParseJSON of the rendered document: %v", err)
			}
			if !reflect.DeepEqual(parsed, want) {
				t.Errorf("ParseJSON(JSON(s)) = %+v, want %+v", parsed, want)
			}
			// Every NIC is present under its guest MAC with its position name.
			for k, n := range s.NICs {
				ifc, ok := parsed.Interfaces[n.GuestMAC.String()]
				if !ok {
					t.Errorf("NIC %d: no interface for MAC %s", k, n.GuestMAC)
				} else if ifc.Name != "eth"+strconv.Itoa(k) {
					t.Errorf("NIC %d: name %q", k, ifc.Name)
				}
			}
		})
	}
}

func TestNewDocumentErrors(t *testing.T) {
	base := func() sandbox.NIC {
		return sandbox.NIC{
			Name:      "net1",
			GuestMAC:  mac(t, "02:42:c0:00:02:0b"),
			MTU:       1500,
			Addresses: prefixes("192.0.2.11/24"),
			Routes:    []sandbox.Route{route("0.0.0.0/0", "192.0.2.1", 0)},
		}
	}
	tests := []struct {
		name string
		edit func(n *sandbox.NIC)
		want string
	}{
		{"same MAC as eth0 (ipvlan)", func(n *sandbox.NIC) { n.GuestMAC = mac(t, "02:42:c0:00:02:0a") }, `also that of NIC 0 ("eth0")`},
		{"missing MAC", func(n *sandbox.NIC) { n.GuestMAC = nil }, "guest MAC missing"},
		{"multicast MAC", func(n *sandbox.NIC) { n.GuestMAC = mac(t, "33:33:00:00:00:01") }, "multicast"},
		{"MTU", func(n *sandbox.NIC) { n.MTU = 70000 }, "MTU 70000 out of range"},
		{"invalid address", func(n *sandbox.NIC) { n.Addresses = append(n.Addresses, netip.Prefix{}) }, "address 1 is not a valid prefix"},
		{"duplicate address", func(n *sandbox.NIC) { n.Addresses = prefixes("192.0.2.11/24", "192.0.2.11/24") }, "appears twice"},
		{"route host bits", func(n *sandbox.NIC) { n.Routes = []sandbox.Route{route("198.51.100.1/24", "192.0.2.1", 0)} }, "host bits set"},
		{"route MTU", func(n *sandbox.NIC) { n.Routes = []sandbox.Route{route("198.51.100.0/24", "192.0.2.1", 10)} }, "route 0: MTU 10"},
		{"route v4 gw for v6", func(n *sandbox.NIC) { n.Routes = []sandbox.Route{route("::/0", "192.0.2.1", 0)} }, "IPv4 gateway"},
		{"route zone", func(n *sandbox.NIC) { n.Routes = []sandbox.Route{route("::/0", "fe80::1%eth0", 0)} }, "zone"},
		{"neighbor without MAC", func(n *sandbox.NIC) {
			n.Neighbors = []sandbox.Neighbor{{IP: netip.MustParseAddr("192.0.2.1")}}
		}, "neighbor 0: 192.0.2.1: MAC missing"},
		{"neighbor without IP", func(n *sandbox.NIC) {
			n.Neighbors = []sandbox.Neighbor{{MAC: mac(t, "02:00:00:00:00:09")}}
		}, "neighbor 0: address missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := base()
			first.Name, first.GuestMAC = "eth0", mac(t, "02:42:c0:00:02:0a")
			s := sandbox.Sandbox{NICs: []sandbox.NIC{first, base()}}
			tt.edit(&s.NICs[1])
			got, err := JSON(s)
			if err == nil {
				t.Fatalf("JSON succeeded:\n%s", got)
			}
			for _, want := range []string{tt.want, `NIC 1 ("net1")`} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestParseJSONNormalizes(t *testing.T) {
	in := `{"version":1,"interfaces":{"02-42-C0-00-02-0A":{"name":"eth0","addresses":null,
		"neighbors":[{"ip":"192.0.2.1","mac":"0A:58:C0:00:02:01"}],"future":true}},"extra":{}}`
	d, err := ParseJSON([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Document{Version: 1, Interfaces: map[string]Interface{
		"02:42:c0:00:02:0a": {
			Name:      "eth0",
			Addresses: []netip.Prefix{},
			Routes:    []Route{},
			Neighbors: []Neighbor{{IP: netip.MustParseAddr("192.0.2.1"), MAC: mac(t, "0a:58:c0:00:02:01")}},
		},
	}}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("ParseJSON = %+v, want %+v", d, want)
	}
	if d, err := ParseJSON([]byte(`{"version":1}`)); err != nil || d.Interfaces == nil || len(d.Interfaces) != 0 {
		t.Errorf("ParseJSON without interfaces = %+v, %v; want an empty map", d, err)
	}
}

func TestParseJSONErrors(t *testing.T) {
	const key = `"02:42:c0:00:02:0a"`
	doc := func(ifc string) string { return `{"version":1,"interfaces":{` + key + `:` + ifc + `}}` }
	tests := []struct {
		name, in, want string
	}{
		{"not JSON", `{`, "unexpected end"},
		{"trailing data", `{"version":1} {}`, "after top-level value"},
		{"null", `null`, "unsupported version 0"},
		{"version 2", `{"version":2,"interfaces":{}}`, "unsupported version 2"},
		{"version missing", `{"interfaces":{}}`, "unsupported version 0"},
		{"bad MAC key", `{"version":1,"interfaces":{"eth0":{}}}`, `interface key "eth0"`},
		{"8-byte MAC key", `{"version":1,"interfaces":{"02:00:00:00:00:00:00:01":{}}}`, "not a 6-byte"},
		{"multicast MAC key", `{"version":1,"interfaces":{"01:00:5e:00:00:01":{}}}`, "multicast"},
		{"same MAC twice", `{"version":1,"interfaces":{"02:42:C0:00:02:0A":{},"02:42:c0:00:02:0a":{}}}`, "appears twice"},
		{"bad prefix", doc(`{"addresses":["192.0.2.10/33"]}`), "192.0.2.10/33"},
		{"empty prefix", doc(`{"addresses":[""]}`), "address 0 is not a valid prefix"},
		{"bare address", doc(`{"addresses":["192.0.2.10"]}`), "192.0.2.10"},
		{"multicast address", doc(`{"addresses":["224.0.0.1/4"]}`), "not a unicast address"},
		{"MTU", doc(`{"mtu":67}`), "MTU 67 out of range"},
		{"MTU not a number", doc(`{"mtu":"1500"}`), "cannot unmarshal"},
		{"route without dst", doc(`{"routes":[{"gw":"192.0.2.1"}]}`), "route 0: destination is not a valid prefix"},
		{"route host bits", doc(`{"routes":[{"dst":"192.0.2.1/24"}]}`), "host bits set"},
		{"route gw zone", doc(`{"routes":[{"dst":"::/0","gw":"fe80::1%eth0"}]}`), "carries a zone"},
		{"route gw unspecified", doc(`{"routes":[{"dst":"0.0.0.0/0","gw":"0.0.0.0"}]}`), "not a unicast address"},
		{"route MTU", doc(`{"routes":[{"dst":"0.0.0.0/0","mtu":70000}]}`), "route 0: MTU 70000"},
		{"neighbor MAC missing", doc(`{"neighbors":[{"ip":"192.0.2.1"}]}`), "MAC missing"},
		{"neighbor MAC bad", doc(`{"neighbors":[{"ip":"192.0.2.1","mac":"zz"}]}`), "parsing MAC address"},
		{"neighbor IP missing", doc(`{"neighbors":[{"mac":"02:00:00:00:00:01"}]}`), "address missing"},
		{"bad name", doc(`{"name":"eth/0"}`), "not a valid interface name"},
		{"long name", doc(`{"name":"eth0123456789abcd"}`), "longer than 15 bytes"},
		{"duplicate names", `{"version":1,"interfaces":{"02:00:00:00:00:01":{"name":"eth0"},"02:00:00:00:00:02":{"name":"eth0"}}}`,
			`name "eth0" is also that of interface 02:00:00:00:00:01`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseJSON([]byte(tt.in))
			if err == nil {
				t.Fatalf("ParseJSON succeeded: %+v", d)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestMarshalValidates(t *testing.T) {
	d := Document{Version: 1, Interfaces: map[string]Interface{"02:42:C0:00:02:0A": {}}}
	if _, err := Marshal(d); err == nil || !strings.Contains(err.Error(), "canonical form") {
		t.Errorf("Marshal with a non-canonical key: error %v", err)
	}
	d = Document{Version: 1}
	b, err := Marshal(d)
	if err != nil || string(b) != "{\n  \"version\": 1,\n  \"interfaces\": {}\n}\n" {
		t.Errorf("Marshal(empty) = %q, %v", b, err)
	}
}

// FuzzParseJSON checks that whatever ParseJSON accepts marshals to a document
// that parses back to the same value and marshals to the same bytes.
func FuzzParseJSON(f *testing.F) {
	golden, err := filepath.Glob(filepath.Join("testdata", "json_*.golden"))
	if err != nil {
		f.Fatal(err)
	}
	if len(golden) == 0 {
		f.Fatal("no testdata/json_*.golden seed files")
	}
	for _, path := range golden {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"version":1,"interfaces":{"02-42-C0-00-02-0A":{"addresses":null,"routes":[{"dst":"::/0","gw":""}]}}}`))
	f.Add([]byte(`{"version":1,"interfaces":{"0242.c000.020a":{"name":"","neighbors":[{"ip":"::ffff:192.0.2.1","mac":"02:00:00:00:00:01"}]}}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		d1, err := ParseJSON(in)
		if err != nil {
			return
		}
		b1, err := Marshal(d1)
		if err != nil {
			t.Fatalf("Marshal of a parsed document: %v\ninput: %q", err, in)
		}
		d2, err := ParseJSON(b1)
		if err != nil {
			t.Fatalf("ParseJSON of a marshalled document: %v\n%s", err, b1)
		}
		if !reflect.DeepEqual(d1, d2) {
			t.Fatalf("parse(marshal(parse(x))) differs from parse(x):\n%+v\n%+v", d1, d2)
		}
		b2, err := Marshal(d2)
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("marshalling is not stable: %v\n%s\n%s", err, b1, b2)
		}
	})
}
