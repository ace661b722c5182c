package main

import (
	"fmt"
	"math"
	"strconv"

	"github.com/containernetworking/cni/pkg/types"
)

// The CNI_ARGS keys tc-redirect-tap reads, which netbridge reads the same
// way, so that a runtime that passes them (firecracker-go-sdk's
// CNIConfiguration.Args, firecracker-containerd) need not change.
const (
	argTapName = "TC_REDIRECT_TAP_NAME"
	argTapUID  = "TC_REDIRECT_TAP_UID"
	argTapGID  = "TC_REDIRECT_TAP_GID"
)

// cniArgs is CNI_ARGS as ADD reads it. The field names are the keys, as
// types.LoadArgs matches them; IgnoreUnknown (in CommonArgs) lets other
// keys through, which are an error without it, as with every reference
// plugin.
type cniArgs struct {
	types.CommonArgs
	// TC_REDIRECT_TAP_NAME names the tap, as conf key tapName does.
	TC_REDIRECT_TAP_NAME types.UnmarshallableString
	// TC_REDIRECT_TAP_UID is the uid that may open the tap (tapOwner).
	TC_REDIRECT_TAP_UID *argID
	// TC_REDIRECT_TAP_GID is the gid that may open the tap (tapGroup).
	TC_REDIRECT_TAP_GID *argID
}

// argID is a uid or gid in CNI_ARGS: a decimal number below 2^32-1 (which
// is the kernel's "no id").
type argID uint32

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *argID) UnmarshalText(b []byte) error {
	v, err := strconv.ParseUint(string(b), 10, 32)
	if err != nil || v == math.MaxUint32 {
		return fmt.Errorf("%q is not a uid or gid (a decimal number from 0 to %d)", b, uint32(math.MaxUint32-1))
	}
	*a = argID(v)
	return nil
}

// parseCNIArgs reads CNI_ARGS (s, as "K=V;K2=V2") into cniArgs. An error
// is the configuration's (code 7): a pair that is not K=V, a value that
// does not parse, or a key netbridge does not know without IgnoreUnknown.
func parseCNIArgs(s string) (cniArgs, error) {
	var a cniArgs
	if err := types.LoadArgs(s, &a); err != nil {
		return cniArgs{}, types.NewError(types.ErrInvalidNetworkConfig, "CNI_ARGS: "+err.Error(),
			"netbridge reads "+argTapName+", "+argTapUID+" and "+argTapGID+"; other keys need IgnoreUnknown=1 in CNI_ARGS")
	}
	return a, nil
}

// apply overrides the network configuration's tap name, owner and group
// with those CNI_ARGS gives: they are the call's own, the configuration
// is the network's.
func (a cniArgs) apply(c *netConf) {
	if a.TC_REDIRECT_TAP_NAME != "" {
		c.TapName = string(a.TC_REDIRECT_TAP_NAME)
	}
	if a.TC_REDIRECT_TAP_UID != nil {
		uid := uint32(*a.TC_REDIRECT_TAP_UID)
		c.TapOwner = &uid
	}
	if a.TC_REDIRECT_TAP_GID != nil {
		gid := uint32(*a.TC_REDIRECT_TAP_GID)
		c.TapGroup = &gid
	}
}
