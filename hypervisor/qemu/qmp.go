package qemu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/netbridge/netbridge/hypervisor/internal/nicdata"
	"github.com/netbridge/netbridge/sandbox"
)

// QMPCommand is one command of the QEMU Machine Protocol, as sent on the
// monitor socket: {"execute": ..., "arguments": {...}}.
type QMPCommand struct {
	// Execute is the command name, such as "netdev_add".
	Execute string `json:"execute"`
	// Arguments are the command's arguments; nil or empty for none.
	Arguments map[string]any `json:"arguments,omitempty"`
}

// DefaultFDNames returns the fd naming [QMPCommands] uses when given none:
// "fd-<base>-<queue>" for tap queue fds and "vhostfd-<base>-<queue>" for
// vhost-net fds, where base is the NIC's id base (see [DeviceID]). The names
// start with a letter, hold no ':' and are unique within nics.
func DefaultFDNames(nics []sandbox.NIC) func(nic, queue int, vhost bool) string {
	bases := nicdata.IDBases(nics)
	return func(nic, queue int, vhost bool) string {
		prefix := "fd-"
		if vhost {
			prefix = "vhostfd-"
		}
		return prefix + bases[nic] + "-" + strconv.Itoa(queue)
	}
}

// QMPCommands returns the QMP commands that hot-plug every NIC of nics into a
// running QEMU, NIC after NIC, so that the guest enumerates them in order.
// For each NIC:
//
//  1. one getfd {"fdname": <name>} per tap queue fd, then one per vhost-net
//     fd. The caller sends each of them with exactly one fd attached as
//     SCM_RIGHTS ancillary data (the fd travels with the command, not in it).
//  2. netdev_add {"type": "tap", "id": <NetdevID>, "fds": "<name>:<name>...",
//     ["vhost": true, ["vhostfds": "<name>:..."]]}. netdev_add's arguments
//     are QAPI-typed (NetdevTapOptions): fds and vhostfds are strings, vhost
//     is a JSON bool. fds is used for every queue count, as in [ByFD].
//  3. device_add {"driver": "virtio-net-pci", "id": <DeviceID>, "netdev":
//     <NetdevID>, "mac": <guest MAC>, ["mq": true, "vectors": 2N+2],
//     ["host_mtu": <MTU>]}. QEMU (7.2 and later still) converts device_add's
//     arguments to QemuOpts, which turns JSON bools into on/off and numbers
//     into decimal text, so typed values are accepted; they are used as
//     Kata Containers does. mq and vectors appear only for a multiqueue NIC,
//     host_mtu only when MTU is set. No bus is given: QEMU picks one, which
//     works on the pc machine; on q35 the caller adds a "bus" argument naming
//     a free PCIe root port.
//
// fdNames(i, q, vhost) names the fd of queue q of nics[i] (a vhost-net fd
// when vhost is set); nil means [DefaultFDNames]. Every name must be
// non-empty, must not start with a digit (QEMU would read it as an fd
// number), must not hold ':' (the list separator) and must be unique: getfd
// with a name in use closes the fd it named.
//
// A NIC that holds Files gets one tap fd per file and one vhost fd per
// VhostFile, checked as [ByFD] checks them, and the k-th getfd is for the
// k-th file ByFD returns for the same NICs. A NIC without files is rendered as
// [FDLayout] would: Queues tap fds, and as many vhost fds when Vhost is set.
// vhost is true when Vhost is set or vhost fds are named; without vhost fds
// QEMU opens /dev/vhost-net itself. Macvtap NICs are accepted, as in ByFD.
func QMPCommands(nics []sandbox.NIC, fdNames func(nic, queue int, vhost bool) string) ([]QMPCommand, error) {
	if fdNames == nil {
		fdNames = DefaultFDNames(nics)
	}
	bases := nicdata.IDBases(nics)
	used := make(map[string]string)
	cmds := make([]QMPCommand, 0, 4*len(nics))
	for i := range nics {
		n := &nics[i]
		queues, err := checkNIC(n)
		if err != nil {
			return nil, fmt.Errorf("qemu: QMP: %s: %w", label(n, i), err)
		}
		tapFDs, vhostFDs := queues, 0
		if n.Vhost {
			vhostFDs = queues
		}
		if len(n.Files) > 0 || len(n.VhostFiles) > 0 {
			if err := checkFiles(n, queues); err != nil {
				return nil, fmt.Errorf("qemu: QMP: %s: %w", label(n, i), err)
			}
			tapFDs, vhostFDs = len(n.Files), len(n.VhostFiles)
		}
		names := func(count int, vhost bool) (string, error) {
			list := make([]string, count)
			for q := range list {
				name := fdNames(i, q, vhost)
				if err := checkFDName(name); err != nil {
					return "", err
				}
				what := fmt.Sprintf("%s queue %d", label(n, i), q)
				if vhost {
					what = "vhost fd of " + what
				}
				if other, dup := used[name]; dup {
					return "", fmt.Errorf("fd name %q is also that of the %s", name, other)
				}
				used[name] = what
				list[q] = name
				cmds = append(cmds, QMPCommand{Execute: "getfd", Arguments: map[string]any{"fdname": name}})
			}
			return strings.Join(list, ":"), nil
		}
		fds, err := names(tapFDs, false)
		if err != nil {
			return nil, fmt.Errorf("qemu: QMP: %s: %w", label(n, i), err)
		}
		vhostfds, err := names(vhostFDs, true)
		if err != nil {
			return nil, fmt.Errorf("qemu: QMP: %s: %w", label(n, i), err)
		}
		netdevID := netdevPrefix + bases[i]
		netdev := map[string]any{"type": "tap", "id": netdevID, "fds": fds}
		if n.Vhost || vhostFDs > 0 {
			netdev["vhost"] = true
		}
		if vhostFDs > 0 {
			netdev["vhostfds"] = vhostfds
		}
		device := map[string]any{
			"driver": DefaultDriver,
			"id":     devicePrefix + bases[i],
			"netdev": netdevID,
			"mac":    n.GuestMAC.String(),
		}
		if queues > 1 {
			device["mq"] = true
			device["vectors"] = 2*queues + 2
		}
		if n.MTU > 0 {
			device["host_mtu"] = n.MTU
		}
		cmds = append(cmds,
			QMPCommand{Execute: "netdev_add", Arguments: netdev},
			QMPCommand{Execute: "device_add", Arguments: device})
	}
	return cmds, nil
}

