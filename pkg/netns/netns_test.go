package netns

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"

	"github.com/containernetworking/plugins/pkg/testutils"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
}

func TestOpenRefusesBadPaths(t *testing.T) {
	requireRoot(t)
	for _, c := range []struct {
		path string
		want error
	}{
		{"/nonexistent/netns", ErrNotExist},
		{"/etc/hostname", ErrNotNetns},
		{"/proc/self/ns/mnt", ErrNotNetns},
		{"/proc/self/ns/net", ErrHostNetns},
	} {
		n, err := Open(c.path)
		if !errors.Is(err, c.want) {
			t.Errorf("Open(%q) = %v, want %v", c.path, err, c.want)
		}
		if n != nil {
			n.Close()
		}
	}
}

func TestDoRunsInsideAndNeverMovesOtherThreads(t *testing.T) {
	requireRoot(t)
	target, err := testutils.NewNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { target.Close(); testutils.UnmountNS(target) })
	n, err := Open(target.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	home, err := Current()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := n.Do(func() error {
				cur, err := Current()
				if err != nil {
					return err
				}
				if cur != n.ID() {
					t.Errorf("inside Do the thread is in %v, want %v", cur, n.ID())
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if cur, _ := Current(); cur != home {
		t.Errorf("the calling thread moved to %v, was %v", cur, home)
	}
}

func TestOpenRefusesOwnProcPathsWhateverTheMainThreadDoes(t *testing.T) {
	requireRoot(t)
	for _, p := range []string{"/proc/self/ns/net", "/proc/thread-self/ns/net", fmt.Sprintf("/proc/%d/ns/net", os.Getpid()), fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), os.Getpid()), "/proc/self/../self/ns/net"} {
		if _, err := Open(p); !errors.Is(err, ErrHostNetns) {
			t.Errorf("Open(%q) = %v, want ErrHostNetns", p, err)
		}
	}
}
