// Package vm boots real QEMU guests for netbridge's end-to-end tests: a
// Debian cloud kernel with a busybox initramfs whose /init configures
// every NIC from the netbridge.nic= kernel parameters (hypervisor/guest's
// Cmdline), pings, optionally waits to be pinged, reports on the serial
// console and powers off. With nbtest.hotplug it boots without NICs and
// configures them once they are hot-plugged (QMP), and waits for their
// removal before powering off (see init.sh).
//
// QEMU runs under TCG (no KVM needed) inside the sandbox network
// namespace, so it can open netbridge's taps by name; fd-passed NICs
// (macvtap) go in as exec.Cmd.ExtraFiles, hot-plugged ones over QMP. The helpers skip the test when
// QEMU, the kernel or busybox is missing, and fail instead when the
// environment variable CI is set.
package vm

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netbridge/netbridge/test/testnet"
)

// Packages is the Debian install line of everything this package needs.
const Packages = "apt-get install -y --no-install-recommends qemu-system-x86 linux-image-cloud-amd64 busybox-static"

const (
	// QEMUBinary is the emulator Boot runs.
	QEMUBinary = "qemu-system-x86_64"
	// BusyboxPath is where Debian's busybox-static installs the binary.
	BusyboxPath = "/bin/busybox"
	// kernelGlob matches the kernels of Debian's linux-image-cloud-amd64.
	kernelGlob = "/boot/vmlinuz-*-cloud-amd64"
	// modulesRoot holds /lib/modules/<kernel version>.
	modulesRoot = "/lib/modules"
	// maxCmdline is the x86 kernel command line limit (COMMAND_LINE_SIZE),
	// including the terminating NUL.
	maxCmdline = 2048
	// BaseCmdline starts the guest kernel command line of every Boot.
	BaseCmdline = "console=ttyS0 panic=-1 quiet"
)

// missing skips the test because a tool is not installed, or fails it when
// CI is set: there a skip would hide the VM tests.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...) + " (Debian: " + Packages + ")"
	if os.Getenv("CI") != "" {
		t.Fatal(msg + "; CI is set, so this is a failure, not a skip")
	}
	t.Skip("skipping: " + msg)
}

// Kernel returns the newest /boot/vmlinuz-*-cloud-amd64 whose modules are
// installed.
func Kernel(t testing.TB) string {
	t.Helper()
	p, err := FindKernel()
	if err != nil {
		missing(t, "%v", err)
	}
	return p
}

