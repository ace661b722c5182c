package firecracker

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/netbridge/netbridge/hypervisor/internal/nictest"
	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/golden"
)

// mac and nic build test values (hypervisor/internal/nictest).
var (
	mac = nictest.MAC
	nic = nictest.NIC
)

// multus returns the three NICs of a Multus pod: eth0, net1, net2.
func multus(t testing.TB) []sandbox.NIC {
	return []sandbox.NIC{
		nic(t, "eth0", "tap_eth0", "0a:58:c0:00:02:0a", 1450),
		nic(t, "net1", "tap_net1", "0a:58:c6:33:64:07", 1500),
		nic(t, "net2", "tap_net2", "ce:8a:cb:00:71:2c", 9000),
	}
}

// iface mirrors Firecracker's NetworkInterface, refusing unknown members as
// Firecracker does.
type iface struct {
	IfaceID     string `json:"iface_id"`
	HostDevName string `json:"host_dev_name"`
	GuestMAC    string `json:"guest_mac"`
}

func decodeList(t *testing.T, b []byte) []iface {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var list []iface
	if err := dec.Decode(&list); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return list
}

func TestNetworkInterfacesGolden(t *testing.T) {
	vhost := nic(t, "eth0", "tap_eth0", "02:42:c0:00:02:0a", 1500)
	vhost.Vhost = true
	queues0 := nic(t, "eth0", "tap_eth0", "02:42:c0:00:02:0a", 0)
	queues0.Queues = 0 // one queue
	tests := []struct {
		name string
		nics []sandbox.NIC
	}{
		{name: "empty"},
		{name: "one_nic", nics: []sandbox.NIC{nic(t, "eth0", "tap_eth0", "02:42:c0:00:02:0a", 1500)}},
		{name: "multus_three_nics", nics: multus(t)},
		{name: "mtu_9000_not_rendered", nics: []sandbox.NIC{nic(t, "net1", "tap_net1", "0a:58:c6:33:64:07", 9000)}},
		{name: "vhost_ignored", nics: []sandbox.NIC{vhost}},
		{name: "queues_0", nics: []sandbox.NIC{queues0}},
		{name: "odd_name", nics: []sandbox.NIC{nic(t, "vlan-100.x", "tap_v", "02:00:00:00:00:01", 1500)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NetworkInterfaces(tt.nics)
			if err != nil {
				t.Fatal(err)
			}
			list := decodeList(t, got)
			if len(list) != len(tt.nics) {
				t.Fatalf("%d interfaces for %d NICs", len(list), len(tt.nics))
			}
			for i, n := range tt.nics {
				id, err := IfaceID(n)
				if err != nil {
					t.Fatal(err)
				}
				want := iface{IfaceID: id, HostDevName: n.Tap, GuestMAC: n.GuestMAC.String()}
				if list[i] != want {
					t.Errorf("interface %d = %+v, want %+v", i, list[i], want)
				}
				// Each element is exactly the PUT body of that NIC.
				path, body, err := PutBody(n)
				if err != nil {
					t.Fatal(err)
				}
				var put iface
				if err := json.Unmarshal(body, &put); err != nil || put != want {
					t.Errorf("PutBody(%d) = %s, %v; want %+v", i, body, err, want)
				}
				if path != "/network-interfaces/"+id {
					t.Errorf("PutBody(%d) path %q", i, path)
				}
			}
			golden.Check(t, "network_interfaces_"+tt.name, got)
		})
	}
}

func TestPutBodyGolden(t *testing.T) {
	n := nic(t, "net1", "tap_net1", "0a:58:c6:33:64:07", 9000)
	path, body, err := PutBody(n)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "put_net1", []byte("PUT "+path+"\n"+string(body)+"\n"))
}

