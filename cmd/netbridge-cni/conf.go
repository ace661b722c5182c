package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"

	"github.com/netbridge/netbridge/sandbox"
)

// netConf is the plugin's network configuration: the CNI keys every plugin
// gets, and netbridge's own.
type netConf struct {
	types.NetConf

	// Model is how the interface is connected to its tap: tcfilter (the
	// default), bridge, macvtap, none or auto.
	Model sandbox.Model `json:"model,omitempty"`
	// Queues is the number of tap queues (virtio-net queue pairs).
	Queues int `json:"queues,omitempty"`
	// Vhost is "on", "off" or "auto"; true and false mean on and off.
	Vhost vhostSetting `json:"vhost,omitempty"`
	// TapName names the tap (or macvtap) instead of nb-IFNAME.
	TapName string `json:"tapName,omitempty"`
	// MacvtapMode is bridge (the default) or passthru, for model macvtap.
	MacvtapMode sandbox.MacvtapMode `json:"macvtapMode,omitempty"`
	// TapOwner and TapGroup restrict who may open the tap (a hypervisor
	// that does not run as root).
	TapOwner *uint32 `json:"tapOwner,omitempty"`
	TapGroup *uint32 `json:"tapGroup,omitempty"`
	// RawPrev is prevResult as it is in stdin, decoded once by parseConf
	// (it shadows NetConf.RawPrevResult, which stays nil).
	RawPrev json.RawMessage `json:"prevResult,omitempty"`
	// VMConf adds to the ADD result, after the tap, the pseudo-interface
	// firecracker-go-sdk's vmconf package reads (see vmconf.go).
	VMConf bool `json:"vmconf,omitempty"`
	// StateDir is netbridge's state directory; the default is the CLI's,
	// so that `netbridge render --id CONTAINER_ID` reads what the plugin
	// wired.
	StateDir string `json:"stateDir,omitempty"`
	// LogFile, when set, receives one line per step (JSON lines).
	LogFile string `json:"logFile,omitempty"`
	// PodAnnotation selects the pods netbridge acts for: "KEY" (present
	// and not "false") or "KEY=VALUE"; empty means every pod. Other pods
	// pass through: ADD returns prevResult unchanged. The pod annotations
	// come in RuntimeConfig when the entry declares the capability.
	PodAnnotation string        `json:"podAnnotation,omitempty"`
	RuntimeConfig runtimeConfig `json:"runtimeConfig,omitempty"`
	// Attachments is GC's list of valid attachments under the key the
	// CNI 1.1.0 spec first gave it, which libcni still sends next to
	// cni.dev/valid-attachments; read when only it is there.
	Attachments []types.GCAttachment `json:"cni.dev/attachments,omitempty"`
}

// validAttachments returns GC's list of the attachments still valid, and
// whether the runtime gave one at all: without a list, every attachment
// of the network is stale.
func (c *netConf) validAttachments() ([]types.GCAttachment, bool) {
	switch {
	case c.ValidAttachments != nil:
		return c.ValidAttachments, true
	case c.Attachments != nil:
		return c.Attachments, true
	}
	return nil, false
}

// vhostSetting is the vhost key: a string, or a boolean.
type vhostSetting sandbox.Vhost

func (v *vhostSetting) UnmarshalJSON(b []byte) error {
	var on bool
	if err := json.Unmarshal(b, &on); err == nil {
		*v = vhostSetting(sandbox.VhostOff)
		if on {
			*v = vhostSetting(sandbox.VhostOn)
		}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("vhost must be \"on\", \"off\", \"auto\" or a boolean, not %s", b)
	}
	*v = vhostSetting(s)
	return nil
}

// errNoPrevResult is ADD's and CHECK's error when netbridge runs alone.
var errNoPrevResult = errors.New("no prevResult: netbridge is a chained plugin; list it after the plugin that creates the interface (bridge, ptp, macvlan, ...) in a conflist")

// parseConf decodes the network configuration on stdin, and the previous
// plugin's result in it (nil when there is none), converted to the current
// result type whatever its spec version.
func parseConf(stdin []byte) (*netConf, *current.Result, error) {
	conf := &netConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, nil, types.NewError(types.ErrDecodingFailure, "decoding the network configuration", err.Error())
	}
	if len(conf.RawPrev) == 0 || string(conf.RawPrev) == "null" {
		return conf, nil, nil
	}
	if conf.RawPrev[0] != '{' { // json.RawMessage holds the value without the space around it
		return nil, nil, types.NewError(types.ErrDecodingFailure, "decoding the network configuration", "prevResult is not a JSON object")
	}
	// The result is decoded once, from its bytes in stdin, in the
	// configuration's spec version, as version.ParsePrevResult does after
	// encoding the map it was first decoded into: a result before 1.0.0
	// may lack its own cniVersion, so the configuration's goes first (a
	// key the result has comes later and wins).
	ver, err := json.Marshal(conf.CNIVersion)
	if err != nil {
		return nil, nil, types.NewError(types.ErrDecodingFailure, "decoding the network configuration", err.Error())
	}
	raw := make([]byte, 0, len(conf.RawPrev)+len(ver)+16)
	raw = append(append(append(raw, `{"cniVersion":`...), ver...), ',')
	if rest := bytes.TrimLeft(conf.RawPrev[1:], " \t\r\n"); len(rest) > 0 && rest[0] == '}' {
		raw = raw[:len(raw)-1] // an empty object: no comma before its end
	}
	raw = append(raw, conf.RawPrev[1:]...)
	res, err := create.Create(conf.CNIVersion, raw)
	if err != nil {
		return nil, nil, types.NewError(types.ErrDecodingFailure, "decoding prevResult", err.Error())
	}
	conf.PrevResult = res
	prev, err := current.NewResultFromResult(res)
	if err != nil {
		return nil, nil, types.NewError(types.ErrDecodingFailure, "converting prevResult to CNI "+current.ImplementedSpecVersion, err.Error())
	}
	return conf, prev, nil
}

// config is the library configuration of an ADD of interface ifname of
// container id in the netns at netnsPath.
func (c *netConf) config(id, netnsPath, ifname string, prev *current.Result) (sandbox.Config, error) {
	cfg := sandbox.Config{
		ID: id, Netns: netnsPath, Model: c.Model, Interfaces: []string{ifname},
		Queues: c.Queues, Vhost: sandbox.Vhost(c.Vhost), TapName: c.TapName, MacvtapMode: c.MacvtapMode,
		TapOwner: c.TapOwner, TapGroup: c.TapGroup, Network: c.Name,
	}
	if prev != nil {
		b, err := json.Marshal(prev)
		if err != nil {
			return cfg, err
		}
		if cfg.DNS, err = sandbox.DNSFromCNIResult(b); err != nil {
			return cfg, types.NewError(types.ErrInvalidNetworkConfig, "the DNS of prevResult", err.Error())
		}
	}
	return cfg, nil
}
