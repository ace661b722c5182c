package responder

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/test/testnet"
)

// The real-client tests run stock DHCP clients in a throwaway "guest"
// namespace, on one end of a veth pair, and the responder on the other
// end, in a "gateway" namespace, through a packet socket: the harness any
// frame carrier would be. The gateway namespace also holds the real
// gateway's addresses, so the guest's configuration is checked by pinging
// through it.

// clientTimeout bounds how long a client may take to configure itself; it
// is a guard against a hang, not a measure (a client needs a few seconds).
const clientTimeout = 60 * time.Second

// requireTool returns the path of a program the test needs; a missing one
// skips the test, or fails it when CI is set (there a skip would hide the
// test).
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := name + " is not installed (Debian package " + pkg + ")"
		if os.Getenv("CI") != "" {
			t.Fatal(msg + "; CI is set, so this is a failure, not a skip")
		}
		t.Skip("skipping: " + msg)
	}
	return p
}

// servePackets runs r on ifname in n through an AF_PACKET socket, until
// the test ends: every frame received on ifname goes to r.Handle and every
// frame it returns is sent out on ifname. It returns a function that sends
// frames (for unsolicited advertisements).
func servePackets(t *testing.T, n ns.NetNS, ifname string, r *Responder) func([][]byte) {
	t.Helper()
	var fd, ifindex int
	err := n.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(ifname)
		if err != nil {
			return err
		}
		ifindex = l.Attrs().Index
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
			unix.Close(fd)
			return err
		}
		tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("opening a packet socket on %s in netns %s: %v", ifname, testnet.Name(n), err)
	}
	var mu sync.Mutex // serialises writes
	send := func(frames [][]byte) {
		mu.Lock()
		defer mu.Unlock()
		for _, f := range frames {
			if _, err := unix.Write(fd, f); err != nil {
				t.Errorf("sending a reply on %s: %v", ifname, err)
			}
		}
	}
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for !stop.Load() {
			n, from, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
					continue
				}
				t.Errorf("reading from the packet socket on %s: %v", ifname, err)
				return
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Ifindex != ifindex || ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			send(r.Handle(bytes.Clone(buf[:n]), time.Now()))
		}
	}()
	t.Cleanup(func() {
		stop.Store(true)
		<-done
		unix.Close(fd)
		t.Logf("responder on %s: %+v", ifname, r.Stats())
	})
	return send
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// guestAndGateway makes the two namespaces and the veth pair eth0 (guest,
// with mac) <-> srv0 (gateway).
func guestAndGateway(t *testing.T, mac net.HardwareAddr) (guest, gw ns.NetNS) {
	t.Helper()
	guest, gw = testnet.NewNS(t), testnet.NewNS(t)
	testnet.VethPair(t, gw, guest, "srv0", "eth0", 1500)
	testnet.SetMAC(t, guest, "eth0", mac)
	return guest, gw
}

// swallowUDP binds a UDP socket on port in n for the rest of the test, so
// the gateway's kernel does not answer the guest's unicast renewals (which
// the responder sees on the packet socket) with port unreachable.
func swallowUDP(t *testing.T, n ns.NetNS, port int) {
	t.Helper()
	var c net.PacketConn
	err := n.Do(func(ns.NetNS) error {
		var err error
		c, err = net.ListenPacket("udp", net.JoinHostPort("", strconv.Itoa(port)))
		return err
	})
	if err != nil {
		t.Fatalf("binding UDP port %d in netns %s: %v", port, testnet.Name(n), err)
	}
	t.Cleanup(func() { c.Close() })
}

// startIn starts cmd inside n and kills it (and waits for it) when the
// test ends.
func startIn(t *testing.T, n ns.NetNS, cmd *exec.Cmd) {
	t.Helper()
	var out bytes.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = &out
		cmd.Stderr = &out
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := testnet.RunIn(n, cmd); err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(waited) }()
	t.Cleanup(func() {
		select {
		case <-waited:
		default:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-waited:
			case <-time.After(10 * time.Second):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-waited
			}
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(cmd.Path), out.String())
		}
	})
}

// readEnv reads a file of NAME=value lines as the client scripts write.
func readEnv(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	return env, sc.Err()
}

