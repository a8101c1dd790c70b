package httpmap

import (
	"context"
	"net"
	"net/netip"

	"github.com/portmapd/portmapd/peer"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/registry/lifetime"
)

type senderKey struct{}

// A sender is who sent a request, as its connection told it: the caller
// the registry judges, and what this face needs besides. connContext
// attaches one to each request's context.
type sender struct {
	caller registry.Caller
	// local is the address the connection arrived on, for TCP.
	local netip.Addr
	// conn is the AF_UNIX connection, for taking the peer's pidfd.
	conn net.Conn
}

// connContext attaches the sender of c to ctx; it is
// http.Server.ConnContext. The credentials are read once per connection,
// at accept, which is when the kernel recorded them.
func connContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, senderKey{}, senderOf(c))
}

func senderOf(c net.Conn) *sender {
	// Without credentials a local caller may still read; the registry
	// refuses it what needs them.
	p, _ := peer.FromConn(c)
	if p.Transport == "unix" {
		s := &sender{caller: registry.Caller{Transport: registry.Local}, conn: c}
		if p.Cred != nil {
			cred := registry.Cred(*p.Cred)
			s.caller.Cred = &cred
		}
		return s
	}
	return &sender{caller: registry.Caller{Transport: registry.Network, Addr: p.Addr}, local: p.Local.Addr()}
}

// openProcess returns a handle on the connected process: through the
// socket's pidfd where the kernel gives one, which names the very process
// that connected even if it has since exited and its pid been reused; by
// its pid otherwise.
func (s *sender) openProcess(life *lifetime.Keeper) (*lifetime.Handle, error) {
	pid := s.caller.Cred.PID
	if s.conn != nil {
		if fd, err := peer.PidFD(s.conn); err == nil {
			return life.FromPidfd(fd, pid)
		}
	}
	return life.Open(pid)
}
