package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestParseArgs(t *testing.T) {
	base := []string{"--netns", "/run/netns/x", "--tap", "nb-eth0", "--mac", "02:00:00:00:00:01"}
	cfg, err := parseArgs(append(base, "--addr", "198.51.100.2/24,2001:db8::2/64", "--gateway", "198.51.100.1",
		"--gateway", "2001:db8::1", "--ping", "198.51.100.1", "--ping", "2001:db8::1", "--duration", "5s"), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.addrs) != 2 || len(cfg.gateways) != 2 || len(cfg.pings) != 2 || cfg.duration != 5*time.Second {
		t.Errorf("parsed %+v", cfg)
	}
	if cfg.pingTimeout != 5*time.Second {
		t.Errorf("default ping timeout %s", cfg.pingTimeout)
	}
}

func TestUsageErrors(t *testing.T) {
	base := []string{"--netns", "/run/netns/x", "--tap", "nb-eth0", "--mac", "02:00:00:00:00:01", "--addr", "198.51.100.2/24"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--netns is required"},
		{[]string{"--netns", "/run/netns/x", "--mac", "02:00:00:00:00:01"}, "--tap is required"},
		{append(base, "--mac", "01:00:5e:00:00:01"), "not a unicast"},
		{append(base, "--mac", "zz"), "want an Ethernet address"},
		{append(base, "--addr", "198.51.100.2"), "prefix length"},
		{append(base, "--gateway", "198.51.100.1,198.51.100.254"), "already given"},
		{append(base, "--ping", "2001:db8::1"), "no --addr of that address family"},
		{append(base, "--duration", "0s"), "must be positive"},
		{append(base, "--tap", "a-name-much-too-long"), "not a valid interface name"},
		{append(base, "extra"), "unexpected argument"},
		{append(base, "--bogus"), "flag provided but not defined"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, &stdout, &stderr)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want %d", tc.args, code, exitUsage)
		}
		if msg := stderr.String(); !strings.Contains(msg, tc.want) || strings.Count(msg, "\n") != 1 {
			t.Errorf("%q: stderr %q, want one line containing %q", tc.args, msg, tc.want)
		}
	}
}

func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(stdout.String(), "Usage: fakeguest") || !strings.Contains(stdout.String(), "-ready-file") {
		t.Errorf("help output %q", stdout.String())
	}
}

func TestMissingNetnsFails(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--netns", "/nonexistent/netns", "--tap", "nb-eth0",
		"--mac", "02:00:00:00:00:01", "--addr", "198.51.100.2/24"}, &stdout, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), "does not exist") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}
