package fakeguest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// socketPair returns two connected non-blocking SOCK_SEQPACKET sockets.
// Like a tap queue, each write on one end is read as one message on the
// other, so the "host" end can stand in for the kernel side of a tap.
func socketPair(t *testing.T) (guestEnd, hostEnd *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	for _, fd := range fds {
		// Room for 9000-byte frames and more.
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 1<<20)
	}
	hostEnd = os.NewFile(uintptr(fds[1]), "host-end")
	t.Cleanup(func() { hostEnd.Close() })
	return os.NewFile(uintptr(fds[0]), "guest-end"), hostEnd
}

// peer is the host side of a socket pair.
type peer struct {
	t      *testing.T
	f      *os.File
	hdrLen int
}

func (p *peer) send(frame []byte) {
	p.t.Helper()
	buf := append(make([]byte, p.hdrLen), frame...)
	if _, err := p.f.Write(buf); err != nil {
		p.t.Fatalf("host write: %v", err)
	}
}

// recv returns the next frame from the guest, checking that the virtio-net
// header is all zeros.
func (p *peer) recv(timeout time.Duration) ([]byte, error) {
	buf := make([]byte, 70000)
	if err := p.f.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	n, err := p.f.Read(buf)
	if err != nil {
		return nil, err
	}
	if n < p.hdrLen {
		return nil, errors.New("short frame")
	}
	if !bytes.Equal(buf[:p.hdrLen], make([]byte, p.hdrLen)) {
		return nil, errors.New("non-zero virtio-net header")
	}
	return buf[p.hdrLen:n], nil
}

