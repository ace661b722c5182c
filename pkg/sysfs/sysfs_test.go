package sysfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netbridge/netbridge/test/testnet"
)

func TestDoSeesTheNamespaceAndWrites(t *testing.T) {
	n, peer := testnet.NewNS(t), testnet.NewNS(t)
	testnet.VethPair(t, peer, n, "nbsysp0", "nbsys0", 0)
	if _, err := os.Stat("/sys/class/net/nbsys0"); err == nil {
		t.Fatal("the host's sysfs shows the test link; the test cannot tell namespaces apart")
	}
	err := Do(int(n.Fd()), true, func(root string) error {
		b, err := os.ReadFile(filepath.Join(root, "class/net/nbsys0/mtu"))
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(b)) != "1500" {
			t.Errorf("mtu = %q", b)
		}
		return os.WriteFile(filepath.Join(root, "class/net/nbsys0/mtu"), []byte("1400"), 0)
	})
	if err != nil {
		t.Fatal(err)
	}
	if mtu := testnet.LinkByName(t, n, "nbsys0").Attrs().MTU; mtu != 1400 {
		t.Errorf("MTU after writing through sysfs = %d, want 1400", mtu)
	}
	err = Do(int(n.Fd()), false, func(root string) error {
		return os.WriteFile(filepath.Join(root, "class/net/nbsys0/mtu"), []byte("1300"), 0)
	})
	if err == nil {
		t.Error("a read-only sysfs accepted a write")
	}
}
