package vm

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// initScript is the guest's /init (see init.sh for its markers and
// actions).
//
//go:embed init.sh
var initScript []byte

// rootModules are the modules the guest needs: button for the ACPI power
// button (nbtest.powerdown) and virtio-net for its NICs; their
// dependencies are added from modules.dep, dependencies first, and those
// built into the kernel (modules.builtin) are left out. On Debian's cloud
// kernel the result is button, virtio_ring, virtio, failover,
// net_failover, virtio_net, virtio_pci_legacy_dev, virtio_pci_modern_dev,
// virtio_pci.
var rootModules = []string{"button", "virtio_net", "virtio_pci"}

var initramfs struct {
	sync.Mutex
	built map[string]string // kernel version -> path
}

// Initramfs returns the path of a gzip'd cpio initramfs for [Kernel]: a
// static busybox with applet links in /bin, the kernel's virtio-net and
// ACPI button modules (uncompressed, listed in load order in
// /lib/modules/order) and init.sh as /init. It is built once per test
// binary and kept in the user cache directory
// (<cache>/netbridge-vm/initramfs-<kernel version>-<content hash>.cpio.gz),
// so a later run with the same inputs reuses the file; files unused for a
// week are removed when another one is built.
func Initramfs(t testing.TB) string {
	t.Helper()
	kernel := Kernel(t)
	busybox := Busybox(t)
	p, err := cachedInitramfs(KernelVersion(kernel), busybox)
	if err != nil {
		t.Fatalf("building the guest initramfs for kernel %s: %v", KernelVersion(kernel), err)
	}
	return p
}

// BuildInitramfs is Initramfs without a test, for tools such as
// cmd/mkinitramfs: it returns the guest kernel ([FindKernel]) and the path
// of the same cached initramfs the tests boot it with.
func BuildInitramfs() (kernel, path string, err error) {
	kernel, err = FindKernel()
	if err != nil {
		return "", "", err
	}
	busybox, err := FindBusybox()
	if err != nil {
		return "", "", err
	}
	path, err = cachedInitramfs(KernelVersion(kernel), busybox)
	if err != nil {
		return "", "", fmt.Errorf("building the guest initramfs for kernel %s: %w", KernelVersion(kernel), err)
	}
	return kernel, path, nil
}

// cachedInitramfs returns the initramfs of kernel version kver, building
// it at most once per process.
func cachedInitramfs(kver, busybox string) (string, error) {
	initramfs.Lock()
	defer initramfs.Unlock()
	if p, ok := initramfs.built[kver]; ok {
		return p, nil
	}
	p, err := buildInitramfs(kver, busybox)
	if err != nil {
		return "", err
	}
	if initramfs.built == nil {
		initramfs.built = map[string]string{}
	}
	initramfs.built[kver] = p
	return p, nil
}

