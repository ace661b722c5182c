package datapath

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netbridge/netbridge/test/testnet"
)

// namePrefix starts the name of every namespace and temporary directory Run
// creates, so that a leak is easy to attribute.
const namePrefix = "nbdp-"

// created, when set (by the package's tests), is told the path of every
// namespace and state directory Run creates, as soon as it exists, so that
// the tests can check that each one is gone afterwards.
var created func(path string)

func record(path string) {
	if created != nil {
		created(path)
	}
}

// randomHex returns 2n random hex digits.
func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// newNS creates a network namespace with lo up, bind-mounted at
// /run/netns/nbdp-<hex> (so that `ip netns exec` can enter it while Run is
// going), and opens it: see testnet.CreateNS, which leaves nothing behind
// when it fails. testnet.DestroyNS removes it.
func newNS() (ns.NetNS, error) {
	n, err := testnet.CreateNS(namePrefix)
	if err != nil {
		return nil, err
	}
	record(n.Path())
	return n, nil
}

// vethPair creates a veth pair, nodeIf in node and its peer podIf in pod,
// gives each end its address (CIDR), brings both up and returns the two
// links as seen in their namespaces. The pair goes away with either
// namespace.
func vethPair(node, pod ns.NetNS, nodeIf, podIf, nodeAddr, podAddr string) (nodeLink, podLink netlink.Link, err error) {
	nh, err := testnet.NewHandle(node)
	if err != nil {
		return nil, nil, err
	}
	defer nh.Close()
	ph, err := testnet.NewHandle(pod)
	if err != nil {
		return nil, nil, err
	}
	defer ph.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = nodeIf
	veth := &netlink.Veth{
		LinkAttrs:     attrs,
		PeerName:      podIf,
		PeerNamespace: netlink.NsFd(int(pod.Fd())),
		PeerTxQLen:    -1, // the zero value would give the peer txqueuelen 0
	}
	if err := nh.LinkAdd(veth); err != nil {
		return nil, nil, fmt.Errorf("creating veth %s (netns %s) <-> %s (netns %s): %w", nodeIf, node.Path(), podIf, pod.Path(), err)
	}
	for _, side := range []struct {
		h          *netlink.Handle
		name, addr string
		n          ns.NetNS
		link       *netlink.Link
	}{{nh, nodeIf, nodeAddr, node, &nodeLink}, {ph, podIf, podAddr, pod, &podLink}} {
		l, err := side.h.LinkByName(side.name)
		if err != nil {
			return nil, nil, fmt.Errorf("looking up %s in netns %s: %w", side.name, side.n.Path(), err)
		}
		a, err := netlink.ParseAddr(side.addr)
		if err != nil {
			return nil, nil, fmt.Errorf("parsing address %s: %w", side.addr, err)
		}
		if err := side.h.AddrAdd(l, a); err != nil {
			return nil, nil, fmt.Errorf("adding %s to %s in netns %s: %w", side.addr, side.name, side.n.Path(), err)
		}
		if err := side.h.LinkSetUp(l); err != nil {
			return nil, nil, fmt.Errorf("bringing %s up in netns %s: %w", side.name, side.n.Path(), err)
		}
		if *side.link, err = side.h.LinkByName(side.name); err != nil {
			return nil, nil, fmt.Errorf("looking up %s in netns %s: %w", side.name, side.n.Path(), err)
		}
	}
	return nodeLink, podLink, nil
}

// setRandomMAC gives the link name of n a random, locally administered
// unicast MAC.
func setRandomMAC(n ns.NetNS, name string) error {
	mac := make(net.HardwareAddr, 6)
	if _, err := rand.Read(mac); err != nil {
		return fmt.Errorf("reading random bytes: %w", err)
	}
	mac[0] = mac[0]&^0x01 | 0x02
	h, l, err := testnet.HandleAndLink(n, name)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := h.LinkSetHardwareAddr(l, mac); err != nil {
		return fmt.Errorf("setting the MAC of %s in netns %s to %s: %w", name, n.Path(), mac, err)
	}
	return nil
}
