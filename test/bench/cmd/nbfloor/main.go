// Command nbfloor is the performance floor of "netbridge setup" and
// "netbridge teardown" with the tcfilter model: a minimal program doing only
// the kernel operations (see package floor).
//
//	nbfloor setup NETNS IFNAME...
//	nbfloor teardown NETNS IFNAME...
//
// NETNS is a path such as /run/netns/NAME, or a name under /run/netns.
// Without arguments it prints its usage and exits with status 2, which the
// benchmark driver uses to time the start-up of a Go binary.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/netbridge/netbridge/test/bench/floor"
)

const usage = "usage: nbfloor setup|teardown NETNS IFNAME...\n"

func main() {
	if len(os.Args) < 4 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	path := os.Args[2]
	if !strings.Contains(path, "/") {
		path = filepath.Join("/run/netns", path)
	}
	ifnames := os.Args[3:]
	var err error
	switch os.Args[1] {
	case "setup":
		err = floor.Setup(path, ifnames)
	case "teardown":
		err = floor.Teardown(path, ifnames)
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "nbfloor %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
