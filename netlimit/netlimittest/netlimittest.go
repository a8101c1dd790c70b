// Package netlimittest helps tests of connection limits: they call from an
// address that is not loopback (which netlimit exempts), wait for the
// server to reach a state, tell a connection the server closed, and list
// the limits a server told its Observer of.
package netlimittest

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// Hits is a netlimit.Observer that lists the limits hit, each as
// "where limit action". It is safe for concurrent use.
type Hits struct {
	mu   sync.Mutex
	hits []string
}

// LimitHit records a hit.
func (h *Hits) LimitHit(where, limit, action string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hits = append(h.hits, where+" "+limit+" "+action)
}

// List returns the hits so far, oldest first.
func (h *Hits) List() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.hits)
}

// RemoteSource returns an IPv4 address of this host that is not loopback
// (nor link-local), so that a connection from it to a loopback listener
// is limited as a remote host's would be. It skips t when there is none.
func RemoteSource(t testing.TB) netip.Addr {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("no interface addresses: %v", err)
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			if ip := p.Addr(); ip.Is4() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
				return ip
			}
		}
	}
	t.Skip("this host has no non-loopback IPv4 address to call from")
	return netip.Addr{}
}

// WaitFor polls cond until it holds, failing t after a generous wait (a
// loaded machine is slow, not wrong).
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// ClosedByPeer reports whether reading r, which reads conn, ends within a
// generous wait because the peer closed conn (EOF or a reset), rather
// than by the wait running out.
func ClosedByPeer(conn net.Conn, r io.Reader) bool {
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := r.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}
