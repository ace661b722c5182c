package netbridge_test

import (
	"context"
	"log"
	"os"
	"os/exec"

	"github.com/netbridge/netbridge/hypervisor/qemu"
	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/sandbox"
)

// A VM runtime wires a pod's CNI interfaces to taps, holding the tap queues
// open, and starts QEMU with them passed by fd. QEMU does not need to run
// inside the pod netns: the fds were opened there.
func ExampleManager_Setup() {
	ctx := context.Background()
	lib := netbridge.New("/run/netbridge", nil) // the state directory
	sb, err := lib.Setup(ctx, sandbox.Config{
		ID:      "4f9c2a",                // the CRI sandbox id
		Netns:   "/run/netns/cni-4f9c2a", // made by the CRI runtime, configured by CNI
		Queues:  2,
		HoldFDs: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sb.Close()

	cmd := exec.Command("qemu-system-x86_64", "-machine", "q35,accel=kvm", "-m", "512")
	args, files, err := qemu.ByFD(sb.NICs, qemu.Options{}, 3+len(cmd.ExtraFiles))
	if err != nil {
		log.Fatal(err)
	}
	cmd.Args = append(cmd.Args, args...)
	cmd.ExtraFiles = append(cmd.ExtraFiles, files...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		log.Print(err)
	}

	// When the sandbox goes away: exact undo, safe to repeat.
	if err := lib.Teardown(ctx, "4f9c2a"); err != nil {
		log.Fatal(err)
	}
}
