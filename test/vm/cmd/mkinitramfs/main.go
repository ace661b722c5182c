// Command mkinitramfs writes the initramfs of netbridge's VM tests (package
// test/vm: a static busybox, the guest kernel's virtio-net modules and the
// test /init) to a file, and prints the path of the guest kernel it is for:
//
//	mkinitramfs -o FILE
//
// It needs the Debian packages linux-image-cloud-amd64 and busybox-static.
// make demo boots its guest with it.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/netbridge/netbridge/test/vm"
)

func main() {
	out := flag.String("o", "", "the file to write the gzip'd cpio initramfs to (required)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: mkinitramfs -o FILE\n\n"+
			"Writes the initramfs of netbridge's VM tests to FILE and prints the guest kernel's path.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *out == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	kernel, err := write(*out)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkinitramfs: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(kernel)
}

// write builds (or reuses) the tests' initramfs, copies it to out
// atomically and returns the kernel's path.
func write(out string) (string, error) {
	kernel, built, err := vm.BuildInitramfs()
	if err != nil {
		return "", fmt.Errorf("%w (Debian: %s)", err, vm.Packages)
	}
	src, err := os.Open(built)
	if err != nil {
		return "", err
	}
	defer src.Close()
	tmp, err := os.CreateTemp(filepath.Dir(out), ".mkinitramfs-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	_, err = io.Copy(tmp, src)
	if err = errors.Join(err, tmp.Chmod(0o644), tmp.Close()); err != nil {
		return "", fmt.Errorf("writing %s: %w", out, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", err
	}
	return kernel, nil
}
