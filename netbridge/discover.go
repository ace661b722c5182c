package netbridge

import (
	"context"
	"fmt"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/netbridge/internal/netview"
	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/sandbox"
)

// Discover lists every link of the netns at path except loopback, with its
// addresses, routes and neighbours, and marks those setup would attach:
// exactly the named ones when names is non-empty, else every supported link
// that has an address. It changes nothing.
func Discover(ctx context.Context, path string, names []string) ([]sandbox.Interface, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n, err := netns.Open(path)
	if err != nil {
		return nil, err
	}
	defer n.Close()
	h, err := journal.OpenHandle(n)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	v, err := netview.Read(h)
	if err != nil {
		return nil, fmt.Errorf("discovering interfaces in netns %q: %w", path, err)
	}
	if err := v.Select(names, models.Chooser(sandbox.ModelTCFilter).Supports, nil, ""); err != nil {
		return nil, fmt.Errorf("netns %q: %w", path, err)
	}
	return v.Interfaces(), nil
}
