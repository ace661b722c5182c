package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netbridge/netbridge/sandbox"
)

// prevResults holds one previous result per spec version a plugin before
// netbridge may print, all describing the same attachment: a host veth and
// the pod's eth0 (index 1), one IPv4 and one IPv6 address on eth0, a
// default route per family and DNS.
var prevResults = map[string]string{
	"0.3.1": `{"cniVersion":"0.3.1",
		"interfaces":[{"name":"veth1234"},{"name":"eth0","mac":"02:00:00:00:00:02","sandbox":"/run/netns/pod"}],
		"ips":[{"version":"4","interface":1,"address":"198.51.100.2/24","gateway":"198.51.100.1"},
		       {"version":"6","interface":1,"address":"2001:db8:1::2/64","gateway":"2001:db8:1::1"}],
		"routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0","gw":"2001:db8:1::1"}],
		"dns":{"nameservers":["192.0.2.53","2001:db8::53"],"domain":"example.test","search":["example.test"],"options":["ndots:2"]}}`,
	"0.4.0": `{"cniVersion":"0.4.0",
		"interfaces":[{"name":"veth1234"},{"name":"eth0","mac":"02:00:00:00:00:02","sandbox":"/run/netns/pod"}],
		"ips":[{"version":"4","interface":1,"address":"198.51.100.2/24","gateway":"198.51.100.1"},
		       {"version":"6","interface":1,"address":"2001:db8:1::2/64","gateway":"2001:db8:1::1"}],
		"routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0","gw":"2001:db8:1::1"}],
		"dns":{"nameservers":["192.0.2.53","2001:db8::53"],"domain":"example.test","search":["example.test"],"options":["ndots:2"]}}`,
	"1.0.0": `{"cniVersion":"1.0.0",
		"interfaces":[{"name":"veth1234"},{"name":"eth0","mac":"02:00:00:00:00:02","sandbox":"/run/netns/pod"}],
		"ips":[{"interface":1,"address":"198.51.100.2/24","gateway":"198.51.100.1"},
		       {"interface":1,"address":"2001:db8:1::2/64","gateway":"2001:db8:1::1"}],
		"routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0","gw":"2001:db8:1::1"}],
		"dns":{"nameservers":["192.0.2.53","2001:db8::53"],"domain":"example.test","search":["example.test"],"options":["ndots:2"]}}`,
	"1.1.0": `{"cniVersion":"1.1.0",
		"interfaces":[{"name":"veth1234"},{"name":"eth0","mac":"02:00:00:00:00:02","mtu":1500,"sandbox":"/run/netns/pod"}],
		"ips":[{"interface":1,"address":"198.51.100.2/24","gateway":"198.51.100.1"},
		       {"interface":1,"address":"2001:db8:1::2/64","gateway":"2001:db8:1::1"}],
		"routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0","gw":"2001:db8:1::1"}],
		"dns":{"nameservers":["192.0.2.53","2001:db8::53"],"domain":"example.test","search":["example.test"],"options":["ndots:2"]}}`,
}

// netconf returns a netbridge network configuration in spec version ver
// with the extra keys (a JSON object's members, or "") and prev as
// prevResult ("" for none).
func netconf(ver, extra, prev string) []byte {
	s := fmt.Sprintf(`{"cniVersion":%q,"name":"podnet","type":"netbridge"`, ver)
	if extra != "" {
		s += "," + extra
	}
	if prev != "" {
		s += `,"prevResult":` + prev
	}
	return []byte(s + "}")
}

func cniCode(t *testing.T, err error) (uint, string) {
	t.Helper()
	var e *types.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *types.Error", err, err)
	}
	return e.Code, e.Msg + " " + e.Details
}

