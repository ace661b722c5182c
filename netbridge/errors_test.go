package netbridge_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/testnet"
)

// TestErrorsAreTypedAndNameNoFlags: what a caller can do about an error is
// in its type, which the CLI phrases as flags and the CNI plugin as
// configuration keys; the library's messages name no CLI flag.
func TestErrorsAreTypedAndNameNoFlags(t *testing.T) {
	ctx := context.Background()
	lib := netbridge.New(t.TempDir(), nil)
	empty := testnet.NewNS(t)
	noAddr := testnet.NewNS(t)
	testnet.VethPair(t, testnet.NewNS(t), noAddr, "veth0", "eth0", 0)
	tooBig := testnet.NewNS(t) // an MTU a tap cannot take
	testnet.VethPair(t, testnet.NewNS(t), tooBig, "veth0", "eth0", 65535)
	testnet.AddAddr(t, tooBig, "eth0", "198.51.100.2/24")
	for _, c := range []struct {
		name string
		cfg  sandbox.Config
		want error
	}{
		{"no interface but lo", sandbox.Config{ID: "e1", Netns: empty.Path()}, sandbox.ErrNoInterface},
		{"no interface with an address", sandbox.Config{ID: "e2", Netns: noAddr.Path()}, sandbox.ErrNoInterface},
		{"strict", sandbox.Config{ID: "e3", Netns: tooBig.Path(), Strict: true}, netbridge.ErrStrict},
	} {
		_, err := lib.Setup(ctx, c.cfg)
		if !errors.Is(err, c.want) || !errors.Is(err, sandbox.ErrInvalidConfig) {
			t.Errorf("%s: Setup = %v, want %v", c.name, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), "--") {
			t.Errorf("%s: %q names a flag", c.name, err)
		}
	}
}
