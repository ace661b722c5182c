package netview

import (
	"errors"
	"strings"
	"testing"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/pkg/state"
	"github.com/netbridge/netbridge/sandbox"
)

// TestTakenErrorSaysWhereTheOwnerIs: the error of an interface wired for
// another sandbox names the owner and how to free the interface; it says
// "another state directory" only when the owner has no record in the one
// looked in, and is ErrInvalidConfig (nothing changed).
func TestTakenErrorSaysWhereTheOwnerIs(t *testing.T) {
	dir := t.TempDir()
	st, err := state.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for id, mode := range map[string]journal.Mode{"whole": "", "cni": journal.ModeAttach} {
		if err := st.Write(id, &journal.Record{Version: journal.Version, Mode: mode, Sandbox: sandbox.Sandbox{ID: id}}); err != nil {
			t.Fatal(err)
		}
	}
	ifc := func(w ...wiring) *Link {
		i := &Link{Interface: sandbox.Interface{Name: "eth0"}}
		i.setWirings(w)
		return i
	}
	via := `a tc redirect at priority 20034 sends its frames to "nb-eth0"`
	for _, c := range []struct {
		name    string
		ifc     *Link
		st      *state.Store
		self    string
		want    []string
		notWant string
	}{
		{"recorded whole", ifc(wiring{owner: "whole", link: "nb-eth0", via: via}), st, "b", []string{`sandbox "whole"`, "as recorded in " + dir, `tear sandbox "whole" down`, "nb-eth0"}, "another state directory"},
		{"recorded attached", ifc(wiring{owner: "cni", link: "nb-eth0", via: via}), st, "b", []string{`sandbox "cni"`, "CNI DEL", "as recorded in " + dir}, "another state directory"},
		{"not recorded", ifc(wiring{owner: "gone", link: "nb-eth0", via: via}), st, "b", []string{`sandbox "gone"`, "no record in " + dir, "another state directory"}, ""},
		{"itself elsewhere", ifc(wiring{owner: "b", link: "nb-eth0", via: via}), st, "b", []string{`this same sandbox "b"`, "another state directory"}, ""},
		{"no state dir", ifc(wiring{owner: "whole", link: "nb-eth0", via: via}), nil, "b", []string{`sandbox "whole"`, "tear that sandbox down"}, "record"},
		{"untagged filter", ifc(wiring{link: "x0", via: "a tc filter at priority 20034, which netbridge reserves", filter: true}), st, "b", []string{`"eth0"`, "priority 20034", "remove that filter"}, "sandbox"},
		{"tagged wins", ifc(wiring{link: "x0", via: "a tc filter", filter: true}, wiring{owner: "whole", link: "nbr-eth0", via: "it is a port of bridge"}), st, "b", []string{`sandbox "whole"`, "bridge"}, ""},
	} {
		err := takenError(c.ifc, c.st, c.self)
		msg := err.Error()
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: %q lacks %q", c.name, msg, w)
			}
		}
		if c.notWant != "" && strings.Contains(msg, c.notWant) {
			t.Errorf("%s: %q says %q", c.name, msg, c.notWant)
		}
		if !errors.Is(err, sandbox.ErrInvalidConfig) || !errors.Is(err, ErrInterfaceTaken) {
			t.Errorf("%s: not ErrInvalidConfig and ErrInterfaceTaken", c.name)
		}
	}
}
