package fakeguest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Retransmission intervals of the guest's own ARP/ND and echo requests.
const (
	resolveInterval = 200 * time.Millisecond
	echoInterval    = 250 * time.Millisecond
)

// ErrClosed is returned by methods of a [Guest] that has been closed.
var ErrClosed = errors.New("fakeguest: guest closed")

type config struct {
	vnetHdr  bool
	gateways []netip.Addr
	record   int
	queues   []*os.File
	logf     func(format string, args ...any)
}

// Option configures [New].
type Option func(*config)

// WithVnetHdr says whether frames on the tap carry a virtio_net_hdr prefix,
// that is whether the tap was opened with IFF_VNET_HDR. The default is true,
// as QEMU, Cloud Hypervisor and Firecracker open their taps that way.
func WithVnetHdr(on bool) Option {
	return func(c *config) { c.vnetHdr = on }
}

// WithGateway sets the next hop the guest uses for [Guest.Ping]
// destinations outside its own prefixes, one per address family; give the
// option twice for IPv4 and IPv6.
func WithGateway(gw netip.Addr) Option {
	return func(c *config) { c.gateways = append(c.gateways, gw.Unmap()) }
}

// WithRecord makes the guest keep copies of the last n received frames
// (without virtio-net header) for [Guest.Frames] and [Guest.WaitFrame].
func WithRecord(n int) Option {
	return func(c *config) { c.record = n }
}

// WithQueues adds further queue files of a multi-queue tap. Each queue gets
// its own reader; replies leave on the queue the request came in on, and
// frames the guest originates leave on the first queue.
func WithQueues(queues ...*os.File) Option {
	return func(c *config) { c.queues = append(c.queues, queues...) }
}

// WithLogf makes the guest log a summary of every frame it receives and
// sends, for example with t.Logf; then close the guest before the test
// ends (in t.Cleanup), since logging after a test has finished panics.
func WithLogf(logf func(format string, args ...any)) Option {
	return func(c *config) { c.logf = logf }
}

// Stats are the guest's counters.
type Stats struct {
	FramesIn  uint64 // frames read from the tap
	FramesOut uint64 // frames written to the tap
	// Replies the guest sent.
	ARPRepliesSent      uint64
	NeighborAdvertsSent uint64
	EchoRepliesSent     uint64
	// EchoRepliesReceived counts ICMP/ICMPv6 echo replies addressed to the
	// guest, answers to [Guest.Ping] or to frames injected with [Guest.Send].
	EchoRepliesReceived uint64
	// Frames dropped because of a wrong IPv4 header, ICMP or ICMPv6 checksum.
	BadChecksums uint64
	// Malformed frames (truncated headers, bad lengths, bad ND options).
	Malformed uint64
	// Frames not for the guest or of no interest to it.
	Ignored uint64
	// WriteErrors counts replies that could not be written.
	WriteErrors uint64
}

type counters struct {
	framesIn, framesOut, arpReplies, neighAdverts, echoReplies,
	echoRepliesIn, badChecksums, malformed, ignored, writeErrors atomic.Uint64
}

// pendingPing is one [Guest.Ping] in progress.
type pendingPing struct {
	src     netip.Addr
	payload []byte
	done    bool
}

type watcher struct {
	match func([]byte) bool
	ch    chan []byte
}

// Guest is a fake VM guest on a tap device: it reads frames from the tap's
// queue file(s), answers ARP, IPv6 neighbour solicitations and ICMP/ICMPv6
// echo requests for its addresses, and can send frames and pings of its
// own. Create it with [New], then call [Guest.Start]; [Guest.Close] stops it
// and closes the queue files.
type Guest struct {
	id       identity
	queues   []*os.File
	hdrLen   int // virtio_net_hdr length, 0 without IFF_VNET_HDR
	gateways []netip.Addr
	record   int
	logf     func(format string, args ...any)

	stats    counters
	stopping atomic.Bool
	wg       sync.WaitGroup

	mu       sync.Mutex
	started  bool
	closed   bool
	stopCtx  func() bool
	changed  chan struct{}
	neigh    map[netip.Addr]net.HardwareAddr
	pings    map[uint16]*pendingPing
	frames   [][]byte
	watchers map[*watcher]struct{}
	readErr  error
}

