package qemu

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/golden"
)

// qmpLines renders cmds with QMPLines, failing the test on error.
func qmpLines(t *testing.T, cmds []QMPCommand) []byte {
	t.Helper()
	b, err := QMPLines(cmds)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkQMP checks the hot-plug sequence of nics: per NIC, getfd commands
// whose names are exactly those netdev_add lists, then netdev_add and
// device_add with the exported ids and the JSON types QEMU expects.
func checkQMP(t *testing.T, nics []sandbox.NIC, cmds []QMPCommand) {
	t.Helper()
	// Round-trip through JSON lines, as the commands travel.
	var decoded []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(qmpLines(t, cmds)))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		decoded = append(decoded, m)
	}
	if len(decoded) != len(cmds) {
		t.Fatalf("%d JSON lines for %d commands", len(decoded), len(cmds))
	}
	pos := 0
	seen := make(map[string]bool)
	for i, n := range nics {
		var names []string
		for pos < len(decoded) && decoded[pos]["execute"] == "getfd" {
			name, ok := decoded[pos]["arguments"].(map[string]any)["fdname"].(string)
			if !ok || name == "" || seen[name] {
				t.Fatalf("NIC %d: getfd %v: bad or repeated fdname", i, decoded[pos])
			}
			seen[name] = true
			names = append(names, name)
			pos++
		}
		if pos+2 > len(decoded) {
			t.Fatalf("NIC %d: sequence ends early", i)
		}
		netdev, device := decoded[pos], decoded[pos+1]
		pos += 2
		if netdev["execute"] != "netdev_add" || device["execute"] != "device_add" {
			t.Fatalf("NIC %d: got %v then %v; want netdev_add then device_add", i, netdev["execute"], device["execute"])
		}
		na := netdev["arguments"].(map[string]any)
		da := device["arguments"].(map[string]any)
		if na["type"] != "tap" || na["id"] != NetdevID(nics, i) {
			t.Errorf("NIC %d: netdev_add %v", i, na)
		}
		listed := strings.Split(na["fds"].(string), ":")
		if v, ok := na["vhostfds"]; ok {
			listed = append(listed, strings.Split(v.(string), ":")...)
			if na["vhost"] != true {
				t.Errorf("NIC %d: vhostfds without vhost=true: %v", i, na)
			}
		}
		if strings.Join(listed, " ") != strings.Join(names, " ") {
			t.Errorf("NIC %d: netdev_add lists %q, getfd named %q", i, listed, names)
		}
		if v, ok := na["vhost"]; ok && v != true {
			t.Errorf("NIC %d: vhost is %T %v, want JSON true", i, v, v)
		}
		if da["driver"] != DefaultDriver || da["id"] != DeviceID(nics, i) || da["netdev"] != NetdevID(nics, i) || da["mac"] != n.GuestMAC.String() {
			t.Errorf("NIC %d: device_add %v", i, da)
		}
		queues := max(n.Queues, 1)
		if queues > 1 {
			if da["mq"] != true || da["vectors"] != float64(2*queues+2) {
				t.Errorf("NIC %d: mq %v (%T), vectors %v (%T); want true and %d", i, da["mq"], da["mq"], da["vectors"], da["vectors"], 2*queues+2)
			}
		} else if _, ok := da["mq"]; ok {
			t.Errorf("NIC %d: mq for a single queue", i)
		}
		if n.MTU > 0 && da["host_mtu"] != float64(n.MTU) {
			t.Errorf("NIC %d: host_mtu %v (%T), want the number %d", i, da["host_mtu"], da["host_mtu"], n.MTU)
		}
	}
	if pos != len(decoded) {
		t.Errorf("%d commands left after the last NIC", len(decoded)-pos)
	}
}

