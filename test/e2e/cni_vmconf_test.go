package e2e

// Tests of the chained plugin as a drop-in replacement for tc-redirect-tap
// ("vmconf": true, CNI_ARGS TC_REDIRECT_TAP_*): real results of the
// bridge plugin, read by the rules of firecracker-go-sdk's vmconf package
// (cni.VMConf), and a guest configured from nothing but what the SDK
// reads, on the tap opened the way Firecracker opens it.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/cni"
	"github.com/netbridge/netbridge/test/fakeguest"
	"github.com/netbridge/netbridge/test/testnet"
)

// vmconfCase is one drop-in case: spec version, dual stack or IPv4 only,
// the model, and the CNI_ARGS the runtime passes.
type vmconfCase struct {
	name  string
	ver   string
	dual  bool
	model sandbox.Model
	args  [][2]string
}

// tapName is the tap the case's CNI_ARGS name, or netbridge's default.
func (c vmconfCase) tapName() string {
	for _, kv := range c.args {
		if kv[0] == "TC_REDIRECT_TAP_NAME" {
			return kv[1]
		}
	}
	return "nb-eth0"
}

// argID returns the CNI_ARGS value of key as a number, and whether the
// case has the key.
func (c vmconfCase) argID(key string) (uint32, bool) {
	for _, kv := range c.args {
		if kv[0] == key {
			var v uint32
			fmt.Sscan(kv[1], &v)
			return v, true
		}
	}
	return 0, false
}

var vmconfCases = []vmconfCase{
	{name: "ipv4", ver: "1.0.0", model: sandbox.ModelTCFilter},
	{name: "ipv4-tapname", ver: "1.0.0", model: sandbox.ModelTCFilter,
		args: [][2]string{{"IgnoreUnknown", "1"}, {"TC_REDIRECT_TAP_NAME", "tap0"}, {"TC_REDIRECT_TAP_UID", "123"}, {"TC_REDIRECT_TAP_GID", "456"}}},
	{name: "dual", ver: "1.0.0", dual: true, model: sandbox.ModelTCFilter},
	{name: "dual-tapname", ver: "1.1.0", dual: true, model: sandbox.ModelTCFilter,
		args: [][2]string{{"IgnoreUnknown", "true"}, {"K8S_POD_NAME", "vm1"}, {"TC_REDIRECT_TAP_NAME", "fc-tap0"}}},
	{name: "dual-0.4.0", ver: "0.4.0", dual: true, model: sandbox.ModelTCFilter},
	{name: "dual-bridge-model", ver: "1.0.0", dual: true, model: sandbox.ModelBridge,
		args: [][2]string{{"IgnoreUnknown", "1"}, {"TC_REDIRECT_TAP_NAME", "tap1"}}},
}

// vmconfIPAM is a host-local section on the /24 v4 (three octets) and,
// unless v6 is empty, the /64 v6, with default routes.
func vmconfIPAM(v4, v6 string) string {
	ranges := fmt.Sprintf(`[{"subnet":"%s.0/24","gateway":"%[1]s.1"}]`, v4)
	routes := `{"dst":"0.0.0.0/0"}`
	if v4 == "" {
		ranges, routes = "", ""
	}
	if v6 != "" {
		if ranges != "" {
			ranges += ","
			routes += ","
		}
		ranges += fmt.Sprintf(`[{"subnet":"%s::/64","gateway":"%[1]s::1"}]`, v6)
		routes += `{"dst":"::/0"}`
	}
	return fmt.Sprintf(`"ipam":{"type":"host-local","ranges":[%s],"routes":[%s]}`, ranges, routes)
}

// vmconfList is the conflist the README tells tc-redirect-tap users to
// write: their interface plugin, then netbridge with vmconf.
func vmconfList(ver string, model sandbox.Model, v4, v6, stateDir string) []byte {
	disable := ""
	if model != sandbox.ModelTCFilter {
		disable = `,"disableCheck":true` // see chainPod.list
	}
	return []byte(fmt.Sprintf(`{"cniVersion":%q,"name":"fcnet"%s,"plugins":[`+
		`{"type":"bridge","bridge":"fcbr0","isGateway":true,"ipMasq":false,%s},`+
		`{"type":"netbridge","vmconf":true,"model":%q,"stateDir":%q}]}`, ver, disable, vmconfIPAM(v4, v6), model, stateDir))
}

