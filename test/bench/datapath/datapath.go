// Package datapath measures how many frames per second each netbridge model
// carries from the node into a guest's tap queue, against a veth delivering
// the same frames to a packet socket without netbridge.
//
// For every path Run builds a private world: a node netns and a pod netns
// (bind-mounted as /run/netns/nbdp-<random>) joined by a veth pair
// (198.51.100.1/24 on the node side, 198.51.100.2/24 on eth0 in the pod).
// For a model path it wires the pod with netbridge.Manager.Setup (HoldFDs) and
// reads the tap queue file (for model macvtap, the file opened on the
// macvtap's device node), stripping the virtio-net header (TUNGETVNETHDRSZ,
// 10 bytes) in front of every frame; for the reference path, "veth
// (reference)", it reads an AF_PACKET socket bound to eth0.
//
// A sender on a locked OS thread in the node netns writes 1442-byte Ethernet
// frames (IPv4 UDP to 198.51.100.2:9, 1400-byte payload, destination MAC the
// guest's, that is eth0's original MAC) to an AF_PACKET socket on the node's
// veth as fast as it can; a reader on a locked OS thread in the pod netns
// counts the frames of that path (recognised by a per-path random marker)
// that reach it. Frames a path drops under the load are not counted, so a
// Result is what the path delivered, not what was offered. The kernel does
// the receive side of a veth (and so the whole model: tc redirect, bridge,
// macvtap) in the sending thread's softirq, so a costlier path also slows
// the sender.
//
// In the reference path eth0 gets another MAC while the frames stay
// addressed to the guest MAC, so the pod's IPv4 input drops them at its
// first check (other host); in the model paths the pod's stack never sees
// them either. Without that, the reference would also pay for the pod's
// IPv4, UDP and ICMP error processing of every frame and come out slower
// than the models.
//
// Run builds every path first and then measures them in rounds of about
// 250 ms each, so that a change in the machine's background load during
// Run affects every path alike. Everything Run creates (namespaces, links,
// netbridge state) is removed before it returns, also on error. Run needs
// root and never touches the namespace it is called in.
package datapath

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/testnet"
)

// Result is what one path delivered.
type Result struct {
	// Path names the path: "veth (reference)", or a netbridge model
	// (tcfilter, bridge, macvtap).
	Path string
	// Frames and Bytes count the frames the reader received and their
	// Ethernet length (virtio-net header excluded).
	Frames, Bytes uint64
	// Seconds is how long the sender sent, measured.
	Seconds float64
}

// referencePath is the Path of the result measured without netbridge.
const referencePath = "veth (reference)"

// The addresses of the veth pair, from 198.51.100.0/24 (TEST-NET-2).
var (
	nodeAddr = netip.MustParsePrefix("198.51.100.1/24")
	podAddr  = netip.MustParsePrefix("198.51.100.2/24")
)

const (
	nodeIf = "nbdp0" // the veth end in the node netns
	podIf  = "eth0"  // the veth end in the pod netns, the CNI interface

	// drainIdle is how long the reader waits for more frames once the
	// sender has stopped; frames still queued in the path arrive within it.
	drainIdle = 50 * time.Millisecond
	// cleanupTimeout bounds netbridge.Manager.Teardown, which runs even when ctx
	// is done.
	cleanupTimeout = 30 * time.Second
	// rcvBuf is the receive buffer of the reference packet socket, in the
	// order of a tap's queue (1000 frames), so that the reference is not
	// limited by a small default buffer.
	rcvBuf = 4 << 20
)

// sliceLen is the length of one measurement slice. Run measures the paths
// in rounds, one slice of each path per round, so that a change in the
// machine's background load during Run affects every path alike.
const sliceLen = 250 * time.Millisecond

// paths are the measured paths, in order: the reference first.
var paths = []struct {
	name  string
	model sandbox.Model
}{
	{referencePath, ""},
	{string(sandbox.ModelTCFilter), sandbox.ModelTCFilter},
	{string(sandbox.ModelBridge), sandbox.ModelBridge},
	{string(sandbox.ModelMacvtap), sandbox.ModelMacvtap},
}

