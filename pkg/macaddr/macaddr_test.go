package macaddr

import (
	"bytes"
	"fmt"
	"net"
	"testing"
)

func TestDeriveIsLocalUnicastAndDeterministic(t *testing.T) {
	for _, seed := range []string{"", "a", "sandbox-1/eth0", "x/net1/tap"} {
		a, b := Derive(seed), Derive(seed)
		if !bytes.Equal(a, b) {
			t.Errorf("Derive(%q) gave %s then %s", seed, a, b)
		}
		if !IsLocalUnicast(a) {
			t.Errorf("Derive(%q) = %s: not locally administered unicast", seed, a)
		}
	}
}

func TestDeriveNoCollisionIn100kIDs(t *testing.T) {
	seen := make(map[string]string, 100000)
	for i := 0; i < 100000; i++ {
		seed := fmt.Sprintf("%064x/eth0", i)
		mac := Derive(seed).String()
		if prev, ok := seen[mac]; ok {
			t.Fatalf("Derive(%q) and Derive(%q) both give %s", prev, seed, mac)
		}
		seen[mac] = seed
	}
}

func TestDeriveFreeSkipsTaken(t *testing.T) {
	first := Derive("id/eth0")
	got := DeriveFree("id/eth0", func(m net.HardwareAddr) bool { return bytes.Equal(m, first) })
	if got == nil || bytes.Equal(got, first) || !IsLocalUnicast(got) {
		t.Fatalf("DeriveFree = %v, want a free local unicast MAC other than %s", got, first)
	}
	if want := Derive("id/eth0#1"); !bytes.Equal(got, want) {
		t.Errorf("DeriveFree = %s, want the deterministic next candidate %s", got, want)
	}
	if m := DeriveFree("id/eth0", func(net.HardwareAddr) bool { return true }); m != nil {
		t.Errorf("DeriveFree with everything taken = %s, want nil", m)
	}
}

func TestIsLocalUnicast(t *testing.T) {
	for _, c := range []struct {
		mac  string
		want bool
	}{
		{"02:00:00:00:00:01", true},
		{"06:aa:bb:cc:dd:ee", true},
		{"00:16:3e:00:00:01", false}, // universally administered
		{"03:00:00:00:00:01", false}, // multicast
		{"33:33:00:00:00:01", false},
	} {
		m, _ := net.ParseMAC(c.mac)
		if got := IsLocalUnicast(m); got != c.want {
			t.Errorf("IsLocalUnicast(%s) = %v, want %v", c.mac, got, c.want)
		}
	}
}
