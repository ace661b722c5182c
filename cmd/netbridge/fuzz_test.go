package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// FuzzCLIArgs runs render, status or teardown with fuzzed arguments against
// an empty state dir. These commands cannot touch the kernel there
// (teardown of an id with no record does nothing), arguments that would
// point anywhere else (another state dir, via the flag or the environment)
// are dropped, and the exit status must be 0, 1 or 2 with no panic.
func FuzzCLIArgs(f *testing.F) {
	f.Add(uint8(0), "--id\x00x\x00--for\x00qemu")
	f.Add(uint8(1), "--output\x00json\x00--id\x00a")
	f.Add(uint8(2), "--id\x00../x")
	f.Add(uint8(0), "--for=vmware\x00-id=\x00extra")
	f.Add(uint8(1), "--timeout\x00-1s")
	f.Add(uint8(2), "-h")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, cmd uint8, joined string) {
		command := []string{"render", "status", "teardown"}[int(cmd)%3]
		args := []string{command, "--state-dir", dir}
		for _, a := range strings.Split(joined, "\x00") {
			if strings.Contains(a, "state") {
				return
			}
			args = append(args, a)
		}
		var out, errb bytes.Buffer
		code := run(context.Background(), args, &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb})
		if code < 0 || code > 2 {
			t.Errorf("netbridge %q exited %d", args, code)
		}
		if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
			t.Fatalf("netbridge %q left the state dir with %d entries (%v)", args, len(ents), err)
		}
	})
}
