package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/netbridge/netbridge/hypervisor/qemu/hotplug"
	"github.com/netbridge/netbridge/pkg/qmp"
	"github.com/netbridge/netbridge/sandbox"
)

// runHotplug adds the sandbox's NICs to a running QEMU over QMP, or with
// --unplug removes them.
func runHotplug(ctx context.Context, e *env, args []string) error {
	fs := newFlags("hotplug")
	var (
		id, socket string
		unplug     bool
		sf         stateFlags
	)
	fs.StringVar(&id, "id", "", "sandbox id (required)")
	fs.StringVar(&socket, "qmp", "", "QEMU's QMP unix socket (required), as given to -qmp unix:PATH,server=on,wait=off")
	fs.BoolVar(&unplug, "unplug", false, "remove the NICs instead (waits for the guest to release each device)")
	sf.register(fs, 30*time.Second)
	if err := parse(e.stdout, fs, args); err != nil {
		return err
	}
	if err := errors.Join(need("id", id), need("qmp", socket)); err != nil {
		return err
	}
	ctx, cancel := sf.context(ctx)
	defer cancel()
	var sb *sandbox.Sandbox
	var err error
	if unplug {
		sb, err = sf.manager(nil).Load(ctx, id)
	} else {
		sb, err = sf.manager(nil).OpenQueues(ctx, id)
	}
	if err != nil {
		return err
	}
	defer sb.Close()
	q, err := qmp.Dial(ctx, socket)
	if err != nil {
		return err
	}
	defer q.Close()
	if unplug {
		if err := hotplug.Remove(ctx, q, sb.NICs); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "removed %d NICs of sandbox %s\n", len(sb.NICs), id)
		return nil
	}
	if err := hotplug.Add(ctx, q, sb.NICs); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "added %d NICs of sandbox %s\n", len(sb.NICs), id)
	return nil
}
