//go:build !netbridge_testseam

package journal

// The test seam is compiled only with the netbridge_testseam build tag
// (seam_testseam.go); release builds have these no-ops.

// beforeStep may return an injected error for journal step k (1-based),
// after the step is journaled and before its object is created.
func beforeStep(int, Step) error { return nil }

// afterStep may end the process after journal step k's object exists and
// before the step is marked done.
func afterStep(int) {}
