// Command nbdatapath measures the frames per second each netbridge model
// carries from the node into a tap queue, against a bare veth (see package
// test/bench/datapath), and prints a markdown table. It needs root.
//
//	go run ./test/bench/cmd/nbdatapath [-d 2s]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/netbridge/netbridge/test/bench/datapath"
)

func main() {
	d := flag.Duration("d", 2*time.Second, "how long to send through each path")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	results, err := datapath.Run(ctx, *d)
	if len(results) > 0 {
		printTable(os.Stdout, results)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nbdatapath:", err)
		stop()
		os.Exit(1)
	}
}

// printTable writes results as a markdown table; the ratio is each path's
// frame rate over that of the first (reference) result.
func printTable(w io.Writer, results []datapath.Result) {
	fmt.Fprintln(w, "| path | frames/s | MB/s | ratio vs reference |")
	fmt.Fprintln(w, "|---|---:|---:|---:|")
	var ref float64
	for i, r := range results {
		fps, mbps := 0.0, 0.0
		if r.Seconds > 0 {
			fps = float64(r.Frames) / r.Seconds
			mbps = float64(r.Bytes) / r.Seconds / 1e6
		}
		if i == 0 {
			ref = fps
		}
		ratio := "n/a"
		if ref > 0 {
			ratio = fmt.Sprintf("%.2f", fps/ref)
		}
		fmt.Fprintf(w, "| %s | %.0f | %.1f | %s |\n", r.Path, fps, mbps, ratio)
	}
}
