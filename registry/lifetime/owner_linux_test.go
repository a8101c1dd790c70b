package lifetime_test

import (
	"net"
	"os"
	"strconv"
	"testing"

	"github.com/portmapd/portmapd/registry/lifetime"
	"github.com/portmapd/portmapd/registry/lifetime/lifetimetest"
)

// acceptAll accepts and holds every connection to ln until the test ends.
func acceptAll(t *testing.T, ln net.Listener) {
	t.Helper()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
}

// TestConnOwner: the owner of the listener a connection reached is whoever
// opened it, on either family, before and after the connection is
// accepted (here by this test, whose user the accepted socket takes).
func TestConnOwner(t *testing.T) {
	own := uint32(os.Geteuid())
	tests := []struct {
		name          string
		listen        func(t *testing.T) net.Listener
		want          uint32
		network, dial string
	}{
		{"own IPv4", func(t *testing.T) net.Listener { return listen(t, "tcp4", "127.0.0.1:0") }, own, "tcp4", "127.0.0.1"},
		{"own IPv6", func(t *testing.T) net.Listener { return listen(t, "tcp6", "[::1]:0") }, own, "tcp6", "::1"},
		{"own dual-stack, dialled over IPv4", func(t *testing.T) net.Listener { return listen(t, "tcp", ":0") }, own, "tcp4", "127.0.0.1"},
		{"another user's", func(t *testing.T) net.Listener {
			return lifetimetest.ListenAs(t, 65534, "tcp4", "127.0.0.1:0")
		}, 65534, "tcp4", "127.0.0.1"},
	}
	for _, tt := range tests {
		for _, accepted := range []bool{false, true} {
			name := tt.name
			if accepted {
				name += ", accepted"
			}
			t.Run(name, func(t *testing.T) {
				ln := tt.listen(t)
				c, err := net.Dial(tt.network, net.JoinHostPort(tt.dial, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)))
				if err != nil {
					t.Skipf("cannot dial %s here: %v", tt.dial, err)
				}
				defer c.Close()
				if accepted {
					s, err := ln.Accept()
					if err != nil {
						t.Fatal(err)
					}
					defer s.Close()
				}
				got, err := lifetime.ConnOwner(c)
				if err != nil {
					t.Fatal(err)
				}
				if got != tt.want {
					t.Errorf("owner %d, want %d", got, tt.want)
				}
			})
		}
	}
}

// TestConnOwnerNotTCP: only a TCP connection has an owner to look up.
func TestConnOwnerNotTCP(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := lifetime.ConnOwner(a); err == nil {
		t.Fatal("ConnOwner of a pipe succeeded")
	}
}

func listen(t *testing.T, network, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("cannot listen on %s here: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}
