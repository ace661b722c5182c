package cni

import (
	"bytes"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netbridge/netbridge/test/testnet"
)

func TestParseConf(t *testing.T) {
	single := []byte(`{"cniVersion":"1.0.0","name":"n1","type":"bridge","ipam":{"type":"host-local","ranges":[[{"subnet":"198.51.100.0/24"}]]}}`)
	list, err := parseConf(single, "/data")
	if err != nil {
		t.Fatal(err)
	}
	if list.Name != "n1" || list.CNIVersion != "1.0.0" || len(list.Plugins) != 1 || list.Plugins[0].Network.Type != "bridge" {
		t.Fatalf("unexpected list %+v", list)
	}
	var p struct {
		IPAM struct {
			DataDir string `json:"dataDir"`
		} `json:"ipam"`
	}
	if err := json.Unmarshal(list.Plugins[0].Bytes, &p); err != nil || p.IPAM.DataDir != "/data" {
		t.Errorf("dataDir = %q (%v), want /data", p.IPAM.DataDir, err)
	}

	conflist := []byte(`{"cniVersion":"1.0.0","name":"n2","plugins":[
		{"type":"bridge","ipam":{"type":"host-local","dataDir":"/mine","ranges":[[{"subnet":"198.51.100.0/24"}]]}},
		{"type":"ptp","ipam":{"type":"other"}}]}`)
	list, err = parseConf(conflist, "/data")
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Plugins) != 2 {
		t.Fatalf("%d plugins", len(list.Plugins))
	}
	if !bytes.Contains(list.Plugins[0].Bytes, []byte(`"dataDir":"/mine"`)) {
		t.Errorf("explicit dataDir overridden: %s", list.Plugins[0].Bytes)
	}
	if bytes.Contains(list.Plugins[1].Bytes, []byte("dataDir")) {
		t.Errorf("dataDir added to non-host-local IPAM: %s", list.Plugins[1].Bytes)
	}
	if _, err := parseConf([]byte("{"), "/data"); err == nil {
		t.Error("invalid JSON accepted")
	}
}

func TestBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the CNI plugins")
	}
	dir := Build(t)
	if again := Build(t); again != dir {
		t.Errorf("second Build returned %s, first %s", again, dir)
	}
	for _, p := range Plugins {
		bin := filepath.Join(dir, filepath.Base(p))
		cmd := exec.Command(bin)
		cmd.Env = []string{"CNI_COMMAND=VERSION"}
		cmd.Stdin = strings.NewReader(`{"cniVersion":"1.0.0"}`)
		out, err := cmd.Output()
		if err != nil {
			t.Errorf("%s VERSION: %v", bin, err)
			continue
		}
		if !bytes.Contains(out, []byte(`"1.0.0"`)) {
			t.Errorf("%s VERSION: %s", bin, out)
		}
	}
}

// hostState is what the test can observe, read-only, of the namespace the
// test process runs in: link names and forwarding sysctls.
func hostState(t *testing.T) string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	slices.Sort(names)
	s := strings.Join(names, ",")
	for _, f := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"} {
		b, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		s += " " + f + "=" + strings.TrimSpace(string(b))
	}
	return s
}

