// Package qemu renders the QEMU command-line arguments that attach the taps of
// a wired sandbox to a guest: one "-netdev tap" backend and one virtio-net
// device per NIC.
//
// Two forms exist. [ByName] lets QEMU open each tap by its name, which works
// for a QEMU started inside the sandbox network namespace. [ByFD] passes the
// tap queues (and vhost-net devices) as inherited file descriptors, which is
// what macvtap and confined VMMs need. Both render from plain data and never
// touch the kernel; the argument vector is meant for exec, not for a shell
// ([Quote] turns it into one shell-safe line).
package qemu

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/netbridge/netbridge/hypervisor/internal/nicdata"
	"github.com/netbridge/netbridge/sandbox"
)

// DefaultDriver is the device model used when Options.Driver is empty.
const DefaultDriver = "virtio-net-pci"

// ErrFDOnly is wrapped by the error [ByName] returns for a macvtap NIC
// (one with a Device): QEMU cannot open a macvtap by name.
var ErrFDOnly = errors.New("a macvtap can only be handed to QEMU by fd (use the fd form: netbridge exec, or the library's ByFD)")

// ErrNoFiles is wrapped by the error [ByFD] returns for a NIC that holds no
// open tap queue files.
var ErrNoFiles = errors.New("no open tap queue files: set the sandbox up holding fds, or start QEMU through `netbridge exec`")

// Options tunes the rendered arguments. The zero value is ready to use.
type Options struct {
	// Driver is the QEMU device model of every guest NIC, DefaultDriver
	// ("virtio-net-pci") when empty. It must be a virtio-net model, such as
	// "virtio-net-pci-non-transitional", "virtio-net-ccw" or
	// "virtio-net-device" (microvm); "vectors=" is only rendered for PCI
	// models, whose name contains "-pci".
	Driver string
}

// driver returns the validated device model of o.
func (o Options) driver() (string, error) {
	d := o.Driver
	if d == "" {
		d = DefaultDriver
	}
	if !validID(d) {
		return "", fmt.Errorf("qemu: invalid device driver %q: want a QEMU type name such as %q", d, DefaultDriver)
	}
	return d, nil
}

// ByName returns the arguments that make QEMU open every NIC's tap by name:
//
//	-netdev tap,id=<netdev id>,ifname=<tap>,script=no,downscript=no[,queues=N][,vhost=on]
//	-device <driver>,id=<device id>,netdev=<netdev id>,mac=<guest MAC>[,mq=on,vectors=2N+2][,host_mtu=<MTU>]
//
// in NIC order, so that the guest enumerates the NICs in the same order. The
// ids are those of [NetdevID] and [DeviceID]. queues, mq and vectors appear
// only for a multiqueue NIC (Queues > 1; 0 counts as 1), host_mtu only when
// MTU is set, and vhost=on when Vhost is set (QEMU then opens /dev/vhost-net
// itself). QEMU must run in the sandbox network namespace and be allowed to
// open the taps.
func ByName(nics []sandbox.NIC, opts Options) ([]string, error) {
	driver, err := opts.driver()
	if err != nil {
		return nil, err
	}
	bases := nicdata.IDBases(nics)
	args := make([]string, 0, 4*len(nics))
	for i := range nics {
		n := &nics[i]
		queues, err := checkNIC(n)
		if err != nil {
			return nil, fmt.Errorf("qemu: %s: %w", label(n, i), err)
		}
		if n.Device != "" {
			return nil, fmt.Errorf("qemu: %s: %w", label(n, i), ErrFDOnly)
		}
		if err := nicdata.TapName(n.Tap); err != nil {
			return nil, fmt.Errorf("qemu: %s: %w", label(n, i), err)
		}
		netdevID := netdevPrefix + bases[i]
		netdev := []string{
			"tap",
			"id=" + netdevID,
			"ifname=" + escape(n.Tap),
			"script=no",
			"downscript=no",
		}
		if queues > 1 {
			netdev = append(netdev, "queues="+strconv.Itoa(queues))
		}
		if n.Vhost {
			netdev = append(netdev, "vhost=on")
		}
		args = append(args,
			"-netdev", strings.Join(netdev, ","),
			"-device", device(driver, n, devicePrefix+bases[i], netdevID, queues))
	}
	return args, nil
}

// ByFD returns the arguments that hand QEMU every NIC's open tap queues as
// inherited file descriptors, and the files to pass, in order, as
// exec.Cmd.ExtraFiles after any already there:
//
//	-netdev tap,id=<netdev id>,fds=<fd>[:<fd>...][,vhost=on[,vhostfds=<fd>[:<fd>...]]]
//	-device <driver>,id=<device id>,netdev=<netdev id>,mac=<guest MAC>[,mq=on,vectors=2N+2][,host_mtu=<MTU>]
//
// The fds= form is used for every NIC, also with a single queue, so that one
// form covers all cases; QEMU takes the queue count from the number of fds and
// rejects ifname, script, downscript and queues next to it, so they are left
// out. Each NIC contributes its Files (one per tap queue, as many as its
// Queues) and then its VhostFiles, which must be absent or as many as its
// Files. vhost=on is rendered when Vhost is set or VhostFiles are present;
// without VhostFiles QEMU opens /dev/vhost-net itself.
//
// files[j] must end up as descriptor firstFD+j in QEMU, and the arguments name
// it that way. With os/exec, firstFD is 3+len(cmd.ExtraFiles) before files is
// appended; it must be at least 3. The caller keeps owning the files.
func ByFD(nics []sandbox.NIC, opts Options, firstFD int) (args []string, files []*os.File, err error) {
	return byFD(nics, opts, firstFD, true)
}

