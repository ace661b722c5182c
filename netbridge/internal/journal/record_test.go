package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/pkg/state"
	"github.com/netbridge/netbridge/pkg/tap"
)

// FuzzRecord feeds arbitrary bytes to the record decoder, as a damaged or
// hostile state file would: it must return a record or an error, never
// panic, and a record it accepts must survive encoding and decoding again.
// (Reading from disk is state.Store's, tested in pkg/state; keeping the
// fuzz body in memory keeps it fast.)
func FuzzRecord(f *testing.F) {
	f.Add([]byte(`{"version":1,"phase":"ready","netns_id":{"dev":4,"ino":5},"sandbox":{"id":"fz","netns":"/run/netns/x","model":"tcfilter","nics":[{"name":"eth0","guest_mac":"02:00:00:00:00:01","addresses":["192.0.2.2/24"],"routes":[{"dst":"0.0.0.0/0","gw":"192.0.2.1"}]}]},"journal":[{"op":"create-tap","link":"nb-eth0","done":true}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":1,"sandbox":{"id":"fz","nics":[{"guest_mac":"zz"}]}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var rec Record
		if json.Unmarshal(b, &rec) != nil || rec.Validate("fz") != nil {
			return
		}
		out, err := json.Marshal(&rec)
		if err != nil {
			t.Fatalf("encoding an accepted record: %v", err)
		}
		var again Record
		if err := json.Unmarshal(out, &again); err != nil || again.Validate("fz") != nil {
			t.Fatalf("decoding a re-encoded record: %v\n%s", err, out)
		}
		for _, s := range rec.Journal {
			_ = s.String()
		}
	})
}

func TestReadRecordRefusesForeignAndNewer(t *testing.T) {
	st, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ body, want string }{
		{`{"version":1,"sandbox":{"id":"other"}}`, "is of sandbox"},
		{`{"version":9,"sandbox":{"id":"me"}}`, "version 9"},
		{`{"version":1,`, "decoding"},
	} {
		if err := os.WriteFile(filepath.Join(st.Dir(), "me.json"), []byte(c.body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Read(st, "me"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Read(%s) = %v, want an error containing %q", c.body, err, c.want)
		}
	}
}

func TestRetryBusy(t *testing.T) {
	calls := 0
	err := retryBusy(context.Background(), func() error {
		calls++
		if calls < 3 {
			return fmt.Errorf("adding: %w", unix.EBUSY)
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("retryBusy = %v after %d calls, want nil after 3", err, calls)
	}
	calls = 0
	err = retryBusy(context.Background(), func() error { calls++; return fmt.Errorf("%w (%w)", tap.ErrExists, unix.EBUSY) })
	if calls != 1 || !errors.Is(err, tap.ErrExists) {
		t.Errorf("a taken tap name was retried %d times (%v)", calls, err)
	}
	calls = 0
	err = retryBusy(context.Background(), func() error { calls++; return unix.EPERM })
	if calls != 1 || !errors.Is(err, unix.EPERM) {
		t.Errorf("EPERM was retried %d times", calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := retryBusy(ctx, func() error { return unix.EAGAIN }); !errors.Is(err, context.Canceled) {
		t.Errorf("retryBusy with a cancelled context = %v", err)
	}
}
