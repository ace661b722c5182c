// Package sysfs reads and writes sysfs as seen from a given network
// namespace.
//
// sysfs shows the links of the namespace of whoever mounted it, not of the
// thread that reads it, so entering a netns is not enough to see its links
// under /sys/class/net. Do mounts a fresh sysfs for that namespace.
package sysfs

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn with root set to the mount point of a sysfs that shows the
// network namespace open as netnsFd (fn reads root+"/class/net/NAME/...").
//
// It works on a throwaway thread: that thread gets a private mount
// namespace, enters the netns and mounts sysfs on a temporary directory;
// afterwards the thread ends instead of returning to the Go scheduler.
// Nothing is mounted anywhere else, and the calling thread is untouched.
// fn runs on that thread and must not start goroutines that rely on it.
func Do(netnsFd int, writable bool, fn func(root string) error) error {
	dir, err := os.MkdirTemp("", "netbridge-sysfs-")
	if err != nil {
		return fmt.Errorf("making a mount point for a private sysfs: %w", err)
	}
	defer os.Remove(dir)
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		ch <- doOnThisThread(netnsFd, dir, writable, fn)
	}()
	return <-ch
}

func doOnThisThread(netnsFd int, dir string, writable bool, fn func(string) error) error {
	if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
		return fmt.Errorf("unsharing the mount namespace: %w", err)
	}
	// Keep what follows out of the namespace the mounts came from.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	if err := unix.Setns(netnsFd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("entering the netns: %w", err)
	}
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if !writable {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount("sysfs", dir, "sysfs", flags, ""); err != nil {
		return fmt.Errorf("mounting sysfs: %w", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	return fn(dir)
}