func TestQMPCommandsGolden(t *testing.T) {
	multiqueue := nic(t, "eth0", "tap_eth0", "02:42:c0:00:02:0a", 1500)
	multiqueue.Queues = 4
	vhost := nic(t, "eth0", "tap_eth0", "02:42:c0:00:02:0a", 1500)
	vhost.Vhost = true
	vhostMQ := nic(t, "net1", "tap_net1", "0a:58:c6:33:64:07", 1450)
	vhostMQ.Vhost, vhostMQ.Queues = true, 2
	macvtap := nic(t, "eth0", "nbm-eth0", "0a:58:c0:00:02:0a", 1500)
	macvtap.Model, macvtap.Device, macvtap.Queues = "macvtap", "/run/netbridge/sb.dev/nbm-eth0", 2
	// Holding files: two tap queues, Vhost without vhost files (QEMU then
	// opens /dev/vhost-net itself).
	held := fdNIC(t, "net1", "0a:58:c6:33:64:07", 2, false)
	held.Vhost = true
	noMTU := nic(t, "eth0", "tap_eth0", "02:42:c0:00:02:0a", 0)
	noMTU.Queues = 0

	tests := []struct {
		name    string
		nics    []sandbox.NIC
		fdNames func(nic, queue int, vhost bool) string
	}{
		{name: "empty"},
		{name: "one_nic", nics: []sandbox.NIC{nic(t, "eth0", "tap_eth0", "02:42:c0:00:02:0a", 1500)}},
		{name: "multus_three_nics", nics: []sandbox.NIC{
			nic(t, "eth0", "tap_eth0", "0a:58:c0:00:02:0a", 1450),
			nic(t, "net1", "tap_net1", "0a:58:c6:33:64:07", 1500),
			nic(t, "net2", "tap_net2", "ce:8a:cb:00:71:2c", 9000),
		}},
		{name: "multiqueue_4", nics: []sandbox.NIC{multiqueue}},
		{name: "vhost", nics: []sandbox.NIC{vhost}},
		{name: "vhost_multiqueue_2", nics: []sandbox.NIC{vhostMQ}},
		{name: "mtu_9000", nics: []sandbox.NIC{nic(t, "net1", "tap_net1", "0a:58:c6:33:64:07", 9000)}},
		{name: "no_mtu_queues_0", nics: []sandbox.NIC{noMTU}},
		{name: "macvtap_multiqueue_2", nics: []sandbox.NIC{macvtap}},
		{name: "holding_files_vhost_without_vhost_files", nics: []sandbox.NIC{held}},
		{name: "digit_name_default_fd_names", nics: []sandbox.NIC{nic(t, "0net", "tap_0", "02:00:00:00:00:01", 1500)}},
		{
			name: "custom_fd_names",
			nics: []sandbox.NIC{vhostMQ},
			fdNames: func(nic, queue int, vhost bool) string {
				if vhost {
					return fmt.Sprintf("v%d.%d", nic, queue)
				}
				return fmt.Sprintf("t%d.%d", nic, queue)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmds, err := QMPCommands(tt.nics, tt.fdNames)
			if err != nil {
				t.Fatal(err)
			}
			checkQMP(t, tt.nics, cmds)
			golden.Check(t, "qmp_"+tt.name, qmpLines(t, cmds))
		})
	}
}

