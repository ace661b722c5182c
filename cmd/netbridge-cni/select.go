package main

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/netbridge/netbridge/pkg/state"
)

// podAnnotationsKey is the runtimeConfig key (and capability) under which
// containerd and CRI-O pass the pod's annotations, when the conflist entry
// declares the capability.
const podAnnotationsKey = "io.kubernetes.cri.pod-annotations"

// runtimeConfig is what the runtime passes for the capabilities the entry
// declares.
type runtimeConfig struct {
	PodAnnotations map[string]string `json:"io.kubernetes.cri.pod-annotations,omitempty"`
}

// selects reports whether the pod of this call is one netbridge acts for.
// Without a podAnnotation selector every pod is; with "KEY" a pod whose
// annotation KEY is present and not "false"; with "KEY=VALUE" a pod whose
// annotation KEY is exactly VALUE. known is false when the runtime passed
// no annotations at all (then the pod is not selected).
func (c *netConf) selects() (selected, known bool) {
	if c.PodAnnotation == "" {
		return true, true
	}
	a := c.RuntimeConfig.PodAnnotations
	if a == nil {
		return false, false
	}
	key, want, exact := strings.Cut(c.PodAnnotation, "=")
	v, ok := a[key]
	if exact {
		return ok && v == want, true
	}
	return ok && v != "false", true
}

// warnedFile marks, in the state directory, that the missing-annotations
// warning was logged, so that it is logged once rather than for every pod.
const warnedFile = ".no-pod-annotations-warned"

// warnNoAnnotations logs, once per state directory, that the runtime
// passes no pod annotations, so that no pod can be selected.
func (c *call) warnNoAnnotations() {
	dir := c.stateDir()
	marker := filepath.Join(dir, warnedFile)
	if _, err := os.Lstat(marker); err == nil {
		return
	}
	msg := "the runtime passes no pod annotations, so no pod is selected by podAnnotation " + c.conf.PodAnnotation +
		"; declare \"capabilities\": {\"" + podAnnotationsKey + "\": true} in netbridge's conflist entry (containerd 1.6+ and CRI-O pass them then)"
	c.log.Warn(msg)
	os.Stderr.WriteString("netbridge: warning: " + msg + "\n")
	if st, err := state.Open(dir); err == nil {
		if f, err := os.OpenFile(filepath.Join(st.Dir(), warnedFile), os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
			f.Close()
		}
	}
}