func startGuest(t *testing.T, vnet bool, opts ...Option) (*Guest, *peer) {
	t.Helper()
	ge, he := socketPair(t)
	opts = append([]Option{WithVnetHdr(vnet)}, opts...)
	g, err := New(ge, guestMAC, []netip.Prefix{netip.MustParsePrefix("198.51.100.2/24"), netip.MustParsePrefix("2001:db8:1::2/64")}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	hdr := 0
	if vnet {
		hdr = virtioNetHdrLen
	}
	return g, &peer{t: t, f: he, hdrLen: hdr}
}

func TestGuestAnswers(t *testing.T) {
	for _, vnet := range []bool{true, false} {
		t.Run(map[bool]string{true: "vnet_hdr", false: "plain"}[vnet], func(t *testing.T) {
			g, h := startGuest(t, vnet)
			h.send(BuildARPRequest(hostMAC, hostV4, guestV4))
			r, err := h.recv(2 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if a, ok := parseARP(r[etherHdrLen:]); !ok || a.op != arpOpReply || a.spa != guestV4 {
				t.Fatalf("unexpected answer %s", Describe(r))
			}
			payload := bytes.Repeat([]byte{0xa5}, 9000-28)
			h.send(BuildEcho(hostMAC, guestMAC, hostV4, guestV4, 1, 1, payload))
			r, err = h.recv(2 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			checkIPv4EchoReply(t, r, payload)

			h.send(BuildNeighborSolicitation(hostMAC, hostV6, guestV6))
			r, err = h.recv(2 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			checkNA(t, r, hostMAC, hostV6, naFlagSolicited|naFlagOverride)

			h.send(BuildEcho(hostMAC, guestMAC, hostV6, guestV6, 2, 2, payload[:9000-48]))
			if r, err = h.recv(2 * time.Second); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(Describe(r), "icmp6 type 129") {
				t.Errorf("unexpected answer %s", Describe(r))
			}
			// FramesOut is counted after the write returns, which may be
			// after the peer has read the frame.
			s := waitStats(t, g, func(s Stats) bool { return s.FramesOut == 4 })
			if s.FramesIn != 4 || s.FramesOut != 4 || s.ARPRepliesSent != 1 || s.NeighborAdvertsSent != 1 || s.EchoRepliesSent != 2 || s.BadChecksums != 0 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

// waitStats polls the guest's counters until cond holds or a second passes,
// and returns the last counters.
func waitStats(t *testing.T, g *Guest, cond func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		s := g.Stats()
		if cond(s) || time.Now().After(deadline) {
			return s
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestGuestCountsBadFrames(t *testing.T) {
	g, h := startGuest(t, true, WithRecord(2))
	bad := BuildEcho(hostMAC, guestMAC, hostV4, guestV4, 1, 1, []byte("x"))
	bad[len(bad)-1] ^= 0xff
	h.send(bad)
	h.send([]byte{1, 2, 3})
	h.send(BuildEcho(hostMAC, net.HardwareAddr{2, 9, 9, 9, 9, 9}, hostV4, guestV4, 1, 1, nil))
	s := waitStats(t, g, func(s Stats) bool { return s.BadChecksums+s.Malformed+s.Ignored == 3 })
	if s.BadChecksums != 1 || s.Malformed != 1 || s.Ignored != 1 || s.FramesOut != 0 {
		t.Errorf("stats %+v", s)
	}
	if fs := g.Frames(); len(fs) != 2 || len(fs[0]) != 3 {
		t.Errorf("recorded %d frames, want the last 2", len(fs))
	}
	// A partial checksum announced in the virtio-net header is accepted.
	buf := append(make([]byte, virtioNetHdrLen), bad...)
	buf[0] = virtioNeedsCsum
	if _, err := h.f.Write(buf); err != nil {
		t.Fatal(err)
	}
	if r, err := h.recv(2 * time.Second); err != nil || !strings.Contains(Describe(r), "icmp type 0") {
		t.Errorf("no reply to a frame with a partial checksum: %v %s", err, Describe(r))
	}
}

// answerAll makes the host end answer the guest like a host at
// hostV4/hostV6 would, until the test ends.
func answerAll(t *testing.T, h *peer) {
	host := &identity{mac: hostMAC, addrs: []netip.Prefix{
		netip.MustParsePrefix("198.51.100.1/24"), netip.MustParsePrefix("2001:db8:1::1/64"),
		netip.MustParsePrefix("203.0.113.9/32"),
	}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			r, err := h.recv(50 * time.Millisecond)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				select {
				case <-t.Context().Done():
					return
				default:
					continue
				}
			}
			if err != nil {
				return
			}
			// Pretend to route: accept frames for the gateway's MAC.
			if out := host.handle(r, false); out.reply != nil {
				buf := append(make([]byte, h.hdrLen), out.reply...)
				if _, err := h.f.Write(buf); err != nil {
					return
				}
			}
		}
	}()
	t.Cleanup(func() { <-done })
}

func TestGuestPing(t *testing.T) {
	g, h := startGuest(t, true, WithGateway(hostV4), WithGateway(hostV6), WithRecord(64))
	answerAll(t, h)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for _, dst := range []netip.Addr{hostV4, hostV6, netip.MustParseAddr("203.0.113.9")} {
		for _, size := range []int{0, 9000} {
			if err := g.Ping(ctx, dst, size); err != nil {
				t.Errorf("ping %s size %d: %v", dst, size, err)
			}
		}
	}
	if s := waitStats(t, g, func(s Stats) bool { return s.EchoRepliesReceived == 6 }); s.EchoRepliesReceived != 6 {
		t.Errorf("stats %+v", s)
	}
	// The ARP reply from the host was recorded and can be waited for.
	f, err := g.WaitFrame(ctx, func(f []byte) bool { return strings.Contains(Describe(f), "ARP op 2") })
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f[6:12], hostMAC) {
		t.Errorf("unexpected frame %s", Describe(f))
	}
	// No route for a family without address or gateway.
	g2, _ := startGuest(t, true)
	if err := g2.Ping(ctx, netip.MustParseAddr("192.0.2.1"), 0); err == nil || !strings.Contains(err.Error(), "no route") {
		t.Errorf("ping without route: %v", err)
	}
}

func TestGuestPingTimesOut(t *testing.T) {
	g, _ := startGuest(t, true)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	err := g.Ping(ctx, netip.MustParseAddr("198.51.100.1"), 0)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want a deadline error", err)
	}
}

func TestGuestWaitFrameFuture(t *testing.T) {
	g, h := startGuest(t, true)
	got := make(chan []byte, 1)
	go func() {
		f, err := g.WaitFrame(t.Context(), func(f []byte) bool { return bytes.Contains(f, []byte("needle")) })
		if err == nil {
			got <- f
		}
		close(got)
	}()
	time.Sleep(20 * time.Millisecond) // let WaitFrame register
	h.send(BuildEcho(hostMAC, guestMAC, hostV4, guestV4, 1, 1, []byte("hay")))
	h.send(BuildEcho(hostMAC, guestMAC, hostV4, guestV4, 1, 2, []byte("needle")))
	select {
	case f := <-got:
		if !bytes.Contains(f, []byte("needle")) {
			t.Errorf("wrong frame %s", Describe(f))
		}
	case <-time.After(2 * time.Second):
		t.Fatal("WaitFrame did not return")
	}
}

func readerGoroutines() int {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	return strings.Count(string(buf[:n]), "fakeguest.(*Guest).readLoop")
}

func TestGuestCloseIsPromptAndLeakFree(t *testing.T) {
	before := readerGoroutines()
	ge, _ := socketPair(t)
	ge2, _ := socketPair(t)
	g, err := New(ge, guestMAC, []netip.Prefix{netip.MustParsePrefix("198.51.100.2/24")}, WithQueues(ge2))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
	time.Sleep(20 * time.Millisecond) // readers are blocked in Read
	if n := readerGoroutines(); n != before+2 {
		t.Fatalf("%d reader goroutines, want %d", n, before+2)
	}
	start := time.Now()
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Close took %s", d)
	}
	if n := readerGoroutines(); n != before {
		t.Errorf("%d reader goroutines left after Close", n-before)
	}
	if err := g.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := g.Send([]byte{1}); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close: %v", err)
	}
	// The guest closed the files it owns.
	if err := ge.Close(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("queue file not closed by Close: %v", err)
	}
}

func TestGuestStopsWithContext(t *testing.T) {
	before := readerGoroutines()
	ge, _ := socketPair(t)
	g, err := New(ge, guestMAC, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx, cancel := context.WithCancel(context.Background())
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.Now().Add(time.Second)
	for readerGoroutines() != before {
		if time.Now().After(deadline) {
			t.Fatal("reader still running after the context was cancelled")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestGuestReadError(t *testing.T) {
	g, h := startGuest(t, true)
	h.f.Close() // the guest's next read sees EOF
	deadline := time.Now().Add(2 * time.Second)
	for g.Err() == nil {
		if time.Now().After(deadline) {
			t.Fatal("no read error reported")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !errors.Is(g.Err(), io.ErrUnexpectedEOF) {
		t.Errorf("Err() = %v", g.Err())
	}
}

func TestGuestBlockingFileMadePollable(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	blocking := os.NewFile(uintptr(fds[0]), "blocking")
	host := os.NewFile(uintptr(fds[1]), "host")
	defer host.Close()
	g, err := New(blocking, guestMAC, []netip.Prefix{netip.MustParsePrefix("198.51.100.2/24")}, WithVnetHdr(false))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	g.Close()
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Close on a file that was blocking took %s", d)
	}
}

func TestNewValidates(t *testing.T) {
	ge, _ := socketPair(t)
	if _, err := New(ge, net.HardwareAddr{1, 0, 0, 0, 0, 1}, nil); err == nil {
		t.Error("multicast MAC accepted")
	}
	ge, _ = socketPair(t)
	if _, err := New(ge, guestMAC, []netip.Prefix{{}}); err == nil {
		t.Error("invalid prefix accepted")
	}
}