func TestParseConfPrevResultEachVersion(t *testing.T) {
	for ver, prev := range prevResults {
		t.Run(ver, func(t *testing.T) {
			conf, res, err := parseConf(netconf(ver, `"model":"tcfilter","queues":2,"stateDir":"/tmp/nb"`, prev))
			if err != nil {
				t.Fatal(err)
			}
			if conf.CNIVersion != ver || conf.Name != "podnet" || conf.Type != "netbridge" || conf.Model != "tcfilter" || conf.Queues != 2 || conf.StateDir != "/tmp/nb" {
				t.Errorf("conf = %+v", conf)
			}
			if res == nil {
				t.Fatal("no prevResult")
			}
			if res.CNIVersion != current.ImplementedSpecVersion {
				t.Errorf("prevResult converted to %s, want %s", res.CNIVersion, current.ImplementedSpecVersion)
			}
			if len(res.Interfaces) != 2 || res.Interfaces[1].Name != "eth0" || res.Interfaces[1].Mac != "02:00:00:00:00:02" || res.Interfaces[1].Sandbox != "/run/netns/pod" {
				t.Errorf("interfaces %+v", res.Interfaces)
			}
			if ver == "1.1.0" && res.Interfaces[1].Mtu != 1500 {
				t.Errorf("1.1.0 interface MTU %d, want 1500", res.Interfaces[1].Mtu)
			}
			var ips []string
			for _, ip := range res.IPs {
				if ip.Interface == nil || *ip.Interface != 1 {
					t.Errorf("IP %s: interface %v, want 1", ip.Address.String(), ip.Interface)
				}
				ips = append(ips, ip.Address.String()+" via "+ip.Gateway.String())
			}
			if want := []string{"198.51.100.2/24 via 198.51.100.1", "2001:db8:1::2/64 via 2001:db8:1::1"}; !slices.Equal(ips, want) {
				t.Errorf("IPs %q, want %q", ips, want)
			}
			if len(res.Routes) != 2 || res.Routes[1].GW.String() != "2001:db8:1::1" {
				t.Errorf("routes %+v", res.Routes)
			}

			cfg, err := conf.config("ctr1", "/run/netns/pod", "eth0", res)
			if err != nil {
				t.Fatal(err)
			}
			want := sandbox.DNS{
				Nameservers: []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8::53")},
				Domain:      "example.test", Search: []string{"example.test"}, Options: []string{"ndots:2"},
			}
			if !reflect.DeepEqual(cfg.DNS, want) {
				t.Errorf("DNS %+v, want %+v", cfg.DNS, want)
			}
			if cfg.ID != "ctr1" || cfg.Netns != "/run/netns/pod" || !slices.Equal(cfg.Interfaces, []string{"eth0"}) ||
				cfg.Model != "tcfilter" || cfg.Queues != 2 || cfg.Network != "podnet" {
				t.Errorf("config %+v", cfg)
			}
			if dir := (&call{conf: conf}).stateDir(); dir != "/tmp/nb" {
				t.Errorf("state directory %q, want the configuration's /tmp/nb", dir)
			}
		})
	}
}

func TestParseConfNoPrevResult(t *testing.T) {
	conf, prev, err := parseConf(netconf("1.0.0", `"model":"bridge","tapName":"tap0","macvtapMode":"passthru","tapOwner":1000,"tapGroup":0,"logFile":"/tmp/nb.log"`, ""))
	if err != nil {
		t.Fatal(err)
	}
	if prev != nil {
		t.Errorf("prevResult %+v, want nil", prev)
	}
	if conf.TapOwner == nil || *conf.TapOwner != 1000 || conf.TapGroup == nil || *conf.TapGroup != 0 || conf.TapName != "tap0" || conf.MacvtapMode != "passthru" || conf.LogFile != "/tmp/nb.log" {
		t.Errorf("conf %+v", conf)
	}
	cfg, err := conf.config("ctr1", "/run/netns/pod", "net1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.DNS.IsZero() || cfg.TapName != "tap0" || cfg.MacvtapMode != "passthru" || *cfg.TapOwner != 1000 || *cfg.TapGroup != 0 || !slices.Equal(cfg.Interfaces, []string{"net1"}) {
		t.Errorf("config %+v", cfg)
	}
}

// vhostMeaning is what a Config.Vhost value asks for: "" is the library's
// default, off.
func vhostMeaning(v sandbox.Vhost) sandbox.Vhost {
	if v == "" {
		return sandbox.VhostOff
	}
	return v
}

func TestParseConfVhost(t *testing.T) {
	for _, c := range []struct {
		json string // the value of "vhost"; "" leaves the key out
		want sandbox.Vhost
	}{
		{"", ""},
		{"true", sandbox.VhostOn},
		{"false", sandbox.VhostOff},
		{`"on"`, "on"},
		{`"off"`, "off"},
		{`"auto"`, "auto"},
		{`"sometimes"`, "sometimes"}, // the library refuses it, with ErrInvalidConfig
		// null means "not given": the library's default, which is off.
		{"null", sandbox.VhostOff},
	} {
		extra := ""
		if c.json != "" {
			extra = `"vhost":` + c.json
		}
		conf, _, err := parseConf(netconf("1.0.0", extra, ""))
		if err != nil {
			t.Errorf("vhost %s: %v", c.json, err)
			continue
		}
		cfg, err := conf.config("ctr1", "/run/netns/pod", "eth0", nil)
		if err != nil || vhostMeaning(cfg.Vhost) != vhostMeaning(c.want) {
			t.Errorf("vhost %s: config.Vhost %q (%v), want %q", c.json, cfg.Vhost, err, c.want)
		}
	}
	for _, bad := range []string{"1", "[]", `{"on":true}`} {
		_, _, err := parseConf(netconf("1.0.0", `"vhost":`+bad, ""))
		if code, msg := cniCode(t, err); code != types.ErrDecodingFailure || !strings.Contains(msg, "vhost") {
			t.Errorf("vhost %s: code %d %q, want %d naming vhost", bad, code, msg, types.ErrDecodingFailure)
		}
	}
}

