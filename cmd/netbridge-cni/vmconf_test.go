package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netbridge/netbridge/sandbox"
)

// vmPrev parses a 1.0.0 prevResult.
func vmPrev(t *testing.T, s string) *current.Result {
	t.Helper()
	_, res, err := parseConf(netconf("1.0.0", "", s))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestVMConfIPv4: the vmconf entry gets the interface's first IPv4
// address and its gateway, from the IPs naming the interface (or, in a
// result without interface indexes, from those naming none), as a 4-byte
// address and mask; an interface with only IPv6 addresses, or none, is
// refused with code 7, naming the SDK's limit.
func TestVMConfIPv4(t *testing.T) {
	const pod = "/run/netns/pod"
	for _, c := range []struct {
		name, prev string
		want       string // address/len via gateway, or "" for an error
		wantErr    []string
	}{
		{name: "dual stack, v6 first", prev: `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/pod"}],
			"ips":[{"interface":0,"address":"2001:db8:1::2/64","gateway":"2001:db8:1::1"},{"interface":0,"address":"198.51.100.2/24","gateway":"198.51.100.1"},{"interface":0,"address":"198.51.100.3/24"}]}`,
			want: "198.51.100.2/24 via 198.51.100.1"},
		{name: "another interface's IPv4", prev: `{"cniVersion":"1.0.0","interfaces":[{"name":"veth0"},{"name":"eth0","sandbox":"/run/netns/pod"},{"name":"eth0","sandbox":"/run/netns/other"}],
			"ips":[{"interface":0,"address":"203.0.113.1/24"},{"interface":2,"address":"203.0.113.2/24"},{"interface":1,"address":"198.51.100.2/24"}]}`,
			want: "198.51.100.2/24 via <nil>"},
		{name: "no interface indexes", prev: `{"cniVersion":"1.0.0","ips":[{"address":"2001:db8:1::2/64"},{"address":"198.51.100.2/24","gateway":"198.51.100.1"}]}`,
			want: "198.51.100.2/24 via 198.51.100.1"},
		{name: "IPv6 only", prev: `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/pod"}],
			"ips":[{"interface":0,"address":"2001:db8:1::2/64","gateway":"2001:db8:1::1"}]}`,
			wantErr: []string{"eth0", "only IPv6", "2001:db8:1::2/64", "firecracker-go-sdk", "IPv4 only", "netbridge render"}},
		{name: "IPs of other interfaces only", prev: `{"cniVersion":"1.0.0","interfaces":[{"name":"veth0"},{"name":"eth0","sandbox":"/run/netns/pod"}],
			"ips":[{"interface":0,"address":"203.0.113.1/24"}]}`,
			wantErr: []string{"no IP address for interface eth0", "firecracker-go-sdk"}},
		{name: "no IPs", prev: `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/pod"}]}`,
			wantErr: []string{"no IP address for interface eth0"}},
	} {
		ip, err := vmconfIPv4(vmPrev(t, c.prev), "eth0", pod)
		if c.wantErr != nil {
			code, msg := cniCode(t, err)
			if code != types.ErrInvalidNetworkConfig {
				t.Errorf("%s: code %d, want %d", c.name, code, types.ErrInvalidNetworkConfig)
			}
			for _, w := range c.wantErr {
				if !strings.Contains(msg, w) {
					t.Errorf("%s: error %q does not say %q", c.name, msg, w)
				}
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got := fmt.Sprintf("%s via %v", ip.Address.String(), ip.Gateway); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
		if len(ip.Address.IP) != net.IPv4len || len(ip.Address.Mask) != net.IPv4len || (ip.Gateway != nil && len(ip.Gateway) != net.IPv4len) {
			t.Errorf("%s: %#v: want 4-byte address, mask and gateway (the SDK reads the mask byte by byte)", c.name, ip)
		}
	}
}

// vmNIC is an attached eth0 as the library returns it.
func vmNIC() sandbox.NIC {
	tapMAC, _ := net.ParseMAC("02:00:00:00:00:aa")
	guestMAC, _ := net.ParseMAC("02:00:00:00:00:02")
	return sandbox.NIC{Name: "eth0", Tap: "tap0", TapMAC: sandbox.MAC(tapMAC), GuestMAC: sandbox.MAC(guestMAC), MTU: 1450, Model: sandbox.ModelTCFilter,
		Addresses: []netip.Prefix{netip.MustParsePrefix("198.51.100.2/24"), netip.MustParsePrefix("2001:db8:1::2/64")}}
}

// TestVMConfEntry: after the tap entry come the pseudo-interface (the
// tap's name, the container id as sandbox, the guest's MAC) and one IP
// naming it; the result prints in every spec version; CHECK's test of
// the entry accepts it and refuses results that lack it or differ.
func TestVMConfEntry(t *testing.T) {
	nic := vmNIC()
	build := func() *current.Result {
		res := vmPrev(t, prevResults["1.0.0"])
		ip, err := vmconfIPv4(res, "eth0", "/run/netns/pod")
		if err != nil {
			t.Fatal(err)
		}
		res.Interfaces = append(res.Interfaces, tapInterface(nic, "/run/netns/pod"))
		appendVMEntry(res, nic, "ctr1", ip)
		return res
	}
	res := build()
	n := len(res.Interfaces)
	vm := res.Interfaces[n-1]
	if *vm != (current.Interface{Name: "tap0", Mac: "02:00:00:00:00:02", Mtu: 1450, Sandbox: "ctr1"}) || res.Interfaces[n-2].Name != "tap0" || res.Interfaces[n-2].Sandbox != "/run/netns/pod" {
		t.Errorf("interfaces %+v: want the tap, then the VM's entry", res.Interfaces)
	}
	last := res.IPs[len(res.IPs)-1]
	if len(res.IPs) != 3 || *last.Interface != n-1 || last.Address.String() != "198.51.100.2/24" || last.Gateway.String() != "198.51.100.1" {
		t.Errorf("IPs %+v: want the two of eth0, then 198.51.100.2/24 via 198.51.100.1 naming interface %d", res.IPs, n-1)
	}
	if err := checkVMConf(res, nic, "ctr1"); err != nil {
		t.Errorf("checkVMConf of the entry ADD makes: %v", err)
	}
	for _, ver := range []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		r, err := res.GetAsVersion(ver)
		if err != nil {
			t.Fatalf("%s: %v", ver, err)
		}
		b, _ := json.Marshal(r)
		back, err := current.NewResultFromResult(mustParse(t, ver, b))
		if err != nil {
			t.Fatal(err)
		}
		if err := checkVMConf(back, nic, "ctr1"); err != nil {
			t.Errorf("%s: checkVMConf after a round trip: %v\n%s", ver, err, b)
		}
	}

	for _, c := range []struct {
		name   string
		change func(r *current.Result)
		want   string
	}{
		{"no entry", func(r *current.Result) {
			r.Interfaces = r.Interfaces[:len(r.Interfaces)-1]
			r.IPs = r.IPs[:len(r.IPs)-1]
		}, "no vmconf entry"},
		{"two entries", func(r *current.Result) {
			r.Interfaces = append(r.Interfaces, &current.Interface{Name: "x", Sandbox: "ctr1"})
		}, "more than one"},
		{"another name", func(r *current.Result) { r.Interfaces[len(r.Interfaces)-1].Name = "tap9" }, "tap9"},
		{"the tap's MAC", func(r *current.Result) { r.Interfaces[len(r.Interfaces)-1].Mac = "02:00:00:00:00:aa" }, "guest's MAC"},
		{"two IPs", func(r *current.Result) {
			idx := len(r.Interfaces) - 1
			r.IPs = append(r.IPs, &current.IPConfig{Interface: &idx, Address: net.IPNet{IP: net.ParseIP("2001:db8:1::2"), Mask: net.CIDRMask(64, 128)}})
		}, "2 IPs"},
		{"IPv6", func(r *current.Result) {
			r.IPs[len(r.IPs)-1].Address = net.IPNet{IP: net.ParseIP("2001:db8:1::2"), Mask: net.CIDRMask(64, 128)}
		}, "not an IPv4 address of interface eth0"},
		{"not the NIC's", func(r *current.Result) {
			r.IPs[len(r.IPs)-1].Address = net.IPNet{IP: net.ParseIP("198.51.100.9").To4(), Mask: net.CIDRMask(24, 32)}
		}, "198.51.100.9/24"},
	} {
		r := build()
		c.change(r)
		if err := checkVMConf(r, nic, "ctr1"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: checkVMConf = %v, want an error saying %q", c.name, err, c.want)
		}
	}
}

func mustParse(t *testing.T, ver string, b []byte) types.Result {
	t.Helper()
	_, res, err := parseConf(netconf(ver, "", string(b)))
	if err != nil {
		t.Fatalf("%s: %v\n%s", ver, err, b)
	}
	return res
}

// TestAddVMConfRefusedFirst: a vmconf ADD that cannot be made (model
// macvtap, an interface with only IPv6) fails with code 7 before the netns
// is even looked at, and makes no state directory.
func TestAddVMConfRefusedFirst(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	v6only := `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/nbtest-does-not-exist"}],
		"ips":[{"interface":0,"address":"2001:db8:1::2/64","gateway":"2001:db8:1::1"}]}`
	for _, c := range []struct{ extra, prev, want string }{
		{`"vmconf":true,"model":"macvtap"`, prevResults["1.0.0"], "macvtap"},
		{`"vmconf":true`, v6only, "IPv4 only"},
	} {
		stdin := netconf("1.0.0", fmt.Sprintf(`%s,"stateDir":%q`, c.extra, dir), c.prev)
		code, msg := cniCode(t, cmdAdd(args(stdin, "/run/netns/nbtest-does-not-exist")))
		if code != types.ErrInvalidNetworkConfig || !strings.Contains(msg, c.want) || !strings.Contains(msg, "vmconf") {
			t.Errorf("%s: code %d %q, want %d saying vmconf and %q", c.extra, code, msg, types.ErrInvalidNetworkConfig, c.want)
		}
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("a refused ADD made the state directory")
	}
}

// TestAppendVMConfMacvtapChosen: when model auto chose a macvtap, which
// the vmconf entry cannot describe, ADD detaches the interface again (here
// nothing is recorded, so that succeeds) and fails with code 7; the result
// gets no entry.
func TestAppendVMConfMacvtapChosen(t *testing.T) {
	dir := t.TempDir()
	c, err := start(args(netconf("1.0.0", fmt.Sprintf(`"vmconf":true,"model":"auto","stateDir":%q`, dir), prevResults["1.0.0"]), "/run/netns/pod"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.done()
	nic := vmNIC()
	nic.Model, nic.Why = sandbox.ModelMacvtap, "no u32"
	res := vmPrev(t, prevResults["1.0.0"])
	n := len(res.Interfaces)
	code, msg := cniCode(t, c.appendVMConf(args(nil, "/run/netns/pod"), res, nic, &current.IPConfig{}))
	if code != types.ErrInvalidNetworkConfig || !strings.Contains(msg, "macvtap") || !strings.Contains(msg, "no u32") {
		t.Errorf("code %d %q, want %d saying auto chose a macvtap and why", code, msg, types.ErrInvalidNetworkConfig)
	}
	if len(res.Interfaces) != n {
		t.Errorf("the result got entries: %+v", res.Interfaces)
	}
}

// TestPrepareVMConfOwner: with vmconf, the tap's owner and group are the
// plugin's own uid and gid unless given, as tc-redirect-tap makes them;
// without vmconf nothing is set.
func TestPrepareVMConfOwner(t *testing.T) {
	prev := vmPrev(t, prevResults["1.0.0"])
	a := args(nil, "/run/netns/pod")
	seven := uint32(7)
	for _, c := range []struct {
		conf       netConf
		uid, gid   *uint32
		wantIPNull bool
	}{
		{conf: netConf{VMConf: true}, uid: ptr(uint32(os.Geteuid())), gid: ptr(uint32(os.Getegid()))},
		{conf: netConf{VMConf: true, TapOwner: &seven}, uid: &seven, gid: ptr(uint32(os.Getegid()))},
		{conf: netConf{VMConf: true, TapGroup: &seven}, uid: ptr(uint32(os.Geteuid())), gid: &seven},
		{conf: netConf{}, wantIPNull: true},
	} {
		conf := c.conf
		ip, err := conf.prepareVMConf(prev, a)
		if err != nil || (ip == nil) != c.wantIPNull {
			t.Errorf("%+v: ip %v, %v", c.conf, ip, err)
		}
		if !eqID(conf.TapOwner, c.uid) || !eqID(conf.TapGroup, c.gid) {
			t.Errorf("%+v: owner %v group %v, want %v %v", c.conf, show(conf.TapOwner), show(conf.TapGroup), show(c.uid), show(c.gid))
		}
	}
}

func ptr[T any](v T) *T { return &v }
