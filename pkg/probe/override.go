//go:build !netbridge_testseam

package probe

// override is the identity in release builds; the netbridge_testseam build
// lets tests pretend features are missing (override_testseam.go).
func override(f Features) Features { return f }
