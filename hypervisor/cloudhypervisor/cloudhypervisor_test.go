package cloudhypervisor

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"slices"
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
	nic = nictest.NIC
)

// macvtap returns a macvtap NIC with the given queue count.
func macvtap(t testing.TB, queues int) sandbox.NIC {
	n := nic(t, "eth0", "nbm-eth0", "0a:58:c0:00:02:0a", 1500)
	n.Model, n.Device, n.MacvtapMode, n.Queues = "macvtap", "/run/netbridge/sb.dev/nbm-eth0", "bridge", queues
	return n
}

// multus returns the three NICs of a Multus pod: eth0, net1, net2.
func multus(t testing.TB) []sandbox.NIC {
	return []sandbox.NIC{
		nic(t, "eth0", "tap_eth0", "0a:58:c0:00:02:0a", 1450),
		nic(t, "net1", "tap_net1", "0a:58:c6:33:64:07", 1500),
		nic(t, "net2", "tap_net2", "ce:8a:cb:00:71:2c", 9000),
	}
}

// files returns n pipe write ends, closed at the end of the test.
func files(t *testing.T, n int) []*os.File {
	t.Helper()
	var fs []*os.File
	for range n {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(); w.Close() })
		fs = append(fs, w)
	}
	return fs
}

// lines joins values one per line.
func lines(values []string) []byte {
	var b strings.Builder
	for _, v := range values {
		b.WriteString(v)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// splitOptions splits a --net value the way Cloud Hypervisor's option parser
// does: at commas outside brackets and double quotes; double quotes are
// dropped; each option is split at its first '='.
func splitOptions(t *testing.T, v string) map[string]string {
	t.Helper()
	var parts []string
	var cur strings.Builder
	depth, quoted := 0, false
	for _, c := range v {
		switch {
		case c == '[':
			depth++
			cur.WriteRune(c)
		case c == ']':
			depth--
			if depth < 0 {
				t.Fatalf("unbalanced ']' in %q", v)
			}
			cur.WriteRune(c)
		case c == '"':
			quoted = !quoted
		case c == ',' && depth == 0 && !quoted:
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(c)
		}
	}
	if depth != 0 || quoted {
		t.Fatalf("unbalanced brackets or quotes in %q", v)
	}
	parts = append(parts, cur.String())
	opts := make(map[string]string)
	for _, p := range parts {
		k, val, ok := strings.Cut(p, "=")
		if !ok {
			t.Fatalf("option %q of %q has no value", p, v)
		}
		if _, dup := opts[k]; dup {
			t.Fatalf("option %q twice in %q", k, v)
		}
		opts[k] = val
	}
	return opts
}

// fdList parses a bracketed fd list.
func fdList(t *testing.T, v string) []int {
	t.Helper()
	inner, open := strings.CutPrefix(v, "[")
	inner, closed := strings.CutSuffix(inner, "]")
	if !open || !closed {
		t.Fatalf("fd list %q is not bracketed", v)
	}
	var fds []int
	for _, s := range strings.Split(inner, ",") {
		fd, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("bad fd %q in %q", s, v)
		}
		fds = append(fds, fd)
	}
	return fds
}

// checkValues checks what every rendered --net list must satisfy: one value
// per NIC, the options Cloud Hypervisor knows, num_queues twice the queues,
// an fd list of consecutive fds from firstFD, the guest MAC and unique ids.
func checkValues(t *testing.T, nics []sandbox.NIC, values []string, firstFD int, byFD bool) {
	t.Helper()
	if len(values) != len(nics) {
		t.Fatalf("%d values for %d NICs", len(values), len(nics))
	}
	known := []string{"tap", "fd", "mac", "mtu", "num_queues", "id"}
	next := firstFD
	ids := make(map[string]bool)
	for i, v := range values {
		opts := splitOptions(t, v)
		for k := range opts {
			if !slices.Contains(known, k) {
				t.Errorf("NIC %d: unexpected option %q in %q", i, k, v)
			}
		}
		queues := max(nics[i].Queues, 1)
		if got := opts["num_queues"]; got != strconv.Itoa(2*queues) {
			t.Errorf("NIC %d: num_queues=%s for %d queues", i, got, queues)
		}
		if byFD {
			if _, ok := opts["tap"]; ok {
				t.Errorf("NIC %d: tap= in the fd form: %q", i, v)
			}
			fds := fdList(t, opts["fd"])
			if 2*len(fds) != 2*queues {
				t.Errorf("NIC %d: %d fds for num_queues=%s", i, len(fds), opts["num_queues"])
			}
			for _, fd := range fds {
				if fd != next {
					t.Errorf("NIC %d: fd %d, want %d", i, fd, next)
				}
				next++
			}
		} else {
			if _, ok := opts["fd"]; ok {
				t.Errorf("NIC %d: fd= in the by-name form: %q", i, v)
			}
			if opts["tap"] != nics[i].Tap {
				t.Errorf("NIC %d: tap %q, want %q", i, opts["tap"], nics[i].Tap)
			}
		}
		if opts["mac"] != nics[i].GuestMAC.String() {
			t.Errorf("NIC %d: mac %q, want %q", i, opts["mac"], nics[i].GuestMAC)
		}
		if id := opts["id"]; id != DeviceID(nics, i) || strings.HasPrefix(id, "__") || ids[id] {
			t.Errorf("NIC %d: id %q (DeviceID %q, reserved or used twice)", i, id, DeviceID(nics, i))
		} else {
			ids[id] = true
		}
	}
}

func TestNetArgsGolden(t *testing.T) {
	multiqueue := nic(t, "eth0", "tap_eth0", "02:42:c0:00:02:0a", 1500)
	multiqueue.Queues = 4
	vhost := nic(t, "eth0", "tap_eth0", "02:42:c0:00:02:0a", 1500)
	vhost.Vhost = true
	noMTU := nic(t, "eth0", "tap_eth0", "02:42:c0:00:02:0a", 0)
	noMTU.Queues = 0 // one queue
	mixed := multus(t)
	mixed[1].Queues, mixed[2].Queues = 2, 4
	held := nic(t, "eth0", "tap_eth0", "02:42:c0:00:02:0a", 1500)
	held.Queues, held.Files = 2, files(t, 2)

	tests := []struct {
		name    string
		nics    []sandbox.NIC
		byFD    bool
		firstFD int
	}{
		{name: "byname_empty"},
		{name: "byname_one_nic", nics: []sandbox.NIC{nic(t, "eth0", "tap_eth0", "02:42:c0:00:02:0a", 1500)}},
		{name: "byname_multus_three_nics", nics: multus(t)},
		{name: "byname_multiqueue_4", nics: []sandbox.NIC{multiqueue}},
		{name: "byname_vhost_ignored", nics: []sandbox.NIC{vhost}},
		{name: "byname_mtu_9000", nics: []sandbox.NIC{nic(t, "net1", "tap_net1", "0a:58:c6:33:64:07", 9000)}},
		{name: "byname_no_mtu_queues_0", nics: []sandbox.NIC{noMTU}},
		{name: "byname_tap_name_with_comma", nics: []sandbox.NIC{nic(t, "eth0", "tap,0", "02:42:c0:00:02:0a", 1500)}},
		{name: "byfd_empty", byFD: true, firstFD: 3},
		{name: "byfd_one_nic_first3", nics: []sandbox.NIC{nic(t, "eth0", "tap_eth0", "02:42:c0:00:02:0a", 1500)}, byFD: true, firstFD: 3},
		{name: "byfd_multus_three_nics_first3", nics: mixed, byFD: true, firstFD: 3},
		{name: "byfd_multus_three_nics_first5", nics: mixed, byFD: true, firstFD: 5},
		{name: "byfd_multiqueue_4", nics: []sandbox.NIC{multiqueue}, byFD: true, firstFD: 3},
		{name: "byfd_vhost_ignored", nics: []sandbox.NIC{vhost}, byFD: true, firstFD: 3},
		{name: "byfd_mtu_9000", nics: []sandbox.NIC{nic(t, "net1", "tap_net1", "0a:58:c6:33:64:07", 9000)}, byFD: true, firstFD: 3},
		{name: "byfd_macvtap", nics: []sandbox.NIC{macvtap(t, 1)}, byFD: true, firstFD: 3},
		{name: "byfd_macvtap_multiqueue_2", nics: []sandbox.NIC{macvtap(t, 2)}, byFD: true, firstFD: 3},
		{name: "byfd_holding_files", nics: []sandbox.NIC{held}, byFD: true, firstFD: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			values, err := NetArgs(tt.nics, tt.firstFD, tt.byFD)
			if err != nil {
				t.Fatal(err)
			}
			if values == nil {
				t.Error("NetArgs returned a nil slice; want an empty one")
			}
			checkValues(t, tt.nics, values, tt.firstFD, tt.byFD)
			golden.Check(t, "netargs_"+tt.name, lines(values))
		})
	}
}

