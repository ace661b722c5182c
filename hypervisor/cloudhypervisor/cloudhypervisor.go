// Package cloudhypervisor renders what Cloud Hypervisor needs to attach the
// taps of a wired sandbox to a guest: the values of its --net option
// ([NetArgs]) and the JSON body of its vm.add-net API request ([AddNetBody],
// [AddNetBodyByName]). It renders from plain data and never touches the
// kernel or a socket.
//
// Cloud Hypervisor implements virtio-net in the VMM process itself and has no
// vhost-net backend (its vhost_user option is for a vhost-user socket, which
// a tap is not), so a NIC's Vhost flag and VhostFiles are ignored.
package cloudhypervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/netbridge/netbridge/hypervisor/internal/nicdata"
	"github.com/netbridge/netbridge/sandbox"
)

// MinMTU is the smallest mtu= Cloud Hypervisor accepts (its virtio-net
// MIN_MTU); a NIC with a smaller non-zero MTU is refused.
const MinMTU = 1280

// ErrFDOnly is wrapped by the error the by-name renderers return for a
// macvtap NIC (one with a Device): Cloud Hypervisor opens tap= names through
// /dev/net/tun, which cannot open a macvtap.
var ErrFDOnly = errors.New("a macvtap can only be handed to Cloud Hypervisor by fd (use the fd form)")

// ErrNoFiles is wrapped by the error [Files] returns for a NIC that holds no
// open tap queue files.
var ErrNoFiles = errors.New("no open tap queue files: set the sandbox up holding fds, or start Cloud Hypervisor through `netbridge exec`")

// DeviceID returns the Cloud Hypervisor device id of nics[i], which the
// renderers put in id=: the same id as the QEMU device of that NIC
// (qemu.DeviceID: "nic-" and the NIC's id base, [nicdata.IDBases]). Such ids never
// start with "__", which Cloud Hypervisor reserves, and need no quoting in
// --net. It panics if i is out of range.
func DeviceID(nics []sandbox.NIC, i int) string {
	return nicdata.DevicePrefix + nicdata.IDBases(nics)[i]
}

