package testnet

import (
	"testing"

	"github.com/netbridge/netbridge/test/inet"
)

func TestDiff(t *testing.T) {
	for _, tc := range []struct {
		name, a, b, want string
	}{
		{"equal", "x\ny\n", "x\ny\n", ""},
		{"both empty", "", "", ""},
		{"added", "a\nc\n", "a\nb\nc\n", "+b\n"},
		{"removed", "a\nb\nc\n", "a\nc\n", "-b\n"},
		{"changed", "a\nb\nc\n", "a\nB\nc\n", "-b\n+B\n"},
		{"from empty", "", "a\n", "+a\n"},
		{"to empty", "a\nb", "", "-a\n-b\n"},
		{"no trailing newline", "a\nb", "a\nb\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Diff(tc.a, tc.b); got != tc.want {
				t.Errorf("Diff(%q, %q) = %q, want %q", tc.a, tc.b, got, tc.want)
			}
		})
	}
}

func TestHandleString(t *testing.T) {
	for h, want := range map[uint32]string{
		0xffff0000: "ffff:",
		0x00010002: "1:2",
		0xfffffff1: "ingress",
		0xffffffff: "root",
	} {
		if got := handleString(h); got != want {
			t.Errorf("handleString(%#x) = %q, want %q", h, got, want)
		}
	}
	if got := u32Handle(0x80000800); got != "800:0:800" {
		t.Errorf("u32Handle = %q", got)
	}
}

func TestEchoRequestChecksum(t *testing.T) {
	m := echoRequest(false, 0x1234, 7, []byte("hello, world"))
	if inet.Checksum(m) != 0 {
		t.Fatalf("checksum of built echo request does not verify: % x", m)
	}
	// A reply is the request with type 0; fix the checksum like a peer would.
	r := append([]byte(nil), m...)
	r[0] = 0
	r[2], r[3] = 0, 0
	c := inet.Checksum(r)
	r[2], r[3] = byte(c>>8), byte(c)
	ip := append([]byte{0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2}, r...)
	if !isEchoReply(false, ip, 0x1234, 7, []byte("hello, world")) {
		t.Error("reply not recognised")
	}
	if isEchoReply(false, ip, 0x1235, 7, []byte("hello, world")) {
		t.Error("reply with another identifier recognised")
	}
	if isEchoReply(false, ip, 0x1234, 6, []byte("hello, world")) {
		t.Error("reply with a future sequence number recognised")
	}
	if isEchoReply(false, ip, 0x1234, 7, []byte("hello, World")) {
		t.Error("reply with another payload recognised")
	}
}
