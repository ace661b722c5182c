package cni

import (
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// VMNetConf is what firecracker-go-sdk's cni/vmconf package makes of a
// CNI result for a VM: the tap to open and where, and the guest's NIC.
type VMNetConf struct {
	// TapName is the tap the hypervisor opens, in NetNSPath.
	TapName, NetNSPath string
	// MAC and MTU are the guest NIC's; MTU is the tap's in the netns.
	MAC string
	MTU int
	// IP is the guest's one IP configuration (address and gateway).
	IP *current.IPConfig
	// Routes and DNS are the whole result's.
	Routes []*types.Route
	DNS    types.DNS
}

// VMConf reads res for the VM of container (VM) id containerID by the
// rules firecracker-go-sdk's cni/vmconf package documents and applies,
// written here from that documentation, not from its code (the module
// cannot be fetched here). It fails where the SDK fails:
//
//   - exactly one interface of the result has the container id as its
//     sandbox: the guest's pseudo-interface, whose MAC is the guest's;
//   - exactly one of the other interfaces has the pseudo-interface's name:
//     the tap, whose sandbox is the netns path it lives in;
//   - exactly one IP names the pseudo-interface (its index in the result);
//   - the netns opens, and holds a link of the tap's name: its MTU is the
//     guest's.
//
// Beyond the SDK, VMConf checks what the SDK then assumes when it turns
// the IP into the kernel's ip= parameter (IPBootParam): an IPv4 address
// with a 4-byte mask.
func VMConf(res types.Result, containerID string) (*VMNetConf, error) {
	r, err := current.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("vmconf: converting the result: %w", err)
	}
	vmIdx := -1
	for i, ifc := range r.Interfaces {
		if ifc.Sandbox != containerID {
			continue
		}
		if vmIdx >= 0 {
			return nil, fmt.Errorf("vmconf: more than one interface in sandbox %q", containerID)
		}
		vmIdx = i
	}
	if vmIdx < 0 {
		return nil, fmt.Errorf("vmconf: did not find expected network device with name %q", "pseudo-device for "+containerID)
	}
	vm := r.Interfaces[vmIdx]
	var tap *current.Interface
	for i, ifc := range r.Interfaces {
		if i == vmIdx || ifc.Name != vm.Name {
			continue
		}
		if tap != nil {
			return nil, fmt.Errorf("vmconf: more than one interface named %q besides the VM's", vm.Name)
		}
		tap = ifc
	}
	if tap == nil {
		return nil, fmt.Errorf("vmconf: did not find expected network device with name %q", vm.Name)
	}
	var ips []*current.IPConfig
	for _, ipc := range r.IPs {
		if ipc.Interface == nil || *ipc.Interface < 0 || *ipc.Interface >= len(r.Interfaces) {
			continue
		}
		if ifc := r.Interfaces[*ipc.Interface]; ifc.Name == vm.Name && ifc.Sandbox == vm.Sandbox {
			ips = append(ips, ipc)
		}
	}
	if len(ips) != 1 {
		return nil, fmt.Errorf("vmconf: expected to find 1 IP for vm interface %q, but instead found %d", vm.Name, len(ips))
	}
	mtu, err := linkMTU(tap.Sandbox, tap.Name)
	if err != nil {
		return nil, fmt.Errorf("vmconf: %w", err)
	}
	ip := ips[0]
	if ip.Address.IP.To4() == nil || len(ip.Address.Mask) != net.IPv4len {
		return nil, fmt.Errorf("vmconf: the VM's IP %s is not an IPv4 address with a 4-byte mask, as the kernel's ip= parameter needs", ip.Address.String())
	}
	return &VMNetConf{TapName: tap.Name, NetNSPath: tap.Sandbox, MAC: vm.Mac, MTU: mtu, IP: ip, Routes: r.Routes, DNS: r.DNS}, nil
}

// linkMTU returns the MTU of link name in the netns at path.
func linkMTU(path, name string) (int, error) {
	h, err := netns.GetFromPath(path)
	if err != nil {
		return 0, fmt.Errorf("opening netns %q: %w", path, err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		return 0, fmt.Errorf("netlink in netns %q: %w", path, err)
	}
	defer nl.Close()
	l, err := nl.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("finding device %q in netns %q: %w", name, path, err)
	}
	return l.Attrs().MTU, nil
}
