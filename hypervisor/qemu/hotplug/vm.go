package hotplug

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/netbridge/netbridge/hypervisor/internal/nicdata"
	"github.com/netbridge/netbridge/hypervisor/qemu"
	"github.com/netbridge/netbridge/pkg/qmp"
	"github.com/netbridge/netbridge/sandbox"
)

// VM plugs one NIC at a time into a running QEMU and out of it, over the
// QMP socket at a path: the hypervisor side of a follow (its methods make
// it a netbridge.HotPlugger). Each call dials the socket anew, so a QEMU
// that went away and came back is found.
type VM struct {
	socket string
	mu     sync.Mutex
}

// NewVM returns the VM behind the QMP socket at path; nothing is dialed
// yet.
func NewVM(path string) *VM { return &VM{socket: path} }

// DeviceID returns the id of the device of the NIC of interface ifname, as
// render --for qemu and Add name it.
func (v *VM) DeviceID(ifname string) string {
	return qemu.DeviceID([]sandbox.NIC{{Name: ifname}}, 0)
}

// devicePrefix is how the ids DeviceID returns begin.
const devicePrefix = nicdata.DevicePrefix

// with runs fn on a connection dialed for it and closed after: QEMU
// serves one client at a time on a QMP socket, so none is held between
// calls, and a QEMU that went away and came back is found.
func (v *VM) with(ctx context.Context, fn func(*qmp.Conn) error) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	q, err := qmp.Dial(ctx, v.socket)
	if err != nil {
		return err
	}
	defer q.Close()
	return fn(q)
}

// Plugged returns the ids of the NIC devices QEMU holds (those under
// /machine/peripheral whose id DeviceID could have made).
func (v *VM) Plugged(ctx context.Context) ([]string, error) {
	var ids []string
	err := v.with(ctx, func(q *qmp.Conn) error {
		raw, err := q.Execute(ctx, "qom-list", map[string]any{"path": "/machine/peripheral"})
		if err != nil {
			return fmt.Errorf("qom-list /machine/peripheral: %w", err)
		}
		var props []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		}
		if err := json.Unmarshal(raw, &props); err != nil {
			return fmt.Errorf("qom-list /machine/peripheral: %w", err)
		}
		for _, p := range props {
			if strings.HasPrefix(p.Type, "child<") && strings.HasPrefix(p.Name, devicePrefix) {
				ids = append(ids, p.Name)
			}
		}
		return nil
	})
	return ids, err
}

// Plug hot-plugs nic, which holds its queue files, as Add does.
func (v *VM) Plug(ctx context.Context, nic sandbox.NIC) error {
	return v.with(ctx, func(q *qmp.Conn) error { return Add(ctx, q, []sandbox.NIC{nic}) })
}

// Unplug removes device id (device_del, the wait for DEVICE_DELETED) and
// its backend; a device QEMU does not have is not an error.
func (v *VM) Unplug(ctx context.Context, id string) error {
	return v.with(ctx, func(q *qmp.Conn) error {
		if err := removeDevice(ctx, q, id); err != nil {
			return fmt.Errorf("hot-unplug: device_del %s: %w", id, err)
		}
		netdev := qemu.NetdevID([]sandbox.NIC{{Name: strings.TrimPrefix(id, devicePrefix)}}, 0)
		if _, err := q.Execute(ctx, "netdev_del", map[string]any{"id": netdev}); err != nil && !notFound(err) {
			return fmt.Errorf("hot-unplug: netdev_del %s: %w", netdev, err)
		}
		return nil
	})
}
