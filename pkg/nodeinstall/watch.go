package nodeinstall

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// settle is how long Watch waits after a change of the configuration
// directory before it looks: providers often write several files in a row.
const settle = 200 * time.Millisecond

// Watch keeps netbridge chained while ctx lives: it installs as Install
// does, then watches the CNI configuration directory and puts netbridge's
// entry back whenever a network provider rewrites its configuration. Each
// pass is reported to report (with the error of a pass that failed: Watch
// goes on). A directory without a network configuration is waited for.
// Watch returns nil when ctx ends; the installation is left in place.
func Watch(ctx context.Context, o Options, report func(Result, error)) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching %s: %w", o.ConfDir, err)
	}
	defer w.Close()
	if err := w.Add(o.ConfDir); err != nil {
		return fmt.Errorf("watching %s: %w", o.ConfDir, err)
	}
	r, err := Install(o)
	if err != nil && !errors.Is(err, ErrNoNetwork) {
		return err
	}
	report(r, err)
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("the configuration directory watch ended")
			}
			if isConfEvent(ev) && timer == nil {
				timer = time.After(settle)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("the configuration directory watch ended")
			}
			report(Result{}, fmt.Errorf("watching %s: %w", o.ConfDir, err))
		case <-timer:
			timer = nil
			var r Result
			err := InstallConf(&r, o)
			if err != nil || len(r.Changes) > 0 || len(r.Notes) > 0 {
				report(r, err)
			}
		}
	}
}

// isConfEvent reports whether ev concerns a network configuration file
// (not a temporary file of a writer, ours included).
func isConfEvent(ev fsnotify.Event) bool {
	name := filepath.Base(ev.Name)
	return !strings.HasPrefix(name, ".") && slices.Contains(confExts, filepath.Ext(name))
}
