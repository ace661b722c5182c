// Package qmp is a client of the QEMU Machine Protocol over a unix socket:
// it runs commands, passes file descriptors with them (SCM_RIGHTS, as
// getfd and add-fd need), and waits for events.
package qmp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Error is an error QEMU answered a command with.
type Error struct {
	Command string
	Class   string `json:"class"`
	Desc    string `json:"desc"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("QMP %s: %s: %s", e.Command, e.Class, e.Desc)
}

// Event is an asynchronous QMP event.
type Event struct {
	Name string          `json:"event"`
	Data json.RawMessage `json:"data"`
}

// message is anything QEMU sends: a greeting, a reply or an event.
type message struct {
	QMP    json.RawMessage `json:"QMP"`
	Return json.RawMessage `json:"return"`
	Error  *Error          `json:"error"`
	Event  string          `json:"event"`
	Data   json.RawMessage `json:"data"`
}

// Conn is a QMP connection in command mode. Its methods may be called from
// one goroutine at a time.
type Conn struct {
	mu     sync.Mutex
	conn   *net.UnixConn
	dec    *json.Decoder
	events []Event
}

// Dial connects to the QMP socket at path, reads the greeting and enters
// command mode (qmp_capabilities).
func Dial(ctx context.Context, path string) (*Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("connecting to QMP socket %s: %w", path, err)
	}
	q := &Conn{conn: c.(*net.UnixConn)}
	q.dec = json.NewDecoder(q.conn)
	if err := q.deadline(ctx); err != nil {
		c.Close()
		return nil, err
	}
	var greeting message
	if err := q.dec.Decode(&greeting); err != nil || greeting.QMP == nil {
		c.Close()
		return nil, fmt.Errorf("reading the QMP greeting from %s: %w", path, errors.Join(err, errors.New("not a QMP server")))
	}
	if _, err := q.Execute(ctx, "qmp_capabilities", nil); err != nil {
		c.Close()
		return nil, err
	}
	return q, nil
}

// Close closes the connection.
func (q *Conn) Close() error { return q.conn.Close() }

func (q *Conn) deadline(ctx context.Context) error {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Time{}
	}
	return q.conn.SetDeadline(dl)
}

// Execute runs command with arguments (nil for none), passing files along
// with it, and returns QEMU's "return" value. A QEMU error is an *Error.
// Events that arrive meanwhile are kept for WaitEvent.
func (q *Conn) Execute(ctx context.Context, command string, arguments any, files ...*os.File) (json.RawMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.deadline(ctx); err != nil {
		return nil, err
	}
	req := map[string]any{"execute": command}
	if arguments != nil {
		req["arguments"] = arguments
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encoding QMP %s: %w", command, err)
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := q.conn.WriteMsgUnix(b, oob, nil); err != nil {
		return nil, fmt.Errorf("sending QMP %s: %w", command, err)
	}
	for {
		var m message
		if err := q.dec.Decode(&m); err != nil {
			return nil, fmt.Errorf("reading the reply to QMP %s: %w", command, err)
		}
		switch {
		case m.Event != "":
			q.events = append(q.events, Event{Name: m.Event, Data: m.Data})
		case m.Error != nil:
			m.Error.Command = command
			return nil, m.Error
		case m.Return != nil:
			return m.Return, nil
		}
	}
}

// WaitEvent returns the first event called name for which match (nil
// matches all) reports true, waiting for it until ctx is done. Events that
// do not match are kept.
func (q *Conn) WaitEvent(ctx context.Context, name string, match func(data json.RawMessage) bool) (Event, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, e := range q.events {
		if e.Name == name && (match == nil || match(e.Data)) {
			q.events = append(q.events[:i], q.events[i+1:]...)
			return e, nil
		}
	}
	if err := q.deadline(ctx); err != nil {
		return Event{}, err
	}
	for {
		var m message
		if err := q.dec.Decode(&m); err != nil {
			return Event{}, fmt.Errorf("waiting for QMP event %s: %w", name, err)
		}
		if m.Event == "" {
			continue // a late reply; nothing is waiting for it
		}
		e := Event{Name: m.Event, Data: m.Data}
		if e.Name == name && (match == nil || match(e.Data)) {
			return e, nil
		}
		q.events = append(q.events, e)
	}
}