// Run measures every path for d each and returns one Result per path: the
// reference ("veth (reference)") first, then tcfilter, bridge and macvtap.
// It first builds every path, then sends through them in turn, in slices of
// about 250 ms, until each has had d; the results add the slices up. On
// error it returns no results. It needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN,
// CAP_NET_RAW).
func Run(ctx context.Context, d time.Duration) (results []Result, err error) {
	if d <= 0 {
		return nil, fmt.Errorf("datapath: duration %v must be positive", d)
	}
	stateDir, err := os.MkdirTemp("", namePrefix+"state-")
	if err != nil {
		return nil, fmt.Errorf("datapath: creating the netbridge state directory: %w", err)
	}
	record(stateDir)
	var worlds []*world
	defer func() {
		// Newest first, as they were built.
		for i := len(worlds) - 1; i >= 0; i-- {
			if cerr := worlds[i].close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("datapath: path %s: %w", worlds[i].name, cerr))
			}
		}
		if rerr := os.RemoveAll(stateDir); rerr != nil {
			err = errors.Join(err, fmt.Errorf("datapath: removing the netbridge state directory: %w", rerr))
		}
		if err != nil {
			results = nil
		}
	}()
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("datapath: %w", err)
		}
		w, err := newWorld(ctx, p.name, p.model, stateDir)
		if err != nil {
			return nil, fmt.Errorf("datapath: path %s: %w", p.name, err)
		}
		worlds = append(worlds, w)
	}

	rounds := max(1, int((d+sliceLen/2)/sliceLen))
	results = make([]Result, len(worlds))
	for i, w := range worlds {
		results[i].Path = w.name
	}
	for round := range rounds {
		// The last round takes what the others left of d.
		slice := d / time.Duration(rounds)
		if round == rounds-1 {
			slice = d - slice*time.Duration(rounds-1)
		}
		for i, w := range worlds {
			frames, nbytes, seconds, err := w.measure(ctx, slice)
			if err != nil {
				return nil, fmt.Errorf("datapath: path %s: %w", w.name, err)
			}
			results[i].Frames += frames
			results[i].Bytes += nbytes
			results[i].Seconds += seconds
		}
	}
	return results, nil
}

// world is one path, built: a node and a pod netns joined by a veth, the
// pod wired by netbridge (except for the reference path), and what the
// sender sends and the reader reads.
type world struct {
	name      string
	node, pod ns.NetNS
	nodeIndex int    // the node veth's ifindex, in node
	frame     []byte // what the sender sends
	marker    []byte // what the reader recognises the path's frames by
	// open opens the reader's file on a thread inside pod: a packet socket
	// or a duplicate of the tap queue; hdrLen is the virtio-net header
	// length in front of every frame.
	open func() (fd, hdrLen int, closeFn func() error, err error)
	// undo holds what close runs, newest last.
	undo []func() error
}

// newWorld builds the path name, wired with model (none for the reference).
// On error it removes what it built.
func newWorld(ctx context.Context, name string, model sandbox.Model, stateDir string) (_ *world, err error) {
	w := &world{name: name}
	defer func() {
		if err != nil {
			err = errors.Join(err, w.close())
		}
	}()
	if w.node, err = newNS(); err != nil {
		return nil, fmt.Errorf("creating the node netns: %w", err)
	}
	node := w.node
	w.undo = append(w.undo, func() error { return testnet.DestroyNS(node) })
	if w.pod, err = newNS(); err != nil {
		return nil, fmt.Errorf("creating the pod netns: %w", err)
	}
	pod := w.pod
	w.undo = append(w.undo, func() error { return testnet.DestroyNS(pod) })

	nodeLink, podLink, err := vethPair(w.node, w.pod, nodeIf, podIf, nodeAddr.String(), podAddr.String())
	if err != nil {
		return nil, err
	}
	w.nodeIndex = nodeLink.Attrs().Index
	guestMAC := podLink.Attrs().HardwareAddr

	nonce, err := randomHex(8)
	if err != nil {
		return nil, err
	}
	w.marker = []byte(markerText + nonce)

	if model == "" {
		// Frames stay addressed to the guest MAC, but the veth gets
		// another one: the frames are then "other host" frames, which the
		// pod's IPv4 input drops at its first check. In the netbridge
		// paths the pod's stack never sees them either, so the reference
		// measures the veth and the packet socket, not the pod's IPv4 and
		// ICMP processing.
		if err := setRandomMAC(w.pod, podIf); err != nil {
			return nil, err
		}
		podIndex := podLink.Attrs().Index
		w.open = func() (int, int, func() error, error) {
			fd, err := packetSocket(podIndex)
			if err != nil {
				return -1, 0, nil, err
			}
			return fd, 0, func() error { return closeFD(fd, "packet socket") }, nil
		}
	} else {
		id := namePrefix + nonce
		sb, err := netbridge.New(stateDir, nil).Setup(ctx, sandbox.Config{ID: id, Netns: w.pod.Path(), Model: model, HoldFDs: true})
		if err != nil {
			return nil, fmt.Errorf("netbridge setup (model %s): %w", model, err)
		}
		w.undo = append(w.undo, func() error {
			var errs []error
			if err := sb.Close(); err != nil {
				errs = append(errs, fmt.Errorf("closing the tap queues: %w", err))
			}
			// Teardown runs even when ctx is done.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			defer cancel()
			if err := netbridge.New(stateDir, nil).Teardown(cctx, id); err != nil {
				errs = append(errs, fmt.Errorf("netbridge teardown: %w", err))
			}
			return errors.Join(errs...)
		})
		if len(sb.NICs) != 1 || len(sb.NICs[0].Files) != 1 {
			return nil, fmt.Errorf("netbridge setup (model %s) gave %d NICs, want 1 holding 1 queue file", model, len(sb.NICs))
		}
		nic := sb.NICs[0]
		if nic.Model != model {
			return nil, fmt.Errorf("netbridge wired %s with model %s, want %s", nic.Name, nic.Model, model)
		}
		guestMAC = net.HardwareAddr(nic.GuestMAC)
		f := nic.Files[0]
		w.open = func() (int, int, func() error, error) {
			fd, hdrLen, err := tapQueue(f)
			if err != nil {
				return -1, 0, nil, fmt.Errorf("queue of %s: %w", nic.Tap, err)
			}
			// f stays open until sb.Close; fd is a duplicate of it.
			return fd, hdrLen, func() error { return closeFD(fd, "tap queue") }, nil
		}
	}
	w.frame = buildFrame(guestMAC, nodeLink.Attrs().HardwareAddr, nodeAddr.Addr(), podAddr.Addr(), w.marker)
	return w, nil
}