// New returns a guest with the given MAC and addresses (prefixes, so the
// guest knows which destinations are on-link) on the tap queue file tap.
// The guest takes ownership of tap and of queues given [WithQueues] and
// closes them in [Guest.Close].
//
// The files should be non-blocking so that reads can be interrupted
// (files from [OpenTap], [CreateTap] and netlink's Tuntap are); a blocking
// file is replaced by a non-blocking duplicate. When the file is a tun/tap
// device, New checks that it is a tap without packet information and that
// its IFF_VNET_HDR flag agrees with [WithVnetHdr], and reads the header
// length with TUNGETVNETHDRSZ (normally 10 bytes).
func New(tap *os.File, mac net.HardwareAddr, addrs []netip.Prefix, opts ...Option) (*Guest, error) {
	cfg := config{vnetHdr: true}
	for _, o := range opts {
		o(&cfg)
	}
	files := append([]*os.File{tap}, cfg.queues...)
	closeAll := func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}
	if !validMAC(mac) {
		closeAll()
		return nil, fmt.Errorf("fakeguest: %q is not a unicast Ethernet address", mac)
	}
	var prefixes []netip.Prefix
	for _, p := range addrs {
		if !p.IsValid() {
			closeAll()
			return nil, fmt.Errorf("fakeguest: invalid address %v", p)
		}
		prefixes = append(prefixes, netip.PrefixFrom(p.Addr().Unmap(), p.Bits()))
	}
	g := &Guest{
		id:       identity{mac: append(net.HardwareAddr(nil), mac...), addrs: prefixes},
		gateways: cfg.gateways,
		record:   cfg.record,
		logf:     cfg.logf,
		changed:  make(chan struct{}),
		neigh:    make(map[netip.Addr]net.HardwareAddr),
		pings:    make(map[uint16]*pendingPing),
		watchers: make(map[*watcher]struct{}),
	}
	for i, f := range files {
		if f == nil {
			closeAll()
			return nil, errors.New("fakeguest: nil queue file")
		}
		pf, err := pollable(f)
		if err != nil {
			closeAll()
			return nil, err
		}
		files[i] = pf
		hdrLen, err := checkTap(pf, cfg.vnetHdr)
		if err != nil {
			closeAll()
			return nil, err
		}
		if i == 0 {
			g.hdrLen = hdrLen
		} else if hdrLen != g.hdrLen {
			closeAll()
			return nil, fmt.Errorf("fakeguest: queues disagree on the virtio-net header length (%d, %d)", g.hdrLen, hdrLen)
		}
	}
	g.queues = files
	return g, nil
}

// pollable returns f if it supports deadlines, or else a non-blocking
// duplicate of it (closing f).
func pollable(f *os.File) (*os.File, error) {
	if err := f.SetReadDeadline(time.Time{}); err == nil {
		return f, nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("fakeguest: %s: %w", f.Name(), err)
	}
	var dup int
	var dupErr error
	if err := rc.Control(func(fd uintptr) {
		dup, dupErr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, fmt.Errorf("fakeguest: %s: %w", f.Name(), err)
	}
	if dupErr != nil {
		return nil, fmt.Errorf("fakeguest: duplicating %s: %w", f.Name(), dupErr)
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return nil, fmt.Errorf("fakeguest: %s: %w", f.Name(), err)
	}
	nf := os.NewFile(uintptr(dup), f.Name())
	if err := nf.SetReadDeadline(time.Time{}); err != nil {
		nf.Close()
		return nil, fmt.Errorf("fakeguest: %s does not support deadlines: %w", f.Name(), err)
	}
	f.Close()
	return nf, nil
}

// checkTap returns the virtio-net header length to use on f. For a tun/tap
// file it verifies the flags; other files (a socketpair in tests) are taken
// as they are.
func checkTap(f *os.File, vnetHdr bool) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("fakeguest: %s: %w", f.Name(), err)
	}
	var (
		flags    uint16
		hdrLen   int
		ifErr    error
		hdrSzErr error
	)
	if err := rc.Control(func(fd uintptr) {
		ifr, err := unix.NewIfreq("")
		if err != nil {
			ifErr = err
			return
		}
		if ifErr = unix.IoctlIfreq(int(fd), unix.TUNGETIFF, ifr); ifErr == nil {
			flags = ifr.Uint16()
			hdrLen, hdrSzErr = unix.IoctlGetInt(int(fd), unix.TUNGETVNETHDRSZ)
		}
	}); err != nil {
		return 0, fmt.Errorf("fakeguest: %s: %w", f.Name(), err)
	}
	if ifErr != nil {
		// Not a tun/tap file (a socketpair in unit tests): trust the option.
		if vnetHdr {
			return virtioNetHdrLen, nil
		}
		return 0, nil
	}
	if flags&unix.IFF_TAP == 0 {
		return 0, fmt.Errorf("fakeguest: %s is a tun device, not a tap (flags %#x)", f.Name(), flags)
	}
	if flags&unix.IFF_NO_PI == 0 {
		return 0, fmt.Errorf("fakeguest: %s was opened without IFF_NO_PI (flags %#x)", f.Name(), flags)
	}
	if has := flags&unix.IFF_VNET_HDR != 0; has != vnetHdr {
		return 0, fmt.Errorf("fakeguest: %s has IFF_VNET_HDR=%t but the guest was configured with WithVnetHdr(%t)", f.Name(), has, vnetHdr)
	}
	if !vnetHdr {
		return 0, nil
	}
	if hdrSzErr != nil || hdrLen < virtioNetHdrLen {
		hdrLen = virtioNetHdrLen
	}
	return hdrLen, nil
}

