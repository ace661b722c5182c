package testnet

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
)

func TestNewNS(t *testing.T) {
	RequireRoot(t)
	var path string
	t.Run("create", func(t *testing.T) {
		n := NewNS(t)
		path = n.Path()
		if filepath.Dir(path) != RunDir || !strings.HasPrefix(Name(n), namePrefix) {
			t.Fatalf("unexpected netns path %s", path)
		}
		if err := ns.IsNSorErr(path); err != nil {
			t.Fatalf("%s is not a netns: %v", path, err)
		}
		if LinkByName(t, n, "lo").Attrs().Flags&net.FlagUp == 0 {
			t.Error("lo is not up")
		}
		for _, key := range []string{"net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"} {
			if v, err := ReadSysctl(n, key); err != nil || v != "0" {
				t.Errorf("%s = %q, %v; want 0", key, v, err)
			}
		}
		// `ip netns` sees it by name.
		out, err := exec.Command("ip", "netns", "list").CombinedOutput()
		if err != nil {
			t.Fatalf("ip netns list: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), Name(n)) {
			t.Errorf("ip netns list does not show %s:\n%s", Name(n), out)
		}
		out, err = exec.Command("ip", "netns", "exec", Name(n), "ip", "-o", "link").CombinedOutput()
		if err != nil {
			t.Fatalf("ip netns exec: %v\n%s", err, out)
		}
		if got := strings.Count(string(out), "\n"); got != 1 || !strings.Contains(string(out), "lo:") {
			t.Errorf("fresh netns has unexpected links:\n%s", out)
		}
	})
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s still exists after cleanup (err=%v)", path, err)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), path) {
		t.Errorf("%s still mounted after cleanup", path)
	}
}

func TestNewNSWithDAD(t *testing.T) {
	n := NewNS(t, WithDAD())
	v, err := ReadSysctl(n, "net.ipv6.conf.default.accept_dad")
	if err != nil {
		t.Fatal(err)
	}
	if v == "0" {
		t.Errorf("accept_dad = 0 although WithDAD was given")
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestRunIn(t *testing.T) {
	n := NewNS(t)
	// The child reports the inode of its own netns.
	out := Exec(t, n, "stat", "-L", "-c", "%i", "/proc/self/ns/net")
	want := inode(t, n.Path())
	if strings.TrimSpace(out) != strings.TrimSpace(strconv.FormatUint(want, 10)) {
		t.Errorf("child ran in netns inode %s, want %d", out, want)
	}
	// And a child started normally still runs in the test's own netns.
	host, err := exec.Command("stat", "-L", "-c", "%i", "/proc/self/ns/net").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(host)) == strconv.FormatUint(want, 10) {
		t.Error("plain exec ran inside the test netns: a thread was left in it")
	}
	// Links seen by a process started with RunIn are those of n.
	if out := Exec(t, n, "ip", "-o", "link"); strings.Count(out, "\n") != 1 {
		t.Errorf("ip link in fresh netns shows:\n%s", out)
	}
}

func TestSysctlStaysInNamespace(t *testing.T) {
	n := NewNS(t)
	hostBefore, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Fatal(err)
	}
	Sysctl(t, n, "net.ipv4.ip_forward", "1")
	if v, err := ReadSysctl(n, "net.ipv4.ip_forward"); err != nil || v != "1" {
		t.Fatalf("ip_forward in netns = %q, %v", v, err)
	}
	hostAfter, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Fatal(err)
	}
	if string(hostBefore) != string(hostAfter) {
		t.Fatalf("host ip_forward changed from %q to %q", hostBefore, hostAfter)
	}
}
