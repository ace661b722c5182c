package journal

import (
	"encoding/json"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestLinkRefIs(t *testing.T) {
	veth := func(index, peer int) netlink.Link {
		return &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Index: index, ParentIndex: peer, Name: "whatever"}}
	}
	ref := &LinkRef{Index: 2, Kind: "veth", Parent: 57}
	for _, c := range []struct {
		name string
		l    netlink.Link
		want bool
	}{
		{"same, renamed or not", veth(2, 57), true},
		{"another ifindex", veth(3, 57), false},
		{"moved in under the same ifindex, another peer", veth(2, 58), false},
		{"another kind", &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Index: 2, ParentIndex: 57}}, false},
	} {
		if got := ref.Is(c.l); got != c.want {
			t.Errorf("%s: is = %v, want %v", c.name, got, c.want)
		}
	}
	// An older record's identity (a NIC's index and kind) has no parent.
	if !(&LinkRef{Index: 2, Kind: "veth"}).Is(veth(2, 99)) {
		t.Error("a ref without parent should match on ifindex and kind")
	}
}

// TestStepWithoutNewFields: a step of the previous format (no ref, tmp,
// txqlen) reads with them absent, and a step of this one keeps them.
func TestStepWithoutNewFields(t *testing.T) {
	var old Step
	if err := json.Unmarshal([]byte(`{"op":"add-qdisc","link":"eth0","iface":"eth0","done":true}`), &old); err != nil {
		t.Fatal(err)
	}
	if old.Ref != nil || old.Tmp != "" || old.TxQLen != nil {
		t.Errorf("old step read as %+v", old)
	}
	zero := 0
	s := Step{Op: OpQdisc, Link: "eth0", Ref: &LinkRef{Index: 2, Kind: "veth", Parent: 7}, TxQLen: &zero, Done: true}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Step
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if *back.Ref != *s.Ref || back.TxQLen == nil || *back.TxQLen != 0 {
		t.Errorf("step %s read back as %+v", b, back)
	}
}
