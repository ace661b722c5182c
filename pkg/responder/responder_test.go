package responder

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/netbridge/netbridge/pkg/ethframe"
)

// TestGiantFrameDropped checks that a DHCP frame longer than a frame can
// be is dropped unparsed.
func TestGiantFrameDropped(t *testing.T) {
	r := mustNew(t, bridgeConfig())
	m := dhcp4Msg(t, dhcpv4.MessageTypeDiscover, dhcpv4.WithGeneric(dhcpv4.GenericOptionCode(224), make([]byte, 250)))
	for i := 225; i < 254; i++ {
		m.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(uint8(i)), make([]byte, 250)))
	}
	f := dhcp4Req(t, m)
	if len(f) <= ethframe.MaxFrame {
		t.Fatalf("test frame of %d bytes is not giant", len(f))
	}
	none(t, r.Handle(f, t0))
	if s := r.Stats(); s.NotConfig != 1 || s.Answered != 0 {
		t.Errorf("stats %+v, want one not-config", s)
	}
}

// TestConcurrentUse runs Handle, Advertise, SetConfig and Stats at once,
// for the race detector.
func TestConcurrentUse(t *testing.T) {
	r := mustNew(t, bridgeConfig())
	frames := seedRequests(t)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				r.Handle(frames[i%len(frames)], t0.Add(time.Duration(i)*time.Second))
				r.Advertise(t0.Add(time.Duration(i) * time.Second))
				_ = r.Stats()
			}
		}()
	}
	for i := 0; i < 50; i++ {
		c := bridgeConfig()
		c.IPv4 = []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, 0, byte(10 + i)}), 24)}
		if err := r.SetConfig(c); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if s := r.Stats(); s.Frames != 800 {
		t.Errorf("stats %+v, want 800 frames", s)
	}
}