func TestParseConfErrors(t *testing.T) {
	for _, c := range []struct {
		name, stdin string
		code        uint
		msg         string
	}{
		{"not JSON", `{"cniVersion":`, types.ErrDecodingFailure, "network configuration"},
		{"empty", ``, types.ErrDecodingFailure, "network configuration"},
		{"array", `[]`, types.ErrDecodingFailure, "network configuration"},
		{"queues a string", `{"cniVersion":"1.0.0","name":"n","type":"netbridge","queues":"2"}`, types.ErrDecodingFailure, "queues"},
		{"negative owner", `{"cniVersion":"1.0.0","name":"n","type":"netbridge","tapOwner":-1}`, types.ErrDecodingFailure, "network configuration"},
		{"prevResult not an object", `{"cniVersion":"1.0.0","name":"n","type":"netbridge","prevResult":[1]}`, types.ErrDecodingFailure, "network configuration"},
		{"prevResult of an unknown version", string(netconf("1.0.0", "", `{"cniVersion":"9.9.9","ips":[]}`)), types.ErrDecodingFailure, "prevResult"},
		{"prevResult with a bad address", string(netconf("1.0.0", "", `{"cniVersion":"1.0.0","ips":[{"address":"198.51.100.300/24"}]}`)), types.ErrDecodingFailure, "prevResult"},
		{"prevResult with a bad MAC type", string(netconf("1.0.0", "", `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","mac":7}]}`)), types.ErrDecodingFailure, "prevResult"},
	} {
		conf, prev, err := parseConf([]byte(c.stdin))
		if err == nil {
			t.Errorf("%s: parsed as %+v, %+v", c.name, conf, prev)
			continue
		}
		if code, msg := cniCode(t, err); code != c.code || !strings.Contains(msg, c.msg) {
			t.Errorf("%s: code %d %q, want %d mentioning %q", c.name, code, msg, c.code, c.msg)
		}
	}
}

