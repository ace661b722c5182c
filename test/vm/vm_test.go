package vm

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netbridge/netbridge/test/testnet"
)

// cpioEntry is one parsed newc entry.
type cpioEntry struct {
	name         string
	mode         uint32
	rdev         [2]uint32
	data         []byte
	ino, nlink   uint32
	uid, gid, mt uint32
}

// parseCPIO reads a newc archive up to its trailer, checking magic and
// alignment.
func parseCPIO(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	var out []cpioEntry
	off := 0
	align := func() {
		for off%4 != 0 {
			if b[off] != 0 {
				t.Fatalf("non-zero padding at %d", off)
			}
			off++
		}
	}
	for {
		if off+110 > len(b) {
			t.Fatalf("archive ends at %d without a trailer", off)
		}
		h := string(b[off : off+110])
		if h[:6] != "070701" {
			t.Fatalf("bad magic %q at %d", h[:6], off)
		}
		var f [13]uint32
		for i := range f {
			v, err := strconv.ParseUint(h[6+8*i:14+8*i], 16, 32)
			if err != nil {
				t.Fatalf("header field %d at %d: %v", i, off, err)
			}
			f[i] = uint32(v)
		}
		off += 110
		nameLen, size := int(f[11]), int(f[6])
		name := string(b[off : off+nameLen])
		if !strings.HasSuffix(name, "\x00") {
			t.Fatalf("name %q not NUL-terminated", name)
		}
		name = strings.TrimSuffix(name, "\x00")
		off += nameLen
		align()
		data := b[off : off+size]
		off += size
		align()
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
		out = append(out, cpioEntry{name: name, mode: f[1], uid: f[2], gid: f[3], nlink: f[4], mt: f[5],
			rdev: [2]uint32{f[9], f[10]}, data: data, ino: f[0]})
	}
}

func TestCPIOWriter(t *testing.T) {
	var buf bytes.Buffer
	w := &cpioWriter{w: &buf}
	w.dir("bin", 0o755)
	w.file("bin/busybox", 0o755, []byte("12345")) // 5 bytes: needs padding
	w.symlink("bin/sh", "busybox")
	w.charDev("dev/console", 0o600, 5, 1)
	w.file("empty", 0o644, nil)
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d is not a multiple of 4", buf.Len())
	}
	got := parseCPIO(t, buf.Bytes())
	want := []cpioEntry{
		{name: "bin", mode: modeDir | 0o755, nlink: 2, ino: 1},
		{name: "bin/busybox", mode: modeRegular | 0o755, nlink: 1, ino: 2, data: []byte("12345")},
		{name: "bin/sh", mode: modeSymlink | 0o777, nlink: 1, ino: 3, data: []byte("busybox")},
		{name: "dev/console", mode: modeCharDev | 0o600, nlink: 1, ino: 4, rdev: [2]uint32{5, 1}},
		{name: "empty", mode: modeRegular | 0o644, nlink: 1, ino: 5},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.name != w.name || g.mode != w.mode || g.nlink != w.nlink || g.ino != w.ino || g.rdev != w.rdev ||
			!bytes.Equal(g.data, w.data) || g.uid != 0 || g.gid != 0 || g.mt != 0 {
			t.Errorf("entry %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestResolveModules(t *testing.T) {
	dep := []byte(`kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/cycle/a.ko: kernel/cycle/b.ko
kernel/cycle/b.ko: kernel/cycle/a.ko
`)
	got, err := resolveModules(dep, "virtio-net", "virtio_pci")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range got {
		names = append(names, moduleName(f))
	}
	// Every module after its dependencies, each once, nothing unneeded.
	want := []string{"failover", "net_failover", "virtio_ring", "virtio", "virtio_net",
		"virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci"}
	if !slices.Equal(names, want) {
		t.Errorf("order %v, want %v", names, want)
	}
	if _, err := resolveModules(dep, "nosuch"); err == nil {
		t.Error("resolving a missing module succeeded")
	}
	if _, err := resolveModules(dep, "a"); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("resolving a cycle: %v", err)
	}
}

func TestCompareVersions(t *testing.T) {
	sorted := []string{"6.1.0-9-cloud-amd64", "6.1.0-10-cloud-amd64", "6.1.0-56-cloud-amd64", "6.10.0-1-cloud-amd64", "6.10.0-1-cloud-amd64x"}
	for i := range sorted {
		for j := range sorted {
			c := compareVersions(sorted[i], sorted[j])
			if (i < j && c >= 0) || (i == j && c != 0) || (i > j && c <= 0) {
				t.Errorf("compareVersions(%q, %q) = %d", sorted[i], sorted[j], c)
			}
		}
	}
}

// TestInitramfs checks the built archive: busybox and /init executable,
// /bin/sh a link to busybox, the console node, and every module listed in
// the order file present.
func TestInitramfs(t *testing.T) {
	Kernel(t)
	Busybox(t)
	b, err := os.ReadFile(Initramfs(t))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]cpioEntry{}
	for _, e := range parseCPIO(t, raw) {
		files[e.name] = e
	}
	for name, mode := range map[string]uint32{
		"init":        modeRegular | 0o755,
		"bin/busybox": modeRegular | 0o755,
		"bin/sh":      modeSymlink | 0o777,
		"bin/ip":      modeSymlink | 0o777,
		"dev/console": modeCharDev | 0o600,
	} {
		if files[name].mode != mode {
			t.Errorf("%s: mode %o, want %o", name, files[name].mode, mode)
		}
	}
	order := strings.Fields(string(files["lib/modules/order"].data))
	if len(order) == 0 || order[len(order)-1] != "virtio_pci" || !slices.Contains(order, "virtio_net") {
		t.Errorf("module order %v", order)
	}
	for _, m := range order {
		if e, ok := files["lib/modules/"+m+".ko"]; !ok || !bytes.HasPrefix(e.data, []byte("\x7fELF")) {
			t.Errorf("module %s missing or not an uncompressed ELF object", m)
		}
	}
}

