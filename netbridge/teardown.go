package netbridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/pkg/sandboxid"
	"github.com/netbridge/netbridge/pkg/state"
)

// Teardown undoes the recorded setup of sandbox id, newest object first,
// leaving its netns as it was before setup, and removes the record.
//
// It is idempotent: an id with no record, or whose netns is gone, succeeds
// without doing anything. Only objects netbridge recorded are removed; a
// link of the same name that is not tagged as ours is left alone. When
// something cannot be removed, the record keeps what is left, so that
// teardown can be run again.
func Teardown(ctx context.Context, stateDir, id string) error {
	if err := sandboxid.Check(id); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	start := time.Now()
	log := loggerFrom(ctx).With("id", id)
	st, err := state.Open(state.Dir(stateDir))
	if err != nil {
		return err
	}
	lock, err := st.Lock(ctx, id)
	if err != nil {
		return err
	}
	defer st.Release(lock, id)
	rec, err := readRecord(st, id)
	if err != nil {
		return err
	}
	if rec == nil {
		log.Info("nothing recorded; nothing to do", "state_dir", st.Dir(), "elapsed", time.Since(start))
		return nil
	}
	rec.log = log
	objects := len(rec.Journal)
	if err := undoRecord(st, id, rec); err != nil {
		return fmt.Errorf("tearing down sandbox %q: %w", id, err)
	}
	if rec.netnsGone {
		log.Info("netns gone, and the objects in it with it; record removed", "netns", rec.Sandbox.Netns, "elapsed", time.Since(start))
		return nil
	}
	log.Info("torn down", "netns", rec.Sandbox.Netns, "objects", objects, "elapsed", time.Since(start))
	return nil
}

// undoRecord undoes rec in its netns and removes it from st. A netns that
// no longer exists, or whose path now names another namespace, took every
// object with it: the record is simply removed.
func undoRecord(st *state.Store, id string, rec *record) error {
	if err := undoIn(rec, id, func(step) bool { return true }); err != nil {
		if werr := st.Write(id, rec); werr != nil {
			err = errors.Join(err, werr)
		}
		return err
	}
	return st.Remove(id)
}

// netnsCookie returns n's cookie for the record, 0 when it cannot be read
// (the record then names its netns by path and inode only).
func netnsCookie(n *netns.NS) uint64 {
	c, _ := n.Cookie()
	return c
}

// ignoreNotFound turns the kernel's "already gone" answers into success.
func ignoreNotFound(err error) error {
	if err == nil || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil
	}
	return err
}
