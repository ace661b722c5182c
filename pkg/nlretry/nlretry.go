// Package nlretry retries netlink dump requests that the kernel interrupted.
//
// A dump (link, address, route, neighbour, qdisc or filter list) that races
// with a change returns NLM_F_DUMP_INTR; vishvananda/netlink then returns
// partial data together with netlink.ErrDumpInterrupted. The data cannot be
// trusted, so the request is repeated.
package nlretry

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
)

// Attempts is how many times Dump issues a request before giving up.
const Attempts = 10

// Dump calls list until it returns a result that was not interrupted, at
// most Attempts times.
func Dump[T any](list func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for range Attempts {
		v, err = list()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
	}
	var zero T
	return zero, fmt.Errorf("netlink dump interrupted %d times in a row (the namespace keeps changing): %w", Attempts, err)
}
