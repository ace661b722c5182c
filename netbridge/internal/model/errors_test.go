package model

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/netbridge/netbridge/sandbox"
)

// TestMissingFeatureErrorNamesNoFlags: the error says which models work as
// data (Works) and in words, never as a CLI flag: a CNI user has none.
func TestMissingFeatureErrorNamesNoFlags(t *testing.T) {
	e := &MissingFeatureError{Model: sandbox.ModelTCFilter, Missing: []string{"ingress"}, Works: []sandbox.Model{sandbox.ModelBridge, sandbox.ModelMacvtap}, Err: syscall.ENOENT}
	msg := e.Error()
	if strings.Contains(msg, "--") || !strings.Contains(msg, "bridge, macvtap") || !strings.Contains(msg, "lacks ingress") {
		t.Errorf("message %q: want the models that work named, and no flag", msg)
	}
	if !errors.Is(e, ErrMissingFeature) || !errors.Is(e, syscall.ENOENT) {
		t.Error("the error is not ErrMissingFeature and the kernel's answer")
	}
	e.Works = nil
	if msg := e.Error(); !strings.Contains(msg, "no model works") {
		t.Errorf("message %q without a working model", msg)
	}
}
