package testnet

import (
	"regexp"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// addIngressRedirect installs what a tc-redirect setup looks like: an
// ingress qdisc on from and a u32 match-all filter redirecting to to.
func addIngressRedirect(t *testing.T, n ns.NetNS, from, to string) {
	t.Helper()
	h := Handle(t, n)
	src := LinkByName(t, n, from)
	dst := LinkByName(t, n, to)
	q := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: src.Attrs().Index, Parent: netlink.HANDLE_INGRESS}}
	if err := h.QdiscAdd(q); err != nil {
		t.Fatalf("adding ingress qdisc: %v", err)
	}
	f := &netlink.U32{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: src.Attrs().Index,
			Parent:    netlink.MakeHandle(0xffff, 0),
			Priority:  1,
			Protocol:  unix.ETH_P_ALL,
		},
		Actions: []netlink.Action{&netlink.MirredAction{
			ActionAttrs:  netlink.ActionAttrs{Action: netlink.TC_ACT_STOLEN},
			MirredAction: netlink.TCA_EGRESS_REDIR,
			Ifindex:      dst.Attrs().Index,
		}},
	}
	if err := h.FilterAdd(f); err != nil {
		t.Fatalf("adding u32 filter: %v", err)
	}
}

func TestSnapshotBeforeAfter(t *testing.T) {
	node, pod := NewNS(t), NewNS(t)
	nodeBefore, podBefore := Snapshot(t, node), Snapshot(t, pod)
	if again := Snapshot(t, node); again != nodeBefore {
		t.Fatalf("two snapshots of an idle netns differ:\n%s", Diff(nodeBefore, again))
	}
	t.Logf("fresh netns:\n%s", nodeBefore)

	t.Run("configure", func(t *testing.T) {
		VethPair(t, node, pod, "veth-node", "eth0", 1400)
		VethPair(t, node, pod, "veth-b", "eth1", 0)
		AddAddr(t, node, "veth-node", "198.51.100.1/24")
		AddAddr(t, node, "veth-node", "2001:db8:7::1/64")
		AddAddr(t, pod, "eth0", "198.51.100.2/24")
		AddRoute(t, pod, "eth0", "default", "198.51.100.1")
		AddRoute(t, pod, "eth1", "203.0.113.0/24", "")
		Exec(t, pod, "ip", "addr", "add", "192.0.2.5/24", "dev", "eth1")
		Exec(t, pod, "ip", "link", "set", "eth1", "txqueuelen", "0")
		AddNeigh(t, node, "veth-node", "198.51.100.2", "02:00:00:00:00:02")
		addIngressRedirect(t, node, "veth-node", "veth-b")

		mid := Snapshot(t, node)
		t.Logf("configured node netns:\n%s", mid)
		if again := Snapshot(t, node); again != mid {
			t.Errorf("two snapshots of the configured netns differ:\n%s", Diff(mid, again))
		}
		diff := Diff(nodeBefore, mid)
		for _, want := range []string{
			"+link veth-node kind=veth mac=",
			" mtu=1400 txqlen=1000 up master=- alias=-",
			"+addr veth-node inet 198.51.100.1/24 brd=198.51.100.255 scope=universe flags=permanent",
			"+addr veth-node inet6 2001:db8:7::1/64 scope=universe flags=nodad,permanent",
			"+addr veth-node inet6 fe80::",
			"+route inet table=local local 198.51.100.1/32 proto=kernel scope=host dev=veth-node",
			"+route inet table=main unicast 198.51.100.0/24 proto=kernel scope=link dev=veth-node gw=- src=198.51.100.1",
			"+neigh veth-node 198.51.100.2 lladdr=02:00:00:00:00:02 permanent",
			"+qdisc veth-node ingress handle=ffff: parent=ingress",
			"+filter veth-node parent=ffff: u32 prio=1 proto=all handle=800:0:800 match=00000000/00000000@0(terminal) action=mirred(egress-redir dev=veth-b then=stolen)",
		} {
			if !strings.Contains(diff, want) {
				t.Errorf("diff lacks %q:\n%s", want, diff)
			}
		}
		if regexp.MustCompile(`\bif[0-9]+\b`).MatchString(mid) {
			t.Errorf("snapshot refers to a link by index:\n%s", mid)
		}
		podMid := Snapshot(t, pod)
		for _, want := range []string{
			"+route inet table=main unicast 0.0.0.0/0 proto=boot scope=universe dev=eth0 gw=198.51.100.1 src=- metric=0",
			"+route inet table=main unicast 203.0.113.0/24 proto=boot scope=link dev=eth1 gw=- src=- metric=0",
			"+addr eth1 inet 192.0.2.5/24 brd=- scope=universe flags=permanent",
			"+addr eth0 inet 198.51.100.2/24 brd=198.51.100.255 scope=universe",
			" mtu=1500 txqlen=0 up master=- alias=-",
		} {
			if d := Diff(podBefore, podMid); !strings.Contains(d, want) {
				t.Errorf("pod diff lacks %q:\n%s", want, d)
			}
		}
	})

	if d := Diff(nodeBefore, Snapshot(t, node)); d != "" {
		t.Errorf("node netns not back to its initial state:\n%s", d)
	}
	if d := Diff(podBefore, Snapshot(t, pod)); d != "" {
		t.Errorf("pod netns not back to its initial state:\n%s", d)
	}
}