// buildInitramfs writes the initramfs of kernel version kver into the
// cache directory, unless a file with the same content is already there,
// and returns its path.
func buildInitramfs(kver, busybox string) (string, error) {
	modDir := filepath.Join(modulesRoot, kver)
	dep, err := os.ReadFile(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return "", err
	}
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(modDir, "modules.builtin")); err == nil {
		for _, file := range strings.Fields(string(b)) {
			builtin[moduleName(file)] = true
		}
	}
	var roots []string
	for _, m := range rootModules {
		if !builtin[m] {
			roots = append(roots, m)
		}
	}
	mods, err := resolveModules(dep, roots...)
	if err != nil {
		return "", fmt.Errorf("%s/modules.dep: %w", modDir, err)
	}
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return "", err
	}
	list, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return "", fmt.Errorf("%s --list: %w", busybox, err)
	}

	var archive bytes.Buffer
	w := &cpioWriter{w: &archive}
	for _, d := range []string{"bin", "dev", "lib", "lib/modules", "proc", "run", "sys", "tmp"} {
		w.dir(d, 0o755)
	}
	w.charDev("dev/console", 0o600, 5, 1)
	w.file("bin/busybox", 0o755, bb)
	for _, applet := range strings.Fields(string(list)) {
		if applet != "busybox" && !strings.Contains(applet, "/") {
			w.symlink("bin/"+applet, "busybox")
		}
	}
	var order strings.Builder
	for _, m := range mods {
		b, err := readModule(filepath.Join(modDir, m), busybox)
		if err != nil {
			return "", err
		}
		name := moduleName(m)
		w.file("lib/modules/"+name+".ko", 0o644, b)
		order.WriteString(name + "\n")
	}
	w.file("lib/modules/order", 0o644, []byte(order.String()))
	w.file("init", 0o755, initScript)
	if err := w.close(); err != nil {
		return "", err
	}

	sum := sha256.Sum256(archive.Bytes())
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "netbridge-vm")
	path := filepath.Join(dir, "initramfs-"+kver+"-"+hex.EncodeToString(sum[:8])+".cpio.gz")
	if _, err := os.Stat(path); err == nil {
		now := time.Now()
		os.Chtimes(path, now, now) // in use: not stale
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".initramfs-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	zw := gzip.NewWriter(tmp)
	_, err = zw.Write(archive.Bytes())
	err = errors.Join(err, zw.Close(), tmp.Chmod(0o644), tmp.Close())
	if err != nil {
		return "", fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	pruneStale(dir, path)
	return path, nil
}

// moduleName returns the kernel's name of the module file at path:
// its base name without the .ko[.xz|.gz|.zst] suffix, '-' read as '_'.
func moduleName(path string) string {
	base := filepath.Base(path)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// resolveModules returns the module files (paths relative to the modules
// directory, as modules.dep has them) of the named modules and everything
// they depend on, each after all of its dependencies.
func resolveModules(modulesDep []byte, names ...string) ([]string, error) {
	deps := map[string][]string{} // file -> dependency files
	byName := map[string]string{} // module name -> file
	sc := bufio.NewScanner(bytes.NewReader(modulesDep))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		file, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		file = strings.TrimSpace(file)
		deps[file] = strings.Fields(rest)
		byName[moduleName(file)] = file
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	var (
		order []string
		state = map[string]int{} // 1 visiting, 2 done
		visit func(file string, chain []string) error
	)
	visit = func(file string, chain []string) error {
		switch state[file] {
		case 1:
			return fmt.Errorf("dependency cycle: %s", strings.Join(append(chain, file), " -> "))
		case 2:
			return nil
		}
		d, ok := deps[file]
		if !ok {
			return fmt.Errorf("module file %s is not listed", file)
		}
		state[file] = 1
		for _, dep := range d {
			if err := visit(dep, append(chain, file)); err != nil {
				return err
			}
		}
		state[file] = 2
		order = append(order, file)
		return nil
	}
	for _, name := range names {
		file, ok := byName[strings.ReplaceAll(name, "-", "_")]
		if !ok {
			return nil, fmt.Errorf("module %s not found (is it built in, or are the modules of this kernel missing?)", name)
		}
		if err := visit(file, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// readModule returns the uncompressed content of a module file. The
// guest's busybox insmod is not relied on to decompress: .gz is read here,
// .xz with busybox's xzcat, .zst with zstd.
func readModule(path, busybox string) ([]byte, error) {
	var cmd *exec.Cmd
	switch {
	case strings.HasSuffix(path, ".ko"):
		return os.ReadFile(path)
	case strings.HasSuffix(path, ".ko.gz"):
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		b, err := io.ReadAll(zr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return b, nil
	case strings.HasSuffix(path, ".ko.xz"):
		cmd = exec.Command(busybox, "xzcat", path)
	case strings.HasSuffix(path, ".ko.zst"):
		zstd, err := exec.LookPath("zstd")
		if err != nil {
			return nil, fmt.Errorf("%s is zstd-compressed and zstd is not installed (Debian: apt-get install zstd)", path)
		}
		cmd = exec.Command(zstd, "-dc", path)
	default:
		return nil, fmt.Errorf("%s: unknown module file type", path)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("decompressing %s: %w: %s", path, err, strings.TrimSpace(stderr.String()))
	}
	return b, nil
}

// staleAfter is how long a cached initramfs may go unused before a build
// of another one removes it. Test binaries of other checkouts (another init
// script) may use theirs concurrently, so only old files are removed.
const staleAfter = 7 * 24 * time.Hour

// pruneStale removes the initramfs files in dir, but keep, that no build
// has used for staleAfter.
func pruneStale(dir, keep string) {
	old, _ := filepath.Glob(filepath.Join(dir, "initramfs-*.cpio.gz"))
	for _, o := range old {
		if fi, err := os.Stat(o); err == nil && o != keep && time.Since(fi.ModTime()) > staleAfter {
			os.Remove(o)
		}
	}
}
