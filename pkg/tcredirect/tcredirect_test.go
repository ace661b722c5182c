package tcredirect

import (
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestFilterIsRecognised(t *testing.T) {
	for _, c := range []Classifier{U32, Matchall} {
		f := Filter(c, 2, 7)
		if string(c) != f.Type() {
			t.Errorf("Filter(%s) is a %s filter", c, f.Type())
		}
		if to, ok := Target(f); !ok || to != 7 {
			t.Errorf("Target(Filter(%s, 2, 7)) = %d, %v", c, to, ok)
		}
		if a := f.Attrs(); a.Priority != Priority || a.Parent != IngressParent || a.Protocol != unix.ETH_P_ALL || a.LinkIndex != 2 {
			t.Errorf("Filter(%s) attributes %+v", c, a)
		}
	}
	// As the kernel lists a u32 filter of ours: one key of mask 0.
	listed := &netlink.U32{FilterAttrs: netlink.FilterAttrs{Priority: Priority, Protocol: unix.ETH_P_ALL},
		Sel:     &netlink.TcU32Sel{Keys: []netlink.TcU32Key{{Mask: 0}}},
		Actions: []netlink.Action{netlink.NewMirredAction(7)}}
	if !Redirects(listed, Priority, 7) {
		t.Error("a listed u32 redirect of ours is not recognised")
	}
	for name, f := range map[string]netlink.Filter{
		"another target":   listed,
		"a matching u32":   &netlink.U32{FilterAttrs: listed.FilterAttrs, Sel: &netlink.TcU32Sel{Keys: []netlink.TcU32Key{{Mask: 0xff}}}, Actions: listed.Actions},
		"another priority": &netlink.MatchAll{FilterAttrs: netlink.FilterAttrs{Priority: 1, Protocol: unix.ETH_P_ALL}, Actions: listed.Actions},
		"one protocol":     &netlink.MatchAll{FilterAttrs: netlink.FilterAttrs{Priority: Priority, Protocol: unix.ETH_P_IP}, Actions: listed.Actions},
	} {
		target := 7
		if name == "another target" {
			target = 8
		}
		if Redirects(f, Priority, target) {
			t.Errorf("%s: recognised as ours", name)
		}
	}
	header := &netlink.U32{FilterAttrs: netlink.FilterAttrs{Priority: Priority}}
	if !IsU32Header(header) || IsU32Header(listed) {
		t.Error("IsU32Header does not tell the hash table from the rule")
	}
	if _, ok := Target(header); ok {
		t.Error("a u32 hash table redirects nowhere")
	}
}

func TestIngressOf(t *testing.T) {
	qs := []netlink.Qdisc{
		Ingress(2),
		&netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: 3, Parent: netlink.HANDLE_INGRESS}},
		&netlink.GenericQdisc{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: 4, Parent: netlink.HANDLE_ROOT}, QdiscType: "fq_codel"},
	}
	if q, err := IngressOf(qs, "eth0", 2); err != nil || q == nil {
		t.Errorf("IngressOf(eth0) = %v, %v", q, err)
	}
	if _, err := IngressOf(qs, "net1", 3); err == nil {
		t.Error("a clsact qdisc at the ingress hook is no error")
	}
	if q, err := IngressOf(qs, "net2", 4); err != nil || q != nil {
		t.Errorf("IngressOf(net2) = %v, %v; want none", q, err)
	}
}
