package httpmap

import (
	"context"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/portmapd/portmapd/internal/peercred"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/registry/lifetime"
)

type peerKey struct{}

// peer is what the connection told about the other end, attached to each
// request's context by connContext.
type peer struct {
	caller registry.Caller
	// local is the address the connection arrived on, for TCP.
	local netip.Addr
	// raw is the AF_UNIX connection, for taking the peer's pidfd.
	raw syscall.RawConn
}

// connContext attaches the peer of c to ctx; it is http.Server.ConnContext.
// The credentials are read once per connection, at accept, which is when
// the kernel recorded them (SO_PEERCRED describes the connecting process,
// not whoever holds the socket later).
func connContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, peerKey{}, peerOf(c))
}

func peerOf(c net.Conn) *peer {
	if uc, ok := c.(*net.UnixConn); ok {
		p := &peer{caller: registry.Caller{Transport: registry.Local}}
		raw, err := uc.SyscallConn()
		if err != nil {
			return p
		}
		p.raw = raw
		if cred, err := peercred.Get(uc); err == nil {
			p.caller.Cred = &cred
		}
		return p
	}
	p := &peer{caller: registry.Caller{Transport: registry.Network}}
	if a, ok := addrPort(c.RemoteAddr()); ok {
		p.caller.Addr = a
	}
	if a, ok := addrPort(c.LocalAddr()); ok {
		p.local = a.Addr()
	}
	return p
}

func addrPort(a net.Addr) (netip.AddrPort, bool) {
	switch a := a.(type) {
	case *net.TCPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
	case nil:
		return netip.AddrPort{}, false
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// openPeer returns a handle on the connected process. SO_PEERPIDFD (Linux
// 6.5) names the very process that connected even if it has since exited
// and its pid been reused; older kernels fall back to opening the pid.
func (p *peer) openPeer(life *lifetime.Keeper) (*lifetime.Handle, error) {
	pid := p.caller.Cred.PID
	if p.raw != nil {
		fd, err := -1, error(nil)
		p.raw.Control(func(sfd uintptr) {
			fd, err = unix.GetsockoptInt(int(sfd), unix.SOL_SOCKET, unix.SO_PEERPIDFD)
		})
		if err == nil && fd >= 0 {
			unix.CloseOnExec(fd)
			return life.FromPidfd(fd, pid)
		}
	}
	return life.Open(pid)
}