// TestCNIVMConfDropIn: a bridge + netbridge conflist with "vmconf": true,
// through libcni, IPv4 and dual stack, with and without the CNI_ARGS of
// tc-redirect-tap. The result passes the SDK's rules: the tap by its
// name, the guest MAC (the interface's original one), the tap's MTU, and
// one IPv4 address with its gateway; the previous plugin's entries are
// all still there. A guest made from only that, on the tap opened as
// Firecracker opens it (one queue, vnet header), passes frames both ways.
// The tap's owner and group are CNI_ARGS's, else root, as tc-redirect-tap
// makes them. CHECK passes, render has the IPv6 side, DEL leaves the pod
// as before.
func TestCNIVMConfDropIn(t *testing.T) {
	bins := cniBins(t)
	for i, c := range vmconfCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			node, pod := testnet.NewNS(t), testnet.NewNS(t)
			stateDir := t.TempDir()
			v4, v6 := fmt.Sprintf("198.51.%d", 100+i), ""
			if c.dual {
				v6 = fmt.Sprintf("2001:db8:%x", 0x100+i)
			}
			id := "fc-" + c.name
			before := testnet.Snapshot(t, pod)
			att, err := cni.TryAddArgs(t, bins, vmconfList(c.ver, c.model, v4, v6, stateDir), node, pod, id, "eth0", c.args)
			if err != nil {
				t.Fatal(err)
			}
			nic := loadNIC(t, stateDir, id, "eth0")
			if nic.Tap != c.tapName() || nic.Model != c.model {
				t.Errorf("tap %s, model %s; want %s, %s", nic.Tap, nic.Model, c.tapName(), c.model)
			}

			conf, err := cni.VMConf(att.Raw, id)
			if err != nil {
				t.Fatalf("the SDK's rules refuse the result: %v\n%s", err, mustJSON(t, att.Raw))
			}
			eth0 := slices.IndexFunc(att.Result.Interfaces, func(i *current.Interface) bool { return i.Name == "eth0" && i.Sandbox == pod.Path() })
			if eth0 < 0 {
				t.Fatalf("the result lost the pod interface: %+v", att.Result.Interfaces)
			}
			link := testnet.LinkByName(t, pod, nic.Tap)
			wantIP := netip.MustParsePrefix(v4 + ".2/24")
			gotIP, _ := netip.ParsePrefix(conf.IP.Address.String())
			gotGw, _ := netip.AddrFromSlice(conf.IP.Gateway)
			if conf.TapName != c.tapName() || conf.NetNSPath != pod.Path() || conf.MAC != nic.GuestMAC.String() ||
				conf.MAC != att.Result.Interfaces[eth0].Mac || conf.MTU != nic.MTU || conf.MTU != link.Attrs().MTU {
				t.Errorf("SDK view tap %s in %s, MAC %s, MTU %d; want %s in %s, the guest's %s (eth0's in the result: %s), MTU %d",
					conf.TapName, conf.NetNSPath, conf.MAC, conf.MTU, c.tapName(), pod.Path(), nic.GuestMAC, att.Result.Interfaces[eth0].Mac, nic.MTU)
			}
			if gotIP.Addr().Is4() != true || gotIP.Masked() != wantIP.Masked() || !slices.Contains(nic.Addresses, gotIP) || gotGw.Unmap() != netip.MustParseAddr(v4+".1") {
				t.Errorf("SDK view IP %s via %s; want an address of %s among the NIC's %v via %s.1", gotIP, gotGw, wantIP.Masked(), nic.Addresses, v4)
			}
			// The tap's owner and group: CNI_ARGS's, else, as with
			// tc-redirect-tap, the plugin's own (root).
			owner := "user root group root"
			if uid, ok := c.argID("TC_REDIRECT_TAP_UID"); ok {
				gid, _ := c.argID("TC_REDIRECT_TAP_GID")
				owner = fmt.Sprintf("user %d group %d", uid, gid)
				tt, isTap := link.(*netlink.Tuntap)
				if !isTap || tt.Owner != uid || tt.Group != gid {
					t.Errorf("tap %s: %+v; want owner %d, group %d from CNI_ARGS", nic.Tap, link, uid, gid)
				}
			}
			if out := testnet.Exec(t, pod, "ip", "-d", "link", "show", nic.Tap); !strings.Contains(out, " "+owner+" ") {
				t.Errorf("tap %s is not %q:\n%s", nic.Tap, owner, out)
			}
			// Every IP the bridge plugin gave eth0 still names it; exactly
			// one more, the vmconf one, names the pseudo-interface.
			var eth0IPs []netip.Prefix
			for _, ipc := range att.Result.IPs {
				if ipc.Interface != nil && *ipc.Interface == eth0 {
					p, _ := netip.ParsePrefix(ipc.Address.String())
					eth0IPs = append(eth0IPs, p)
				}
			}
			wantN := 1
			if c.dual {
				wantN = 2
			}
			if len(eth0IPs) != wantN || len(att.Result.IPs) != wantN+1 {
				t.Errorf("result IPs %v naming eth0, %d in all; want %d naming eth0 and one more", eth0IPs, len(att.Result.IPs), wantN)
			}
			tapEntry := slices.IndexFunc(att.Result.Interfaces, func(i *current.Interface) bool { return i.Name == nic.Tap && i.Sandbox == pod.Path() })
			if n := len(att.Result.Interfaces); tapEntry != n-2 || att.Result.Interfaces[n-1].Sandbox != id {
				t.Errorf("interfaces %+v: want the tap entry, then the vmconf entry, last", att.Result.Interfaces)
			}

			// The guest knows only what the SDK read.
			opts := []fakeguest.Option{fakeguest.WithGateway(gotGw.Unmap())}
			mac, _ := net.ParseMAC(conf.MAC)
			podNS, err := ns.GetNS(conf.NetNSPath)
			if err != nil {
				t.Fatal(err)
			}
			defer podNS.Close()
			f, err := fakeguest.OpenTap(podNS, conf.TapName, true)
			if err != nil {
				t.Fatalf("opening the tap as Firecracker does: %v", err)
			}
			g, err := fakeguest.New(f, mac, []netip.Prefix{gotIP}, opts...)
			if err != nil {
				t.Fatal(err)
			}
			startGuestOn(t, g)
			framesBothWays(t, node, g, 0, [2]netip.Addr{gotGw.Unmap(), gotIP.Addr()})
			if err := g.Close(); err != nil {
				t.Errorf("fake guest: %v", err)
			}

			if c.ver != "0.3.0" && c.ver != "0.3.1" {
				if err := att.Check(); err != nil {
					t.Errorf("CHECK with the vmconf result: %v", err)
				}
			}
			if c.dual {
				out := run(t, "render", "--id", id, "--state-dir", stateDir, "--for", "guest-json")
				if !strings.Contains(out, v6+"::") {
					t.Errorf("render --for guest-json lacks the IPv6 side (%s::/64):\n%s", v6, out)
				}
			}

			if err := att.Del(); err != nil {
				t.Fatal(err)
			}
			if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
				t.Errorf("pod netns after DEL:\n%s", d)
			}
			if e := testnet.DirNames(t, stateDir); len(e) != 0 {
				t.Errorf("DEL left %v in the state directory", e)
			}
			if err := att.DelAgain(); err != nil {
				t.Errorf("second DEL: %v", err)
			}
		})
	}
}