// waitFor polls cond until it returns true or clientTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(clientTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", clientTimeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// udhcpcScript records each event's environment in $OUT/EVENT.env and
// applies bound and renew like a guest's init would: address, MTU and the
// classless routes (or the router when there are none).
const udhcpcScript = `#!/bin/sh
ev="$1"
env > "$OUT/$ev.env.tmp"
case "$ev" in
bound|renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/$mask" dev "$interface"
	[ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
	if [ -n "$staticroutes" ]; then
		set -- $staticroutes
		while [ $# -ge 2 ]; do
			if [ "$2" = 0.0.0.0 ]; then
				ip route replace "$1" dev "$interface"
			else
				ip route replace "$1" via "$2" dev "$interface"
			fi
			shift 2
		done
	elif [ -n "$router" ]; then
		ip route replace default via "$router" dev "$interface"
	fi
	;;
deconfig)
	ip addr flush dev "$interface"
	;;
esac
mv "$OUT/$ev.env.tmp" "$OUT/$ev.env"
`

func writeScript(t *testing.T, body string) (dir, script string) {
	t.Helper()
	dir = t.TempDir()
	script = filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, script
}

// TestRealClientUdhcpc runs busybox udhcpc against the responder for a
// bridge-style and a Calico-style NIC, checks every value its script
// receives, applies them and pings the gateway.
func TestRealClientUdhcpc(t *testing.T) {
	testnet.RequireRoot(t)
	busybox := requireTool(t, "busybox", "busybox-static")
	requireTool(t, "ip", "iproute2")
	for _, tc := range []struct {
		name   string
		cfg    Config
		gwAddr []string // addresses of the real gateway on srv0
		gwRte  []string // routes back to the guest in the gateway namespace
		ping   netip.Addr
		want   map[string]string
	}{{
		name: "bridge",
		cfg: Config{
			MAC: guestMAC, MTU: 1400,
			IPv4: []netip.Prefix{pfx("10.1.0.5/24")},
			Routes: []Route{
				{Dst: pfx("0.0.0.0/0"), Gateway: ip("10.1.0.1")},
				{Dst: pfx("10.1.0.0/24")},
				{Dst: pfx("192.0.2.0/24"), Gateway: ip("10.1.0.254")},
			},
			DNS: DNS{Servers: []netip.Addr{ip("10.96.0.10"), ip("10.96.0.11")}, Search: []string{"ns1.svc.cluster.local", "cluster.local"}},
		},
		gwAddr: []string{"10.1.0.1/24"},
		ping:   ip("10.1.0.1"),
		want: map[string]string{
			"ip": "10.1.0.5", "mask": "24", "subnet": "255.255.255.0", "broadcast": "10.1.0.255",
			"router": "10.1.0.1", "mtu": "1400", "dns": "10.96.0.10 10.96.0.11",
			"domain": "ns1.svc.cluster.local", "search": "ns1.svc.cluster.local cluster.local",
			"staticroutes": "192.0.2.0/24 10.1.0.254 0.0.0.0/0 10.1.0.1",
			"lease":        "600", "serverid": "10.1.0.1",
		},
	}, {
		name:   "calico",
		cfg:    calicoConfig(),
		gwAddr: []string{"169.254.1.1/32"},
		gwRte:  []string{"10.244.1.7/32"},
		ping:   ip("169.254.1.1"),
		want: map[string]string{
			"ip": "10.244.1.7", "mask": "32", "subnet": "255.255.255.255",
			"router": "169.254.1.1", "mtu": "1480",
			"staticroutes": "169.254.1.1/32 0.0.0.0 0.0.0.0/0 169.254.1.1",
			"lease":        "600", "serverid": "169.254.1.1",
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			guest, gw := guestAndGateway(t, guestMAC)
			for _, a := range tc.gwAddr {
				testnet.AddAddr(t, gw, "srv0", a)
			}
			for _, d := range tc.gwRte {
				testnet.AddRoute(t, gw, "srv0", d, "")
			}
			r := mustNew(t, tc.cfg)
			servePackets(t, gw, "srv0", r)

			dir, script := writeScript(t, udhcpcScript)
			ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, busybox, "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "10", "-T", "2", "-s", script)
			cmd.Env = append(os.Environ(), "OUT="+dir)
			out, err := func() ([]byte, error) {
				var b bytes.Buffer
				cmd.Stdout, cmd.Stderr = &b, &b
				if err := testnet.RunIn(guest, cmd); err != nil {
					return nil, err
				}
				err := cmd.Wait()
				return b.Bytes(), err
			}()
			if err != nil {
				t.Fatalf("udhcpc: %v\n%s", err, out)
			}
			env, err := readEnv(filepath.Join(dir, "bound.env"))
			if err != nil {
				t.Fatalf("udhcpc ran no bound event: %v\n%s", err, out)
			}
			for k, want := range tc.want {
				if got := strings.TrimSpace(env[k]); got != want {
					t.Errorf("udhcpc got %s=%q, want %q", k, got, want)
				}
			}
			for _, k := range []string{"dns", "search", "domain", "broadcast"} {
				if _, ok := tc.want[k]; !ok && env[k] != "" {
					t.Errorf("udhcpc got %s=%q, want none", k, env[k])
				}
			}
			if err := testnet.Ping(guest, tc.ping, 0, 10*time.Second); err != nil {
				t.Errorf("pinging the gateway %s from the configured guest: %v\n%s", tc.ping, err, testnet.Exec(t, guest, "ip", "-d", "route"))
			}
		})
	}
}

