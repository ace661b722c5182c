package datapath

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netbridge/netbridge/test/testnet"
)

// TestRun runs every path briefly and checks that each one delivered
// frames and that Run left nothing behind. It asserts no rate.
func TestRun(t *testing.T) {
	testnet.RequireRoot(t)
	before := nbdpNamespaces(t)
	var (
		mu    sync.Mutex
		paths []string
	)
	created = func(p string) {
		mu.Lock()
		defer mu.Unlock()
		paths = append(paths, p)
	}
	t.Cleanup(func() { created = nil })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	results, err := Run(ctx, 200*time.Millisecond)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := []string{referencePath, "tcfilter", "bridge", "macvtap"}
	if len(results) != len(want) {
		t.Fatalf("Run returned %d results, want %d: %+v", len(results), len(want), results)
	}
	for i, r := range results {
		t.Logf("%-16s %8d frames %10d bytes in %.3f s", r.Path, r.Frames, r.Bytes, r.Seconds)
		if r.Path != want[i] {
			t.Errorf("result %d is for %q, want %q", i, r.Path, want[i])
		}
		if r.Frames == 0 {
			t.Errorf("%s: no frame received", r.Path)
		}
		if r.Bytes != r.Frames*frameLen {
			t.Errorf("%s: %d bytes for %d frames, want %d bytes each", r.Path, r.Bytes, r.Frames, frameLen)
		}
		if r.Seconds <= 0 {
			t.Errorf("%s: %v seconds", r.Path, r.Seconds)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	// A state directory and two namespaces per path.
	if len(paths) != 1+2*len(want) {
		t.Errorf("Run created %d namespaces and directories, want %d: %v", len(paths), 1+2*len(want), paths)
	}
	for _, p := range paths {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind (stat: %v)", p, err)
		}
	}
	after := nbdpNamespaces(t)
	for name := range after {
		if !before[name] {
			t.Errorf("netns %s left behind", name)
		}
	}
}

// TestRunRejectsDuration checks that Run refuses a duration of zero before
// creating anything.
func TestRunRejectsDuration(t *testing.T) {
	if _, err := Run(context.Background(), 0); err == nil {
		t.Fatal("Run with duration 0 succeeded")
	}
}

// TestRunCanceled checks that a context done before or while Run sends
// stops it with an error and leaves nothing behind.
func TestRunCanceled(t *testing.T) {
	testnet.RequireRoot(t)
	for _, after := range []time.Duration{0, 100 * time.Millisecond, 3 * time.Second} {
		t.Run(after.String(), func(t *testing.T) {
			before := nbdpNamespaces(t)
			ctx, cancel := context.WithTimeout(context.Background(), after)
			defer cancel()
			results, err := Run(ctx, time.Minute)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Run with a context done after %v: %v, want context.DeadlineExceeded", after, err)
			}
			if results != nil {
				t.Errorf("Run returned results with its error: %+v", results)
			}
			for name := range nbdpNamespaces(t) {
				if !before[name] {
					t.Errorf("netns %s left behind", name)
				}
			}
		})
	}
}

// TestFrame checks the frame the sender sends and the marker test.
func TestFrame(t *testing.T) {
	dst, _ := net.ParseMAC("02:00:00:00:00:02")
	src, _ := net.ParseMAC("02:00:00:00:00:01")
	marker := []byte(markerText + "0123456789abcdef")
	f := buildFrame(dst, src, nodeAddr.Addr(), podAddr.Addr(), marker)
	if len(f) != frameLen || frameLen != 1442 {
		t.Fatalf("frame is %d bytes, want 1442", len(f))
	}
	if !ours(f, marker) {
		t.Error("ours(frame) = false")
	}
	if ours(f, []byte(markerText+"fedcba9876543210")) {
		t.Error("a frame matched another path's marker")
	}
	if ours(f[:markerOffset+4], marker) {
		t.Error("a truncated frame matched")
	}
	if got := netip.AddrFrom4([4]byte(f[30:34])); got != podAddr.Addr() {
		t.Errorf("destination %v, want %v", got, podAddr.Addr())
	}
	// The IPv4 header checksum of a correct header sums to zero.
	var sum uint32
	for i := 14; i < 34; i += 2 {
		sum += uint32(f[i])<<8 | uint32(f[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	if sum != 0xffff {
		t.Errorf("IPv4 header checksum does not verify (sum %#x)", sum)
	}
}

// nbdpNamespaces returns the names of the namespaces in /run/netns that
// Run's naming would give.
func nbdpNamespaces(t *testing.T) map[string]bool {
	t.Helper()
	entries, err := os.ReadDir(testnet.RunDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), namePrefix) {
			names[filepath.Join(testnet.RunDir, e.Name())] = true
		}
	}
	return names
}
