package testnet

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestPing(t *testing.T) {
	a, b := NewNS(t), NewNS(t)
	VethPair(t, a, b, "va", "vb", 9000)
	AddAddr(t, a, "va", "203.0.113.1/24")
	AddAddr(t, a, "va", "2001:db8:2::1/64")
	AddAddr(t, b, "vb", "203.0.113.2/24")
	AddAddr(t, b, "vb", "2001:db8:2::2/64")

	for _, dst := range []string{"203.0.113.2", "2001:db8:2::2"} {
		dst := netip.MustParseAddr(dst)
		for _, size := range []int{0, 1500, 9000} {
			if err := Ping(a, dst, size, 5*time.Second); err != nil {
				t.Errorf("size %d: %v", size, err)
			}
		}
		start := time.Now()
		err := Ping(a, dst, 9001, 5*time.Second)
		if !errors.Is(err, unix.EMSGSIZE) {
			t.Errorf("ping %s with 9001 bytes over a 9000 MTU: got %v, want EMSGSIZE", dst, err)
		}
		if time.Since(start) > time.Second {
			t.Errorf("oversized ping took %s to fail", time.Since(start))
		}
	}
	// Reverse direction.
	if err := Ping(b, netip.MustParseAddr("203.0.113.1"), 0, 5*time.Second); err != nil {
		t.Error(err)
	}
}

func TestPingLinkLocal(t *testing.T) {
	a, b := NewNS(t), NewNS(t)
	VethPair(t, a, b, "va", "vb", 0)
	Snapshot(t, b) // waits for the link-local address
	addrs, err := Handle(t, b).AddrList(LinkByName(t, b, "vb"), unix.AF_INET6)
	if err != nil {
		t.Fatal(err)
	}
	var ll netip.Addr
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.IsLinkLocalUnicast() {
			ll = ip
		}
	}
	if !ll.IsValid() {
		t.Fatalf("vb has no link-local address: %v", addrs)
	}
	if err := Ping(a, ll.WithZone("va"), 0, 5*time.Second); err != nil {
		t.Error(err)
	}
}

func TestPingNoReply(t *testing.T) {
	a, b := NewNS(t), NewNS(t)
	VethPair(t, a, b, "va", "vb", 0)
	AddAddr(t, a, "va", "203.0.113.1/24")
	start := time.Now()
	err := Ping(a, netip.MustParseAddr("203.0.113.9"), 0, time.Second)
	if !errors.Is(err, ErrNoReply) {
		t.Fatalf("got %v, want ErrNoReply", err)
	}
	if d := time.Since(start); d < time.Second || d > 2*time.Second {
		t.Errorf("Ping returned after %s, want about 1s", d)
	}
	t.Log(err)
}
