package netbridge

import (
	"context"
	"log/slog"
)

type loggerKey struct{}

// ContextWithLogger returns a context that makes Setup and Teardown log one
// line per step to l: the sandbox id, the interface, and the time since the
// call began. Without it they log nothing.
func ContextWithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

var discard = slog.New(slog.DiscardHandler)

func loggerFrom(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok && l != nil {
		return l
	}
	return discard
}
