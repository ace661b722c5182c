package vm

import (
	"fmt"
	"io"
)

// File type bits of a cpio mode (those of stat(2)).
const (
	modeDir     = 0o040000
	modeRegular = 0o100000
	modeSymlink = 0o120000
	modeCharDev = 0o020000
)

// cpioWriter writes the "newc" (SVR4, no checksum) cpio format, the one
// the Linux kernel unpacks as an initramfs. Every entry has owner root,
// modification time 0 and its own inode number, so the same entries give
// the same bytes. The first write error is kept and returned by close.
type cpioWriter struct {
	w   io.Writer
	ino uint32
	n   int64 // bytes written, for the 4-byte alignment
	err error
}

func (c *cpioWriter) dir(name string, perm uint32) {
	c.entry(name, modeDir|perm, 2, 0, 0, nil)
}

func (c *cpioWriter) file(name string, perm uint32, data []byte) {
	c.entry(name, modeRegular|perm, 1, 0, 0, data)
}

func (c *cpioWriter) symlink(name, target string) {
	c.entry(name, modeSymlink|0o777, 1, 0, 0, []byte(target))
}

func (c *cpioWriter) charDev(name string, perm, major, minor uint32) {
	c.entry(name, modeCharDev|perm, 1, major, minor, nil)
}

// close writes the trailer entry that ends the archive.
func (c *cpioWriter) close() error {
	c.entry("TRAILER!!!", 0, 1, 0, 0, nil)
	return c.err
}

// entry writes one header (110 bytes: magic and 13 eight-digit hex
// fields), the NUL-terminated name, padding to 4 bytes, the data and
// padding to 4 bytes again.
func (c *cpioWriter) entry(name string, mode, nlink, rdevMajor, rdevMinor uint32, data []byte) {
	ino := uint32(0) // the trailer's, as GNU cpio writes it
	if name != "TRAILER!!!" {
		c.ino++
		ino = c.ino
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write([]byte(name + "\x00"))
	c.pad()
	c.write(data)
	c.pad()
}

func (c *cpioWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(b)
	c.n += int64(n)
	c.err = err
}

func (c *cpioWriter) pad() {
	if r := c.n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}