func TestIfaceID(t *testing.T) {
	tests := map[string]string{
		"eth0":       "eth0",
		"net_1":      "net_1",
		"vlan-100.x": "vlan_100_x",
		"é0":         "_0",
		"NET2":       "NET2",
	}
	for name, want := range tests {
		got, err := IfaceID(sandbox.NIC{Name: name})
		if err != nil || got != want {
			t.Errorf("IfaceID(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	if _, err := IfaceID(sandbox.NIC{}); err == nil || !strings.Contains(err.Error(), "name missing") {
		t.Errorf("IfaceID of an unnamed NIC: error %v", err)
	}
}

// errorCases are the invalid NICs both renderers refuse; edit spoils a copy
// of net1.
func errorCases(t *testing.T) []struct {
	name string
	edit func(n *sandbox.NIC)
	want string
	is   error
} {
	return []struct {
		name string
		edit func(n *sandbox.NIC)
		want string
		is   error
	}{
		{name: "multiqueue 4", edit: func(n *sandbox.NIC) { n.Queues = 4 }, want: "4 queues: only one queue pair", is: ErrMultiQueue},
		{name: "multiqueue 2 with vhost", edit: func(n *sandbox.NIC) { n.Queues, n.Vhost = 2, true }, want: "2 queues", is: ErrMultiQueue},
		{name: "negative queues", edit: func(n *sandbox.NIC) { n.Queues = -1 }, want: "queue count -1 out of range"},
		{name: "macvtap", edit: func(n *sandbox.NIC) {
			n.Model, n.Device = "macvtap", "/run/netbridge/sb.dev/nbm-net1"
		}, want: "a macvtap cannot be handed to Firecracker", is: ErrMacvtap},
		{name: "tap missing", edit: func(n *sandbox.NIC) { n.Tap = "" }, want: "tap name missing"},
		{name: "tap too long", edit: func(n *sandbox.NIC) { n.Tap = "tap_0123456789ab" }, want: "longer than 15 bytes"},
		{name: "tap with colon", edit: func(n *sandbox.NIC) { n.Tap = "tap:1" }, want: "not a valid interface name"},
		{name: "missing MAC", edit: func(n *sandbox.NIC) { n.GuestMAC = nil }, want: "guest MAC missing"},
		{name: "multicast MAC", edit: func(n *sandbox.NIC) { n.GuestMAC = mac(t, "01:00:5e:00:00:01") }, want: "multicast"},
		{name: "short MAC", edit: func(n *sandbox.NIC) { n.GuestMAC = n.GuestMAC[:4] }, want: "not a 6-byte"},
		{name: "name missing", edit: func(n *sandbox.NIC) { n.Name = "" }, want: "name missing"},
	}
}

func TestNetworkInterfacesErrors(t *testing.T) {
	for _, tt := range errorCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			nics := multus(t)[:2]
			tt.edit(&nics[1])
			got, err := NetworkInterfaces(nics)
			if err == nil {
				t.Fatalf("NetworkInterfaces succeeded:\n%s", got)
			}
			if got != nil {
				t.Error("NetworkInterfaces returned output with an error")
			}
			label := `firecracker: NIC 1 ("` + nics[1].Name + `")`
			for _, want := range []string{tt.want, label} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
		})
	}
	t.Run("duplicate iface_id", func(t *testing.T) {
		nics := multus(t)[:2]
		nics[1].Name = "eth.0" // iface_id eth_0
		nics[0].Name = "eth_0"
		_, err := NetworkInterfaces(nics)
		if err == nil || !strings.Contains(err.Error(), `iface_id "eth_0" is also that of NIC 0 ("eth_0")`) {
			t.Errorf("error %v; want a duplicate iface_id error", err)
		}
	})
}

func TestPutBodyErrors(t *testing.T) {
	for _, tt := range errorCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			n := multus(t)[1]
			tt.edit(&n)
			path, body, err := PutBody(n)
			if err == nil {
				t.Fatalf("PutBody succeeded: %s %s", path, body)
			}
			if path != "" || body != nil {
				t.Error("PutBody returned a path or body with an error")
			}
			label := `firecracker: NIC "` + n.Name + `"`
			for _, want := range []string{tt.want, label} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
		})
	}
}

// TestNoMTU checks that no rendered object carries "mtu", which a Firecracker
// release without the field refuses (unknown fields are rejected).
func TestNoMTU(t *testing.T) {
	nics := multus(t)
	b, err := NetworkInterfaces(nics)
	if err != nil {
		t.Fatal(err)
	}
	var list []map[string]any
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatal(err)
	}
	for i, m := range list {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		if _, ok := m["mtu"]; ok || len(m) != 3 {
			t.Errorf("interface %d has members %v; want iface_id, host_dev_name, guest_mac", i, keys)
		}
	}
}
