package qemu

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/netbridge/netbridge/hypervisor/internal/nicdata"
	"github.com/netbridge/netbridge/hypervisor/internal/nictest"
	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/golden"
)

// mac and nic build test values (hypervisor/internal/nictest).
var (
	mac = nictest.MAC
	nic = nictest.NIC
)

// render formats args one flag/value pair per line, shell-quoted.
func render(args []string) []byte {
	var b bytes.Buffer
	for i := 0; i < len(args); i += 2 {
		b.WriteString(Quote(args[i:min(i+2, len(args))]))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func TestByNameGolden(t *testing.T) {
	multiqueue := nic(t, "eth0", "tap_eth0", "02:42:c0:00:02:0a", 1500)
	multiqueue.Queues = 4
	vhost := nic(t, "eth0", "tap_eth0", "02:42:c0:00:02:0a", 1500)
	vhost.Vhost = true
	vhostMQ := nic(t, "net1", "tap_net1", "0a:58:c6:33:64:07", 1450)
	vhostMQ.Vhost, vhostMQ.Queues = true, 2
	noMTU := nic(t, "eth0", "tap_eth0", "02:42:c0:00:02:0a", 0)
	noMTU.Queues = 0 // treated as one queue
	comma := nic(t, "eth0", "tap,0", "02:42:c0:00:02:0a", 1500)

	tests := []struct {
		name   string
		nics   []sandbox.NIC
		opts   Options
		wantID []string // device ids, checked against DeviceID
	}{
		{name: "empty"},
		{
			name:   "one_nic",
			nics:   []sandbox.NIC{nic(t, "eth0", "tap_eth0", "02:42:c0:00:02:0a", 1500)},
			wantID: []string{"nic-eth0"},
		},
		{
			name: "multus_three_nics",
			nics: []sandbox.NIC{
				nic(t, "eth0", "tap_eth0", "0a:58:c0:00:02:0a", 1450),
				nic(t, "net1", "tap_net1", "0a:58:c6:33:64:07", 1500),
				nic(t, "net2", "tap_net2", "ce:8a:cb:00:71:2c", 9000),
			},
			wantID: []string{"nic-eth0", "nic-net1", "nic-net2"},
		},
		{name: "multiqueue_4", nics: []sandbox.NIC{multiqueue}},
		{name: "vhost", nics: []sandbox.NIC{vhost}},
		{name: "vhost_multiqueue_2", nics: []sandbox.NIC{vhostMQ}},
		{name: "mtu_9000", nics: []sandbox.NIC{nic(t, "net1", "tap_net1", "0a:58:c6:33:64:07", 9000)}},
		{name: "no_mtu_queues_0", nics: []sandbox.NIC{noMTU}},
		{name: "tap_name_with_comma", nics: []sandbox.NIC{comma}},
		{
			name: "odd_names",
			nics: []sandbox.NIC{
				nic(t, "eth:0", "tap_a", "02:00:00:00:00:01", 0),
				nic(t, "eth_0", "tap_b", "02:00:00:00:00:02", 0),
				nic(t, "eth0", "tap_c", "02:00:00:00:00:03", 0),
				nic(t, "eth0", "tap_d", "02:00:00:00:00:04", 0),
				nic(t, "", "tap_e", "02:00:00:00:00:05", 0),
				nic(t, "vlan@100 é", "tap_f", "02:00:00:00:00:06", 0),
				nic(t, "eth0-2", "tap_g", "02:00:00:00:00:07", 0),
				nic(t, "0net.lan", "tap_h", "02:00:00:00:00:08", 0),
			},
			wantID: []string{
				"nic-eth_0-2", "nic-eth_0", "nic-eth0", "nic-eth0-3",
				"nic-if4", "nic-vlan_100__", "nic-eth0-2", "nic-0net.lan",
			},
		},
		{
			name: "driver_virtio_net_device_multiqueue",
			nics: []sandbox.NIC{multiqueue},
			opts: Options{Driver: "virtio-net-device"},
		},
		{
			name: "driver_non_transitional_multiqueue",
			nics: []sandbox.NIC{multiqueue},
			opts: Options{Driver: "virtio-net-pci-non-transitional"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, err := ByName(tt.nics, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if args == nil {
				t.Error("ByName returned a nil slice; want an empty one")
			}
			checkArgs(t, tt.nics, args)
			for i, want := range tt.wantID {
				if got := DeviceID(tt.nics, i); got != want {
					t.Errorf("DeviceID(%d) = %q, want %q", i, got, want)
				}
			}
			golden.Check(t, "byname_"+tt.name, render(args))
		})
	}
}

// checkArgs checks the shape every rendered argument vector must have: one
// -netdev/-device pair per NIC, in NIC order, with the exported ids.
func checkArgs(t *testing.T, nics []sandbox.NIC, args []string) {
	t.Helper()
	if len(args) != 4*len(nics) {
		t.Fatalf("got %d arguments for %d NICs, want %d", len(args), len(nics), 4*len(nics))
	}
	for i := range nics {
		a := args[4*i:]
		netdevID, deviceID := NetdevID(nics, i), DeviceID(nics, i)
		if !validID(netdevID) || !validID(deviceID) {
			t.Errorf("NIC %d: ids %q, %q are not valid QEMU ids", i, netdevID, deviceID)
		}
		if a[0] != "-netdev" || !strings.HasPrefix(a[1], "tap,id="+netdevID+",") {
			t.Errorf("NIC %d: netdev arguments %q, want -netdev tap,id=%s,...", i, a[:2], netdevID)
		}
		wantDev := ",id=" + deviceID + ",netdev=" + netdevID + ",mac=" + nics[i].GuestMAC.String()
		if a[2] != "-device" || !strings.Contains(a[3], wantDev) {
			t.Errorf("NIC %d: device arguments %q, want -device <driver>%s...", i, a[2:4], wantDev)
		}
	}
}

func TestIDs(t *testing.T) {
	names := []string{"eth0", "net1", "net1", "a/b", "a_b", "", "-x", "ünï"}
	nics := make([]sandbox.NIC, len(names))
	for i, n := range names {
		nics[i].Name = n
	}
	want := []string{"eth0", "net1", "net1-2", "a_b-2", "a_b", "if5", "-x", "_n_"}
	for i := range nics {
		if got := NetdevID(nics, i); got != "net-"+want[i] {
			t.Errorf("NetdevID(%d) for %q = %q, want %q", i, names[i], got, "net-"+want[i])
		}
		if got := DeviceID(nics, i); got != "nic-"+want[i] {
			t.Errorf("DeviceID(%d) for %q = %q, want %q", i, names[i], got, "nic-"+want[i])
		}
	}
	// A NIC's ids do not depend on the NICs after it when names are unique
	// and valid, which is the normal case (the sandbox orders NICs by name).
	if got := DeviceID(nics[:2], 1); got != "nic-net1" {
		t.Errorf("DeviceID of a prefix = %q, want nic-net1", got)
	}
}

// FuzzIDs checks that the ids of any list of names are valid and unique, and
// that a valid, first-seen name is used unchanged.
func FuzzIDs(f *testing.F) {
	f.Add("eth0\nnet1\nnet2")
	f.Add("eth:0\neth_0\neth0\neth0\n\neth0-2")
	f.Add("a\na-2\na\na")
	f.Fuzz(func(t *testing.T, joined string) {
		names := strings.Split(joined, "\n")
		nics := make([]sandbox.NIC, len(names))
		for i, n := range names {
			nics[i].Name = n
		}
		seen := map[string]bool{}
		firstValid := map[string]bool{}
		for i, n := range names {
			id := DeviceID(nics, i)
			if !validID(id) || !validID(NetdevID(nics, i)) {
				t.Fatalf("name %q: invalid id %q", n, id)
			}
			if seen[id] {
				t.Fatalf("name %q: duplicate id %q in %q", n, id, names)
			}
			seen[id] = true
			if n != "" && !strings.ContainsFunc(n, func(r rune) bool { return !nicdata.IDChar(r) }) && !firstValid[n] {
				firstValid[n] = true
				if id != "nic-"+n {
					t.Fatalf("valid name %q got id %q", n, id)
				}
			}
		}
	})
}

func TestByNameErrors(t *testing.T) {
	good := func() sandbox.NIC { return nic(t, "net1", "tap_net1", "0a:58:c6:33:64:07", 1500) }
	tests := []struct {
		name string
		edit func(n *sandbox.NIC)
		opts Options
		want string
	}{
		{name: "missing MAC", edit: func(n *sandbox.NIC) { n.GuestMAC = nil }, want: "guest MAC missing"},
		{name: "short MAC", edit: func(n *sandbox.NIC) { n.GuestMAC = n.GuestMAC[:4] }, want: "not a 6-byte"},
		{name: "multicast MAC", edit: func(n *sandbox.NIC) { n.GuestMAC = mac(t, "01:00:5e:00:00:01") }, want: "multicast"},
		{name: "MTU too small", edit: func(n *sandbox.NIC) { n.MTU = 67 }, want: "MTU 67 out of range"},
		{name: "MTU too large", edit: func(n *sandbox.NIC) { n.MTU = 65536 }, want: "MTU 65536 out of range"},
		{name: "negative MTU", edit: func(n *sandbox.NIC) { n.MTU = -1 }, want: "MTU -1 out of range"},
		{name: "negative queues", edit: func(n *sandbox.NIC) { n.Queues = -2 }, want: "queue count -2 out of range"},
		{name: "too many queues", edit: func(n *sandbox.NIC) { n.Queues = 257 }, want: "queue count 257 out of range 1..256"},
		{name: "no tap", edit: func(n *sandbox.NIC) { n.Tap = "" }, want: "tap name missing"},
		{name: "long tap", edit: func(n *sandbox.NIC) { n.Tap = "tap_0123456789ab" }, want: "longer than 15 bytes"},
		{name: "tap with slash", edit: func(n *sandbox.NIC) { n.Tap = "tap/0" }, want: "not a valid interface name"},
		{name: "tap with space", edit: func(n *sandbox.NIC) { n.Tap = "tap 0" }, want: "not a valid interface name"},
		{name: "bad driver", edit: func(*sandbox.NIC) {}, opts: Options{Driver: "virtio-net-pci,romfile=x"}, want: "invalid device driver"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nics := []sandbox.NIC{nic(t, "eth0", "tap_eth0", "02:42:c0:00:02:0a", 1500), good()}
			tt.edit(&nics[1])
			args, err := ByName(nics, tt.opts)
			if err == nil {
				t.Fatalf("ByName succeeded with %q; want an error", args)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if tt.opts.Driver == "" && !strings.Contains(err.Error(), `NIC 1 ("net1")`) {
				t.Errorf("error %q does not name the NIC", err)
			}
		})
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

// fdNIC returns a NIC holding queues tap files and, when vhost, as many vhost
// files (temporary files standing in for /dev/vhost-net).
func fdNIC(t *testing.T, name, m string, queues int, vhost bool) sandbox.NIC {
	n := nic(t, name, "tap_"+name, m, 1500)
	n.Queues = queues
	n.Files = files(t, queues)
	if vhost {
		n.Vhost = true
		for range queues {
			f, err := os.CreateTemp(t.TempDir(), "vhost-net")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			n.VhostFiles = append(n.VhostFiles, f)
		}
	}
	return n
}

// fdLists returns the fds= and vhostfds= lists of a -netdev value.
func fdLists(t *testing.T, netdev string) (fds, vhostfds []int) {
	t.Helper()
	parse := func(v string) []int {
		var out []int
		for _, s := range strings.Split(v, ":") {
			fd, err := strconv.Atoi(s)
			if err != nil {
				t.Fatalf("bad fd %q in %q", s, netdev)
			}
			out = append(out, fd)
		}
		return out
	}
	for _, kv := range strings.Split(netdev, ",") {
		if v, ok := strings.CutPrefix(kv, "fds="); ok {
			fds = parse(v)
		}
		if v, ok := strings.CutPrefix(kv, "vhostfds="); ok {
			vhostfds = parse(v)
		}
	}
	return fds, vhostfds
}

func TestByFDGolden(t *testing.T) {
	vhostNoFiles := fdNIC(t, "eth0", "02:42:c0:00:02:0a", 1, false)
	vhostNoFiles.Vhost = true
	vhostFilesOnly := fdNIC(t, "eth0", "02:42:c0:00:02:0a", 2, true)
	vhostFilesOnly.Vhost = false // vhost files alone imply vhost=on

	three := []sandbox.NIC{
		fdNIC(t, "eth0", "0a:58:c0:00:02:0a", 1, false),
		fdNIC(t, "net1", "0a:58:c6:33:64:07", 2, true),
		fdNIC(t, "net2", "ce:8a:cb:00:71:2c", 4, false),
	}
	tests := []struct {
		name    string
		nics    []sandbox.NIC
		firstFD int
	}{
		{name: "one_nic_first3", nics: three[:1], firstFD: 3},
		{name: "three_nics_first3", nics: three, firstFD: 3},
		{name: "three_nics_first5", nics: three, firstFD: 5},
		{name: "vhost_without_files", nics: []sandbox.NIC{vhostNoFiles}, firstFD: 3},
		{name: "vhost_files_imply_vhost", nics: []sandbox.NIC{vhostFilesOnly}, firstFD: 3},
		{name: "empty", firstFD: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, got, err := ByFD(tt.nics, Options{}, tt.firstFD)
			if err != nil {
				t.Fatal(err)
			}
			checkArgs(t, tt.nics, args)
			// files lists every NIC's queue files, then its vhost files.
			var want []*os.File
			for _, n := range tt.nics {
				want = append(want, n.Files...)
				want = append(want, n.VhostFiles...)
			}
			if len(got) != len(want) {
				t.Fatalf("got %d files, want %d", len(got), len(want))
			}
			for j := range want {
				if got[j] != want[j] {
					t.Errorf("files[%d] is not the expected file", j)
				}
			}
			// Every fd named in the arguments is firstFD+j of the file it
			// stands for.
			for i, n := range tt.nics {
				fds, vhostfds := fdLists(t, args[4*i+1])
				if len(fds) != len(n.Files) || len(vhostfds) != len(n.VhostFiles) {
					t.Fatalf("NIC %d: %d fds and %d vhostfds for %d and %d files", i, len(fds), len(vhostfds), len(n.Files), len(n.VhostFiles))
				}
				for q, fd := range fds {
					if j := fd - tt.firstFD; j < 0 || j >= len(got) || got[j] != n.Files[q] {
						t.Errorf("NIC %d queue %d: fd %d is not its tap file", i, q, fd)
					}
				}
				for q, fd := range vhostfds {
					if j := fd - tt.firstFD; j < 0 || j >= len(got) || got[j] != n.VhostFiles[q] {
						t.Errorf("NIC %d queue %d: vhost fd %d is not its vhost file", i, q, fd)
					}
				}
			}
			golden.Check(t, "byfd_"+tt.name, render(args))
		})
	}
}

func TestByFDErrors(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(n *sandbox.NIC)
		firstFD int
		want    string
		is      error
	}{
		{name: "no files", edit: func(n *sandbox.NIC) { n.Files, n.VhostFiles = nil, nil }, want: "netbridge exec", is: ErrNoFiles},
		{name: "vhost count mismatch", edit: func(n *sandbox.NIC) { n.VhostFiles = n.VhostFiles[:1] }, want: "1 vhost files for 2 tap queue files"},
		{name: "files fewer than queues", edit: func(n *sandbox.NIC) { n.Queues = 4 }, want: "holds 2 tap queue files but has 4 queues"},
		{name: "nil file", edit: func(n *sandbox.NIC) { n.Files[1] = nil }, want: "tap queue file 1 is nil"},
		{name: "nil vhost file", edit: func(n *sandbox.NIC) { n.VhostFiles[0] = nil }, want: "vhost file 0 is nil"},
		{name: "missing MAC", edit: func(n *sandbox.NIC) { n.GuestMAC = nil }, want: "guest MAC missing"},
		{name: "MTU out of range", edit: func(n *sandbox.NIC) { n.MTU = 65536 }, want: "MTU 65536"},
		{name: "first fd 2", edit: func(*sandbox.NIC) {}, firstFD: 2, want: "first fd 2 is below 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nics := []sandbox.NIC{
				fdNIC(t, "eth0", "0a:58:c0:00:02:0a", 1, false),
				fdNIC(t, "net1", "0a:58:c6:33:64:07", 2, true),
			}
			tt.edit(&nics[1])
			firstFD := tt.firstFD
			if firstFD == 0 {
				firstFD = 3
			}
			args, fs, err := ByFD(nics, Options{}, firstFD)
			if err == nil {
				t.Fatalf("ByFD succeeded with %q; want an error", args)
			}
			if args != nil || fs != nil {
				t.Errorf("ByFD returned arguments or files with an error")
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
		})
	}
}

// TestByFDExec runs a child process the way a VM runtime runs QEMU, with
// other ExtraFiles before the NIC files, and has it write each NIC queue's
// name to the fd the arguments give for it. Each message must arrive on the
// pipe of that very queue.
func TestByFDExec(t *testing.T) {
	type queue struct {
		r   *os.File
		tag string
	}
	var queues []queue
	nics := []sandbox.NIC{
		nic(t, "eth0", "tap_eth0", "0a:58:c0:00:02:0a", 1500),
		nic(t, "net1", "tap_net1", "0a:58:c6:33:64:07", 1500),
	}
	nics[1].Queues = 3
	for i := range nics {
		for q := range max(nics[i].Queues, 1) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close(); w.Close() })
			nics[i].Files = append(nics[i].Files, w)
			queues = append(queues, queue{r, fmt.Sprintf("%s/%d", nics[i].Name, q)})
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestByFDChild$")
	cmd.Stderr = os.Stderr
	// Two unrelated files first, as a runtime passing other fds would.
	cmd.ExtraFiles = files(t, 2)
	args, fs, err := ByFD(nics, Options{}, 3+len(cmd.ExtraFiles))
	if err != nil {
		t.Fatal(err)
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, fs...)
	cmd.Env = append(os.Environ(),
		"NETBRIDGE_QEMU_TEST_CHILD=1",
		"NETBRIDGE_QEMU_TEST_ARGS="+strings.Join(args, "\n"))
	if out, err := cmd.Output(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	for i := range nics {
		for _, f := range nics[i].Files {
			f.Close() // so that the reads below end
		}
	}
	for _, q := range queues {
		got, err := io.ReadAll(q.r)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != q.tag {
			t.Errorf("pipe of queue %s received %q", q.tag, got)
		}
	}
}

// TestByFDChild is the child of TestByFDExec: for every -netdev argument it
// writes "<NIC>/<queue>" to each fd listed in fds=.
func TestByFDChild(t *testing.T) {
	if os.Getenv("NETBRIDGE_QEMU_TEST_CHILD") != "1" {
		t.Skip("only runs as the child of TestByFDExec")
	}
	args := strings.Split(os.Getenv("NETBRIDGE_QEMU_TEST_ARGS"), "\n")
	for i := 0; i+1 < len(args); i += 2 {
		if args[i] != "-netdev" {
			continue
		}
		var name string
		for _, kv := range strings.Split(args[i+1], ",") {
			if v, ok := strings.CutPrefix(kv, "id=net-"); ok {
				name = v
			}
		}
		fds, _ := fdLists(t, args[i+1])
		for q, fd := range fds {
			f := os.NewFile(uintptr(fd), "queue")
			if _, err := fmt.Fprintf(f, "%s/%d", name, q); err != nil {
				t.Fatalf("writing to fd %d: %v", fd, err)
			}
		}
	}
}

func TestFDLayoutMatchesByFD(t *testing.T) {
	nics := []sandbox.NIC{
		fdNIC(t, "eth0", "0a:58:c0:00:02:0a", 1, false),
		fdNIC(t, "net1", "0a:58:c6:33:64:07", 2, true),
		fdNIC(t, "net2", "ce:8a:cb:00:71:2c", 4, false),
	}
	for _, first := range []int{3, 7} {
		want, _, err := ByFD(nics, Options{}, first)
		if err != nil {
			t.Fatal(err)
		}
		bare := slices.Clone(nics)
		for i := range bare {
			bare[i].Files, bare[i].VhostFiles = nil, nil
		}
		got, err := FDLayout(bare, Options{}, first)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("FDLayout from %d =\n%q\nByFD =\n%q", first, got, want)
		}
	}
}

func TestByNameRefusesMacvtap(t *testing.T) {
	n := nic(t, "eth0", "nbm-eth0", "0a:58:c0:00:02:0a", 1500)
	n.Device = "/run/netbridge/x.dev/nbm-eth0"
	if _, err := ByName([]sandbox.NIC{n}, Options{}); !errors.Is(err, ErrFDOnly) {
		t.Errorf("ByName of a macvtap = %v, want ErrFDOnly", err)
	}
	if args, err := FDLayout([]sandbox.NIC{n}, Options{}, 3); err != nil || !strings.Contains(strings.Join(args, " "), "fds=3") {
		t.Errorf("FDLayout of a macvtap = %q, %v", args, err)
	}
}
