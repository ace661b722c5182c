//go:build netbridge_testseam

package journal

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// With the netbridge_testseam build tag, setup obeys two environment
// variables, for the crash and rollback tests (test/e2e):
//
//	NETBRIDGE_SEAM_CRASH=K   SIGKILL this process at journal step K: with
//	                         a "-" prefix (-K) just before step K's object
//	                         is created, else just after
//	NETBRIDGE_SEAM_FAIL=K    fail journal step K with an injected error
//
// K is the step's position in the journal, from 1.
var (
	seamCrash = os.Getenv("NETBRIDGE_SEAM_CRASH")
	seamFail  = os.Getenv("NETBRIDGE_SEAM_FAIL")
)

// ErrInjected is the error NETBRIDGE_SEAM_FAIL injects.
var ErrInjected = fmt.Errorf("injected failure (NETBRIDGE_SEAM_FAIL)")

// NETBRIDGE_SEAM_PROBE_WITHOUT=FEATURE,... (also read by pkg/probe, whose
// results then say these are missing) makes the kernel operations that need
// them fail as a kernel without them does: filters without u32 and
// matchall, bridges without bridge, macvtaps without macvtap.
var seamWithout = strings.Split(os.Getenv("NETBRIDGE_SEAM_PROBE_WITHOUT"), ",")

func beforeStep(k int, s Step) error {
	switch {
	case s.Op == OpFilter && slices.Contains(seamWithout, "u32") && slices.Contains(seamWithout, "matchall"),
		s.Op == OpQdisc && slices.Contains(seamWithout, "ingress"),
		s.Op == OpBridge && slices.Contains(seamWithout, "bridge"),
		s.Op == OpMacvtap && slices.Contains(seamWithout, "macvtap"):
		return fmt.Errorf("simulated kernel: %w", syscall.ENOENT)
	}
	if seamCrash == "-"+strconv.Itoa(k) {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
	if seamFail == strconv.Itoa(k) {
		return ErrInjected
	}
	return nil
}

func afterStep(k int) {
	if seamCrash == strconv.Itoa(k) {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}