// NetArgs returns one value of Cloud Hypervisor's --net option per NIC, in
// NIC order, so that the guest enumerates the NICs in the same order. Pass
// them as "--net V1 V2 ..." or as one "--net V" each; both are accepted.
//
// With byFD false, Cloud Hypervisor opens each tap by name, and must run in
// the sandbox network namespace:
//
//	tap=<tap>,mac=<guest MAC>[,mtu=<MTU>],num_queues=<2*queues>,id=<device id>
//
// With byFD true, it gets each NIC's open tap queues as inherited file
// descriptors, numbered from firstFD in NIC order and queue order (as
// [qemu.FDLayout] numbers them, without vhost fds):
//
//	fd=[<fd>,...],mac=<guest MAC>[,mtu=<MTU>],num_queues=<2*queues>,id=<device id>
//
// The fd list is always bracketed, which Cloud Hypervisor's list syntax needs
// for more than one fd and accepts for one. num_queues counts rx and tx
// queues, two per tap queue (Queues, 0 read as 1); Cloud Hypervisor refuses
// an fd list whose length is not num_queues/2, and a named tap whose
// multi-queue flag does not match num_queues > 2. The id is [DeviceID]. The
// ip, mask and host_mac options are never rendered, so Cloud Hypervisor
// leaves the tap's addresses and MAC alone.
//
// mtu= is rendered when MTU is set: Cloud Hypervisor advertises it to the
// guest (VIRTIO_NET_F_MTU) and also sets it on the device, by the device's
// name, in its own network namespace, also in the fd form. A VMM that gets
// fds but runs outside the sandbox network namespace must therefore get NICs
// with MTU 0 (and the guest MTU from the guest configuration).
//
// A macvtap NIC (Device set) is only rendered in the fd form. In the fd
// form, the files to pass, in order, as exec.Cmd.ExtraFiles after any already
// there, are those of [Files]; firstFD is then 3+len(cmd.ExtraFiles) before
// they are appended, and must be at least 3. firstFD is ignored when byFD is
// false.
func NetArgs(nics []sandbox.NIC, firstFD int, byFD bool) ([]string, error) {
	if byFD && firstFD < 3 {
		return nil, fmt.Errorf("cloudhypervisor: first fd %d is below 3 (0, 1 and 2 are stdio; Cloud Hypervisor refuses them)", firstFD)
	}
	args := make([]string, 0, len(nics))
	next := firstFD
	for i := range nics {
		n := &nics[i]
		queues, err := checkNIC(n)
		if err != nil {
			return nil, fmt.Errorf("cloudhypervisor: %s: %w", nicdata.Label(n, i), err)
		}
		var source string
		if byFD {
			if len(n.Files) > 0 && len(n.Files) != queues {
				return nil, fmt.Errorf("cloudhypervisor: %s: holds %d tap queue files but has %d queues", nicdata.Label(n, i), len(n.Files), queues)
			}
			fds := make([]string, queues)
			for q := range fds {
				fds[q] = strconv.Itoa(next)
				next++
			}
			source = "fd=[" + strings.Join(fds, ",") + "]"
		} else {
			tap, err := tapOption(n)
			if err != nil {
				return nil, fmt.Errorf("cloudhypervisor: %s: %w", nicdata.Label(n, i), err)
			}
			source = "tap=" + tap
		}
		opts := []string{source, "mac=" + n.GuestMAC.String()}
		if n.MTU > 0 {
			opts = append(opts, "mtu="+strconv.Itoa(n.MTU))
		}
		opts = append(opts,
			"num_queues="+strconv.Itoa(2*queues),
			"id="+DeviceID(nics, i))
		args = append(args, strings.Join(opts, ","))
	}
	return args, nil
}

// Files returns the open tap queue files of every NIC, NIC after NIC, in the
// order the fd form of [NetArgs] numbers them. Each NIC must hold exactly as
// many non-nil Files as it has queues. Vhost files are not included: Cloud
// Hypervisor has no use for them. The caller keeps owning the files.
func Files(nics []sandbox.NIC) ([]*os.File, error) {
	var files []*os.File
	for i := range nics {
		n := &nics[i]
		queues, err := n.QueueCount()
		if err != nil {
			return nil, fmt.Errorf("cloudhypervisor: %s: %w", nicdata.Label(n, i), err)
		}
		switch {
		case len(n.Files) == 0:
			return nil, fmt.Errorf("cloudhypervisor: %s: %w", nicdata.Label(n, i), ErrNoFiles)
		case len(n.Files) != queues:
			return nil, fmt.Errorf("cloudhypervisor: %s: holds %d tap queue files but has %d queues", nicdata.Label(n, i), len(n.Files), queues)
		}
		for q, f := range n.Files {
			if f == nil {
				return nil, fmt.Errorf("cloudhypervisor: %s: tap queue file %d is nil", nicdata.Label(n, i), q)
			}
		}
		files = append(files, n.Files...)
	}
	return files, nil
}

// netConfig is the part of Cloud Hypervisor's NetConfig (the vm.add-net
// body) that the renderers fill; every other field keeps its default.
type netConfig struct {
	ID        string `json:"id,omitempty"`
	Tap       string `json:"tap,omitempty"`
	MAC       string `json:"mac"`
	MTU       int    `json:"mtu,omitempty"`
	NumQueues int    `json:"num_queues"`
}

