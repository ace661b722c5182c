package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/netbridge/netbridge/hypervisor/qemu/hotplug"
	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/pkg/state"
)

// followLine is one event of follow --output json.
type followLine struct {
	Event      netbridge.EventKind `json:"event"`
	Interface  string              `json:"interface,omitempty"`
	Device     string              `json:"device,omitempty"`
	Tap        string              `json:"tap,omitempty"`
	GuestMAC   string              `json:"guest_mac,omitempty"`
	Hotplugged bool                `json:"hotplugged"`
	Changed    []string            `json:"changed,omitempty"`
	ElapsedMS  int64               `json:"elapsed_ms"`
	Error      string              `json:"error,omitempty"`
}

// runFollow keeps a running sandbox's wiring (and, with --qmp, its QEMU's
// NICs) in step with its netns, in the foreground.
func runFollow(ctx context.Context, e *env, args []string) error {
	fs := newFlags("follow")
	var id, socket, stateDir, output string
	fs.StringVar(&id, "id", "", "sandbox id (required)")
	fs.StringVar(&socket, "qmp", "", "QEMU's QMP unix socket: hot-plug added NICs and unplug removed ones")
	fs.StringVar(&stateDir, "state-dir", "", "state directory (default $NETBRIDGE_STATE_DIR, else /run/netbridge)")
	fs.StringVar(&output, "output", "text", "text or json (one object per line)")
	if err := parse(e.stdout, fs, args); err != nil {
		return err
	}
	if err := need("id", id); err != nil {
		return err
	}
	if err := checkOutput(output, "text", "json"); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	w := &lineWriter{w: e.stdout, flush: e.flush}
	opts := netbridge.FollowOptions{}
	if socket != "" {
		opts.HotPlugger = hotplug.NewVM(socket)
	}
	var last string // the last error reported: each is reported once
	opts.OnEvent = func(ev netbridge.FollowEvent) {
		l := followLine{Event: ev.Kind, Interface: ev.Interface, Device: ev.Device, Tap: ev.Tap, GuestMAC: ev.GuestMAC,
			Hotplugged: ev.Hotplugged, Changed: ev.Changed, ElapsedMS: ev.Elapsed.Milliseconds()}
		if ev.Err != nil {
			l.Error = oneLine(ev.Err)
			last = l.Error
		}
		w.event(output, l)
	}
	opts.OnError = func(err error) {
		if line := oneLine(err); line != last {
			last = line
			fmt.Fprintf(e.stderr, "netbridge follow: %s\n", report(err))
		}
	}
	err := netbridge.New(state.Dir(stateDir), slog.New(slog.DiscardHandler)).Follow(ctx, id, opts)
	switch {
	case errors.Is(err, netbridge.ErrTornDown):
		fmt.Fprintf(e.stderr, "netbridge follow: sandbox %s was torn down; stopping\n", id)
		return nil
	case errors.Is(err, netbridge.ErrNetnsGone):
		fmt.Fprintf(e.stderr, "netbridge follow: the netns of sandbox %s is gone; stopping\n", id)
		return nil
	}
	return err
}

// lineWriter writes one line per event and flushes it at once.
type lineWriter struct {
	mu    sync.Mutex
	w     io.Writer
	flush func() error
}

func (lw *lineWriter) event(output string, l followLine) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if output == "json" {
		b, _ := json.Marshal(l)
		fmt.Fprintf(lw.w, "%s\n", b)
	} else {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s", l.Event, l.Interface)
		if l.Interface == "" {
			fmt.Fprintf(&b, "device %s", l.Device)
		}
		if l.Tap != "" {
			fmt.Fprintf(&b, " tap %s", l.Tap)
		}
		if l.GuestMAC != "" {
			fmt.Fprintf(&b, " guest_mac %s", l.GuestMAC)
		}
		if len(l.Changed) > 0 {
			fmt.Fprintf(&b, " changed %s", strings.Join(l.Changed, ","))
		}
		if l.Device != "" {
			if l.Hotplugged {
				fmt.Fprintf(&b, " hotplugged %s", l.Device)
			} else {
				fmt.Fprintf(&b, " not hotplugged (%s)", l.Error)
			}
		}
		fmt.Fprintf(&b, " in %dms", l.ElapsedMS)
		fmt.Fprintln(lw.w, b.String())
	}
	if lw.flush != nil {
		_ = lw.flush()
	}
}