// FindKernel is Kernel without a test: it returns the newest
// /boot/vmlinuz-*-cloud-amd64 whose modules are installed, or an error.
func FindKernel() (string, error) {
	paths, _ := filepath.Glob(kernelGlob)
	slices.SortFunc(paths, func(a, b string) int { return compareVersions(KernelVersion(a), KernelVersion(b)) })
	for _, p := range slices.Backward(paths) {
		if _, err := os.Stat(filepath.Join(modulesRoot, KernelVersion(p), "modules.dep")); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no guest kernel %s with its modules in %s", kernelGlob, modulesRoot)
}

// KernelVersion returns the version of a /boot/vmlinuz-<version> path.
func KernelVersion(path string) string {
	return strings.TrimPrefix(filepath.Base(path), "vmlinuz-")
}

// compareVersions orders version strings the way people read them: runs of
// digits compare as numbers ("6.1.0-9" < "6.1.0-56").
func compareVersions(a, b string) int {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := len(na) - len(nb); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return int(a[0]) - int(b[0])
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func digitRun(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// Busybox returns BusyboxPath after checking that it is a static binary
// (the guest has no libraries).
func Busybox(t testing.TB) string {
	t.Helper()
	p, err := FindBusybox()
	if err != nil {
		missing(t, "%v", err)
	}
	return p
}

// FindBusybox is Busybox without a test: it returns BusyboxPath, or an
// error if that is not a static binary.
func FindBusybox() (string, error) {
	f, err := elf.Open(BusyboxPath)
	if err != nil {
		return "", fmt.Errorf("%s is missing or not an ELF binary: %w", BusyboxPath, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("%s is dynamically linked; the guest needs the static busybox", BusyboxPath)
		}
	}
	return BusyboxPath, nil
}

// QEMU returns the path of qemu-system-x86_64.
func QEMU(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath(QEMUBinary)
	if err != nil {
		missing(t, "%s is not installed: %v", QEMUBinary, err)
	}
	return p
}

// Require skips (or under CI fails) the test unless it runs as root and
// QEMU, the guest kernel and busybox are installed.
func Require(t testing.TB) {
	t.Helper()
	testnet.RequireRoot(t)
	QEMU(t)
	Kernel(t)
	Busybox(t)
}

// Guest is a running (or finished) QEMU guest.
type Guest struct {
	// Pid is the QEMU process id.
	Pid int
	// LogPath is the file the guest's serial console is written to.
	LogPath string

	start  time.Time
	cmd    *exec.Cmd
	cancel context.CancelFunc
	output lockedBuffer // QEMU's own stdout and stderr

	exited  chan struct{} // closed when QEMU has been waited for
	waitErr error         // cmd.Wait's result, set before exited closes
	watched chan struct{} // closed when the log watcher has stopped

	mu      sync.Mutex
	lines   []logLine
	partial []byte
	closed  bool          // the log is complete (QEMU exited)
	changed chan struct{} // closed and replaced whenever lines or closed change
}

type logLine struct {
	at   time.Duration // since launch, within the watcher's poll interval
	text string
}

// pollInterval is how often the serial log is read, which bounds the
// precision of the times Guest reports.
const pollInterval = 10 * time.Millisecond

// Boot starts QEMU inside the network namespace at nsPath, from a thread in
// that namespace (testnet.RunIn), so that -netdev tap,ifname= finds the
// sandbox's taps:
//
//	qemu-system-x86_64 -machine pc,accel=tcg -cpu max -smp 1 -m 256 -nodefaults
//	  -nographic -no-reboot -serial file:LOG -kernel KERNEL -initrd INITRAMFS
//	  -append "console=ttyS0 panic=-1 quiet CMDLINE" NETARGS...
//
// NETARGS are netArgs: the NIC arguments, and any other QEMU options, for
// example -qmp unix:PATH,server=on,wait=off for a hot-plug test.
// extraFiles become descriptors 3, 4, ... of QEMU, as the fds= of
// qemu.ByFD(nics, opts, 3) expect. QEMU is killed (by its pid) when timeout
// passes, and at the end of the test if it still runs; the cleanup waits
// for it and logs the serial console and QEMU's output if the test failed.
func Boot(t testing.TB, nsPath string, netArgs []string, extraFiles []*os.File, cmdline string, timeout time.Duration) *Guest {
	t.Helper()
	testnet.RequireRoot(t)
	qemuPath, kernel, initrd := QEMU(t), Kernel(t), Initramfs(t)
	appendArg := BaseCmdline
	if cmdline != "" {
		appendArg += " " + cmdline
	}
	if len(appendArg) >= maxCmdline {
		t.Fatalf("guest kernel command line is %d bytes, over the x86 limit of %d: %s", len(appendArg), maxCmdline-1, appendArg)
	}
	logPath := filepath.Join(t.TempDir(), "serial.log")
	logFile, err := os.OpenFile(logPath, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{
		"-machine", "pc,accel=tcg", "-cpu", "max", "-smp", "1", "-m", "256",
		"-nodefaults", "-nographic", "-no-reboot",
		"-serial", "file:" + strings.ReplaceAll(logPath, ",", ",,"),
		"-kernel", kernel, "-initrd", initrd, "-append", appendArg,
	}
	args = append(args, netArgs...)

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	g := &Guest{
		LogPath: logPath,
		cancel:  cancel,
		exited:  make(chan struct{}),
		watched: make(chan struct{}),
		changed: make(chan struct{}),
	}
	g.cmd = exec.CommandContext(ctx, qemuPath, args...)
	g.cmd.ExtraFiles = extraFiles
	g.cmd.Stdout, g.cmd.Stderr = &g.output, &g.output
	g.cmd.WaitDelay = 5 * time.Second

	netns, err := ns.GetNS(nsPath)
	if err != nil {
		cancel()
		logFile.Close()
		t.Fatalf("opening netns %s: %v", nsPath, err)
	}
	g.start = time.Now()
	err = testnet.RunIn(netns, g.cmd)
	netns.Close()
	if err != nil {
		cancel()
		logFile.Close()
		t.Fatalf("starting QEMU: %v", err)
	}
	g.Pid = g.cmd.Process.Pid
	go func() {
		g.waitErr = g.cmd.Wait()
		close(g.exited)
	}()
	go g.watch(logFile)
	t.Logf("QEMU pid %d: %s %s", g.Pid, qemuPath, strings.Join(args, " "))
	t.Cleanup(func() {
		g.Kill()
		select {
		case <-g.exited:
		case <-time.After(15 * time.Second):
			t.Errorf("QEMU pid %d did not exit after SIGKILL", g.Pid)
		}
		<-g.watched
		if t.Failed() {
			t.Logf("QEMU pid %d: %v; serial console:\n%s\nQEMU output:\n%s", g.Pid, g.exitState(), g.Log(), g.Output())
		}
	})
	return g
}

// Kill kills QEMU by its pid if it is still running (it is waited for in
// the background).
func (g *Guest) Kill() { g.cancel() }

// Wait waits up to timeout for QEMU to exit and returns its exit error
// (nil for exit status 0, as after the guest powered off).
func (g *Guest) Wait(timeout time.Duration) error {
	select {
	case <-g.exited:
		return g.waitErr
	case <-time.After(timeout):
		return fmt.Errorf("QEMU pid %d still running after %v", g.Pid, timeout)
	}
}

func (g *Guest) exitState() string {
	select {
	case <-g.exited:
		if g.waitErr == nil {
			return "exited with status 0"
		}
		return g.waitErr.Error()
	default:
		return "running"
	}
}

// WaitFor waits up to timeout for a serial console line containing marker
// and returns the first such line (without the line end). It fails early
// when QEMU exits without printing it.
func (g *Guest) WaitFor(marker string, timeout time.Duration) (string, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		g.mu.Lock()
		for _, l := range g.lines {
			if strings.Contains(l.text, marker) {
				g.mu.Unlock()
				return l.text, nil
			}
		}
		closed, changed := g.closed, g.changed
		g.mu.Unlock()
		if closed {
			return "", fmt.Errorf("QEMU pid %d %s before %q appeared on the serial console", g.Pid, g.exitState(), marker)
		}
		select {
		case <-changed:
		case <-timer.C:
			return "", fmt.Errorf("%q did not appear on the serial console of QEMU pid %d within %v", marker, g.Pid, timeout)
		}
	}
}

// FirstReply returns the time from QEMU's launch to the first
// "NBTEST PING <ip> OK" line: boot plus the first successful ping.
func (g *Guest) FirstReply() (time.Duration, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, l := range g.lines {
		if strings.HasPrefix(l.text, "NBTEST PING ") && strings.HasSuffix(l.text, " OK") {
			return l.at, true
		}
	}
	return 0, false
}

// Lines returns the serial console lines that contain marker.
func (g *Guest) Lines(marker string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, l := range g.lines {
		if strings.Contains(l.text, marker) {
			out = append(out, l.text)
		}
	}
	return out
}

// Log returns the serial console output read so far.
func (g *Guest) Log() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var b strings.Builder
	for _, l := range g.lines {
		b.WriteString(l.text + "\n")
	}
	b.Write(g.partial)
	return b.String()
}

// Output returns what QEMU itself wrote to stdout and stderr.
func (g *Guest) Output() string { return g.output.String() }

// watch reads the serial log as QEMU writes it, stamping each line with
// the time it was seen, until QEMU has exited and the log is read to its
// end.
func (g *Guest) watch(f *os.File) {
	defer close(g.watched)
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		var exited bool
		select {
		case <-g.exited:
			exited = true
		default:
		}
		for {
			n, err := f.Read(buf)
			if n > 0 {
				g.add(buf[:n], time.Since(g.start))
			}
			if n == 0 || err != nil {
				break
			}
		}
		if exited {
			g.finish()
			return
		}
		select {
		case <-g.exited:
		case <-time.After(pollInterval):
		}
	}
}

// add appends serial output, splitting it into lines.
func (g *Guest) add(b []byte, at time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.partial = append(g.partial, b...)
	for {
		i := bytes.IndexByte(g.partial, '\n')
		if i < 0 {
			break
		}
		g.lines = append(g.lines, logLine{at: at, text: strings.TrimRight(string(g.partial[:i]), "\r")})
		g.partial = g.partial[i+1:]
	}
	g.notify()
}

// finish marks the log complete, keeping an unterminated last line.
func (g *Guest) finish() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.partial) > 0 {
		g.lines = append(g.lines, logLine{at: time.Since(g.start), text: strings.TrimRight(string(g.partial), "\r")})
		g.partial = nil
	}
	g.closed = true
	g.notify()
}

// notify wakes every WaitFor; g.mu must be held.
func (g *Guest) notify() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// lockedBuffer is a bytes.Buffer safe for concurrent Write and String.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
