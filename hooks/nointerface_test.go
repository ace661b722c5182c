package hooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/netbridge/netbridge/sandbox"
)

// TestNoInterfaceIsNothingToDo: a sandbox whose netns has no interface to
// wire (podman --network none with the sandbox annotation) is not refused
// at prestart: the hook logs that there is nothing to wire and succeeds,
// unless interfaces were named explicitly (then their absence is an error).
func TestNoInterfaceIsNothingToDo(t *testing.T) {
	noIface := fmt.Errorf("setting up sandbox %q: %w: the netns has no interface but the loopback", "c1", sandbox.ErrNoInterface)
	for _, c := range []struct {
		name   string
		named  []string
		wantOK bool
	}{
		{"no interfaces named", nil, true},
		{"interfaces named", []string{"eth0"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := bundle(t, netnsConfig)
			var log bytes.Buffer
			lib := &fakeLib{err: noIface}
			h := &Hook{Stage: StagePrestart, Setup: sandbox.Config{Interfaces: c.named}, Lib: lib, Log: slog.New(slog.NewTextHandler(&log, nil))}
			err := h.Run(context.Background(), strings.NewReader(`{"id":"c1","pid":3,"bundle":"`+dir+`"}`))
			if c.wantOK {
				if err != nil {
					t.Fatalf("Run = %v, want success", err)
				}
				if !strings.Contains(log.String(), "nothing to wire") || strings.Contains(log.String(), "()") {
					t.Errorf("log does not say there is nothing to wire, or prints an empty list:\n%s", log.String())
				}
				return
			}
			if !errors.Is(err, sandbox.ErrNoInterface) {
				t.Fatalf("Run = %v, want ErrNoInterface", err)
			}
		})
	}
}
