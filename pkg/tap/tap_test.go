package tap

import (
	"errors"
	"os"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func inFreshNetns(t *testing.T, fn func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	target, err := testutils.NewNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { target.Close(); testutils.UnmountNS(target) })
	if err := target.Do(func(ns.NetNS) error { fn(); return nil }); err != nil {
		t.Fatal(err)
	}
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

func TestCreateSingleQueuePersistent(t *testing.T) {
	inFreshNetns(t, func() {
		owner := uint32(1234)
		fs, err := Create(Config{Name: "tap-t1", VnetHdr: true, Persist: true, Owner: &owner})
		if err != nil {
			t.Fatal(err)
		}
		if len(fs) != 1 {
			t.Fatalf("got %d queues, want 1", len(fs))
		}
		flags, err := Flags(fs[0])
		if err != nil {
			t.Fatal(err)
		}
		want := uint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
		if flags&want != want || flags&unix.IFF_MULTI_QUEUE != 0 {
			t.Errorf("flags = %#x, want %#x without IFF_MULTI_QUEUE", flags, want)
		}
		if _, err := Create(Config{Name: "tap-t1", VnetHdr: true}); !errors.Is(err, ErrExists) {
			t.Errorf("second Create = %v, want ErrExists", err)
		}
		closeAll(fs)
		l, err := netlink.LinkByName("tap-t1")
		if err != nil {
			t.Fatalf("persistent tap gone after closing its queue: %v", err)
		}
		tt, ok := l.(*netlink.Tuntap)
		if !ok || tt.Owner != owner || tt.NonPersist {
			t.Errorf("tap = %+v, want a persistent tuntap owned by %d", l, owner)
		}
		re, err := Open("tap-t1", 1, true)
		if err != nil {
			t.Fatalf("reopening the persistent tap: %v", err)
		}
		closeAll(re)
		if err := netlink.LinkDel(l); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCreateMultiQueueNonPersistent(t *testing.T) {
	inFreshNetns(t, func() {
		fs, err := Create(Config{Name: "tap-mq", Queues: 4, VnetHdr: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(fs) != 4 {
			t.Fatalf("got %d queues, want 4", len(fs))
		}
		for i, f := range fs {
			flags, err := Flags(f)
			if err != nil || flags&unix.IFF_MULTI_QUEUE == 0 {
				t.Errorf("queue %d flags = %#x, %v; want IFF_MULTI_QUEUE", i, flags, err)
			}
		}
		if _, err := Open("tap-mq", 1, true); err == nil {
			t.Error("Open with single-queue flags on a multi-queue tap succeeded")
		}
		closeAll(fs)
		if _, err := netlink.LinkByName("tap-mq"); err == nil {
			t.Error("non-persistent tap still exists after its queues were closed")
		}
	})
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{Name: ""}, {Name: "0123456789abcdef"}, {Name: "x", Queues: 257}} {
		if c.Validate() == nil {
			t.Errorf("Validate(%+v) = nil, want an error", c)
		}
	}
	if err := (Config{Name: "0123456789abcde", Queues: 256}).Validate(); err != nil {
		t.Errorf("Validate of a 15-byte name with 256 queues = %v", err)
	}
}
