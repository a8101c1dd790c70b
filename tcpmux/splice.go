package tcpmux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/registry/lifetime"
)

// errNotOwner reports a registered port whose socket is another user's.
var errNotOwner = errors.New("tcpmux: the port's socket is not the registration's user's")

// dialService connects to svc's TCP port on this host: on loopback, IPv4
// then IPv6, then on local, the address the client reached, for a service
// bound to that address alone. It never connects to another host. The
// socket reached must be svc's user's, root's too: a registration names a
// port, and proves nothing about who listens on it, so another user could
// otherwise take the connections of a port whose service has stopped
// listening.
func (s *Server) dialService(ctx context.Context, svc registry.Service, local netip.Addr) (*net.TCPConn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	addrs := []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()}
	if local.IsValid() && !local.IsLoopback() && !local.IsUnspecified() {
		addrs = append(addrs, local.WithZone(""))
	}
	var d net.Dialer
	errs := make([]error, 0, len(addrs))
	for _, a := range addrs {
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(a.String(), strconv.Itoa(int(svc.Port))))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tc := c.(*net.TCPConn)
		uid, err := lifetime.ConnOwner(tc)
		if err == nil && uid != svc.UID {
			err = fmt.Errorf("%w: %v is uid %d's, the registration uid %d's", errNotOwner, c.RemoteAddr(), uid, svc.UID)
		}
		if err != nil {
			tc.Close()
			errs = append(errs, err)
			continue
		}
		return tc, nil
	}
	return nil, errors.Join(errs...)
}

// pipe copies between a and b until both directions have ended, passing
// each end of input on as a half-close (CloseWrite), and closes both. An
// error either way, or idle with nothing passing either way, ends both at
// once.
func pipe(a, b *net.TCPConn, idle time.Duration) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	done := make(chan struct{}, 2)
	copyHalf := func(dst, src *net.TCPConn) {
		defer func() { done <- struct{}{} }()
		if _, err := io.Copy(dst, activity{src, &last}); err != nil {
			a.Close()
			b.Close()
			return
		}
		dst.CloseWrite()
	}
	go copyHalf(a, b)
	go copyHalf(b, a)
	tick := time.NewTicker(max(min(idle/4, time.Minute), time.Millisecond))
	defer tick.Stop()
	for running := 2; running > 0; {
		select {
		case <-done:
			running--
		case <-tick.C:
			if time.Since(time.Unix(0, last.Load())) >= idle {
				a.Close()
				b.Close()
			}
		}
	}
	a.Close()
	b.Close()
}

// activity is a reader that records when it last read anything.
type activity struct {
	r    io.Reader
	last *atomic.Int64
}

func (r activity) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.last.Store(time.Now().UnixNano())
	}
	return n, err
}