// close removes everything newWorld built, newest first, and reports every
// failure.
func (w *world) close() error {
	var errs []error
	for i := len(w.undo) - 1; i >= 0; i-- {
		errs = append(errs, w.undo[i]())
	}
	w.undo = nil
	return errors.Join(errs...)
}

// measure runs the reader in the pod netns and the sender in the node
// netns, for d, and returns the frames and bytes received and the seconds
// sent.
func (w *world) measure(ctx context.Context, d time.Duration) (frames, nbytes uint64, seconds float64, err error) {
	var stop atomic.Bool
	type readResult struct {
		frames, bytes uint64
		err           error
	}
	ready := make(chan struct{})
	readDone := make(chan readResult, 1)
	go func() {
		var r readResult
		r.err = w.pod.Do(func(ns.NetNS) error {
			fd, hdrLen, closeFn, err := w.open()
			if err != nil {
				return err
			}
			close(ready)
			r.frames, r.bytes, err = readLoop(fd, hdrLen, w.marker, &stop)
			return errors.Join(err, closeFn())
		})
		readDone <- r
	}()

	var sendErr error
	select {
	case <-ready:
		err := w.node.Do(func(ns.NetNS) error {
			elapsed, err := send(ctx, w.nodeIndex, w.frame, d)
			seconds = elapsed.Seconds()
			return err
		})
		if err != nil {
			sendErr = fmt.Errorf("sender in netns %s: %w", w.node.Path(), err)
		}
	case r := <-readDone: // the reader failed before it was ready
		readDone <- r
	}
	stop.Store(true)
	r := <-readDone
	if r.err != nil {
		r.err = fmt.Errorf("reader in netns %s: %w", w.pod.Path(), r.err)
	}
	return r.frames, r.bytes, seconds, errors.Join(sendErr, r.err)
}

// packetSocket returns a non-blocking AF_PACKET socket bound to the link
// ifindex of the calling thread's netns, receiving IPv4 frames that arrive
// on it (not the ones sent from it), with a large receive buffer.
func packetSocket(ifindex int) (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP)))
	if err != nil {
		return -1, fmt.Errorf("opening a packet socket: %w", err)
	}
	fail := func(err error) (int, error) {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf); err != nil {
		return fail(fmt.Errorf("setting SO_RCVBUFFORCE on the packet socket: %w", err))
	}
	// Best effort (Linux 4.20): the socket would otherwise also see the
	// ICMP errors the pod sends back, which the marker filters out anyway.
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifindex}); err != nil {
		return fail(fmt.Errorf("binding the packet socket to ifindex %d: %w", ifindex, err))
	}
	return fd, nil
}