// AddNetBody returns the JSON body of a PUT /api/v1/vm.add-net request that
// hot-plugs nic by fd:
//
//	{"id":"<id>","mac":"<guest MAC>","mtu":<MTU>,"num_queues":<2*queues>}
//
// The tap queue fds do not appear in the body: Cloud Hypervisor takes them
// only as SCM_RIGHTS ancillary data on the sendmsg that carries the HTTP
// request (and ignores fd numbers in a body). The caller sends exactly one fd
// per queue (Queues, 0 read as 1), in queue order, which is what num_queues
// announces. There is no "tap" member: Cloud Hypervisor prefers a tap name to
// the fds it was sent, so a named body would leave the fds unused. The id is
// left out when empty (Cloud Hypervisor then makes one up and returns it);
// [DeviceID] gives the one [NetArgs] uses. "mtu" is left out when MTU is 0;
// see [NetArgs] for what Cloud Hypervisor does with it. Macvtap NICs are
// accepted.
func AddNetBody(nic sandbox.NIC, id string) ([]byte, error) {
	return addNetBody(&nic, id, false)
}

// AddNetBodyByName returns the JSON body of a PUT /api/v1/vm.add-net request
// that makes a Cloud Hypervisor running in the sandbox network namespace open
// nic's tap by name, with no fds sent:
//
//	{"id":"<id>","tap":"<tap>","mac":"<guest MAC>","mtu":<MTU>,"num_queues":<2*queues>}
//
// It refuses a macvtap NIC with an error wrapping [ErrFDOnly]. See
// [AddNetBody] for the other members.
func AddNetBodyByName(nic sandbox.NIC, id string) ([]byte, error) {
	return addNetBody(&nic, id, true)
}

func addNetBody(n *sandbox.NIC, id string, byName bool) ([]byte, error) {
	label := fmt.Sprintf("NIC %q", n.Name)
	queues, err := checkNIC(n)
	if err != nil {
		return nil, fmt.Errorf("cloudhypervisor: %s: %w", label, err)
	}
	if strings.HasPrefix(id, "__") {
		return nil, fmt.Errorf("cloudhypervisor: %s: device id %q starts with \"__\", which Cloud Hypervisor reserves", label, id)
	}
	cfg := netConfig{ID: id, MAC: n.GuestMAC.String(), MTU: n.MTU, NumQueues: 2 * queues}
	if byName {
		if n.Device != "" {
			return nil, fmt.Errorf("cloudhypervisor: %s: %w", label, ErrFDOnly)
		}
		if err := nicdata.TapName(n.Tap); err != nil {
			return nil, fmt.Errorf("cloudhypervisor: %s: %w", label, err)
		}
		cfg.Tap = n.Tap
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("cloudhypervisor: %s: encoding the body: %w", label, err)
	}
	return b, nil
}

// checkNIC validates what every form renders of n and returns its queue
// count (at least 1).
func checkNIC(n *sandbox.NIC) (int, error) {
	if err := sandbox.CheckGuestMAC(n.GuestMAC); err != nil {
		return 0, err
	}
	if n.MTU != 0 && (n.MTU < MinMTU || n.MTU > 65535) {
		return 0, fmt.Errorf("MTU %d out of range %d..65535 (Cloud Hypervisor refuses smaller MTUs; use 0 to leave it out)", n.MTU, MinMTU)
	}
	return n.QueueCount()
}

// tapOption returns the tap= value of n: its tap name, double-quoted when it
// holds a comma. Cloud Hypervisor's option parser drops every double quote
// and counts brackets even inside quotes, so a name with '"', '[' or ']'
// cannot be expressed and is refused, as is a macvtap.
func tapOption(n *sandbox.NIC) (string, error) {
	if n.Device != "" {
		return "", ErrFDOnly
	}
	if err := nicdata.TapName(n.Tap); err != nil {
		return "", err
	}
	if strings.ContainsAny(n.Tap, `"[]`) {
		return "", fmt.Errorf("tap name %q cannot be written in a --net value (it holds '\"', '[' or ']'); use the fd form", n.Tap)
	}
	if strings.Contains(n.Tap, ",") {
		return `"` + n.Tap + `"`, nil
	}
	return n.Tap, nil
}
