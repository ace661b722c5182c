package model

import (
	"fmt"
	"os"

	"github.com/vishvananda/netlink"

	"github.com/netbridge/netbridge/pkg/probe"
	"github.com/netbridge/netbridge/pkg/tap"
	"github.com/netbridge/netbridge/sandbox"
)

// OpenQueues opens nic's queues (and vhost-net files) on a device that
// exists already: an existing tap, or a macvtap's private device node. It
// runs on a thread inside the sandbox netns, which h is a handle of.
func OpenQueues(h *netlink.Handle, nic *sandbox.NIC) error {
	var err error
	switch {
	case nic.Device != "":
		nic.Files, err = openDevice(nic.Device, nic.Queues)
	default:
		link, lerr := h.LinkByName(nic.Tap)
		if lerr != nil {
			return fmt.Errorf("looking up tap %q: %w", nic.Tap, lerr)
		}
		vnetHdr := true
		if t, ok := link.(*netlink.Tuntap); ok {
			vnetHdr = t.Flags&netlink.TUNTAP_VNET_HDR != 0
			if t.Flags&netlink.TUNTAP_MULTI_QUEUE == 0 {
				nic.Queues = 1
			}
		}
		nic.Files, err = tap.Open(nic.Tap, nic.Queues, vnetHdr)
	}
	if err != nil {
		return fmt.Errorf("opening the queues of %q (is a hypervisor still holding them?): %w", nic.Tap, err)
	}
	if nic.Vhost {
		if nic.VhostFiles, err = OpenVhost(nic.Queues); err != nil {
			CloseNICs([]sandbox.NIC{*nic})
			nic.Files = nil
			return err
		}
	}
	return nil
}

func openDevice(path string, n int) ([]*os.File, error) {
	var files []*os.File
	for range n {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			CloseFiles(files)
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

// OpenVhost opens n /dev/vhost-net files.
func OpenVhost(n int) ([]*os.File, error) {
	files, err := openDevice(probe.VhostNetPath, n)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", probe.VhostNetPath, err)
	}
	return files, nil
}

// CloseFiles closes fs.
func CloseFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// CloseNICs closes the files of nics and forgets them.
func CloseNICs(nics []sandbox.NIC) {
	for i := range nics {
		CloseFiles(nics[i].Files)
		CloseFiles(nics[i].VhostFiles)
		nics[i].Files, nics[i].VhostFiles = nil, nil
	}
}