// TestRealClientUdhcpcRenewal checks renewals with a real client: a
// renewal (SIGUSR1, unicast to the server identifier, the gateway) is
// acknowledged; after the NIC's address changes, the next renewal is
// refused and the client binds the new address.
func TestRealClientUdhcpcRenewal(t *testing.T) {
	testnet.RequireRoot(t)
	busybox := requireTool(t, "busybox", "busybox-static")
	requireTool(t, "ip", "iproute2")
	guest, gw := guestAndGateway(t, guestMAC)
	testnet.AddAddr(t, gw, "srv0", "10.1.0.1/24")
	testnet.AddAddr(t, gw, "srv0", "10.7.0.1/24")
	swallowUDP(t, gw, 67)
	cfg := Config{
		MAC: guestMAC, IPv4: []netip.Prefix{pfx("10.1.0.5/24")},
		Routes: []Route{{Dst: pfx("0.0.0.0/0"), Gateway: ip("10.1.0.1")}},
	}
	r := mustNew(t, cfg)
	servePackets(t, gw, "srv0", r)

	dir, script := writeScript(t, udhcpcScript)
	cmd := exec.Command(busybox, "udhcpc", "-i", "eth0", "-f", "-t", "10", "-T", "5", "-s", script)
	cmd.Env = append(os.Environ(), "OUT="+dir)
	startIn(t, guest, cmd)
	envOf := func(ev string) map[string]string {
		env, err := readEnv(filepath.Join(dir, ev+".env"))
		if err != nil {
			return nil
		}
		return env
	}
	waitFor(t, "udhcpc to bind", func() bool { return envOf("bound") != nil })
	if got := envOf("bound")["ip"]; got != "10.1.0.5" {
		t.Fatalf("bound to %q, want 10.1.0.5", got)
	}
	if err := os.Remove(filepath.Join(dir, "bound.env")); err != nil {
		t.Fatal(err)
	}

	before := r.Stats()
	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "udhcpc to renew", func() bool { return envOf("renew") != nil })
	if got := envOf("renew")["ip"]; got != "10.1.0.5" {
		t.Errorf("renewed %q, want 10.1.0.5", got)
	}
	// udhcpc falls back to a broadcast renewal when the unicast one is not
	// answered within its timeout (-T), which a loaded machine can make
	// happen: every request must be answered, one or more.
	if d := statsDelta(before, r.Stats()); d.Answered == 0 || d.Answered+d.NotConfig != d.Frames {
		t.Errorf("stats delta over the renewal %+v, want only answered requests", d)
	}

	cfg.IPv4 = []netip.Prefix{pfx("10.7.0.9/24")}
	cfg.Routes = []Route{{Dst: pfx("0.0.0.0/0"), Gateway: ip("10.7.0.1")}}
	if err := r.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "udhcpc to bind the new address", func() bool { return envOf("bound") != nil })
	env := envOf("bound")
	if env["ip"] != "10.7.0.9" || env["router"] != "10.7.0.1" || env["serverid"] != "10.7.0.1" {
		t.Errorf("bound to ip=%q router=%q serverid=%q after the change, want 10.7.0.9 via 10.7.0.1", env["ip"], env["router"], env["serverid"])
	}
	if envOf("nak") == nil {
		t.Error("udhcpc got no NAK for the old address")
	}
	if err := testnet.Ping(guest, ip("10.7.0.1"), 0, 10*time.Second); err != nil {
		t.Errorf("pinging the new gateway: %v", err)
	}
}