// TestQMPCommandsFileOrder checks that the k-th getfd is for the k-th file
// ByFD returns, so a caller can send ByFD's files one per getfd.
func TestQMPCommandsFileOrder(t *testing.T) {
	nics := []sandbox.NIC{
		fdNIC(t, "eth0", "0a:58:c0:00:02:0a", 1, false),
		fdNIC(t, "net1", "0a:58:c6:33:64:07", 2, true),
		fdNIC(t, "net2", "ce:8a:cb:00:71:2c", 4, false),
	}
	_, files, err := ByFD(nics, Options{}, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Name every fd after the file it stands for.
	fileOf := make(map[string]*os.File)
	cmds, err := QMPCommands(nics, func(nic, queue int, vhost bool) string {
		f := nics[nic].Files[queue]
		name := fmt.Sprintf("tap-%d-%d", nic, queue)
		if vhost {
			f = nics[nic].VhostFiles[queue]
			name = fmt.Sprintf("vhost-%d-%d", nic, queue)
		}
		fileOf[name] = f
		return name
	})
	if err != nil {
		t.Fatal(err)
	}
	checkQMP(t, nics, cmds)
	k := 0
	for _, c := range cmds {
		if c.Execute != "getfd" {
			continue
		}
		name := c.Arguments["fdname"].(string)
		if k >= len(files) || fileOf[name] != files[k] {
			t.Errorf("getfd %d (%s) is not for ByFD's file %d", k, name, k)
		}
		k++
	}
	if k != len(files) {
		t.Errorf("%d getfd commands for %d files", k, len(files))
	}
}

func TestQMPCommandsErrors(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(n *sandbox.NIC)
		fdNames func(nic, queue int, vhost bool) string
		want    string
		is      error
	}{
		{name: "missing MAC", edit: func(n *sandbox.NIC) { n.GuestMAC = nil }, want: "guest MAC missing"},
		{name: "multicast MAC", edit: func(n *sandbox.NIC) { n.GuestMAC = mac(t, "01:00:5e:00:00:01") }, want: "multicast"},
		{name: "MTU out of range", edit: func(n *sandbox.NIC) { n.MTU = 67 }, want: "MTU 67 out of range"},
		{name: "queue count", edit: func(n *sandbox.NIC) { n.Queues = 257 }, want: "queue count 257"},
		{name: "files fewer than queues", edit: func(n *sandbox.NIC) { n.Files, n.Queues = files(t, 1), 2 }, want: "holds 1 tap queue files but has 2 queues"},
		{name: "vhost files without tap files", edit: func(n *sandbox.NIC) { n.VhostFiles = files(t, 1) }, want: "no open tap queue files", is: ErrNoFiles},
		{name: "vhost count mismatch", edit: func(n *sandbox.NIC) {
			n.Queues, n.Files, n.VhostFiles = 2, files(t, 2), files(t, 1)
		}, want: "1 vhost files for 2 tap queue files"},
		{name: "nil file", edit: func(n *sandbox.NIC) { n.Files = []*os.File{nil} }, want: "tap queue file 0 is nil"},
		{name: "name starts with digit", edit: func(*sandbox.NIC) {}, fdNames: func(nic, q int, v bool) string {
			if nic == 1 {
				return "1fd"
			}
			return "fd0"
		}, want: `fd name "1fd" starts with a digit`},
		{name: "name with colon", edit: func(*sandbox.NIC) {}, fdNames: func(nic, q int, v bool) string {
			if nic == 1 {
				return "fd:1"
			}
			return "fd0"
		}, want: `fd name "fd:1" holds ':'`},
		{name: "empty name", edit: func(*sandbox.NIC) {}, fdNames: func(nic, q int, v bool) string {
			if nic == 1 {
				return ""
			}
			return "fd0"
		}, want: "fd name missing"},
		{name: "name reused across NICs", edit: func(*sandbox.NIC) {}, fdNames: func(nic, q int, v bool) string {
			return fmt.Sprintf("fd-%d", q)
		}, want: `fd name "fd-0" is also that of the NIC 0 ("eth0") queue 0`},
		{name: "vhost name equal to tap name", edit: func(n *sandbox.NIC) { n.Vhost = true }, fdNames: func(nic, q int, v bool) string {
			return fmt.Sprintf("fd-%d-%d", nic, q)
		}, want: `fd name "fd-1-0" is also that of the NIC 1 ("net1") queue 0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nics := []sandbox.NIC{
				nic(t, "eth0", "tap_eth0", "0a:58:c0:00:02:0a", 1500),
				nic(t, "net1", "tap_net1", "0a:58:c6:33:64:07", 1500),
			}
			tt.edit(&nics[1])
			cmds, err := QMPCommands(nics, tt.fdNames)
			if err == nil {
				t.Fatalf("QMPCommands succeeded with %v; want an error", cmds)
			}
			if cmds != nil {
				t.Error("QMPCommands returned commands with an error")
			}
			for _, want := range []string{tt.want, `qemu: QMP: NIC 1 ("net1")`} {
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

func TestQMPUnplugCommandsGolden(t *testing.T) {
	tests := []struct {
		name string
		nics []sandbox.NIC
	}{
		{name: "empty"},
		{name: "multus_three_nics", nics: []sandbox.NIC{
			nic(t, "eth0", "tap_eth0", "0a:58:c0:00:02:0a", 1450),
			nic(t, "net1", "tap_net1", "0a:58:c6:33:64:07", 1500),
			nic(t, "net2", "tap_net2", "ce:8a:cb:00:71:2c", 9000),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmds := QMPUnplugCommands(tt.nics)
			if len(cmds) != 2*len(tt.nics) {
				t.Fatalf("%d commands for %d NICs", len(cmds), len(tt.nics))
			}
			for i := range tt.nics {
				del, ndel := cmds[2*i], cmds[2*i+1]
				if del.Execute != "device_del" || del.Arguments["id"] != DeviceID(tt.nics, i) ||
					ndel.Execute != "netdev_del" || ndel.Arguments["id"] != NetdevID(tt.nics, i) {
					t.Errorf("NIC %d: %+v then %+v", i, del, ndel)
				}
			}
			golden.Check(t, "qmp_unplug_"+tt.name, qmpLines(t, cmds))
		})
	}
}

func TestQMPLines(t *testing.T) {
	got, err := QMPLines([]QMPCommand{
		{Execute: "qmp_capabilities"},
		{Execute: "netdev_add", Arguments: map[string]any{"type": "tap", "id": "a<b>&c", "fds": "x"}},
	})
	want := `{"execute":"qmp_capabilities"}` + "\n" +
		`{"execute":"netdev_add","arguments":{"fds":"x","id":"a<b>&c","type":"tap"}}` + "\n"
	if err != nil || string(got) != want {
		t.Errorf("QMPLines = %q, %v; want %q", got, err, want)
	}
	if got, err := QMPLines(nil); err != nil || len(got) != 0 {
		t.Errorf("QMPLines(nil) = %q, %v", got, err)
	}
}

func TestQMPLinesErrors(t *testing.T) {
	tests := []struct {
		name string
		cmds []QMPCommand
		want string
	}{
		{"no name", []QMPCommand{{Execute: "getfd"}, {}}, "command 1: name missing"},
		{"unencodable argument", []QMPCommand{{Execute: "x", Arguments: map[string]any{"f": func() {}}}}, "command 0 (x)"},
	}
	for _, tt := range tests {
		got, err := QMPLines(tt.cmds)
		if err == nil || !strings.Contains(err.Error(), tt.want) || got != nil {
			t.Errorf("%s: QMPLines = %q, %v; want an error containing %q", tt.name, got, err, tt.want)
		}
	}
}
