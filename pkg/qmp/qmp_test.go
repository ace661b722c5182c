package qmp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeQEMU serves one QMP client on a unix socket: it greets, answers each
// command from replies (by command name, default {"return":{}}), emits the
// events listed for a command before its reply, and records the commands
// and the number of fds each carried.
type fakeQEMU struct {
	path     string
	replies  map[string]string
	events   map[string][]string
	received chan string
}

func newFake(t *testing.T) *fakeQEMU {
	t.Helper()
	f := &fakeQEMU{path: filepath.Join(t.TempDir(), "qmp.sock"), replies: map[string]string{}, events: map[string][]string{}, received: make(chan string, 100)}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: f.path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.AcceptUnix()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte(`{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": []}}` + "\r\n"))
		buf := make([]byte, 4096)
		oob := make([]byte, unix.CmsgSpace(4*8))
		for {
			n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
			if err != nil {
				return
			}
			fds := 0
			if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
				for _, m := range msgs {
					got, _ := unix.ParseUnixRights(&m)
					for _, fd := range got {
						unix.Close(fd)
					}
					fds += len(got)
				}
			}
			var req struct {
				Execute string `json:"execute"`
			}
			json.Unmarshal(buf[:n], &req)
			f.received <- req.Execute + "/" + string(rune('0'+fds))
			for _, e := range f.events[req.Execute] {
				c.Write([]byte(e + "\r\n"))
			}
			reply, ok := f.replies[req.Execute]
			if !ok {
				reply = `{"return": {}}`
			}
			c.Write([]byte(reply + "\r\n"))
		}
	}()
	return f
}

func TestExecuteWithFDsAndEvents(t *testing.T) {
	f := newFake(t)
	f.replies["netdev_add"] = `{"error": {"class": "GenericError", "desc": "Duplicate ID 'net-eth0' for netdev"}}`
	f.events["device_del"] = []string{`{"event": "DEVICE_DELETED", "data": {"device": "other"}}`, `{"event": "DEVICE_DELETED", "data": {"device": "nic-eth0", "path": "/machine/peripheral/nic-eth0"}}`}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q, err := Dial(ctx, f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if _, err := q.Execute(ctx, "getfd", map[string]string{"fdname": "fd-0"}, r, w); err != nil {
		t.Fatal(err)
	}
	_, err = q.Execute(ctx, "netdev_add", map[string]string{"type": "tap", "id": "net-eth0"})
	var qe *Error
	if !errors.As(err, &qe) || qe.Class != "GenericError" || !strings.Contains(err.Error(), "netdev_add") {
		t.Errorf("netdev_add error = %v, want a *qmp.Error naming the command", err)
	}
	if _, err := q.Execute(ctx, "device_del", map[string]string{"id": "nic-eth0"}); err != nil {
		t.Fatal(err)
	}
	e, err := q.WaitEvent(ctx, "DEVICE_DELETED", func(d json.RawMessage) bool { return strings.Contains(string(d), `"nic-eth0"`) })
	if err != nil || !strings.Contains(string(e.Data), "nic-eth0") {
		t.Fatalf("WaitEvent = %+v, %v", e, err)
	}
	if e, err := q.WaitEvent(ctx, "DEVICE_DELETED", nil); err != nil || !strings.Contains(string(e.Data), "other") {
		t.Errorf("the non-matching event was not kept: %+v, %v", e, err)
	}
	short, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	if _, err := q.WaitEvent(short, "NEVER", nil); err == nil {
		t.Error("WaitEvent for an event that never comes returned no error")
	}
	var got []string
	for len(f.received) > 0 {
		got = append(got, <-f.received)
	}
	want := "qmp_capabilities/0 getfd/2 netdev_add/0 device_del/0"
	if strings.Join(got, " ") != want {
		t.Errorf("the fake received %q, want %q", strings.Join(got, " "), want)
	}
}

func TestDialRefusesNonQMP(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Write([]byte("{\"hello\": 1}\n"))
			bufio.NewReader(c).ReadString('\n')
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := Dial(ctx, path); err == nil {
		t.Error("Dial of a non-QMP server succeeded")
	}
	if _, err := Dial(ctx, filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("Dial of a missing socket succeeded")
	}
}
