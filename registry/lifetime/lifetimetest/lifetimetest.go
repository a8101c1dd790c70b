// Package lifetimetest runs a lifetime.Keeper for the tests of the
// packages that register through one.
package lifetimetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/registry/lifetime"
)

// Run returns a Keeper of reg that watches processes, and prunes nothing,
// until the test ends; then it checks that Run ended well and closes it.
func Run(t testing.TB, reg *registry.Registry) *lifetime.Keeper {
	t.Helper()
	life, err := lifetime.New(reg, lifetime.Config{NoPrune: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- life.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("lifetime: %v", err)
		}
		if err := life.Close(); err != nil {
			t.Errorf("lifetime: %v", err)
		}
	})
	return life
}

// ListenAs listens on network and addr with a socket owned by uid, as a
// service run by that user would: the socket is made on a thread whose
// file-system uid is uid for that moment (the kernel gives a socket the
// fsuid of its maker). It needs root, and skips t without it. The
// listener is closed when t ends.
func ListenAs(t testing.TB, uid uint32, network, addr string) net.Listener {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a socket of another user needs root (run make test as root)")
	}
	var ln net.Listener
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The thread ends with the goroutine, still locked, so that its
		// fsuid never serves anything else.
		runtime.LockOSThread()
		unix.Setfsuid(int(uid))
		if got, _ := unix.SetfsuidRetUid(-1); got != int(uid) {
			err = fmt.Errorf("setfsuid %d: still %d", uid, got)
			return
		}
		ln, err = net.Listen(network, addr)
	}()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}
