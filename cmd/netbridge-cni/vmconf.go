package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netbridge/netbridge/sandbox"
)

// The vmconf result (conf key "vmconf": true) is what firecracker-go-sdk's
// cni/vmconf package reads from the result of a chain ending in
// tc-redirect-tap, so that netbridge replaces it with a one-word change:
// after the tap entry, a pseudo-interface that is no device but the
// guest's NIC, named like the tap, whose sandbox is the container id (the
// VM's id) and whose MAC is the guest's; and exactly one IP that names
// it, which the SDK gives the guest through the kernel's ip= parameter.

// errVMConfLimit says why a vmconf result carries one IPv4 address only.
const errVMConfLimit = "firecracker-go-sdk's vmconf takes exactly one IP for the VM and hands it to the guest kernel's ip= parameter, which is IPv4 only"

// prepareVMConf returns, when the configuration asks for the vmconf
// result, the IP configuration its entry will carry; nil when it does
// not. It fails, before anything is made, when the result cannot be made.
// As tc-redirect-tap does, it makes the plugin's own uid and gid the
// tap's owner and group unless CNI_ARGS or the configuration name them,
// so that the tap is not open to every process in the netns.
func (c *netConf) prepareVMConf(prev *current.Result, args *skel.CmdArgs) (*current.IPConfig, error) {
	if !c.VMConf {
		return nil, nil
	}
	if err := c.vmconfCheckConf(); err != nil {
		return nil, err
	}
	ip, err := vmconfIPv4(prev, args.IfName, args.Netns)
	if err != nil {
		return nil, err
	}
	if c.TapOwner == nil {
		uid := uint32(os.Geteuid())
		c.TapOwner = &uid
	}
	if c.TapGroup == nil {
		gid := uint32(os.Getegid())
		c.TapGroup = &gid
	}
	return ip, nil
}

// appendVMConf appends nic's vmconf entry and ip to res, which ends with
// nic's tap entry. Model auto may have chosen a macvtap, which the entry
// cannot describe (vmconfCheckConf): then the interface is detached again
// and ADD fails.
func (c *call) appendVMConf(args *skel.CmdArgs, res *current.Result, nic sandbox.NIC, ip *current.IPConfig) error {
	if nic.Model == sandbox.ModelMacvtap {
		err := types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf(`"vmconf": true needs a tap the hypervisor opens by name, and model %s chose a macvtap for interface %s (%s)`, c.conf.Model, nic.Name, nic.Why),
			"use model tcfilter or bridge with vmconf")
		if derr := c.lib.Detach(context.WithoutCancel(c.ctx), args.ContainerID, args.IfName); derr != nil {
			return types.NewError(types.ErrInternal, err.Error()+"; and detaching it again failed: "+derr.Error(), "")
		}
		return err
	}
	appendVMEntry(res, nic, args.ContainerID, ip)
	return nil
}

// vmconfCheckConf refuses, before anything is made, a configuration the
// vmconf result cannot describe: a macvtap is not opened by name, as the
// SDK's hypervisor opens the tap it names.
func (c *netConf) vmconfCheckConf() error {
	if c.VMConf && c.Model == sandbox.ModelMacvtap {
		return types.NewError(types.ErrInvalidNetworkConfig, `"vmconf": true needs a tap the hypervisor opens by name, and model macvtap makes a macvtap, opened by its device node`,
			`use model tcfilter (the default) or bridge with vmconf`)
	}
	return nil
}