func TestNetArgsByNameIgnoresFirstFD(t *testing.T) {
	nics := multus(t)
	a, err := NetArgs(nics, 3, false)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NetArgs(nics, 0, false)
	if err != nil || !slices.Equal(a, b) {
		t.Errorf("NetArgs by name with first fd 0 = %q, %v; want %q", b, err, a)
	}
}

func TestNetArgsErrors(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(n *sandbox.NIC)
		byFD    bool
		firstFD int
		want    string
		is      error
	}{
		{name: "missing MAC", edit: func(n *sandbox.NIC) { n.GuestMAC = nil }, want: "guest MAC missing"},
		{name: "short MAC", edit: func(n *sandbox.NIC) { n.GuestMAC = n.GuestMAC[:5] }, want: "not a 6-byte Ethernet address"},
		{name: "multicast MAC", edit: func(n *sandbox.NIC) { n.GuestMAC = mac(t, "01:00:5e:00:00:01") }, want: "multicast"},
		{name: "MTU below 1280", edit: func(n *sandbox.NIC) { n.MTU = 1279 }, want: "MTU 1279 out of range 1280..65535"},
		{name: "MTU above 65535", edit: func(n *sandbox.NIC) { n.MTU = 65536 }, want: "MTU 65536 out of range"},
		{name: "MTU below 1280 by fd", edit: func(n *sandbox.NIC) { n.MTU = 576 }, byFD: true, want: "MTU 576 out of range"},
		{name: "negative queues", edit: func(n *sandbox.NIC) { n.Queues = -1 }, want: "queue count -1 out of range 1..256"},
		{name: "too many queues", edit: func(n *sandbox.NIC) { n.Queues = 257 }, byFD: true, want: "queue count 257 out of range"},
		{name: "macvtap by name", edit: func(n *sandbox.NIC) { n.Device = "/run/netbridge/x.dev/nbm-net1" }, want: "only be handed to Cloud Hypervisor by fd", is: ErrFDOnly},
		{name: "tap missing", edit: func(n *sandbox.NIC) { n.Tap = "" }, want: "tap name missing"},
		{name: "tap too long", edit: func(n *sandbox.NIC) { n.Tap = "tap_0123456789ab" }, want: "longer than 15 bytes"},
		{name: "tap with slash", edit: func(n *sandbox.NIC) { n.Tap = "tap/0" }, want: "not a valid interface name"},
		{name: "tap with quote", edit: func(n *sandbox.NIC) { n.Tap = `tap"0` }, want: "cannot be written in a --net value"},
		{name: "tap with bracket", edit: func(n *sandbox.NIC) { n.Tap = "tap[0]" }, want: "cannot be written in a --net value"},
		{name: "files fewer than queues", edit: func(n *sandbox.NIC) { n.Queues, n.Files = 2, files(t, 1) }, byFD: true, want: "holds 1 tap queue files but has 2 queues"},
		{name: "first fd 2", edit: func(*sandbox.NIC) {}, byFD: true, firstFD: 2, want: "first fd 2 is below 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nics := multus(t)[:2]
			tt.edit(&nics[1])
			firstFD := tt.firstFD
			if firstFD == 0 {
				firstFD = 3
			}
			values, err := NetArgs(nics, firstFD, tt.byFD)
			if err == nil {
				t.Fatalf("NetArgs succeeded with %q; want an error", values)
			}
			if values != nil {
				t.Errorf("NetArgs returned values with an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
			if tt.firstFD == 0 && !strings.Contains(err.Error(), `NIC 1 ("net1")`) {
				t.Errorf("error %q does not name the NIC", err)
			}
			if !strings.HasPrefix(err.Error(), "cloudhypervisor: ") {
				t.Errorf("error %q does not start with the package name", err)
			}
		})
	}
}