// startGuestOn starts g and stops it at cleanup.
func startGuestOn(t *testing.T, g *fakeguest.Guest) {
	t.Helper()
	if err := g.Start(t.Context()); err != nil {
		t.Fatalf("starting the fake guest: %v", err)
	}
	t.Cleanup(func() { _ = g.Close() })
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCNIVMConfSplit splits the vmconf chain at the plugin boundary (see
// the top of cni_plugin_test.go): the bridge plugin through libcni, then
// netbridge invoked with its real result, the way the runtime does.
// netbridge's output is the previous result plus exactly the tap entry,
// the vmconf entry and one IP naming it; CHECK passes with it and fails,
// naming the vmconf entry, with the result of a netbridge without vmconf;
// DEL, given the vmconf result, restores the pod and node netns exactly.
// An IPv6-only interface, and CNI_ARGS with a key netbridge does not know
// and no IgnoreUnknown, are refused before anything is made.
func TestCNIVMConfSplit(t *testing.T) {
	bins := cniBins(t)
	conf := func(ver, stateDir, prev string, vmconf bool) []byte {
		s := fmt.Sprintf(`{"cniVersion":%q,"name":"fcsplit","type":"netbridge","stateDir":%q,"vmconf":%t,"prevResult":%s}`, ver, stateDir, vmconf, prev)
		return []byte(s)
	}
	bridge := func(v4, v6 string) string {
		return fmt.Sprintf(`{"cniVersion":"1.0.0","name":"fcsplit","plugins":[{"type":"bridge","bridge":"fcbr1","isGateway":true,"ipMasq":false,%s}]}`, vmconfIPAM(v4, v6))
	}

	t.Run("dual", func(t *testing.T) {
		t.Parallel()
		node, pod := testnet.NewNS(t), testnet.NewNS(t)
		stateDir := t.TempDir()
		const id = "fcsplit-dual"
		att := cni.Add(t, bins, []byte(bridge("192.0.2", "2001:db8:2")), node, pod, id, "eth0")
		prev := mustJSON(t, att.Raw)
		podBefore, nodeBefore := testnet.Snapshot(t, pod), testnet.Snapshot(t, node)
		out, err := invokeNBArgs(t, bins, node, "ADD", conf("1.0.0", stateDir, prev, true), id, pod.Path(), "eth0", "TC_REDIRECT_TAP_NAME=tap0")
		t.Cleanup(func() {
			if _, err := invokeNBArgs(t, bins, node, "DEL", conf("1.0.0", stateDir, prev, true), id, pod.Path(), "eth0", ""); err != nil {
				t.Errorf("cleanup DEL: %v", err)
			}
		})
		if err != nil {
			t.Fatalf("ADD: %v", err)
		}
		// The output is prev plus two interfaces and one IP.
		pm, om := jsonMap(t, []byte(prev)), jsonMap(t, out)
		ifs, _ := om["interfaces"].([]any)
		ips, _ := om["ips"].([]any)
		if len(ifs) < 2 || len(ips) < 1 {
			t.Fatalf("output %s", out)
		}
		tap, vm, vmIP := ifs[len(ifs)-2], ifs[len(ifs)-1], ips[len(ips)-1]
		om["interfaces"], om["ips"] = ifs[:len(ifs)-2], ips[:len(ips)-1]
		if !reflect.DeepEqual(pm, om) {
			t.Errorf("netbridge changed the previous result:\nprevResult %s\noutput     %s", prev, out)
		}
		nic := loadNIC(t, stateDir, id, "eth0")
		wantTap := map[string]any{"name": "tap0", "mac": nic.TapMAC.String(), "mtu": float64(nic.MTU), "sandbox": pod.Path()}
		wantVM := map[string]any{"name": "tap0", "mac": nic.GuestMAC.String(), "mtu": float64(nic.MTU), "sandbox": id}
		wantIP := map[string]any{"interface": float64(len(ifs) - 1), "address": "192.0.2.2/24", "gateway": "192.0.2.1"}
		if !reflect.DeepEqual(tap, wantTap) || !reflect.DeepEqual(vm, wantVM) || !reflect.DeepEqual(vmIP, wantIP) {
			t.Errorf("appended %v, %v and IP %v; want %v, %v and %v", tap, vm, vmIP, wantTap, wantVM, wantIP)
		}
		if _, err := cni.VMConf(mustResult(t, "1.0.0", out), id); err != nil {
			t.Errorf("the SDK's rules refuse the output: %v", err)
		}

		if _, err := invokeNBArgs(t, bins, node, "CHECK", conf("1.0.0", stateDir, string(out), true), id, pod.Path(), "eth0", ""); err != nil {
			t.Errorf("CHECK with the vmconf result: %v", err)
		}
		// The result a netbridge ADD without vmconf prints: prev plus the tap.
		plain := jsonMap(t, out)
		plain["interfaces"], plain["ips"] = ifs[:len(ifs)-1], ips[:len(ips)-1]
		_, err = invokeNBArgs(t, bins, node, "CHECK", conf("1.0.0", stateDir, mustJSON(t, plain), true), id, pod.Path(), "eth0", "")
		if err == nil || !strings.Contains(err.Error(), "vmconf entry") {
			t.Errorf("CHECK of a result without the vmconf entry = %v, want an error naming it", err)
		}

		for i := range 2 {
			if _, err := invokeNBArgs(t, bins, node, "DEL", conf("1.0.0", stateDir, string(out), true), id, pod.Path(), "eth0", "TC_REDIRECT_TAP_NAME=tap0"); err != nil {
				t.Fatalf("DEL %d with the vmconf result: %v", i+1, err)
			}
			if d := testnet.Diff(podBefore, testnet.Snapshot(t, pod)); d != "" {
				t.Errorf("pod netns after DEL %d, against the bridge plugin's:\n%s", i+1, d)
			}
			if d := testnet.Diff(nodeBefore, testnet.Snapshot(t, node)); d != "" {
				t.Errorf("node netns after DEL %d:\n%s", i+1, d)
			}
			if e := testnet.DirNames(t, stateDir); len(e) != 0 {
				t.Errorf("DEL %d left %v in the state directory", i+1, e)
			}
		}
	})

	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		node := testnet.NewNS(t)
		for _, c := range []struct {
			name, v4, v6, args string
			want               []string
		}{
			{"ipv6-only", "", "2001:db8:3", "", []string{"only IPv6", "2001:db8:3::2/64", "firecracker-go-sdk", "IPv4 only"}},
			{"unknown-arg", "192.0.2", "", "K8S_POD_NAME=vm1;TC_REDIRECT_TAP_NAME=tap0", []string{"CNI_ARGS", "K8S_POD_NAME", "IgnoreUnknown"}},
			{"bad-uid", "192.0.2", "", "IgnoreUnknown=1;TC_REDIRECT_TAP_UID=-1", []string{"CNI_ARGS", "TC_REDIRECT_TAP_UID", "not a uid"}},
		} {
			pod := testnet.NewNS(t)
			stateDir := t.TempDir()
			id := "fcsplit-" + c.name
			att := cni.Add(t, bins, []byte(bridge(c.v4, c.v6)), node, pod, id, "eth0")
			before := testnet.Snapshot(t, pod)
			_, err := invokeNBArgs(t, bins, node, "ADD", conf("1.0.0", stateDir, mustJSON(t, att.Raw), true), id, pod.Path(), "eth0", c.args)
			if err == nil {
				t.Errorf("%s: ADD succeeded", c.name)
				_, _ = invokeNBArgs(t, bins, node, "DEL", conf("1.0.0", stateDir, mustJSON(t, att.Raw), true), id, pod.Path(), "eth0", "")
				continue
			}
			e := cniErrorOf(t, err)
			for _, w := range c.want {
				if !strings.Contains(e.Msg+" "+e.Details, w) {
					t.Errorf("%s: error %q (%q) does not say %q", c.name, e.Msg, e.Details, w)
				}
			}
			if e.Code != 7 {
				t.Errorf("%s: code %d, want 7 (the configuration's)", c.name, e.Code)
			}
			if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
				t.Errorf("%s: the refused ADD changed the pod netns:\n%s", c.name, d)
			}
			if e := testnet.DirNames(t, stateDir); len(e) != 0 {
				t.Errorf("%s: the refused ADD left %v in the state directory", c.name, e)
			}
		}
	})
}

// invokeNBArgs is invokeNB with CNI_ARGS.
func invokeNBArgs(t *testing.T, bins string, node ns.NetNS, command string, stdin []byte, id, netnsPath, ifname, args string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return cni.InvokeArgs(ctx, bins, cni.NetbridgePlugin, node, command, stdin, id, netnsPath, ifname, args)
}
