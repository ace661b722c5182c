package main

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
)

// TestInterruptibleCancelsOnSIGTERMAndSIGINT: the context of a call ends
// when the process gets SIGTERM or SIGINT (so an ADD rolls back), call
// after call (the registration is made once and kept), and a released
// call's context is not canceled by a signal meant for a later one.
func TestInterruptibleCancelsOnSIGTERMAndSIGINT(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGTERM} {
		released, release := interruptible(context.Background())
		release()
		ctx, stop := interruptible(context.Background())
		if err := syscall.Kill(os.Getpid(), sig); err != nil {
			t.Fatal(err)
		}
		<-ctx.Done()
		stop()
		if cause := context.Cause(ctx); !errors.Is(cause, context.Canceled) || !errors.Is(ctx.Err(), context.Canceled) {
			t.Errorf("after %v: Err %v, cause %v; want context.Canceled", sig, ctx.Err(), cause)
		}
		if cause := context.Cause(released); cause != context.Canceled {
			t.Errorf("a released call's context has cause %v after %v, want plain context.Canceled", cause, sig)
		}
	}
}
