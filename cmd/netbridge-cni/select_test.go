package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSelects(t *testing.T) {
	for _, tc := range []struct {
		name, conf      string
		selected, known bool
	}{
		{"no selector", `{}`, true, true},
		{"no selector, annotations", `{"runtimeConfig": {"io.kubernetes.cri.pod-annotations": {"a": "b"}}}`, true, true},
		{"key present", `{"podAnnotation": "vm", "runtimeConfig": {"io.kubernetes.cri.pod-annotations": {"vm": ""}}}`, true, true},
		{"key true", `{"podAnnotation": "vm", "runtimeConfig": {"io.kubernetes.cri.pod-annotations": {"vm": "true"}}}`, true, true},
		{"key false", `{"podAnnotation": "vm", "runtimeConfig": {"io.kubernetes.cri.pod-annotations": {"vm": "false"}}}`, false, true},
		{"key absent", `{"podAnnotation": "vm", "runtimeConfig": {"io.kubernetes.cri.pod-annotations": {"other": "x"}}}`, false, true},
		{"empty annotations", `{"podAnnotation": "vm", "runtimeConfig": {"io.kubernetes.cri.pod-annotations": {}}}`, false, true},
		{"no annotations passed", `{"podAnnotation": "vm"}`, false, false},
		{"value match", `{"podAnnotation": "runtime=kata", "runtimeConfig": {"io.kubernetes.cri.pod-annotations": {"runtime": "kata"}}}`, true, true},
		{"value mismatch", `{"podAnnotation": "runtime=kata", "runtimeConfig": {"io.kubernetes.cri.pod-annotations": {"runtime": "runc"}}}`, false, true},
		{"value empty wanted", `{"podAnnotation": "vm=", "runtimeConfig": {"io.kubernetes.cri.pod-annotations": {"vm": ""}}}`, true, true},
		{"value with =", `{"podAnnotation": "k=a=b", "runtimeConfig": {"io.kubernetes.cri.pod-annotations": {"k": "a=b"}}}`, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c netConf
			if err := json.Unmarshal([]byte(tc.conf), &c); err != nil {
				t.Fatal(err)
			}
			sel, known := c.selects()
			if sel != tc.selected || known != tc.known {
				t.Errorf("selects() = %v, %v; want %v, %v", sel, known, tc.selected, tc.known)
			}
		})
	}
}

// captureStdout runs fn with os.Stdout going to a pipe and returns what it
// wrote.
func captureStdout(t *testing.T, fn func() error) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	ferr := fn()
	os.Stdout = old
	w.Close()
	return string(<-done), ferr
}

// TestUnselectedPodPassesThrough: with a podAnnotation selector, an ADD
// for a pod without the annotation prints the previous result unchanged
// and touches nothing (no record, not even a netns opened: the netns path
// does not exist); a runtime that passes no annotations at all gets the
// same, and the warning that says how to fix it is logged once per state
// directory.
func TestUnselectedPodPassesThrough(t *testing.T) {
	prev := prevResults["1.0.0"]
	for _, c := range []struct {
		name, runtimeConfig string
		warn                bool
	}{
		{"pod without the annotation", `,"runtimeConfig":{"io.kubernetes.cri.pod-annotations":{"other":"x"}}`, false},
		{"runtime passes no annotations", ``, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			state, log := filepath.Join(dir, "state"), filepath.Join(dir, "nb.log")
			stdin := netconf("1.0.0", fmt.Sprintf(`"stateDir":%q,"logFile":%q,"podAnnotation":"netbridge.io/vm"%s`, state, log, c.runtimeConfig), prev)
			t.Setenv("CNI_COMMAND", "ADD")
			for range 2 {
				out, err := captureStdout(t, func() error { return cmdAdd(args(stdin, "/run/netns/nbtest-does-not-exist")) })
				if err != nil {
					t.Fatalf("ADD: %v", err)
				}
				var got, want map[string]any
				if err := json.Unmarshal([]byte(out), &got); err != nil {
					t.Fatalf("ADD printed %q: %v", out, err)
				}
				json.Unmarshal([]byte(prev), &want)
				if !reflect.DeepEqual(got["interfaces"], want["interfaces"]) || !reflect.DeepEqual(got["ips"], want["ips"]) {
					t.Errorf("ADD result %s, want the previous result unchanged %s", out, prev)
				}
			}
			if names, _ := os.ReadDir(state); len(names) > 1 || (len(names) == 1 && names[0].Name() != warnedFile) {
				t.Errorf("state dir holds %v, want no record", names)
			}
			b, _ := os.ReadFile(log)
			if n := strings.Count(string(b), "passes no pod annotations"); (n == 1) != c.warn || n > 1 {
				t.Errorf("the missing-annotations warning was logged %d times, want %v once:\n%s", n, c.warn, b)
			}
		})
	}
}