// TestBootWithoutNICs boots the guest with no NIC: the init script runs,
// pings its loopback address and powers off, and QEMU exits with status 0.
func TestBootWithoutNICs(t *testing.T) {
	Require(t)
	n := testnet.NewNS(t)
	g := Boot(t, n.Path(), nil, nil, "nbtest.ping=127.0.0.1 nbtest.wait=1", 2*time.Minute)
	for _, m := range []string{"NBTEST INIT", "NBTEST NET OK", "NBTEST PING 127.0.0.1 OK", "NBTEST WAIT 1", "NBTEST DONE"} {
		if _, err := g.WaitFor(m, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if l := g.Lines("NBTEST ERROR"); len(l) > 0 {
		t.Errorf("guest errors:\n%s", strings.Join(l, "\n"))
	}
	if err := g.Wait(30 * time.Second); err != nil {
		t.Errorf("QEMU: %v", err)
	}
	d, ok := g.FirstReply()
	if !ok {
		t.Fatal("no first reply time")
	}
	t.Logf("boot to first reply (loopback): %.2f s", d.Seconds())
}

// TestBootKilledAtCleanup leaves a guest running (it would wait a minute)
// at the end of a subtest: the cleanup must kill QEMU and wait for it.
func TestBootKilledAtCleanup(t *testing.T) {
	Require(t)
	n := testnet.NewNS(t)
	var pid int
	t.Run("boot", func(t *testing.T) {
		g := Boot(t, n.Path(), nil, nil, "nbtest.wait=60", 2*time.Minute)
		pid = g.Pid
		if _, err := g.WaitFor("NBTEST WAIT 60", time.Minute); err != nil {
			t.Fatal(err)
		}
	})
	if pid == 0 {
		t.Fatal("QEMU did not start")
	}
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); err == nil && strings.Contains(string(b), QEMUBinary) {
		t.Errorf("QEMU pid %d still runs after the test's cleanup", pid)
	}
}
