// Package hotplug adds the NICs of a wired sandbox to a running QEMU, and
// removes them, over QMP: each queue fd (and vhost-net fd) is handed over
// with getfd, then netdev_add and device_add create the NIC; removal is
// device_del, a wait for the guest to let the device go (DEVICE_DELETED),
// and netdev_del.
package hotplug

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/netbridge/netbridge/hypervisor/qemu"
	"github.com/netbridge/netbridge/pkg/qmp"
	"github.com/netbridge/netbridge/sandbox"
)

// QMP is the part of a QMP connection hot-plug needs; *qmp.Conn has it.
type QMP interface {
	Execute(ctx context.Context, command string, arguments any, files ...*os.File) (json.RawMessage, error)
	WaitEvent(ctx context.Context, name string, match func(data json.RawMessage) bool) (qmp.Event, error)
}

// Add hot-plugs nics, which must hold their queue files (see
// netbridge.Manager.OpenQueues), in order. If a command fails half-way, what was
// added is removed again (best effort) and the error names the command
// and the NIC. QEMU keeps its own copies of the fds: the caller may close
// the files once Add returns.
func Add(ctx context.Context, q QMP, nics []sandbox.NIC) error {
	cmds, err := qemu.QMPCommands(nics, nil)
	if err != nil {
		return err
	}
	var files []*os.File
	for _, n := range nics {
		files = append(append(files, n.Files...), n.VhostFiles...)
	}
	var done []qemu.QMPCommand
	for _, c := range cmds {
		var pass []*os.File
		if c.Execute == "getfd" {
			if len(files) == 0 {
				return undo(ctx, q, done, fmt.Errorf("hot-plug: more getfd commands than queue files"))
			}
			pass, files = files[:1], files[1:]
		}
		if _, err := q.Execute(ctx, c.Execute, c.Arguments, pass...); err != nil {
			return undo(ctx, q, done, fmt.Errorf("hot-plug: %s %v: %w", c.Execute, c.Arguments["id"], err))
		}
		done = append(done, c)
	}
	return nil
}

// undo reverses the commands done so far and returns cause, joined with
// any error of the undo.
func undo(ctx context.Context, q QMP, done []qemu.QMPCommand, cause error) error {
	var errs []error
	for _, c := range slices.Backward(done) {
		var err error
		switch c.Execute {
		case "device_add":
			err = removeDevice(ctx, q, c.Arguments["id"].(string))
		case "netdev_add":
			_, err = q.Execute(ctx, "netdev_del", map[string]any{"id": c.Arguments["id"]})
		case "getfd":
			_, err = q.Execute(ctx, "closefd", map[string]any{"fdname": c.Arguments["fdname"]})
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(cause, fmt.Errorf("undoing the partial hot-plug: %w", errors.Join(errs...)))
	}
	return cause
}

// Remove unplugs nics: device_del, then the wait for the guest to release
// the device, then netdev_del. NICs QEMU does not have are skipped, so
// Remove can be repeated.
func Remove(ctx context.Context, q QMP, nics []sandbox.NIC) error {
	for _, c := range qemu.QMPUnplugCommands(nics) {
		var err error
		switch c.Execute {
		case "device_del":
			err = removeDevice(ctx, q, c.Arguments["id"].(string))
		default:
			_, err = q.Execute(ctx, c.Execute, c.Arguments)
			if notFound(err) {
				err = nil
			}
		}
		if err != nil {
			return fmt.Errorf("hot-unplug: %s %v: %w", c.Execute, c.Arguments["id"], err)
		}
	}
	return nil
}

// removeDevice deletes device id and waits for DEVICE_DELETED, which QEMU
// sends once the guest has released it.
func removeDevice(ctx context.Context, q QMP, id string) error {
	if _, err := q.Execute(ctx, "device_del", map[string]any{"id": id}); err != nil {
		if notFound(err) {
			return nil
		}
		return err
	}
	_, err := q.WaitEvent(ctx, "DEVICE_DELETED", func(data json.RawMessage) bool {
		var d struct {
			Device string `json:"device"`
		}
		return json.Unmarshal(data, &d) == nil && d.Device == id
	})
	if err != nil {
		return fmt.Errorf("waiting for the guest to release %s (does it handle PCI hot-unplug?): %w", id, err)
	}
	return nil
}

// notFound reports QEMU's answer for an id it does not have.
func notFound(err error) bool {
	var qe *qmp.Error
	return errors.As(err, &qe) && qe.Class == "DeviceNotFound"
}
