package hotplug

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/netbridge/netbridge/pkg/qmp"
	"github.com/netbridge/netbridge/sandbox"
)

// fakeQMP records commands as text ("getfd fd-eth0-0 files=1") and fails
// the command whose text starts with failOn.
type fakeQMP struct {
	log     []string
	failOn  string
	missing bool // device_del and netdev_del answer DeviceNotFound
}

func (f *fakeQMP) Execute(_ context.Context, command string, arguments any, files ...*os.File) (json.RawMessage, error) {
	args, _ := arguments.(map[string]any)
	line := command
	for _, k := range []string{"fdname", "id"} {
		if v, ok := args[k]; ok {
			line += fmt.Sprintf(" %v", v)
		}
	}
	if len(files) > 0 {
		line += fmt.Sprintf(" files=%d", len(files))
	}
	f.log = append(f.log, line)
	if f.failOn != "" && strings.HasPrefix(line, f.failOn) {
		return nil, &qmp.Error{Command: command, Class: "GenericError", Desc: "injected"}
	}
	if f.missing && (command == "device_del" || command == "netdev_del") {
		return nil, &qmp.Error{Command: command, Class: "DeviceNotFound", Desc: "Device not found"}
	}
	return json.RawMessage(`{}`), nil
}

func (f *fakeQMP) WaitEvent(_ context.Context, name string, match func(json.RawMessage) bool) (qmp.Event, error) {
	f.log = append(f.log, "wait "+name)
	return qmp.Event{Name: name}, nil
}

func nics(t *testing.T) []sandbox.NIC {
	t.Helper()
	var out []sandbox.NIC
	for i, name := range []string{"eth0", "net1"} {
		var m sandbox.MAC
		if err := m.UnmarshalText(fmt.Appendf(nil, "0a:58:c6:33:64:0%d", i)); err != nil {
			t.Fatal(err)
		}
		n := sandbox.NIC{Name: name, Tap: "nb-" + name, GuestMAC: m, MTU: 1500, Queues: i + 1,
			Addresses: []netip.Prefix{netip.MustParsePrefix("198.51.100.2/24")}}
		for range n.Queues {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close(); w.Close() })
			n.Files = append(n.Files, w)
		}
		out = append(out, n)
	}
	return out
}

func TestAddSendsEachFDWithItsGetfd(t *testing.T) {
	f := &fakeQMP{}
	if err := Add(context.Background(), f, nics(t)); err != nil {
		t.Fatal(err)
	}
	want := "getfd fd-eth0-0 files=1|netdev_add net-eth0|device_add nic-eth0|getfd fd-net1-0 files=1|getfd fd-net1-1 files=1|netdev_add net-net1|device_add nic-net1"
	if got := strings.Join(f.log, "|"); got != want {
		t.Errorf("commands\n%s\nwant\n%s", got, want)
	}
}

func TestAddUndoesWhatItDidOnFailure(t *testing.T) {
	f := &fakeQMP{failOn: "device_add nic-net1"}
	err := Add(context.Background(), f, nics(t))
	if err == nil || !strings.Contains(err.Error(), "device_add nic-net1") {
		t.Fatalf("Add = %v, want an error naming device_add nic-net1", err)
	}
	want := "getfd fd-eth0-0 files=1|netdev_add net-eth0|device_add nic-eth0|getfd fd-net1-0 files=1|getfd fd-net1-1 files=1|netdev_add net-net1|device_add nic-net1" +
		"|netdev_del net-net1|closefd fd-net1-1|closefd fd-net1-0|device_del nic-eth0|wait DEVICE_DELETED|netdev_del net-eth0|closefd fd-eth0-0"
	if got := strings.Join(f.log, "|"); got != want {
		t.Errorf("commands\n%s\nwant\n%s", got, want)
	}
}

func TestRemove(t *testing.T) {
	f := &fakeQMP{}
	if err := Remove(context.Background(), f, nics(t)); err != nil {
		t.Fatal(err)
	}
	want := "device_del nic-eth0|wait DEVICE_DELETED|netdev_del net-eth0|device_del nic-net1|wait DEVICE_DELETED|netdev_del net-net1"
	if got := strings.Join(f.log, "|"); got != want {
		t.Errorf("commands\n%s\nwant\n%s", got, want)
	}
	gone := &fakeQMP{missing: true}
	if err := Remove(context.Background(), gone, nics(t)); err != nil {
		t.Errorf("Remove of NICs QEMU does not have = %v, want nil", err)
	}
	failing := &fakeQMP{failOn: "netdev_del net-eth0"}
	if err := Remove(context.Background(), failing, nics(t)); err == nil || !errors.As(err, new(*qmp.Error)) {
		t.Errorf("Remove with a failing netdev_del = %v", err)
	}
}