// dhcpcdConfig makes dhcpcd an IPv6-only client that solicits routers and
// takes its addresses from DHCPv6 as the advertisements' M flag says.
const dhcpcdConfig = `ipv6only
ipv6rs
noipv4ll
`

// ipv6Gateway makes the guest and gateway namespaces for the IPv6 tests:
// the gateway has fd00:1::1/64 on srv0 and 2001:db8:ff::1 behind it (on its
// loopback); the responder it returns serves the guest fd00:1::5/64, a
// default route through fd00:1::1, MTU 1400 and DNS, and knows the
// gateway's link-local address and MAC, as read from its namespace.
func ipv6Gateway(t *testing.T) (guest, gw ns.NetNS, gwLinkLocal netip.Addr, r *Responder) {
	t.Helper()
	guest, gw = guestAndGateway(t, guestMAC)
	testnet.AddAddr(t, gw, "srv0", "fd00:1::1/64")
	testnet.AddAddr(t, gw, "lo", "2001:db8:ff::1/128")
	gwLink := testnet.LinkByName(t, gw, "srv0")
	addrs, err := testnet.Handle(t, gw).AddrList(gwLink, netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if aa, ok := netip.AddrFromSlice(a.IP); ok && aa.IsLinkLocalUnicast() {
			gwLinkLocal = aa
		}
	}
	if !gwLinkLocal.IsValid() {
		t.Fatal("the gateway's srv0 has no link-local address")
	}
	r = mustNew(t, Config{
		MAC: guestMAC, MTU: 1400,
		IPv6: []netip.Prefix{pfx("fd00:1::5/64")},
		Routes: []Route{
			{Dst: pfx("::/0"), Gateway: ip("fd00:1::1")},
			{Dst: pfx("fd00:1::/64")},
		},
		DNS:      DNS{Servers: []netip.Addr{ip("fd00:96::a")}, Search: []string{"svc.example.test"}},
		Gateway6: Gateway{LinkLocal: gwLinkLocal, MAC: gwLink.Attrs().HardwareAddr},
	})
	return guest, gw, gwLinkLocal, r
}

// defaultRoute6 returns the gateway and MTU of the IPv6 default route on
// eth0 in n, if there is one.
func defaultRoute6(t *testing.T, n ns.NetNS) (gw netip.Addr, mtu int, ok bool) {
	h := testnet.Handle(t, n)
	rs, err := h.RouteList(testnet.LinkByName(t, n, "eth0"), netlink.FAMILY_V6)
	if err != nil {
		return netip.Addr{}, 0, false
	}
	for _, rt := range rs {
		if (rt.Dst == nil || rt.Dst.IP.IsUnspecified()) && rt.Gw != nil {
			gw, _ = netip.AddrFromSlice(rt.Gw)
			return gw, rt.MTU, true
		}
	}
	return netip.Addr{}, 0, false
}

// TestRealClientKernelRA checks the router advertisements against the
// guest's own kernel (accept_ra, no client at all), sent unsolicited: the
// kernel must install the default route through the real gateway's
// link-local address, the on-link prefix and the MTU, and, once the
// address DHCPv6 would give is added, reach an address behind the gateway.
func TestRealClientKernelRA(t *testing.T) {
	testnet.RequireRoot(t)
	guest, gw, gwLinkLocal, r := ipv6Gateway(t)
	send := servePackets(t, gw, "srv0", r)
	ras, _ := r.Advertise(time.Now())
	send(ras)
	var defaultGw netip.Addr
	waitFor(t, "the guest kernel to take the advertisement", func() bool {
		var ok bool
		defaultGw, _, ok = defaultRoute6(t, guest)
		return ok
	})
	if defaultGw != gwLinkLocal {
		t.Errorf("default route via %s, want the real gateway's link-local %s", defaultGw, gwLinkLocal)
	}
	if mtu, err := testnet.ReadSysctl(guest, "net/ipv6/conf/eth0/mtu"); err != nil || strings.TrimSpace(mtu) != "1400" {
		t.Errorf("guest IPv6 MTU %q (%v), want 1400", mtu, err)
	}
	routes := testnet.Exec(t, guest, "ip", "-6", "route")
	if !regexp.MustCompile(`(?m)^fd00:1::/64 dev eth0 .*expires`).MatchString(routes) {
		t.Errorf("no on-link route for fd00:1::/64 from the advertisement:\n%s", routes)
	}
	if addrs := testnet.Exec(t, guest, "ip", "-6", "addr", "show", "dev", "eth0", "scope", "global"); strings.Contains(addrs, "inet6") {
		t.Errorf("the guest made an address of its own from the prefix (autonomous flag):\n%s", addrs)
	}
	testnet.AddAddr(t, guest, "eth0", "fd00:1::5/128")
	if err := testnet.Ping(guest, ip("2001:db8:ff::1"), 0, 10*time.Second); err != nil {
		t.Errorf("pinging 2001:db8:ff::1 through the advertised router: %v\n%s", err, routes)
	}
}