// TestConfigBadPrevResultDNS: a nameserver that is no address is the
// configuration's fault (code 7), found when the library config is made.
func TestConfigBadPrevResultDNS(t *testing.T) {
	conf, prev, err := parseConf(netconf("1.0.0", "", `{"cniVersion":"1.0.0","dns":{"nameservers":["ns1.example.test"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = conf.config("ctr1", "/run/netns/pod", "eth0", prev)
	if code, msg := cniCode(t, err); code != types.ErrInvalidNetworkConfig || !strings.Contains(msg, "DNS of prevResult") || !strings.Contains(msg, "ns1.example.test") {
		t.Errorf("code %d %q", code, msg)
	}
}

// TestPrevResultWithoutInterfaceIndexes: a previous result in the style
// of Cilium, whose IPs name no interface and which lists no interfaces,
// parses, and its IPs keep having no interface.
func TestPrevResultWithoutInterfaceIndexes(t *testing.T) {
	for _, ver := range []string{"0.4.0", "1.0.0", "1.1.0"} {
		prev := fmt.Sprintf(`{"cniVersion":%q,"ips":[{"address":"198.51.100.2/24"},{"address":"198.51.100.3/24"},{"address":"2001:db8:1::2/64"}],
			"dns":{"nameservers":["192.0.2.53"]}}`, ver)
		conf, res, err := parseConf(netconf(ver, "", prev))
		if err != nil {
			t.Fatalf("%s: %v", ver, err)
		}
		if len(res.Interfaces) != 0 || len(res.IPs) != 3 {
			t.Fatalf("%s: %+v", ver, res)
		}
		for _, ip := range res.IPs {
			if ip.Interface != nil {
				t.Errorf("%s: IP %s got interface %d", ver, ip.Address.String(), *ip.Interface)
			}
		}
		cfg, err := conf.config("ctr1", "/run/netns/pod", "eth0", res)
		if err != nil || len(cfg.DNS.Nameservers) != 1 {
			t.Errorf("%s: config %+v, %v", ver, cfg, err)
		}
	}
}

func TestTapInterface(t *testing.T) {
	mac, _ := net.ParseMAC("02:00:00:00:00:aa")
	got := tapInterface(sandbox.NIC{Name: "eth0", Tap: "nb-eth0", TapMAC: sandbox.MAC(mac), MTU: 9000}, "/run/netns/pod")
	want := &current.Interface{Name: "nb-eth0", Mac: "02:00:00:00:00:aa", Mtu: 9000, Sandbox: "/run/netns/pod"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tapInterface = %+v, want %+v", got, want)
	}
}

// FuzzParseConf: parseConf never panics, fails only with a CNI decoding
// error, and what it accepts marshals back to JSON, the configuration
// and the converted prevResult alike, as ADD does when it prints the
// result.
func FuzzParseConf(f *testing.F) {
	for _, prev := range prevResults {
		for _, ver := range []string{"0.3.0", "0.4.0", "1.0.0", "1.1.0"} {
			f.Add(netconf(ver, `"model":"tcfilter","vhost":true`, prev))
		}
	}
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `{"cniVersion":"1.0.0"}`,
		`{"cniVersion":"1.0.0","name":"n","type":"netbridge","vhost":"auto","queues":4,"tapOwner":0}`,
		`{"cniVersion":"1.0.0","prevResult":{}}`,
		`{"cniVersion":"1.0.0","prevResult":{"cniVersion":"1.0.0"}}`,
		`{"cniVersion":"1.0.0","prevResult":{"cniVersion":"0.2.0","ip4":{"ip":"198.51.100.2/24"}}}`,
		`{"cniVersion":"1.0.0","prevResult":{"cniVersion":"1.0.0","ips":[{}],"interfaces":[null],"routes":[null]}}`,
		`{"cniVersion":"1.0.0","prevResult":{"cniVersion":"1.0.0","ips":[{"interface":-1,"address":"2001:db8::1/64"}]}}`,
		`{"cniVersion":"1.0.0","prevResult":{"cniVersion":"0.4.0","ips":[{"version":"4","address":"198.51.100.2/24","interface":5}]}}`,
		`{"cniVersion":"1.1.0","cni.dev/valid-attachments":[{"containerID":"c","ifname":"eth0"}]}`,
		`{"vhost":null,"tapGroup":4294967295}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		conf, prev, err := parseConf(b)
		if err != nil {
			var e *types.Error
			if !errors.As(err, &e) || e.Code != types.ErrDecodingFailure {
				t.Fatalf("error %v is not a CNI decoding failure", err)
			}
			return
		}
		if _, err := json.Marshal(conf); err != nil {
			t.Fatalf("the configuration does not marshal: %v", err)
		}
		if prev == nil {
			return
		}
		if _, err := json.Marshal(prev); err != nil {
			t.Fatalf("the prevResult does not marshal: %v", err)
		}
		// What ADD prints: the result in the configuration's version, when
		// that is one the plugin speaks.
		if slices.Contains(specVersions.SupportedVersions(), conf.CNIVersion) {
			if _, err := prev.GetAsVersion(conf.CNIVersion); err != nil {
				t.Logf("not printable as %s: %v", conf.CNIVersion, err)
			}
		}
	})
}

// TestParseConfPrevResultNullOrSpaced: a null prevResult is none, and one
// with space around it and inside decodes like any other.
func TestParseConfPrevResultNullOrSpaced(t *testing.T) {
	_, prev, err := parseConf([]byte(`{"cniVersion":"1.0.0","name":"n","type":"netbridge","prevResult": null }`))
	if err != nil || prev != nil {
		t.Errorf("prevResult null: %+v, %v; want none", prev, err)
	}
	_, prev, err = parseConf([]byte("{\"cniVersion\":\"0.4.0\",\"name\":\"n\",\"type\":\"netbridge\",\"prevResult\" :\n\t { \"interfaces\" : [ {\"name\":\"eth0\"} ] ,\"ips\":[{\"version\":\"4\",\"address\":\"192.0.2.2/24\",\"interface\":0}]} \n}"))
	if err != nil || prev == nil || len(prev.Interfaces) != 1 || prev.Interfaces[0].Name != "eth0" || len(prev.IPs) != 1 || prev.IPs[0].Address.String() != "192.0.2.2/24" {
		t.Errorf("a spaced 0.4.0 prevResult: %+v, %v", prev, err)
	}
	_, prev, err = parseConf([]byte(`{"cniVersion":"0.3.1","name":"n","type":"netbridge","prevResult":{ }}`))
	if err != nil || prev == nil || len(prev.Interfaces) != 0 {
		t.Errorf("an empty prevResult: %+v, %v; want an empty result", prev, err)
	}
}
