// Package firecracker renders what Firecracker needs to attach the taps of a
// wired sandbox to a guest: the "network-interfaces" array of its
// configuration file ([NetworkInterfaces]) and the body of its
// PUT /network-interfaces/{iface_id} API request ([PutBody]). It renders from
// plain data and never touches the kernel or a socket.
//
// Firecracker opens each tap itself, by name (host_dev_name), with a single
// queue, and has no vhost-net backend. So it refuses multi-queue NICs
// ([ErrMultiQueue]) and macvtap NICs ([ErrMacvtap]), and ignores Vhost and
// VhostFiles. The tap must exist in the network namespace Firecracker runs
// in (the jailer's --netns), must not be multi-queue, and no other file may
// stay attached to it: a NIC's Files must be closed before Firecracker
// starts, or it fails with EBUSY.
//
// The NetworkInterface "mtu" member, which advertises VIRTIO_NET_F_MTU, is
// never rendered: the project's research notes (specs.md §5.2) list it as
// unreleased, and Firecracker refuses unknown members, so every release
// without it would refuse the whole interface (Firecracker's own changelog
// lists it under 1.16.0). The guest therefore keeps its default MTU unless
// the guest configuration (see package guest) sets it.
package firecracker

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/netbridge/netbridge/hypervisor/internal/nicdata"
	"github.com/netbridge/netbridge/sandbox"
)

// ErrMultiQueue is wrapped by the errors returned for a NIC with more than
// one queue: Firecracker's virtio-net has a single queue pair.
var ErrMultiQueue = errors.New("only one queue pair per NIC is supported by Firecracker: set the sandbox up with a single queue")

// ErrMacvtap is wrapped by the errors returned for a macvtap NIC (one with a
// Device): Firecracker only opens taps by name through /dev/net/tun, which
// cannot open a macvtap, and takes no fds.
var ErrMacvtap = errors.New("a macvtap cannot be handed to Firecracker (it opens taps by name and takes no fds); use the tcfilter or bridge model")

// networkInterface is the part of Firecracker's NetworkInterface that the
// renderers fill, in the order the API documents it.
type networkInterface struct {
	IfaceID     string `json:"iface_id"`
	HostDevName string `json:"host_dev_name"`
	GuestMAC    string `json:"guest_mac"`
}

// IfaceID returns the Firecracker iface_id of nic: its Name with every
// character other than an ASCII letter, digit or '_' replaced by '_', the
// characters Firecracker accepts in an API path id. It fails when the Name is
// empty. The id only names the interface in the API; the guest does not see
// it.
func IfaceID(nic sandbox.NIC) (string, error) {
	id, err := ifaceID(nic.Name)
	if err != nil {
		return "", fmt.Errorf("firecracker: NIC %q: %w", nic.Name, err)
	}
	return id, nil
}

// ifaceID returns the iface_id made of a NIC name.
func ifaceID(name string) (string, error) {
	if name == "" {
		return "", errors.New("name missing, which the iface_id is made of")
	}
	var b strings.Builder
	for _, r := range name {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String(), nil
}

// NetworkInterfaces returns the value of the "network-interfaces" member of
// a Firecracker configuration file (--config-file): a JSON array with one
// object per NIC, in NIC order, so that the guest enumerates the NICs in the
// same order:
//
//	[
//	  {
//	    "iface_id": "<IfaceID>",
//	    "host_dev_name": "<tap>",
//	    "guest_mac": "<guest MAC>"
//	  }
//	]
//
// indented by two spaces and ending in a newline; an empty list gives "[]".
// It fails for a NIC with more than one queue (wrapping [ErrMultiQueue]), a
// macvtap NIC (wrapping [ErrMacvtap]), a missing or invalid tap name or guest
// MAC, and when two NICs get the same [IfaceID]. See the package
// documentation for what the tap must look like.
func NetworkInterfaces(nics []sandbox.NIC) ([]byte, error) {
	list := make([]networkInterface, 0, len(nics))
	owner := make(map[string]int, len(nics))
	for i := range nics {
		n := &nics[i]
		ni, err := render(n)
		if err != nil {
			return nil, fmt.Errorf("firecracker: %s: %w", nicdata.Label(n, i), err)
		}
		if j, dup := owner[ni.IfaceID]; dup {
			return nil, fmt.Errorf("firecracker: %s: iface_id %q is also that of %s", nicdata.Label(n, i), ni.IfaceID, nicdata.Label(&nics[j], j))
		}
		owner[ni.IfaceID] = i
		list = append(list, ni)
	}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("firecracker: encoding the network interfaces: %w", err)
	}
	return append(b, '\n'), nil
}

// PutBody returns the request path and JSON body that attach nic to a
// Firecracker that has not booted yet:
//
//	PUT /network-interfaces/<IfaceID>
//	{"iface_id":"<IfaceID>","host_dev_name":"<tap>","guest_mac":"<guest MAC>"}
//
// The body is the same object [NetworkInterfaces] renders for nic, compact;
// Firecracker requires iface_id to equal the path's id. It fails like
// NetworkInterfaces does for one NIC. Send one request per NIC, in NIC order,
// so that the guest enumerates them in that order.
func PutBody(nic sandbox.NIC) (path string, body []byte, err error) {
	ni, err := render(&nic)
	if err != nil {
		return "", nil, fmt.Errorf("firecracker: NIC %q: %w", nic.Name, err)
	}
	body, err = json.Marshal(ni)
	if err != nil {
		return "", nil, fmt.Errorf("firecracker: NIC %q: encoding the body: %w", nic.Name, err)
	}
	return "/network-interfaces/" + ni.IfaceID, body, nil
}

// render validates n and returns its network interface object.
func render(n *sandbox.NIC) (networkInterface, error) {
	if n.Device != "" {
		return networkInterface{}, ErrMacvtap
	}
	queues, err := n.QueueCount()
	if err != nil {
		return networkInterface{}, err
	}
	if queues > 1 {
		return networkInterface{}, fmt.Errorf("%d queues: %w", queues, ErrMultiQueue)
	}
	if err := nicdata.TapName(n.Tap); err != nil {
		return networkInterface{}, err
	}
	if err := sandbox.CheckGuestMAC(n.GuestMAC); err != nil {
		return networkInterface{}, err
	}
	id, err := ifaceID(n.Name)
	if err != nil {
		return networkInterface{}, err
	}
	return networkInterface{IfaceID: id, HostDevName: n.Tap, GuestMAC: n.GuestMAC.String()}, nil
}