// TestRealClientDhcpcdIPv6 runs dhcpcd, a stock IPv6 client (router
// solicitation, then DHCPv6), against the responder, with the real gateway
// a namespace of its own: the guest must end with the NIC's address, a
// default route through the gateway's link-local address, the MTU and the
// DNS configuration, and reach the gateway and an address behind it.
func TestRealClientDhcpcdIPv6(t *testing.T) {
	testnet.RequireRoot(t)
	dhcpcd := requireTool(t, "dhcpcd", "dhcpcd-base")
	unshare := requireTool(t, "unshare", "util-linux")
	guest, gw, gwLinkLocal, r := ipv6Gateway(t)
	servePackets(t, gw, "srv0", r)

	dir := t.TempDir()
	conf := filepath.Join(dir, "dhcpcd.conf")
	if err := os.WriteFile(conf, []byte(dhcpcdConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	// The hook script records each event's environment; dhcpcd gives its
	// scripts an environment of its own, so the directory is written in.
	script := filepath.Join(dir, "hook")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nenv > "+dir+"/\"$reason.env.tmp\" && mv "+dir+"/\"$reason.env.tmp\" "+dir+"/\"$reason.env\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// dhcpcd keeps its DUID, leases and control socket under /var/lib and
	// /run: a private mount namespace with empty tmpfs there keeps the
	// host's untouched.
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs none /run && mount -t tmpfs none /var/lib && exec "$0" "$@"`,
		dhcpcd, "-6", "-B", "-d", "-f", conf, "-c", script, "eth0")
	startIn(t, guest, cmd)

	h := testnet.Handle(t, guest)
	eth0 := testnet.LinkByName(t, guest, "eth0")
	var gotAddr netlink.Addr
	waitFor(t, "dhcpcd to configure fd00:1::5", func() bool {
		as, err := h.AddrList(eth0, netlink.FAMILY_V6)
		if err != nil {
			return false
		}
		for _, a := range as {
			if a.IP.Equal(net.ParseIP("fd00:1::5")) {
				gotAddr = a
				return true
			}
		}
		return false
	})
	var defaultGw netip.Addr
	var defaultMTU int
	waitFor(t, "dhcpcd to install the default route", func() bool {
		var ok bool
		defaultGw, defaultMTU, ok = defaultRoute6(t, guest)
		return ok
	})
	if defaultGw != gwLinkLocal {
		t.Errorf("default route via %s, want the real gateway's link-local %s", defaultGw, gwLinkLocal)
	}
	t.Logf("guest address %s, default via %s", gotAddr.IPNet, defaultGw)
	// dhcpcd applies the advertised MTU to the routes it installs (a kernel
	// taking the advertisement itself sets the interface's IPv6 MTU).
	if defaultMTU != 1400 {
		t.Errorf("default route MTU %d, want 1400 from the advertisement\n%s", defaultMTU, testnet.Exec(t, guest, "ip", "-6", "route"))
	}
	for _, dst := range []netip.Addr{ip("fd00:1::1"), ip("2001:db8:ff::1")} {
		if err := testnet.Ping(guest, dst, 0, 10*time.Second); err != nil {
			t.Errorf("pinging %s from the guest: %v\n%s", dst, err, testnet.Exec(t, guest, "ip", "-6", "route"))
		}
	}
	waitFor(t, "dhcpcd to report its DHCPv6 lease", func() bool {
		_, err := os.Stat(filepath.Join(dir, "BOUND6.env"))
		return err == nil
	})
	env, err := readEnv(filepath.Join(dir, "BOUND6.env"))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"new_dhcp6_name_servers":  "fd00:96::a",
		"new_dhcp6_domain_search": "svc.example.test",
	} {
		if got := env[k]; got != want {
			t.Errorf("dhcpcd got %s=%q, want %q", k, got, want)
		}
	}
	if t.Failed() {
		for k, v := range env {
			t.Logf("BOUND6 %s=%s", k, v)
		}
	}
}
