// Command fakeguest plays a VM guest on an existing tap device, for demos
// and manual tests of netbridge. It attaches to the persistent tap --tap in
// the network namespace --netns the way a VMM does (IFF_VNET_HDR on), and
// answers ARP, IPv6 neighbour solicitations and ICMP/ICMPv6 echo requests
// for its --addr addresses with the --mac hardware address, so that a ping
// from the node reaches it through the tap. With --ping it also pings
// addresses itself (through --gateway when they are off-link), proving that
// frames the guest sends reach the node.
//
// Usage:
//
//	fakeguest --netns PATH --tap NAME --mac MAC [--addr CIDR]... [--gateway IP]...
//	          [--ping IP]... [--ping-timeout D] [--duration D] [--ready-file PATH]
//
// It prints one line per event (started, each ping result, stopping) and,
// when it stops on SIGINT, SIGTERM or the end of --duration, a line of
// counters. --ready-file is written once the guest is attached and
// answering, and removed when it stops.
//
// Exit status: 0 success; 1 failure (the tap cannot be opened, reading it
// fails, or a --ping got no reply); 2 usage error, including a --netns that
// is missing, not a network namespace, or the host's.
//
// fakeguest needs CAP_NET_ADMIN and refuses the host network namespace.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netbridge/netbridge/pkg/linkname"
	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/test/fakeguest"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// config is the parsed command line.
type config struct {
	netns       string
	tap         string
	mac         net.HardwareAddr
	addrs       []netip.Prefix
	gateways    []netip.Addr
	pings       []netip.Addr
	pingTimeout time.Duration
	duration    time.Duration
	readyFile   string
}

// multiFlag collects a repeatable flag whose values may also be given
// comma-separated.
type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }

// Set appends the comma-separated values of s.
func (m *multiFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*m = append(*m, v)
		}
	}
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseArgs(args, stdout)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case err != nil:
		fmt.Fprintf(stderr, "fakeguest: %s (run 'fakeguest --help')\n", oneLine(err))
		return exitUsage
	}
	if err := serve(ctx, cfg, stdout); err != nil {
		fmt.Fprintf(stderr, "fakeguest: %v\n", oneLine(err))
		if errors.Is(err, netns.ErrNotExist) || errors.Is(err, netns.ErrNotNetns) || errors.Is(err, netns.ErrHostNetns) {
			return exitUsage // --netns names no usable namespace
		}
		return exitFail
	}
	return exitOK
}

