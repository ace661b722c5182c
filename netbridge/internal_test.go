package netbridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/pkg/state"
	"github.com/netbridge/netbridge/pkg/tap"
)

func TestTapNamesFitAndDiffer(t *testing.T) {
	seen := map[string]string{}
	names := []string{"eth0", "net1", "abcdefghijkl", "abcdefghijklm", "abcdefghijklmn", "abcdefghijklmno", "abcdefXXXXXXXXX", "abcdefYYYYYYYYY"}
	for i := range 1000 {
		names = append(names, fmt.Sprintf("if%013d", i))
	}
	for _, n := range names {
		tap := tapNameForTest(n)
		if len(tap) > 15 || !strings.HasPrefix(tap, tapPrefix) {
			t.Errorf("tapNameForTest(%q) = %q: longer than 15 bytes or without prefix", n, tap)
		}
		if tapNameForTest(n) != tap {
			t.Errorf("tapNameForTest(%q) is not deterministic", n)
		}
		if prev, ok := seen[tap]; ok {
			t.Errorf("tapNameForTest(%q) = tapNameForTest(%q) = %q", n, prev, tap)
		}
		seen[tap] = n
	}
	if got := tapNameForTest("eth0"); got != "nb-eth0" {
		t.Errorf("tapNameForTest(eth0) = %q, want nb-eth0", got)
	}
}

func TestRoutesOfFiltersKernelAndKeepsMTU(t *testing.T) {
	_, dst, _ := net.ParseCIDR("203.0.113.0/24")
	_, link, _ := net.ParseCIDR("198.51.100.0/24")
	routes := []netlink.Route{
		{LinkIndex: 2, Dst: &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}, Gw: net.ParseIP("198.51.100.1"), Protocol: unix.RTPROT_BOOT, Type: unix.RTN_UNICAST, Family: unix.AF_INET},
		{LinkIndex: 2, Dst: link, Protocol: unix.RTPROT_KERNEL, Type: unix.RTN_UNICAST, Family: unix.AF_INET},
		{LinkIndex: 2, Dst: dst, Gw: net.ParseIP("198.51.100.1"), MTU: 1400, Protocol: unix.RTPROT_STATIC, Type: unix.RTN_UNICAST, Family: unix.AF_INET},
		{LinkIndex: 2, Dst: dst, Protocol: unix.RTPROT_STATIC, Type: unix.RTN_BLACKHOLE, Family: unix.AF_INET},
		{LinkIndex: 3, Dst: dst, Protocol: unix.RTPROT_STATIC, Type: unix.RTN_UNICAST, Family: unix.AF_INET},
		{LinkIndex: 2, Gw: net.ParseIP("fe80::1"), Protocol: unix.RTPROT_RA, Type: unix.RTN_UNICAST, Family: unix.AF_INET6},
	}
	got := routesOf(routes, 2)
	want := []Route{
		{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: netip.MustParseAddr("198.51.100.1")},
		{Dst: netip.MustParsePrefix("203.0.113.0/24"), Gw: netip.MustParseAddr("198.51.100.1"), MTU: 1400},
		{Dst: netip.MustParsePrefix("::/0"), Gw: netip.MustParseAddr("fe80::1")},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("routesOf =\n%v\nwant\n%v", got, want)
	}
}

func TestNeighborsOfKeepsPermanentAndGateways(t *testing.T) {
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	neighs := []netlink.Neigh{
		{LinkIndex: 2, IP: net.ParseIP("169.254.1.1"), HardwareAddr: mac("ee:ee:ee:ee:ee:ee"), State: netlink.NUD_PERMANENT},
		{LinkIndex: 2, IP: net.ParseIP("198.51.100.1"), HardwareAddr: mac("02:00:00:00:00:01"), State: netlink.NUD_REACHABLE},
		{LinkIndex: 2, IP: net.ParseIP("198.51.100.7"), HardwareAddr: mac("02:00:00:00:00:07"), State: netlink.NUD_REACHABLE}, // not a gateway
		{LinkIndex: 2, IP: net.ParseIP("198.51.100.8"), State: netlink.NUD_FAILED},
		{LinkIndex: 2, IP: net.ParseIP("ff02::1"), HardwareAddr: mac("33:33:00:00:00:01"), State: netlink.NUD_NOARP},
		{LinkIndex: 3, IP: net.ParseIP("192.0.2.1"), HardwareAddr: mac("02:00:00:00:00:02"), State: netlink.NUD_PERMANENT},
	}
	routes := []Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: netip.MustParseAddr("198.51.100.1")}}
	got := neighborsOf(neighs, 2, routes)
	if len(got) != 2 || got[0].IP.String() != "169.254.1.1" || !got[0].Permanent || got[1].IP.String() != "198.51.100.1" || got[1].Permanent {
		t.Errorf("neighborsOf = %+v, want the permanent 169.254.1.1 and the gateway 198.51.100.1", got)
	}
}

