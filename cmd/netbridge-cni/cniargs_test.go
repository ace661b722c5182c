package main

import (
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// TestParseCNIArgs: CNI_ARGS is read as tc-redirect-tap's keys, with the
// CNI convention for the rest: other keys pass with IgnoreUnknown and are
// an error (code 7) without it; ids are numbers a uid or gid can be.
func TestParseCNIArgs(t *testing.T) {
	u32 := func(v uint32) *uint32 { return &v }
	for _, c := range []struct {
		args     string
		name     string
		uid, gid *uint32
		wantErr  []string
		confName string
	}{
		{args: ""},
		{args: "TC_REDIRECT_TAP_NAME=tap0", name: "tap0"},
		{args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=vm1;TC_REDIRECT_TAP_NAME=fc0;TC_REDIRECT_TAP_UID=123;TC_REDIRECT_TAP_GID=0",
			name: "fc0", uid: u32(123), gid: u32(0)},
		{args: "IgnoreUnknown=true;FOO=bar", confName: "conf0", name: "conf0"},
		{args: "TC_REDIRECT_TAP_UID=4294967294", uid: u32(4294967294)},
		{args: "K8S_POD_NAME=vm1;TC_REDIRECT_TAP_NAME=tap0", wantErr: []string{"unknown args", "K8S_POD_NAME", "IgnoreUnknown=1"}},
		{args: "IgnoreUnknown=0;FOO=bar", wantErr: []string{"unknown args", "FOO"}},
		{args: "TC_REDIRECT_TAP_UID=-1", wantErr: []string{"TC_REDIRECT_TAP_UID", "not a uid"}},
		{args: "TC_REDIRECT_TAP_GID=4294967295", wantErr: []string{"TC_REDIRECT_TAP_GID", "not a uid"}},
		{args: "TC_REDIRECT_TAP_UID=root", wantErr: []string{"not a uid"}},
		{args: "TC_REDIRECT_TAP_NAME", wantErr: []string{"invalid pair"}},
		{args: "IgnoreUnknown=maybe", wantErr: []string{"IgnoreUnknown"}},
	} {
		a, err := parseCNIArgs(c.args)
		if len(c.wantErr) > 0 {
			code, msg := cniCode(t, err)
			if code != types.ErrInvalidNetworkConfig || !strings.HasPrefix(msg, "CNI_ARGS: ") {
				t.Errorf("%q: code %d %q, want %d starting with CNI_ARGS", c.args, code, msg, types.ErrInvalidNetworkConfig)
			}
			for _, w := range c.wantErr {
				if !strings.Contains(msg, w) {
					t.Errorf("%q: error %q does not say %q", c.args, msg, w)
				}
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		conf := &netConf{TapName: c.confName}
		a.apply(conf)
		if conf.TapName != c.name || !eqID(conf.TapOwner, c.uid) || !eqID(conf.TapGroup, c.gid) {
			t.Errorf("%q: tap %q owner %v group %v; want %q %v %v", c.args, conf.TapName, show(conf.TapOwner), show(conf.TapGroup), c.name, show(c.uid), show(c.gid))
		}
	}
}

// TestCNIArgsOverrideConf: the call's CNI_ARGS win over the network's
// configuration, and what CNI_ARGS lacks keeps the configuration's value.
func TestCNIArgsOverrideConf(t *testing.T) {
	one, two := uint32(1), uint32(2)
	conf := &netConf{TapName: "conf0", TapOwner: &one, TapGroup: &two}
	a, err := parseCNIArgs("TC_REDIRECT_TAP_UID=7")
	if err != nil {
		t.Fatal(err)
	}
	a.apply(conf)
	if conf.TapName != "conf0" || *conf.TapOwner != 7 || *conf.TapGroup != 2 {
		t.Errorf("tap %q owner %d group %d; want conf0 7 2", conf.TapName, *conf.TapOwner, *conf.TapGroup)
	}
}

func eqID(a, b *uint32) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func show(p *uint32) any {
	if p == nil {
		return "none"
	}
	return *p
}
