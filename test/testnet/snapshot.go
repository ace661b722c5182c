package testnet

import (
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Snapshot returns a canonical text description of the network state of n,
// for before/after comparisons with [Diff]. See [ReadSnapshot] for what it
// contains.
func Snapshot(t testing.TB, n ns.NetNS) string {
	t.Helper()
	s, err := ReadSnapshot(n)
	if err != nil {
		t.Fatalf("snapshot of netns %s: %v", Name(n), err)
	}
	return s
}

// settleTimeout bounds how long [ReadSnapshot] waits for the namespace to reach a
// steady state.
const settleTimeout = 5 * time.Second

// ReadSnapshot returns a canonical, deterministic text description of the
// network state of n, one line per object, sections in a fixed order and
// lines sorted within each section:
//
//   - link: name, kind (plus tun/tap mode and flags, macvlan/macvtap mode and
//     parent), MAC, MTU, txqueuelen, up or down (administrative state),
//     master and alias.
//   - addr: every address of every family, including the IPv6 link-local
//     ones, with scope and flags, an IPv4 address with its broadcast
//     address (brd=- when it has none), without lifetimes and without the
//     transient DAD flags (tentative, optimistic).
//   - route: every route of every table (main, local and others), with
//     type, protocol, scope, destination, gateway, device, preferred source,
//     metric and MTU. Cached (cloned) routes are left out.
//   - neigh: permanent neighbour entries only; learnt entries depend on
//     traffic.
//   - qdisc: qdiscs with a non-zero handle. Qdiscs with handle 0 are the
//     kernel's defaults (noop, noqueue, pfifo_fast, mq), which the kernel
//     swaps when a link gains carrier.
//   - filter: the tc filters attached to each of those qdiscs (both
//     directions for clsact), with kind, priority, protocol, handle, u32
//     selector and actions (mirred targets by name).
//
// Interface indexes never appear: links are referred to by name, so that
// re-creating a link with the same name and settings gives the same text.
//
// IPv6 link-local addresses (and the fe80::/64, ff00::/8 and local routes
// that come with them) are included on purpose: with the default
// addr_gen_mode they derive from the MAC, so a link re-created with the same
// MAC gets the same ones, and a changed MAC shows up. The kernel adds them
// asynchronously (after the link gains carrier, from the linkwatch work) and
// they are tentative during DAD, so ReadSnapshot first waits, up to five
// seconds, until no link has a pending carrier change, no address is
// tentative, every IPv6 address of a running link has its local route, and
// two dumps taken 50 ms apart agree.
func ReadSnapshot(n ns.NetNS) (string, error) {
	h, err := NewHandle(n)
	if err != nil {
		return "", err
	}
	defer h.Close()
	deadline := time.Now().Add(settleTimeout)
	var prev string
	for {
		s, settled, err := dumpState(h)
		if err != nil {
			return "", err
		}
		if settled && s == prev {
			return s, nil
		}
		if time.Now().After(deadline) {
			// Not steady; return the latest state rather than failing.
			return s, nil
		}
		if settled {
			prev = s
		} else {
			prev = ""
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dumpState renders the state of the namespace of h once. settled is false
// while the kernel is visibly still processing a change.
func dumpState(h *netlink.Handle) (string, bool, error) {
	links, err := retryDump(h.LinkList)
	if err != nil {
		return "", false, fmt.Errorf("listing links: %w", err)
	}
	names := linkNames(links)
	settled := true
	var b strings.Builder

	var lines []string
	for _, l := range links {
		a := l.Attrs()
		up := a.RawFlags&unix.IFF_UP != 0
		lower := a.RawFlags&unix.IFF_LOWER_UP != 0
		running := a.RawFlags&unix.IFF_RUNNING != 0
		if up && lower != running {
			settled = false // carrier changed, linkwatch has not run yet
		}
		lines = append(lines, linkLine(l, names))
	}
	writeSection(&b, lines)

	addrs, err := retryDump(func() ([]netlink.Addr, error) { return h.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return "", false, fmt.Errorf("listing addresses: %w", err)
	}
	lines = lines[:0]
	for _, a := range addrs {
		if a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_OPTIMISTIC) != 0 && a.Flags&unix.IFA_F_DADFAILED == 0 {
			settled = false
		}
		lines = append(lines, addrLine(a, names))
	}
	writeSection(&b, lines)

	routes, err := retryDump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return "", false, fmt.Errorf("listing routes: %w", err)
	}
	lines = lines[:0]
	for _, r := range routes {
		lines = append(lines, routeLine(r, names))
	}
	writeSection(&b, lines)
	if !localRoutesComplete(links, addrs, routes) {
		settled = false
	}

	neighs, err := retryDump(func() ([]netlink.Neigh, error) { return h.NeighList(0, netlink.FAMILY_ALL) })
	if err != nil {
		return "", false, fmt.Errorf("listing neighbours: %w", err)
	}
	lines = lines[:0]
	for _, nb := range neighs {
		if nb.State&netlink.NUD_PERMANENT == 0 || nb.Flags&netlink.NTF_PROXY != 0 {
			continue
		}
		lines = append(lines, fmt.Sprintf("neigh %s %s lladdr=%s permanent", nameOf(names, nb.LinkIndex), nb.IP, macString(nb.HardwareAddr)))
	}
	writeSection(&b, lines)

	var qlines, flines []string
	for _, l := range links {
		qdiscs, err := retryDump(func() ([]netlink.Qdisc, error) { return h.QdiscList(l) })
		if err != nil {
			return "", false, fmt.Errorf("listing qdiscs of %s: %w", l.Attrs().Name, err)
		}
		for _, q := range qdiscs {
			qa := q.Attrs()
			if qa.LinkIndex != l.Attrs().Index || qa.Handle == 0 {
				continue
			}
			qlines = append(qlines, fmt.Sprintf("qdisc %s %s handle=%s parent=%s", l.Attrs().Name, q.Type(), handleString(qa.Handle), handleString(qa.Parent)))
			parents := []uint32{qa.Handle}
			if q.Type() == "clsact" {
				parents = []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS}
			}
			for _, parent := range parents {
				filters, err := retryDump(func() ([]netlink.Filter, error) { return h.FilterList(l, parent) })
				if err != nil {
					return "", false, fmt.Errorf("listing filters of %s parent %s: %w", l.Attrs().Name, handleString(parent), err)
				}
				for _, f := range filters {
					flines = append(flines, filterLine(l.Attrs().Name, parent, f, names))
				}
			}
		}
	}
	writeSection(&b, qlines)
	writeSection(&b, flines)
	return b.String(), settled, nil
}

// localRoutesComplete reports whether every IPv6 address that finished DAD
// on a running link has its local route yet. The kernel clears the
// tentative flag and only then, separately, inserts that route, so a dump
// can fall between the two; under load the gap can outlast the 50 ms
// between two dumps.
func localRoutesComplete(links []netlink.Link, addrs []netlink.Addr, routes []netlink.Route) bool {
	running := map[int]bool{}
	for _, l := range links {
		a := l.Attrs()
		running[a.Index] = a.RawFlags&(unix.IFF_UP|unix.IFF_RUNNING) == unix.IFF_UP|unix.IFF_RUNNING
	}
	local := map[string]bool{}
	for _, r := range routes {
		if r.Type == unix.RTN_LOCAL && r.Family == unix.AF_INET6 && r.Dst != nil {
			local[fmt.Sprintf("%d/%s", r.LinkIndex, r.Dst.IP)] = true
		}
	}
	for _, a := range addrs {
		if a.IP.To4() != nil || !running[a.LinkIndex] || a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
			continue
		}
		if !local[fmt.Sprintf("%d/%s", a.LinkIndex, a.IP)] {
			return false
		}
	}
	return true
}

func writeSection(b *strings.Builder, lines []string) {
	slices.Sort(lines)
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
}

func macString(hw net.HardwareAddr) string {
	if len(hw) == 0 {
		return "-"
	}
	return hw.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func linkLine(l netlink.Link, names map[int]string) string {
	a := l.Attrs()
	kind := l.Type()
	switch v := l.(type) {
	case *netlink.Tuntap:
		kind += fmt.Sprintf("(%s%s)", tunMode(v.Mode), tunFlags(v))
	case *netlink.Macvtap:
		kind += fmt.Sprintf("(mode=%s parent=%s)", macvlanMode(v.Mode), nameOf(names, a.ParentIndex))
	case *netlink.Macvlan:
		kind += fmt.Sprintf("(mode=%s parent=%s)", macvlanMode(v.Mode), nameOf(names, a.ParentIndex))
	case *netlink.Vlan:
		kind += fmt.Sprintf("(id=%d parent=%s)", v.VlanId, nameOf(names, a.ParentIndex))
	}
	state := "down"
	if a.Flags&net.FlagUp != 0 {
		state = "up"
	}
	return fmt.Sprintf("link %s kind=%s mac=%s mtu=%d txqlen=%d %s master=%s alias=%s",
		a.Name, kind, macString(a.HardwareAddr), a.MTU, a.TxQLen, state, nameOf(names, a.MasterIndex), orDash(a.Alias))
}

func tunMode(m netlink.TuntapMode) string {
	switch m {
	case netlink.TUNTAP_MODE_TAP:
		return "tap"
	case netlink.TUNTAP_MODE_TUN:
		return "tun"
	}
	return fmt.Sprintf("mode%d", m)
}

func tunFlags(t *netlink.Tuntap) string {
	var s string
	if t.Flags&netlink.TUNTAP_NO_PI != 0 {
		s += " no_pi"
	}
	if t.Flags&netlink.TUNTAP_VNET_HDR != 0 {
		s += " vnet_hdr"
	}
	if t.Flags&netlink.TUNTAP_MULTI_QUEUE != 0 {
		s += " multi_queue"
	}
	if !t.NonPersist {
		s += " persist"
	}
	return s
}

func macvlanMode(m netlink.MacvlanMode) string {
	switch m {
	case netlink.MACVLAN_MODE_PRIVATE:
		return "private"
	case netlink.MACVLAN_MODE_VEPA:
		return "vepa"
	case netlink.MACVLAN_MODE_BRIDGE:
		return "bridge"
	case netlink.MACVLAN_MODE_PASSTHRU:
		return "passthru"
	case netlink.MACVLAN_MODE_SOURCE:
		return "source"
	}
	return fmt.Sprintf("mode%d", m)
}

var addrFlagNames = []struct {
	bit  int
	name string
}{
	{unix.IFA_F_SECONDARY, "secondary"},
	{unix.IFA_F_NODAD, "nodad"},
	{unix.IFA_F_DADFAILED, "dadfailed"},
	{unix.IFA_F_HOMEADDRESS, "homeaddress"},
	{unix.IFA_F_DEPRECATED, "deprecated"},
	{unix.IFA_F_PERMANENT, "permanent"},
	{unix.IFA_F_MANAGETEMPADDR, "mngtmpaddr"},
	{unix.IFA_F_NOPREFIXROUTE, "noprefixroute"},
	{unix.IFA_F_MCAUTOJOIN, "autojoin"},
	{unix.IFA_F_STABLE_PRIVACY, "stable-privacy"},
}

func addrLine(a netlink.Addr, names map[int]string) string {
	family := "inet"
	if a.IP.To4() == nil {
		family = "inet6"
	}
	var flags []string
	for _, f := range addrFlagNames {
		if a.Flags&f.bit != 0 {
			flags = append(flags, f.name)
		}
	}
	brd := ""
	if family == "inet" {
		// An IPv4 address may have a broadcast address or none; both
		// are kept as they were by an exact restore.
		brd = " brd=-"
		if a.Broadcast != nil && !a.Broadcast.IsUnspecified() {
			brd = " brd=" + a.Broadcast.String()
		}
	}
	extra := ""
	if a.Peer != nil {
		extra += " peer=" + a.Peer.String()
	}
	if a.Label != "" && a.Label != nameOf(names, a.LinkIndex) {
		extra += " label=" + a.Label
	}
	return fmt.Sprintf("addr %s %s %s%s scope=%s flags=%s%s",
		nameOf(names, a.LinkIndex), family, a.IPNet, brd, netlink.Scope(a.Scope), orDash(strings.Join(flags, ",")), extra)
}

var routeTypes = map[int]string{
	unix.RTN_UNICAST:     "unicast",
	unix.RTN_LOCAL:       "local",
	unix.RTN_BROADCAST:   "broadcast",
	unix.RTN_ANYCAST:     "anycast",
	unix.RTN_MULTICAST:   "multicast",
	unix.RTN_BLACKHOLE:   "blackhole",
	unix.RTN_UNREACHABLE: "unreachable",
	unix.RTN_PROHIBIT:    "prohibit",
	unix.RTN_THROW:       "throw",
	unix.RTN_NAT:         "nat",
}

func tableName(t int) string {
	switch t {
	case unix.RT_TABLE_MAIN:
		return "main"
	case unix.RT_TABLE_LOCAL:
		return "local"
	case unix.RT_TABLE_DEFAULT:
		return "default"
	}
	return fmt.Sprint(t)
}

func routeLine(r netlink.Route, names map[int]string) string {
	family := "inet"
	if r.Family == unix.AF_INET6 {
		family = "inet6"
	}
	typ, ok := routeTypes[r.Type]
	if !ok {
		typ = fmt.Sprintf("type%d", r.Type)
	}
	dst := "default"
	if r.Dst != nil {
		dst = r.Dst.String()
	}
	var gw, src string
	if r.Gw != nil {
		gw = r.Gw.String()
	}
	if r.Src != nil {
		src = r.Src.String()
	}
	s := fmt.Sprintf("route %s table=%s %s %s proto=%s scope=%s dev=%s gw=%s src=%s metric=%d",
		family, tableName(r.Table), typ, dst, r.Protocol, r.Scope, nameOf(names, r.LinkIndex), orDash(gw), orDash(src), r.Priority)
	if r.MTU != 0 {
		s += fmt.Sprintf(" mtu=%d", r.MTU)
	}
	if r.Flags&unix.RTNH_F_ONLINK != 0 {
		s += " onlink"
	}
	for _, nh := range r.MultiPath {
		s += fmt.Sprintf(" nexthop(dev=%s gw=%s weight=%d)", nameOf(names, nh.LinkIndex), nh.Gw, nh.Hops+1)
	}
	return s
}

// handleString formats a tc handle the way tc(8) does ("ffff:", "1:2"),
// with names for the special parents.
func handleString(h uint32) string {
	switch h {
	case netlink.HANDLE_ROOT:
		return "root"
	case netlink.HANDLE_INGRESS:
		return "ingress"
	case netlink.HANDLE_MIN_INGRESS:
		return "ffff:fff2(ingress)"
	case netlink.HANDLE_MIN_EGRESS:
		return "ffff:fff3(egress)"
	case netlink.HANDLE_NONE:
		return "none"
	}
	major, minor := h>>16, h&0xffff
	if minor == 0 {
		return fmt.Sprintf("%x:", major)
	}
	return fmt.Sprintf("%x:%x", major, minor)
}

func protoName(p uint16) string {
	switch p {
	case unix.ETH_P_ALL:
		return "all"
	case unix.ETH_P_IP:
		return "ip"
	case unix.ETH_P_IPV6:
		return "ipv6"
	case unix.ETH_P_ARP:
		return "arp"
	case unix.ETH_P_8021Q:
		return "802.1q"
	}
	return fmt.Sprintf("0x%04x", p)
}

// u32Handle formats a u32 filter handle as htid:hash:node, like tc.
func u32Handle(h uint32) string {
	return fmt.Sprintf("%x:%x:%x", h>>20, (h>>12)&0xff, h&0xfff)
}

func filterLine(dev string, parent uint32, f netlink.Filter, names map[int]string) string {
	a := f.Attrs()
	s := fmt.Sprintf("filter %s parent=%s %s prio=%d proto=%s", dev, handleString(parent), f.Type(), a.Priority, protoName(a.Protocol))
	if a.Chain != nil && *a.Chain != 0 {
		s += fmt.Sprintf(" chain=%d", *a.Chain)
	}
	var actions []netlink.Action
	switch v := f.(type) {
	case *netlink.U32:
		s += " handle=" + u32Handle(a.Handle)
		if v.Divisor != 0 {
			s += fmt.Sprintf(" divisor=%d", v.Divisor)
		}
		if v.ClassId != 0 {
			s += " classid=" + handleString(v.ClassId)
		}
		if v.Link != 0 {
			s += " link=" + u32Handle(v.Link)
		}
		if v.Sel != nil {
			s += " match=" + u32Selector(v.Sel)
		}
		actions = v.Actions
	case *netlink.MatchAll:
		s += fmt.Sprintf(" handle=%x", a.Handle)
		if v.ClassId != 0 {
			s += " classid=" + handleString(v.ClassId)
		}
		actions = v.Actions
	case *netlink.BpfFilter:
		s += fmt.Sprintf(" handle=%x name=%s direct=%t", a.Handle, v.Name, v.DirectAction)
	case *netlink.GenericFilter:
		s += fmt.Sprintf(" handle=%x", a.Handle)
	default:
		s += fmt.Sprintf(" handle=%x", a.Handle)
	}
	for _, act := range actions {
		s += " action=" + actionString(act, names)
	}
	return s
}

func u32Selector(sel *netlink.TcU32Sel) string {
	if len(sel.Keys) == 0 {
		return "none"
	}
	var keys []string
	for _, k := range sel.Keys {
		// Mask and Val are in network byte order in the struct.
		var m, v [4]byte
		binary.NativeEndian.PutUint32(m[:], k.Mask)
		binary.NativeEndian.PutUint32(v[:], k.Val)
		keys = append(keys, fmt.Sprintf("%08x/%08x@%d", binary.BigEndian.Uint32(v[:]), binary.BigEndian.Uint32(m[:]), k.Off))
	}
	s := strings.Join(keys, ",")
	if sel.Flags&nl.TC_U32_TERMINAL != 0 {
		s += "(terminal)"
	}
	return s
}

func actionString(act netlink.Action, names map[int]string) string {
	switch v := act.(type) {
	case *netlink.MirredAction:
		return fmt.Sprintf("mirred(%s dev=%s then=%s)", strings.ReplaceAll(v.MirredAction.String(), " ", "-"), nameOf(names, v.Ifindex), v.Attrs().Action)
	case *netlink.GenericAction:
		return fmt.Sprintf("gact(%s)", v.Attrs().Action)
	case *netlink.TunnelKeyAction:
		return fmt.Sprintf("tunnel_key(%d)", v.Action)
	case *netlink.SkbEditAction:
		return "skbedit"
	}
	return act.Type()
}
