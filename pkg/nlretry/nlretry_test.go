package nlretry

import (
	"errors"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestDumpRetriesInterrupted(t *testing.T) {
	calls := 0
	v, err := Dump(func() ([]int, error) {
		calls++
		if calls < 3 {
			return []int{1}, netlink.ErrDumpInterrupted
		}
		return []int{1, 2}, nil
	})
	if err != nil || len(v) != 2 || calls != 3 {
		t.Fatalf("Dump = %v, %v after %d calls; want [1 2], nil after 3", v, err, calls)
	}
}

func TestDumpGivesUp(t *testing.T) {
	calls := 0
	v, err := Dump(func() ([]int, error) {
		calls++
		return []int{1}, netlink.ErrDumpInterrupted
	})
	if !errors.Is(err, netlink.ErrDumpInterrupted) || v != nil || calls != Attempts {
		t.Fatalf("Dump = %v, %v after %d calls; want nil, ErrDumpInterrupted after %d", v, err, calls, Attempts)
	}
}

func TestDumpPassesOtherErrors(t *testing.T) {
	boom := errors.New("boom")
	calls := 0
	_, err := Dump(func() (int, error) { calls++; return 0, boom })
	if !errors.Is(err, boom) || calls != 1 {
		t.Fatalf("Dump = %v after %d calls; want boom after 1", err, calls)
	}
}