func TestAddressesOfSkipsIPv6LinkLocal(t *testing.T) {
	mk := func(s string) netlink.Addr {
		ip, n, _ := net.ParseCIDR(s)
		n.IP = ip
		return netlink.Addr{IPNet: n, LinkIndex: 2}
	}
	got := addressesOf([]netlink.Addr{mk("198.51.100.2/24"), mk("fe80::1/64"), mk("2001:db8::2/64"), mk("169.254.3.3/32")}, 2)
	if fmt.Sprint(got) != "[198.51.100.2/24 2001:db8::2/64 169.254.3.3/32]" {
		t.Errorf("addressesOf = %v", got)
	}
}

func TestSelectInterfaces(t *testing.T) {
	ifs := func() []Interface {
		return []Interface{
			{Name: "eth0", Kind: "veth", Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.2/24")}},
			{Name: "nb-eth0", Kind: "tuntap", Owner: "x"},
			{Name: "net1", Kind: "veth"},
			{Name: "vx0", Kind: "vxlan", Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.3/24")}},
		}
	}
	got := ifs()
	if err := selectInterfaces(got, nil, tcfilter{}.supports); err != nil {
		t.Fatal(err)
	}
	if !got[0].Attach || got[1].Attach || got[2].Attach || got[3].Attach || !strings.Contains(got[3].Reason, "vxlan") {
		t.Errorf("default selection = %+v", got)
	}
	got = ifs()
	if err := selectInterfaces(got, []string{"net1"}, tcfilter{}.supports); err != nil || got[0].Attach || !got[2].Attach {
		t.Errorf("--interfaces net1 selection = %+v, %v", got, err)
	}
	for _, names := range [][]string{{"nope"}, {"nb-eth0"}, {"vx0"}} {
		if err := selectInterfaces(ifs(), names, tcfilter{}.supports); err == nil {
			t.Errorf("selecting %v succeeded", names)
		}
	}
}

// FuzzRecord feeds arbitrary bytes to the record decoder, as a damaged or
// hostile state file would: it must return a record or an error, never
// panic, and a record it accepts must survive encoding and decoding again.
// (Reading from disk is state.Store's, tested in pkg/state; keeping the
// fuzz body in memory keeps it fast.)
func FuzzRecord(f *testing.F) {
	f.Add([]byte(`{"version":1,"phase":"ready","netns_id":{"dev":4,"ino":5},"sandbox":{"id":"fz","netns":"/run/netns/x","model":"tcfilter","nics":[{"name":"eth0","guest_mac":"02:00:00:00:00:01","addresses":["192.0.2.2/24"],"routes":[{"dst":"0.0.0.0/0","gw":"192.0.2.1"}]}]},"journal":[{"op":"create-tap","link":"nb-eth0","done":true}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":1,"sandbox":{"id":"fz","nics":[{"guest_mac":"zz"}]}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var rec record
		if json.Unmarshal(b, &rec) != nil || rec.validate("fz") != nil {
			return
		}
		out, err := json.Marshal(&rec)
		if err != nil {
			t.Fatalf("encoding an accepted record: %v", err)
		}
		var again record
		if err := json.Unmarshal(out, &again); err != nil || again.validate("fz") != nil {
			t.Fatalf("decoding a re-encoded record: %v\n%s", err, out)
		}
		for _, s := range rec.Journal {
			_ = s.String()
		}
	})
}

func TestReadRecordRefusesForeignAndNewer(t *testing.T) {
	st, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ body, want string }{
		{`{"version":1,"sandbox":{"id":"other"}}`, "is of sandbox"},
		{`{"version":9,"sandbox":{"id":"me"}}`, "version 9"},
		{`{"version":1,`, "decoding"},
	} {
		if err := os.WriteFile(filepath.Join(st.Dir(), "me.json"), []byte(c.body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := readRecord(st, "me"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("readRecord(%s) = %v, want an error containing %q", c.body, err, c.want)
		}
	}
}

func tapNameForTest(ifname string) string { return nameFor(tapPrefix, ifname) }

func TestRetryBusy(t *testing.T) {
	calls := 0
	err := retryBusy(context.Background(), func() error {
		calls++
		if calls < 3 {
			return fmt.Errorf("adding: %w", unix.EBUSY)
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("retryBusy = %v after %d calls, want nil after 3", err, calls)
	}
	calls = 0
	err = retryBusy(context.Background(), func() error { calls++; return fmt.Errorf("%w (%w)", tap.ErrExists, unix.EBUSY) })
	if calls != 1 || !errors.Is(err, tap.ErrExists) {
		t.Errorf("a taken tap name was retried %d times (%v)", calls, err)
	}
	calls = 0
	err = retryBusy(context.Background(), func() error { calls++; return unix.EPERM })
	if calls != 1 || !errors.Is(err, unix.EPERM) {
		t.Errorf("EPERM was retried %d times", calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := retryBusy(ctx, func() error { return unix.EAGAIN }); !errors.Is(err, context.Canceled) {
		t.Errorf("retryBusy with a cancelled context = %v", err)
	}
}