func TestBridgePlugin(t *testing.T) {
	testnet.RequireRoot(t)
	bin := Build(t)
	for _, tc := range []struct {
		name     string
		conf     string
		gateways []string
		subnets  []string
	}{
		{
			name: "ipv4",
			conf: `{"cniVersion":"1.0.0","name":"nbtest-v4","type":"bridge","bridge":"nbbr0",
				"isGateway":true,"ipMasq":false,
				"ipam":{"type":"host-local","ranges":[[{"subnet":"198.51.100.0/24"}]],
					"routes":[{"dst":"0.0.0.0/0"}]}}`,
			gateways: []string{"198.51.100.1/24"},
			subnets:  []string{"198.51.100.0/24"},
		},
		{
			name: "dualstack",
			conf: `{"cniVersion":"1.0.0","name":"nbtest-ds","plugins":[{"type":"bridge","bridge":"nbbr0",
				"isGateway":true,"ipMasq":false,
				"ipam":{"type":"host-local","ranges":[[{"subnet":"198.51.100.0/24"}],[{"subnet":"2001:db8:5::/64"}]],
					"routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0"}]}}]}`,
			gateways: []string{"198.51.100.1/24", "2001:db8:5::1/64"},
			subnets:  []string{"198.51.100.0/24", "2001:db8:5::/64"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node, pod := testnet.NewNS(t), testnet.NewNS(t)
			hostBefore := hostState(t)
			nodeBefore, podBefore := testnet.Snapshot(t, node), testnet.Snapshot(t, pod)
			var dataDir string

			t.Run("attached", func(t *testing.T) {
				start := time.Now()
				a := Add(t, bin, []byte(tc.conf), node, pod, "ctr-"+tc.name, "eth0")
				dataDir = a.dataDir
				t.Logf("ADD took %s; result: %s", time.Since(start), mustJSON(a.Result))
				if len(a.Result.IPs) != len(tc.subnets) {
					t.Fatalf("got %d IPs, want %d", len(a.Result.IPs), len(tc.subnets))
				}
				podSnap := testnet.Snapshot(t, pod)
				nodeSnap := testnet.Snapshot(t, node)
				for i, ipc := range a.Result.IPs {
					p, ok := netip.AddrFromSlice(ipc.Address.IP)
					if !ok {
						t.Fatalf("bad IP %v", ipc.Address)
					}
					p = p.Unmap()
					ones, _ := ipc.Address.Mask.Size()
					subnet := netip.MustParsePrefix(tc.subnets[i])
					if !subnet.Contains(p) || ones != subnet.Bits() {
						t.Errorf("IP %s not in %s", ipc.Address.String(), subnet)
					}
					family := "inet"
					if p.Is6() {
						family = "inet6"
					}
					if want := "addr eth0 " + family + " " + netip.PrefixFrom(p, ones).String() + " "; !strings.Contains(podSnap, want) {
						t.Errorf("pod lacks %q:\n%s", want, podSnap)
					}
					gw := netip.MustParsePrefix(tc.gateways[i])
					if want := "addr nbbr0 " + family + " " + gw.String() + " "; !strings.Contains(nodeSnap, want) {
						t.Errorf("node lacks %q:\n%s", want, nodeSnap)
					}
					if err := testnet.Ping(pod, gw.Addr(), 0, 10*time.Second); err != nil {
						t.Errorf("pod -> gateway: %v", err)
					}
					if err := testnet.Ping(node, p, 0, 10*time.Second); err != nil {
						t.Errorf("node -> pod: %v", err)
					}
					if _, err := os.Stat(filepath.Join(dataDir, "nbtest-"+map[string]string{"ipv4": "v4", "dualstack": "ds"}[tc.name], p.String())); err != nil {
						t.Errorf("host-local did not record %s in the test's data dir: %v", p, err)
					}
				}
				if !strings.Contains(nodeSnap, "link nbbr0 kind=bridge") {
					t.Errorf("no bridge in node netns:\n%s", nodeSnap)
				}
				if !strings.Contains(podSnap, "link eth0 kind=veth") {
					t.Errorf("no eth0 in pod netns:\n%s", podSnap)
				}
				// The bridge plugin enabled forwarding where it ran: the node.
				if v, err := testnet.ReadSysctl(node, "net.ipv4.ip_forward"); err != nil || v != "1" {
					t.Errorf("node ip_forward = %q (%v), want 1", v, err)
				}
				if got := hostState(t); got != hostBefore {
					t.Errorf("host state changed during ADD:\nbefore %s\nafter  %s", hostBefore, got)
				}
				if err := a.Del(); err != nil {
					t.Fatal(err)
				}
			})

			// After DEL: the pod is as before, the node keeps only the bridge.
			if d := testnet.Diff(podBefore, testnet.Snapshot(t, pod)); d != "" {
				t.Errorf("pod netns not clean after DEL:\n%s", d)
			}
			d := testnet.Diff(nodeBefore, testnet.Snapshot(t, node))
			for _, line := range strings.Split(strings.TrimSpace(d), "\n") {
				if line != "" && !strings.Contains(line, "nbbr0") {
					t.Errorf("node netns keeps more than the bridge after DEL: %s\nfull diff:\n%s", line, d)
				}
			}
			// The node's last DEL removed the state directory.
			if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
				t.Errorf("CNI state directory %s left behind (%v)", dataDir, err)
			}
			if got := hostState(t); got != hostBefore {
				t.Errorf("host state changed:\nbefore %s\nafter  %s", hostBefore, got)
			}
		})
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