// QMPUnplugCommands returns the QMP commands that remove every NIC of nics
// that [QMPCommands] (or [ByName], [ByFD]) added, NIC after NIC:
// device_del {"id": <DeviceID>} and then netdev_del {"id": <NetdevID>}.
// device_del only asks the guest to release the device: after each one, wait
// for the DEVICE_DELETED event whose data.device is that id before sending
// the netdev_del that follows it.
func QMPUnplugCommands(nics []sandbox.NIC) []QMPCommand {
	bases := nicdata.IDBases(nics)
	cmds := make([]QMPCommand, 0, 2*len(nics))
	for i := range nics {
		cmds = append(cmds,
			QMPCommand{Execute: "device_del", Arguments: map[string]any{"id": devicePrefix + bases[i]}},
			QMPCommand{Execute: "netdev_del", Arguments: map[string]any{"id": netdevPrefix + bases[i]}})
	}
	return cmds
}

// QMPLines renders cmds as JSON lines: one command per line, "execute"
// before "arguments", argument names sorted, no HTML escaping. Each line is
// what goes on the monitor socket for that command.
func QMPLines(cmds []QMPCommand) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	for i, c := range cmds {
		if c.Execute == "" {
			return nil, fmt.Errorf("qemu: QMP: command %d: name missing", i)
		}
		if err := enc.Encode(c); err != nil {
			return nil, fmt.Errorf("qemu: QMP: command %d (%s): %w", i, c.Execute, err)
		}
	}
	return b.Bytes(), nil
}

// checkFDName checks a name for getfd and the fds/vhostfds lists.
func checkFDName(name string) error {
	switch {
	case name == "":
		return errors.New("fd name missing")
	case name[0] >= '0' && name[0] <= '9':
		return fmt.Errorf("fd name %q starts with a digit, which QEMU reads as an fd number", name)
	case strings.Contains(name, ":"):
		return fmt.Errorf("fd name %q holds ':', the separator of fd lists", name)
	}
	return nil
}