func TestFiles(t *testing.T) {
	nics := multus(t)
	nics[1].Queues = 2
	nics[2].Queues = 4
	nics[1].Vhost = true
	var want []*os.File
	for i := range nics {
		nics[i].Files = files(t, nics[i].Queues)
		want = append(want, nics[i].Files...)
	}
	nics[1].VhostFiles = files(t, 2) // not passed to Cloud Hypervisor
	got, err := Files(nics)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Files returned %d files not in NIC and queue order", len(got))
	}
	// The fd form numbers exactly these files.
	values, err := NetArgs(nics, 3, true)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, v := range values {
		total += len(fdList(t, splitOptions(t, v)["fd"]))
	}
	if total != len(got) {
		t.Errorf("NetArgs numbers %d fds, Files returns %d files", total, len(got))
	}
}

func TestFilesErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(n *sandbox.NIC)
		want string
		is   error
	}{
		{name: "no files", edit: func(n *sandbox.NIC) { n.Files = nil }, want: "netbridge exec", is: ErrNoFiles},
		{name: "files fewer than queues", edit: func(n *sandbox.NIC) { n.Queues = 3 }, want: "holds 2 tap queue files but has 3 queues"},
		{name: "nil file", edit: func(n *sandbox.NIC) { n.Files[1] = nil }, want: "tap queue file 1 is nil"},
		{name: "bad queue count", edit: func(n *sandbox.NIC) { n.Queues = -2 }, want: "queue count -2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nics := multus(t)[:2]
			nics[0].Files = files(t, 1)
			nics[1].Queues, nics[1].Files = 2, files(t, 2)
			tt.edit(&nics[1])
			fs, err := Files(nics)
			if err == nil {
				t.Fatalf("Files succeeded with %d files; want an error", len(fs))
			}
			for _, want := range []string{tt.want, `cloudhypervisor: NIC 1 ("net1")`} {
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

func TestAddNetBodyGolden(t *testing.T) {
	multiqueue := nic(t, "eth0", "tap_eth0", "02:42:c0:00:02:0a", 1500)
	multiqueue.Queues = 4
	vhost := nic(t, "eth0", "tap_eth0", "02:42:c0:00:02:0a", 1500)
	vhost.Vhost = true
	noMTU := nic(t, "eth0", "tap_eth0", "02:42:c0:00:02:0a", 0)
	three := multus(t)

	tests := []struct {
		name   string
		nic    sandbox.NIC
		id     string
		byName bool
	}{
		{name: "one_nic", nic: three[0], id: DeviceID(three, 0)},
		{name: "multus_net2_mtu_9000", nic: three[2], id: DeviceID(three, 2)},
		{name: "multiqueue_4", nic: multiqueue, id: "nic-eth0"},
		{name: "vhost_ignored", nic: vhost, id: "nic-eth0"},
		{name: "macvtap", nic: macvtap(t, 2), id: "nic-eth0"},
		{name: "no_id_no_mtu", nic: noMTU},
		{name: "byname_one_nic", nic: three[0], id: "nic-eth0", byName: true},
		{name: "byname_multiqueue_4", nic: multiqueue, id: "nic-eth0", byName: true},
		{name: "byname_tap_name_with_comma", nic: nic(t, "eth0", "tap,0", "02:42:c0:00:02:0a", 1500), id: "nic-eth0", byName: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			render := AddNetBody
			if tt.byName {
				render = AddNetBodyByName
			}
			body, err := render(tt.nic, tt.id)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			dec := json.NewDecoder(strings.NewReader(string(body)))
			dec.UseNumber()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			want := map[string]any{
				"mac":        tt.nic.GuestMAC.String(),
				"num_queues": json.Number(strconv.Itoa(2 * max(tt.nic.Queues, 1))),
			}
			if tt.id != "" {
				want["id"] = tt.id
			}
			if tt.nic.MTU > 0 {
				want["mtu"] = json.Number(strconv.Itoa(tt.nic.MTU))
			}
			if tt.byName {
				want["tap"] = tt.nic.Tap
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("body %s decodes to %v, want %v", body, got, want)
			}
			golden.Check(t, "addnet_"+tt.name, append(body, '\n'))
		})
	}
}

func TestAddNetBodyErrors(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(n *sandbox.NIC)
		id     string
		byName bool
		want   string
		is     error
	}{
		{name: "missing MAC", edit: func(n *sandbox.NIC) { n.GuestMAC = nil }, want: "guest MAC missing"},
		{name: "multicast MAC", edit: func(n *sandbox.NIC) { n.GuestMAC = mac(t, "33:33:00:00:00:01") }, want: "multicast"},
		{name: "MTU below 1280", edit: func(n *sandbox.NIC) { n.MTU = 1000 }, want: "MTU 1000 out of range"},
		{name: "too many queues", edit: func(n *sandbox.NIC) { n.Queues = 300 }, want: "queue count 300"},
		{name: "reserved id", edit: func(*sandbox.NIC) {}, id: "__net1", want: `device id "__net1" starts with "__"`},
		{name: "macvtap by name", edit: func(n *sandbox.NIC) { n.Device = "/run/netbridge/x.dev/nbm-net1" }, byName: true, want: "by fd", is: ErrFDOnly},
		{name: "tap missing by name", edit: func(n *sandbox.NIC) { n.Tap = "" }, byName: true, want: "tap name missing"},
		{name: "tap invalid by name", edit: func(n *sandbox.NIC) { n.Tap = "tap 1" }, byName: true, want: "not a valid interface name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := multus(t)[1]
			tt.edit(&n)
			render := AddNetBody
			if tt.byName {
				render = AddNetBodyByName
			}
			body, err := render(n, tt.id)
			if err == nil {
				t.Fatalf("succeeded with %s; want an error", body)
			}
			if body != nil {
				t.Errorf("returned a body with an error")
			}
			for _, want := range []string{tt.want, `cloudhypervisor: NIC "net1"`} {
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

// TestAddNetBodyMatchesNetArgs checks that the body and the --net value of a
// NIC say the same: mac, mtu, num_queues and id.
func TestAddNetBodyMatchesNetArgs(t *testing.T) {
	nics := multus(t)
	nics[2].Queues = 4
	values, err := NetArgs(nics, 3, true)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range values {
		opts := splitOptions(t, v)
		body, err := AddNetBody(nics[i], DeviceID(nics, i))
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			ID        string `json:"id"`
			MAC       string `json:"mac"`
			MTU       int    `json:"mtu"`
			NumQueues int    `json:"num_queues"`
		}
		if err := json.Unmarshal(body, &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.ID != opts["id"] || cfg.MAC != opts["mac"] || strconv.Itoa(cfg.MTU) != opts["mtu"] || strconv.Itoa(cfg.NumQueues) != opts["num_queues"] {
			t.Errorf("NIC %d: body %s disagrees with --net %s", i, body, v)
		}
	}
}