// parseArgs parses and validates the command line. --help prints the usage
// to w and returns flag.ErrHelp.
func parseArgs(args []string, w io.Writer) (*config, error) {
	fs := flag.NewFlagSet("fakeguest", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		cfg                  config
		mac                  string
		addrs, gws, pingDsts multiFlag
	)
	fs.StringVar(&cfg.netns, "netns", "", "network namespace of the tap (required), e.g. /run/netns/NAME")
	fs.StringVar(&cfg.tap, "tap", "", "name of the existing tap device to attach to (required)")
	fs.StringVar(&mac, "mac", "", "the guest's MAC address (required), e.g. the guest_mac netbridge setup printed")
	fs.Var(&addrs, "addr", "guest address with prefix length, IPv4 or IPv6 (repeatable or comma-separated)")
	fs.Var(&gws, "gateway", "next hop for off-link --ping destinations, at most one per address family (repeatable)")
	fs.Var(&pingDsts, "ping", "address the guest pings after starting (repeatable)")
	fs.DurationVar(&cfg.pingTimeout, "ping-timeout", 5*time.Second, "how long each --ping waits for a reply")
	fs.DurationVar(&cfg.duration, "duration", time.Minute, "stop after this long")
	fs.StringVar(&cfg.readyFile, "ready-file", "", "file written once the guest is attached and answering (removed when it stops)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(w, "Usage: fakeguest --netns PATH --tap NAME --mac MAC [--addr CIDR]... [--gateway IP]...\n"+
				"                 [--ping IP]... [--ping-timeout D] [--duration D] [--ready-file PATH]\n\n"+
				"Play a VM guest on an existing tap: answer ARP, neighbour solicitations and\n"+
				"pings for the given addresses, and optionally ping from the guest.\n\n"+
				"Exit status: 0 success, 1 failure (including a --ping without reply), 2 usage error.\n\nFlags:\n")
			fs.SetOutput(w)
			fs.PrintDefaults()
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var errs []error
	for _, f := range []struct{ name, value string }{{"netns", cfg.netns}, {"tap", cfg.tap}, {"mac", mac}} {
		if f.value == "" {
			errs = append(errs, fmt.Errorf("--%s is required", f.name))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := linkname.Check(cfg.tap); err != nil {
		return nil, fmt.Errorf("--tap: not a valid interface name: %w", err)
	}
	m, err := net.ParseMAC(mac)
	if err != nil || len(m) != 6 {
		return nil, fmt.Errorf("--mac %q: want an Ethernet address such as 02:00:00:00:00:01", mac)
	}
	if m[0]&1 != 0 || isZero(m) {
		return nil, fmt.Errorf("--mac %s: not a unicast address", m)
	}
	cfg.mac = m
	for _, s := range addrs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("--addr %q: want an address with prefix length, such as 198.51.100.2/24 or 2001:db8::2/64", s)
		}
		cfg.addrs = append(cfg.addrs, netip.PrefixFrom(p.Addr().Unmap(), p.Bits()))
	}
	for _, s := range gws {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("--gateway %q: want an IP address", s)
		}
		a = a.Unmap()
		for _, g := range cfg.gateways {
			if g.Is4() == a.Is4() {
				return nil, fmt.Errorf("--gateway %s: a gateway of that address family (%s) is already given", a, g)
			}
		}
		cfg.gateways = append(cfg.gateways, a)
	}
	for _, s := range pingDsts {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("--ping %q: want an IP address", s)
		}
		a = a.Unmap()
		if !hasFamily(cfg.addrs, a) {
			return nil, fmt.Errorf("--ping %s: the guest has no --addr of that address family to ping from", a)
		}
		cfg.pings = append(cfg.pings, a)
	}
	if cfg.duration <= 0 {
		return nil, fmt.Errorf("--duration %s: must be positive", cfg.duration)
	}
	if cfg.pingTimeout <= 0 {
		return nil, fmt.Errorf("--ping-timeout %s: must be positive", cfg.pingTimeout)
	}
	return &cfg, nil
}

func isZero(m net.HardwareAddr) bool {
	for _, b := range m {
		if b != 0 {
			return false
		}
	}
	return true
}

// hasFamily reports whether one of prefixes has a's address family.
func hasFamily(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Addr().Is4() == a.Is4() {
			return true
		}
	}
	return false
}

// serve attaches the guest, runs it until ctx is done, --duration passes or
// the tap fails, and prints its events and counters to w.
func serve(ctx context.Context, cfg *config, w io.Writer) error {
	target, err := openNetns(cfg.netns)
	if err != nil {
		return err
	}
	defer target.Close()
	tap, err := fakeguest.OpenTap(target, cfg.tap, true)
	if err != nil {
		return err
	}
	var opts []fakeguest.Option
	for _, gw := range cfg.gateways {
		opts = append(opts, fakeguest.WithGateway(gw))
	}
	g, err := fakeguest.New(tap, cfg.mac, cfg.addrs, opts...)
	if err != nil {
		return err
	}
	defer g.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		return err
	}
	out := &lineWriter{w: w}
	out.printf("started: tap %s in %s, mac %s, addresses %s, gateways %s, for %s",
		cfg.tap, cfg.netns, cfg.mac, list(cfg.addrs), list(cfg.gateways), cfg.duration)
	if cfg.readyFile != "" {
		if err := writeReady(cfg.readyFile); err != nil {
			return err
		}
		defer os.Remove(cfg.readyFile)
	}

	// The guest's own pings run beside the wait below and end early when
	// the guest stops.
	pingsDone := make(chan int, 1)
	go func() { pingsDone <- pingAll(ctx, g, cfg, out) }()

	timer := time.NewTimer(cfg.duration)
	defer timer.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var readErr error
