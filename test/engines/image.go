package engines

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BusyboxPath is where Debian's busybox-static installs the static
// busybox that the images and root filesystems of these tests hold.
const BusyboxPath = "/bin/busybox"

// busyboxApplets are linked to busybox in every root filesystem built here.
var busyboxApplets = []string{"sh", "sleep", "true", "ip", "ping", "cat", "ls"}

// WriteRootfs makes a minimal root filesystem in dir: the static busybox
// as /bin/busybox, the applets of busyboxApplets linked to it, and the
// empty directories a runtime mounts over.
func WriteRootfs(dir string) error {
	src, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return fmt.Errorf("reading busybox: %w", err)
	}
	for _, d := range []string{"bin", "dev", "proc", "sys", "etc", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), src, 0o755); err != nil {
		return err
	}
	for _, a := range busyboxApplets {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			return err
		}
	}
	return nil
}

// WriteImage writes an OCI image layout archive to path, for `ctr images
// import`: one uncompressed layer holding the busybox root filesystem of
// WriteRootfs, the entrypoint entrypoint, and the image name name in the
// index's io.containerd.image.name annotation. No registry is needed.
func WriteImage(path, name string, entrypoint []string) error {
	layer, err := rootfsLayer()
	if err != nil {
		return err
	}
	layerDigest := digest.FromBytes(layer)
	config, err := json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{Architecture: "amd64", OS: "linux"},
		Config:   ocispec.ImageConfig{Entrypoint: entrypoint},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layerDigest}},
	})
	if err != nil {
		return err
	}
	manifest, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    descriptor(ocispec.MediaTypeImageConfig, config),
		Layers:    []ocispec.Descriptor{descriptor(ocispec.MediaTypeImageLayer, layer)},
	})
	if err != nil {
		return err
	}
	md := descriptor(ocispec.MediaTypeImageManifest, manifest)
	md.Annotations = map[string]string{
		"io.containerd.image.name": name,
		ocispec.AnnotationRefName:  "netbridge-test",
	}
	index, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{md},
	})
	if err != nil {
		return err
	}
	layout, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files := []struct {
		name string
		data []byte
	}{
		{ocispec.ImageLayoutFile, layout},
		{ocispec.ImageIndexFile, index},
		{blobPath(layer), layer},
		{blobPath(config), config},
		{blobPath(manifest), manifest},
	}
	for _, f := range files {
		if err := writeFile(tw, f.name, f.data, 0o644); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func descriptor(mediaType string, b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
}

func blobPath(b []byte) string {
	return fmt.Sprintf("blobs/sha256/%x", sha256.Sum256(b))
}

// rootfsLayer returns WriteRootfs's tree as an uncompressed tar layer.
func rootfsLayer() ([]byte, error) {
	src, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, fmt.Errorf("reading busybox: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(0, 0)
	for _, d := range []string{"bin/", "dev/", "proc/", "sys/", "etc/", "tmp/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: mtime}); err != nil {
			return nil, err
		}
	}
	if err := writeFile(tw, "bin/busybox", src, 0o755); err != nil {
		return nil, err
	}
	for _, a := range busyboxApplets {
		h := &tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: mtime}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeFile(tw *tar.Writer, name string, data []byte, mode int64) error {
	h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: time.Unix(0, 0)}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}
