package qemu

import (
	"github.com/netbridge/netbridge/hypervisor/internal/nicdata"
	"github.com/netbridge/netbridge/sandbox"
)

// Prefixes of the ids this package gives QEMU objects. Both start with a
// letter, so every id built from them is well-formed whatever follows.
const (
	netdevPrefix = "net-"
	devicePrefix = nicdata.DevicePrefix
)

// NetdevID returns the id of the -netdev backend of nics[i]: "net-" followed
// by the NIC's id base (see [DeviceID]). It panics if i is out of range, like
// indexing nics would.
func NetdevID(nics []sandbox.NIC, i int) string {
	return netdevPrefix + nicdata.IDBases(nics)[i]
}

// DeviceID returns the id of the guest device of nics[i]: "nic-" followed by
// the NIC's id base ([nicdata.IDBases]: its Name made safe, unique in the
// list). The ids depend only on the list of names, so hot-plug code can
// recompute them from the same list. It panics if i is out of range.
func DeviceID(nics []sandbox.NIC, i int) string {
	return devicePrefix + nicdata.IDBases(nics)[i]
}

// validID reports whether s is a well-formed QEMU id: a letter followed by
// letters, digits, '-', '.' and '_'.
func validID(s string) bool {
	if s == "" {
		return false
	}
	c := s[0]
	if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
		return false
	}
	for _, r := range s {
		if !nicdata.IDChar(r) {
			return false
		}
	}
	return true
}
