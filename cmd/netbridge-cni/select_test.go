package main

import (
	"encoding/json"
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
