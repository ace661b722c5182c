package main

import (
	"context"
	"time"

	"github.com/netbridge/netbridge/test/bench/datapath"
)

// DatapathResult is what one datapath path delivered (section 4), copied
// from datapath.Result so that only this file depends on that package.
type DatapathResult struct {
	Path    string  `json:"path"`
	Frames  uint64  `json:"frames"`
	Bytes   uint64  `json:"bytes"`
	Seconds float64 `json:"seconds"`
}

// runDatapath measures every datapath path for d each.
func runDatapath(ctx context.Context, d time.Duration) ([]DatapathResult, error) {
	rs, err := datapath.Run(ctx, d)
	out := make([]DatapathResult, len(rs))
	for i, r := range rs {
		out[i] = DatapathResult{Path: r.Path, Frames: r.Frames, Bytes: r.Bytes, Seconds: r.Seconds}
	}
	return out, err
}