// vmconfIPv4 returns the IP configuration the vmconf entry carries: the
// first IPv4 address prevResult gives interface ifname of the netns at
// netnsPath (an IP naming it; when no IP names any interface, as in
// results without interface indexes, an IP naming none), with its
// gateway. Without an IPv4 address it fails, before anything is made,
// saying why.
func vmconfIPv4(prev *current.Result, ifname, netnsPath string) (*current.IPConfig, error) {
	var named, unnamed []*current.IPConfig
	for _, ipc := range prev.IPs {
		switch {
		case ipc.Interface == nil:
			unnamed = append(unnamed, ipc)
		case *ipc.Interface >= 0 && *ipc.Interface < len(prev.Interfaces):
			if i := prev.Interfaces[*ipc.Interface]; i.Name == ifname && i.Sandbox == netnsPath {
				named = append(named, ipc)
			}
		}
	}
	cands := named
	if len(named) == 0 && !namesAnInterface(prev.IPs) {
		cands = unnamed
	}
	var v6 []string
	for _, ipc := range cands {
		if ipc.Address.IP.To4() != nil {
			return &current.IPConfig{Address: ipv4Net(ipc.Address), Gateway: ipc.Gateway.To4()}, nil
		}
		v6 = append(v6, ipc.Address.String())
	}
	if len(v6) > 0 {
		return nil, types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf(`"vmconf": true: interface %s has only IPv6 addresses in prevResult (%s); %s`, ifname, strings.Join(v6, ", "), errVMConfLimit),
			`give the interface an IPv4 address too (dual stack works: the IPv6 side is in netbridge render), or drop "vmconf" and configure the guest from netbridge render --for guest-json`)
	}
	return nil, types.NewError(types.ErrInvalidNetworkConfig,
		fmt.Sprintf(`"vmconf": true: prevResult has no IP address for interface %s in %s; %s`, ifname, netnsPath, errVMConfLimit),
		"the plugin before netbridge must give the interface an IPv4 address (IPAM)")
}

// namesAnInterface reports whether any of ips names an interface.
func namesAnInterface(ips []*current.IPConfig) bool {
	for _, ipc := range ips {
		if ipc.Interface != nil {
			return true
		}
	}
	return false
}

// ipv4Net returns n with its address and mask in 4-byte form, which the
// SDK's ip= parameter reads byte by byte.
func ipv4Net(n net.IPNet) net.IPNet {
	mask := n.Mask
	if len(mask) == net.IPv6len {
		mask = mask[12:]
	}
	return net.IPNet{IP: n.IP.To4(), Mask: mask}
}

// vmInterface is the vmconf pseudo-interface of nic: the guest's NIC,
// named like the tap, in the "sandbox" of the container (the VM) id.
func vmInterface(nic sandbox.NIC, containerID string) *current.Interface {
	return &current.Interface{Name: nic.Tap, Mac: nic.GuestMAC.String(), Mtu: nic.MTU, Sandbox: containerID}
}

// appendVMEntry appends to res, which ends with nic's tap entry, the
// pseudo-interface and ip naming it.
func appendVMEntry(res *current.Result, nic sandbox.NIC, containerID string, ip *current.IPConfig) {
	res.Interfaces = append(res.Interfaces, vmInterface(nic, containerID))
	idx := len(res.Interfaces) - 1
	res.IPs = append(res.IPs, &current.IPConfig{Address: ip.Address, Gateway: ip.Gateway, Interface: &idx})
}

// checkVMConf checks that res, a prevResult given to CHECK, has nic's
// vmconf entry: one interface in the container's sandbox, named like the
// tap, with the guest's MAC, and exactly one IP naming it, an IPv4
// address of the interface.
func checkVMConf(res *current.Result, nic sandbox.NIC, containerID string) error {
	idx := -1
	for i, ifc := range res.Interfaces {
		if ifc.Sandbox != containerID {
			continue
		}
		if idx >= 0 {
			return fmt.Errorf("the result has more than one interface in sandbox %q (the VM's): the vmconf entry must be the only one", containerID)
		}
		idx = i
	}
	if idx < 0 {
		return fmt.Errorf("the result has no vmconf entry (an interface in sandbox %q named %s): it was not made by a netbridge ADD with \"vmconf\": true", containerID, nic.Tap)
	}
	vm, want := res.Interfaces[idx], vmInterface(nic, containerID)
	if vm.Name != want.Name || (vm.Mac != "" && vm.Mac != want.Mac) {
		return fmt.Errorf("the vmconf entry is %s with MAC %s, want the tap's name %s and the guest's MAC %s", vm.Name, vm.Mac, want.Name, want.Mac)
	}
	var ips []string
	for _, ipc := range res.IPs {
		if ipc.Interface != nil && *ipc.Interface == idx {
			ips = append(ips, ipc.Address.String())
		}
	}
	if len(ips) != 1 {
		return fmt.Errorf("the vmconf entry %s has %d IPs (%s), want exactly one IPv4 address", vm.Name, len(ips), strings.Join(ips, ", "))
	}
	if p, err := netip.ParsePrefix(ips[0]); err != nil || !p.Addr().Is4() || !slices.Contains(nic.Addresses, p) {
		return fmt.Errorf("the vmconf entry's IP %s is not an IPv4 address of interface %s (%v)", ips[0], nic.Name, nic.Addresses)
	}
	return nil
}
