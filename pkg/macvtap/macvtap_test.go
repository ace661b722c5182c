package macvtap

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netbridge/netbridge/test/testnet"
)

func TestParseDevice(t *testing.T) {
	if d, err := ParseDevice("246:1\n"); err != nil || d != (Device{246, 1}) {
		t.Errorf("ParseDevice = %v, %v", d, err)
	}
	for _, s := range []string{"", "246", "a:1", "1:b", "1:2:3", "-1:2", "99999999999:1"} {
		if _, err := ParseDevice(s); err == nil {
			t.Errorf("ParseDevice(%q) succeeded", s)
		}
	}
}

func TestLookupAndNodeInTwoNamespacesWithTheSameIfindex(t *testing.T) {
	var devs []Device
	var idx []int
	for range 2 {
		n := testnet.NewNS(t)
		peer := testnet.NewNS(t)
		testnet.VethPair(t, peer, n, "p0", "eth0", 0)
		h := testnet.Handle(t, n)
		parent := testnet.LinkByName(t, n, "eth0")
		la := netlink.NewLinkAttrs()
		la.Name, la.ParentIndex = "mvt0", parent.Attrs().Index
		if err := h.LinkAdd(&netlink.Macvtap{Macvlan: netlink.Macvlan{LinkAttrs: la, Mode: netlink.MACVLAN_MODE_BRIDGE}}); err != nil {
			t.Fatal(err)
		}
		l := testnet.LinkByName(t, n, "mvt0")
		dev, err := Lookup(int(n.Fd()), "mvt0", l.Attrs().Index)
		if err != nil {
			t.Fatal(err)
		}
		devs = append(devs, dev)
		idx = append(idx, l.Attrs().Index)
	}
	if idx[0] != idx[1] {
		t.Logf("ifindexes differ (%d, %d); the test still checks the device numbers", idx[0], idx[1])
	}
	if devs[0] == devs[1] {
		t.Errorf("two macvtaps share device %s", devs[0])
	}
	dir := t.TempDir()
	for i, d := range devs {
		p := filepath.Join(dir, "dev", "tap"+string(rune('a'+i)))
		if err := MakeNode(p, d); err != nil {
			t.Fatal(err)
		}
		if err := MakeNode(p, d); err != nil { // a stale node is replaced
			t.Fatal(err)
		}
		got, err := NodeDevice(p)
		if err != nil || got != d {
			t.Errorf("NodeDevice = %v, %v; want %v", got, err, d)
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Errorf("opening the private node of macvtap %d: %v", i, err)
		} else {
			f.Close()
		}
		if err := RemoveNode(p); err != nil {
			t.Fatal(err)
		}
		if err := RemoveNode(p); err != nil {
			t.Errorf("second RemoveNode: %v", err)
		}
	}
	regular := filepath.Join(dir, "file")
	os.WriteFile(regular, nil, 0o600)
	if err := RemoveNode(regular); err == nil {
		t.Error("RemoveNode removed a regular file")
	}
}