// MAC returns the guest's hardware address.
func (g *Guest) MAC() net.HardwareAddr { return append(net.HardwareAddr(nil), g.id.mac...) }

// Start starts one reader goroutine per queue. The readers stop when ctx is
// done or [Guest.Close] is called.
func (g *Guest) Start(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return ErrClosed
	}
	if g.started {
		return errors.New("fakeguest: already started")
	}
	g.started = true
	for _, q := range g.queues {
		g.wg.Add(1)
		go g.readLoop(q)
	}
	g.stopCtx = context.AfterFunc(ctx, g.stop)
	return nil
}

// stop makes the readers return: it sets the stop flag, then a read
// deadline in the past, which wakes a blocked Read with
// os.ErrDeadlineExceeded.
func (g *Guest) stop() {
	g.stopping.Store(true)
	for _, q := range g.queues {
		_ = q.SetReadDeadline(time.Unix(1, 0))
	}
}

// Close stops the readers, waits for them and closes the queue files. It
// returns promptly (a blocked read is interrupted through its deadline) and
// may be called more than once.
func (g *Guest) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	if g.stopCtx != nil {
		g.stopCtx()
	}
	g.notifyLocked()
	g.mu.Unlock()
	g.stop()
	g.wg.Wait()
	var errs []error
	for _, q := range g.queues {
		if err := q.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Err returns the error that made a reader stop early, such as EBADFD after
// the tap device was deleted, or nil.
func (g *Guest) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.readErr
}

// Stats returns a copy of the guest's counters.
func (g *Guest) Stats() Stats {
	c := &g.stats
	return Stats{
		FramesIn:            c.framesIn.Load(),
		FramesOut:           c.framesOut.Load(),
		ARPRepliesSent:      c.arpReplies.Load(),
		NeighborAdvertsSent: c.neighAdverts.Load(),
		EchoRepliesSent:     c.echoReplies.Load(),
		EchoRepliesReceived: c.echoRepliesIn.Load(),
		BadChecksums:        c.badChecksums.Load(),
		Malformed:           c.malformed.Load(),
		Ignored:             c.ignored.Load(),
		WriteErrors:         c.writeErrors.Load(),
	}
}

// Frames returns copies of the recorded frames, oldest first (see
// [WithRecord]).
func (g *Guest) Frames() [][]byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([][]byte, len(g.frames))
	for i, f := range g.frames {
		out[i] = append([]byte(nil), f...)
	}
	return out
}

// ClearFrames forgets the recorded frames.
func (g *Guest) ClearFrames() {
	g.mu.Lock()
	g.frames = nil
	g.mu.Unlock()
}

// WaitFrame returns a copy of the first frame for which match returns true:
// a recorded one (see [WithRecord]) if there is one, otherwise the next
// such frame received. match runs with the guest's lock held and must not
// call the guest's methods.
func (g *Guest) WaitFrame(ctx context.Context, match func(frame []byte) bool) ([]byte, error) {
	g.mu.Lock()
	for _, f := range g.frames {
		if match(f) {
			g.mu.Unlock()
			return append([]byte(nil), f...), nil
		}
	}
	if g.closed {
		g.mu.Unlock()
		return nil, ErrClosed
	}
	w := &watcher{match: match, ch: make(chan []byte, 1)}
	g.watchers[w] = struct{}{}
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.watchers, w)
		g.mu.Unlock()
	}()
	select {
	case f := <-w.ch:
		return f, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("fakeguest: waiting for frame: %w", ctx.Err())
	}
}