wait:
	for {
		select {
		case <-ctx.Done():
			out.printf("stopping: signal received")
			break wait
		case <-timer.C:
			out.printf("stopping: --duration %s elapsed", cfg.duration)
			break wait
		case <-tick.C:
			if readErr = g.Err(); readErr != nil {
				out.printf("stopping: %v", oneLine(readErr))
				break wait
			}
		}
	}
	cancel()
	failed := <-pingsDone
	s := g.Stats()
	out.printf("counters: frames in %d, out %d; echo replies sent %d, received %d; arp replies %d, neighbour adverts %d; bad checksums %d, malformed %d, ignored %d, write errors %d",
		s.FramesIn, s.FramesOut, s.EchoRepliesSent, s.EchoRepliesReceived, s.ARPRepliesSent, s.NeighborAdvertsSent,
		s.BadChecksums, s.Malformed, s.Ignored, s.WriteErrors)
	if err := g.Close(); err != nil && readErr == nil {
		readErr = err
	}
	switch {
	case errors.Is(readErr, syscall.EBADFD):
		return fmt.Errorf("tap %s: %w (was the tap deleted?)", cfg.tap, readErr)
	case readErr != nil:
		return fmt.Errorf("tap %s: %w", cfg.tap, readErr)
	case failed > 0:
		return fmt.Errorf("%d of %d guest pings got no reply", failed, len(cfg.pings))
	}
	return nil
}

// openNetns opens the namespace at path, refusing the host's.
func openNetns(path string) (ns.NetNS, error) {
	checked, err := netns.Open(path)
	if err != nil {
		return nil, err
	}
	checked.Close()
	n, err := ns.GetNS(path)
	if err != nil {
		return nil, fmt.Errorf("opening netns %q: %w", path, err)
	}
	return n, nil
}

// pingAll pings each --ping destination in turn from the guest, printing
// one line per result, and returns how many got no reply. A ping cut short
// because the guest stops counts as failed.
func pingAll(ctx context.Context, g *fakeguest.Guest, cfg *config, out *lineWriter) int {
	failed := 0
	for _, dst := range cfg.pings {
		pctx, cancel := context.WithTimeout(ctx, cfg.pingTimeout)
		start := time.Now()
		err := g.Ping(pctx, dst, 0)
		cancel()
		if err != nil {
			failed++
			out.printf("guest ping %s: FAILED after %s: %v", dst, time.Since(start).Round(time.Millisecond), oneLine(err))
			continue
		}
		out.printf("guest ping %s: reply after %s", dst, time.Since(start).Round(10*time.Microsecond))
	}
	return failed
}

// writeReady writes the ready file atomically: the guest's PID, then a
// newline.
func writeReady(path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".fakeguest-ready-*")
	if err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	_, werr := fmt.Fprintf(tmp, "%d\n", os.Getpid())
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("ready file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("ready file: %w", err)
	}
	return nil
}

// lineWriter prints whole lines from several goroutines.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "fakeguest: "+format+"\n", args...)
}

// list formats values comma-separated, or "none".
func list[T fmt.Stringer](vs []T) string {
	if len(vs) == 0 {
		return "none"
	}
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = v.String()
	}
	return strings.Join(s, ",")
}

// oneLine folds a possibly multi-line error onto one line and drops the
// "fakeguest: " prefixes of the package's errors, since every line this
// command prints starts with one.
func oneLine(err error) string {
	s := strings.ReplaceAll(err.Error(), "fakeguest: ", "")
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
