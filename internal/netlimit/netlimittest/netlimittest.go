// Package netlimittest helps tests of per-source limits: they need to call
// from an address that is not loopback, which netlimit exempts.
package netlimittest

import (
	"bytes"
	"net"
	"net/netip"
	"sync"
	"testing"
)

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

// LogBuffer collects what a logger writes, from any goroutine, for a test
// to count the lines.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