func (g *Guest) readLoop(q *os.File) {
	defer g.wg.Done()
	buf := make([]byte, g.hdrLen+maxFrameLen)
	for {
		n, err := q.Read(buf)
		if err != nil {
			if g.stopping.Load() {
				return
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			g.mu.Lock()
			if g.readErr == nil {
				g.readErr = fmt.Errorf("fakeguest: reading %s: %w", q.Name(), err)
			}
			g.notifyLocked()
			g.mu.Unlock()
			return
		}
		g.receive(q, buf[:n])
	}
}

// receive handles one buffer read from queue q.
func (g *Guest) receive(q *os.File, data []byte) {
	g.stats.framesIn.Add(1)
	skipL4 := false
	if g.hdrLen > 0 {
		if len(data) < g.hdrLen {
			g.stats.malformed.Add(1)
			return
		}
		// VIRTIO_NET_HDR_F_NEEDS_CSUM: the transport checksum is partial.
		skipL4 = data[0]&virtioNeedsCsum != 0
		data = data[g.hdrLen:]
	}
	if g.logf != nil {
		g.logf("fakeguest %s: rx %s", g.id.mac, Describe(data))
	}
	out := g.id.handle(data, skipL4)
	// Count before waking waiters, so that the counters already include
	// this frame when a Ping returns.
	c := &g.stats
	switch out.verdict {
	case verdictIgnored:
		c.ignored.Add(1)
	case verdictMalformed:
		c.malformed.Add(1)
	case verdictBadChecksum:
		c.badChecksums.Add(1)
	case verdictARPReply:
		c.arpReplies.Add(1)
	case verdictNeighborAdvert:
		c.neighAdverts.Add(1)
	case verdictEchoReply:
		c.echoReplies.Add(1)
	case verdictEchoReplyReceived:
		c.echoRepliesIn.Add(1)
	}

	g.mu.Lock()
	if g.record > 0 {
		if len(g.frames) >= g.record {
			g.frames = append(g.frames[:0], g.frames[len(g.frames)-g.record+1:]...)
		}
		g.frames = append(g.frames, append([]byte(nil), data...))
	}
	for w := range g.watchers {
		if w.match(data) {
			select {
			case w.ch <- append([]byte(nil), data...):
			default:
			}
			delete(g.watchers, w)
		}
	}
	if out.learned != nil {
		g.neigh[out.learned.ip] = out.learned.mac
		g.notifyLocked()
	}
	if e := out.echo; e != nil {
		if p := g.pings[e.id]; p != nil && p.src == e.src && bytes.Equal(p.payload, e.payload) {
			p.done = true
			g.notifyLocked()
		}
	}
	g.mu.Unlock()

	if out.reply != nil {
		if err := g.write(q, out.reply); err != nil {
			g.stats.writeErrors.Add(1)
		}
	}
}

// notifyLocked wakes everything waiting for a state change; g.mu is held.
func (g *Guest) notifyLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// write sends one Ethernet frame on queue q, behind a zeroed virtio-net
// header when the tap uses one (no checksum offload, no GSO).
func (g *Guest) write(q *os.File, frame []byte) error {
	buf := frame
	if g.hdrLen > 0 {
		buf = make([]byte, g.hdrLen+len(frame))
		copy(buf[g.hdrLen:], frame)
	}
	if _, err := q.Write(buf); err != nil {
		return fmt.Errorf("fakeguest: writing %d-byte frame to %s: %w", len(frame), q.Name(), err)
	}
	g.stats.framesOut.Add(1)
	if g.logf != nil {
		g.logf("fakeguest %s: tx %s", g.id.mac, Describe(frame))
	}
	return nil
}

// Send writes an arbitrary Ethernet frame (without virtio-net header; the
// guest adds it) to the tap's first queue, as if the guest transmitted it.
func (g *Guest) Send(frame []byte) error {
	g.mu.Lock()
	closed := g.closed
	g.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return g.write(g.queues[0], frame)
}

// route returns the source address and next hop for dst.
func (g *Guest) route(dst netip.Addr) (src, nextHop netip.Addr, err error) {
	for _, p := range g.id.addrs {
		if p.Addr().Is4() == dst.Is4() && p.Contains(dst) {
			return p.Addr(), dst, nil
		}
	}
	for _, gw := range g.gateways {
		if gw.Is4() != dst.Is4() {
			continue
		}
		for _, p := range g.id.addrs {
			if p.Addr().Is4() == dst.Is4() && p.Contains(gw) {
				return p.Addr(), gw, nil
			}
		}
		for _, p := range g.id.addrs {
			if p.Addr().Is4() == dst.Is4() {
				return p.Addr(), gw, nil
			}
		}
	}
	return netip.Addr{}, netip.Addr{}, fmt.Errorf("fakeguest: no route to %s (no on-link prefix or gateway of that family)", dst)
}

// waitChange waits until the state changes, d passes or ctx is done.
func (g *Guest) waitChange(ctx context.Context, ch <-chan struct{}, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ch:
	case <-timer.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// Resolve returns the MAC address of the on-link neighbour ip, sending ARP
// requests (IPv4) or neighbour solicitations (IPv6) from src every 200 ms
// until an answer arrives or ctx is done. Answers are cached.
func (g *Guest) Resolve(ctx context.Context, src, ip netip.Addr) (net.HardwareAddr, error) {
	for {
		g.mu.Lock()
		mac, ok := g.neigh[ip]
		ch, closed, rerr := g.changed, g.closed, g.readErr
		g.mu.Unlock()
		if ok {
			return mac, nil
		}
		if closed {
			return nil, ErrClosed
		}
		if rerr != nil {
			return nil, rerr
		}
		var req []byte
		if ip.Is4() {
			req = BuildARPRequest(g.id.mac, src, ip)
		} else {
			req = BuildNeighborSolicitation(g.id.mac, src, ip)
		}
		if err := g.write(g.queues[0], req); err != nil {
			return nil, err
		}
		deadline := time.Now().Add(resolveInterval)
		for time.Now().Before(deadline) {
			if err := g.waitChange(ctx, ch, time.Until(deadline)); err != nil {
				return nil, fmt.Errorf("fakeguest: resolving %s: %w", ip, err)
			}
			g.mu.Lock()
			_, ok = g.neigh[ip]
			ch = g.changed
			stop := g.closed || g.readErr != nil
			g.mu.Unlock()
			if ok || stop {
				break
			}
		}
	}
}

// Ping sends ICMP or ICMPv6 echo requests from the guest to dst until a
// matching echo reply comes back or ctx is done. The guest first resolves
// the next hop (dst itself when it is inside one of the guest's prefixes,
// otherwise the gateway given with [WithGateway]) with ARP or neighbour
// discovery. size is the IP packet size as in testnet.Ping (0 for a 56-byte
// payload); IPv4 packets have DF set.
func (g *Guest) Ping(ctx context.Context, dst netip.Addr, size int) error {
	dst = dst.Unmap()
	src, nextHop, err := g.route(dst)
	if err != nil {
		return err
	}
	hdr := ipv4HdrLen
	if dst.Is6() {
		hdr = ipv6HdrLen
	}
	payloadLen := defaultPayloadSize
	if size > 0 {
		payloadLen = size - hdr - 8
		if payloadLen < 0 {
			return fmt.Errorf("fakeguest: ping size %d is smaller than the headers", size)
		}
	}
	mac, err := g.Resolve(ctx, src, nextHop)
	if err != nil {
		return fmt.Errorf("fakeguest: ping %s: %w", dst, err)
	}

	var idb [2]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return fmt.Errorf("fakeguest: random identifier: %w", err)
	}
	payload := make([]byte, payloadLen)
	for i := range payload {
		payload[i] = byte(i*13 + 5)
	}
	p := &pendingPing{src: dst, payload: payload}
	g.mu.Lock()
	id := binary.BigEndian.Uint16(idb[:])
	for g.pings[id] != nil {
		id++
	}
	g.pings[id] = p
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.pings, id)
		g.mu.Unlock()
	}()

	for seq := uint16(1); ; seq++ {
		g.mu.Lock()
		ch, closed, rerr := g.changed, g.closed, g.readErr
		g.mu.Unlock()
		if closed {
			return ErrClosed
		}
		if rerr != nil {
			return rerr
		}
		if err := g.write(g.queues[0], BuildEcho(g.id.mac, mac, src, dst, id, seq, payload)); err != nil {
			return err
		}
		deadline := time.Now().Add(echoInterval)
		for time.Now().Before(deadline) {
			if err := g.waitChange(ctx, ch, time.Until(deadline)); err != nil {
				return fmt.Errorf("fakeguest: ping %s from %s: no reply: %w", dst, src, err)
			}
			g.mu.Lock()
			done := p.done
			ch = g.changed
			stop := g.closed || g.readErr != nil
			g.mu.Unlock()
			if done {
				return nil
			}
			if stop {
				break
			}
		}
	}
}