// tapQueue returns a non-blocking duplicate of the tap (or macvtap) queue
// file f and the length of the virtio-net header that precedes every frame
// read from it (0 without IFF_VNET_HDR; TUNGETVNETHDRSZ, normally 10,
// with it).
func tapQueue(f *os.File) (fd, hdrLen int, err error) {
	fd = -1
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, 0, fmt.Errorf("%s: %w", f.Name(), err)
	}
	var flags uint16
	var ctlErr error
	if err := rc.Control(func(raw uintptr) {
		if fd, ctlErr = unix.FcntlInt(raw, unix.F_DUPFD_CLOEXEC, 0); ctlErr != nil {
			ctlErr = fmt.Errorf("duplicating the queue file: %w", ctlErr)
			return
		}
		ifr, err := unix.NewIfreq("")
		if err != nil {
			ctlErr = err
			return
		}
		if err := unix.IoctlIfreq(fd, unix.TUNGETIFF, ifr); err != nil {
			ctlErr = fmt.Errorf("TUNGETIFF: %w", err)
			return
		}
		flags = ifr.Uint16()
		if flags&unix.IFF_VNET_HDR != 0 {
			if hdrLen, err = unix.IoctlGetInt(fd, unix.TUNGETVNETHDRSZ); err != nil {
				ctlErr = fmt.Errorf("TUNGETVNETHDRSZ: %w", err)
			}
		}
	}); err != nil {
		return -1, 0, fmt.Errorf("%s: %w", f.Name(), err)
	}
	if ctlErr == nil && flags&unix.IFF_TAP == 0 {
		ctlErr = fmt.Errorf("not a tap (flags %#x)", flags)
	}
	if ctlErr == nil {
		if err := unix.SetNonblock(fd, true); err != nil {
			ctlErr = fmt.Errorf("making the queue non-blocking: %w", err)
		}
	}
	if ctlErr != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return -1, 0, ctlErr
	}
	return fd, hdrLen, nil
}

// readLoop reads frames from the non-blocking fd, each preceded by hdrLen
// bytes of virtio-net header, and counts those carrying marker and their
// length without the header. It returns once stop is set and no frame has
// arrived for drainIdle.
func readLoop(fd, hdrLen int, marker []byte, stop *atomic.Bool) (frames, nbytes uint64, err error) {
	buf := make([]byte, hdrLen+65536)
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Read(fd, buf)
		switch {
		case err == nil:
			if n >= hdrLen && ours(buf[hdrLen:n], marker) {
				frames++
				nbytes += uint64(n - hdrLen)
			}
			continue
		case errors.Is(err, unix.EINTR):
			continue
		case !errors.Is(err, unix.EAGAIN):
			return frames, nbytes, fmt.Errorf("reading: %w", err)
		}
		stopped := stop.Load()
		ready, err := unix.Poll(pfd, int(drainIdle/time.Millisecond))
		switch {
		case errors.Is(err, unix.EINTR):
		case err != nil:
			return frames, nbytes, fmt.Errorf("poll: %w", err)
		case ready == 0 && stopped:
			return frames, nbytes, nil
		}
	}
}

// send writes frame to the link nodeIndex of the calling thread's netns
// through an AF_PACKET socket, as fast as it can, for d, and returns how
// long it sent. Frames the kernel drops (ENOBUFS) are not an error; ctx
// being done is.
func send(ctx context.Context, nodeIndex int, frame []byte, d time.Duration) (time.Duration, error) {
	// Protocol 0: the socket only sends, it never queues received frames.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("opening a packet socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: nodeIndex}); err != nil {
		return 0, fmt.Errorf("binding the packet socket to ifindex %d: %w", nodeIndex, err)
	}
	start := time.Now()
	end := start.Add(d)
	for i := 0; ; i++ {
		if i%64 == 0 {
			if !time.Now().Before(end) {
				return time.Since(start), nil
			}
			if err := ctx.Err(); err != nil {
				return time.Since(start), err
			}
		}
		if _, err := unix.Write(fd, frame); err != nil && !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.EINTR) {
			return time.Since(start), fmt.Errorf("sending: %w", err)
		}
	}
}

func closeFD(fd int, what string) error {
	if err := unix.Close(fd); err != nil {
		return fmt.Errorf("closing the %s: %w", what, err)
	}
	return nil
}

// htons converts a 16-bit value to network byte order.
func htons(v uint16) uint16 { return v<<8 | v>>8 }