// FDLayout returns the arguments ByFD would return if every NIC held its
// queues (Queues tap queue files, and as many vhost files when Vhost is
// set), numbered from firstFD, without needing the files. It shows a
// person the fd form; to run QEMU, pass the real files with ByFD (as
// netbridge exec does).
func FDLayout(nics []sandbox.NIC, opts Options, firstFD int) ([]string, error) {
	args, _, err := byFD(nics, opts, firstFD, false)
	return args, err
}

func byFD(nics []sandbox.NIC, opts Options, firstFD int, withFiles bool) (args []string, files []*os.File, err error) {
	driver, err := opts.driver()
	if err != nil {
		return nil, nil, err
	}
	if firstFD < 3 {
		return nil, nil, fmt.Errorf("qemu: first fd %d is below 3; descriptors 0-2 are the standard streams", firstFD)
	}
	bases := nicdata.IDBases(nics)
	args = make([]string, 0, 4*len(nics))
	files = make([]*os.File, 0, 2*len(nics))
	next := firstFD
	numbers := func(count int) string {
		var fds []string
		for range count {
			fds = append(fds, strconv.Itoa(next))
			next++
		}
		return strings.Join(fds, ":")
	}
	for i := range nics {
		n := &nics[i]
		queues, err := checkNIC(n)
		if err != nil {
			return nil, nil, fmt.Errorf("qemu: %s: %w", label(n, i), err)
		}
		tapFiles, vhostFiles := queues, 0
		if n.Vhost {
			vhostFiles = queues
		}
		if withFiles {
			if err := checkFiles(n, queues); err != nil {
				return nil, nil, fmt.Errorf("qemu: %s: %w", label(n, i), err)
			}
			tapFiles, vhostFiles = len(n.Files), len(n.VhostFiles)
			files = append(append(files, n.Files...), n.VhostFiles...)
		}
		netdevID := netdevPrefix + bases[i]
		netdev := []string{"tap", "id=" + netdevID, "fds=" + numbers(tapFiles)}
		if n.Vhost || vhostFiles > 0 {
			netdev = append(netdev, "vhost=on")
		}
		if vhostFiles > 0 {
			netdev = append(netdev, "vhostfds="+numbers(vhostFiles))
		}
		args = append(args,
			"-netdev", strings.Join(netdev, ","),
			"-device", device(driver, n, devicePrefix+bases[i], netdevID, queues))
	}
	return args, files, nil
}

// device renders the -device value of n.
func device(driver string, n *sandbox.NIC, id, netdevID string, queues int) string {
	dev := []string{
		driver,
		"id=" + id,
		"netdev=" + netdevID,
		"mac=" + n.GuestMAC.String(),
	}
	if queues > 1 {
		dev = append(dev, "mq=on")
		if strings.Contains(driver, "-pci") {
			// One vector per rx and tx queue, plus config and control.
			dev = append(dev, "vectors="+strconv.Itoa(2*queues+2))
		}
	}
	if n.MTU > 0 {
		dev = append(dev, "host_mtu="+strconv.Itoa(n.MTU))
	}
	return strings.Join(dev, ",")
}

// checkNIC validates the parts of n that both forms render and returns its
// queue count (at least 1).
func checkNIC(n *sandbox.NIC) (queues int, err error) {
	if err := sandbox.CheckGuestMAC(n.GuestMAC); err != nil {
		return 0, err
	}
	if err := sandbox.CheckMTU(n.MTU); err != nil {
		return 0, err
	}
	return n.QueueCount()
}

// checkFiles validates the open files of n for the fd form.
func checkFiles(n *sandbox.NIC, queues int) error {
	if len(n.Files) == 0 {
		return ErrNoFiles
	}
	if len(n.Files) != queues {
		return fmt.Errorf("holds %d tap queue files but has %d queues", len(n.Files), queues)
	}
	if len(n.VhostFiles) > 0 && len(n.VhostFiles) != len(n.Files) {
		return fmt.Errorf("holds %d vhost files for %d tap queue files; QEMU needs one per queue", len(n.VhostFiles), len(n.Files))
	}
	for j, f := range n.Files {
		if f == nil {
			return fmt.Errorf("tap queue file %d is nil", j)
		}
	}
	for j, f := range n.VhostFiles {
		if f == nil {
			return fmt.Errorf("vhost file %d is nil", j)
		}
	}
	return nil
}

// label names nics[i] in error messages.
func label(n *sandbox.NIC, i int) string {
	return fmt.Sprintf("NIC %d (%q)", i, n.Name)
}

// escape doubles every comma of an option value, QEMU's escape for a literal
// comma. (Linux interface names may contain commas.)
func escape(v string) string {
	return strings.ReplaceAll(v, ",", ",,")
}
