package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/netid/ifaddrs"
	"github.com/portmapd/portmapd/netlimit"
	"github.com/portmapd/portmapd/rpcbind"
	"golang.org/x/sys/unix"
)

// RemoteCallLimits bound the forwarding of remote calls. Rate and
// ReplyRatio of 0 are no limit; MaxPending and Timeout of 0 take rpcbind's
// values (rpcbind.DefaultMaxForwards, rpcbind.DefaultForwardTimeout).
type RemoteCallLimits struct {
	// Rate and Burst are the calls a second, and at once, that one remote
	// source (an IPv6 /64) may have forwarded.
	Rate  float64
	Burst int
	// MaxPending is how many forwarded calls may wait for their answers;
	// Timeout how long each may wait.
	MaxPending int
	Timeout    time.Duration
	// ReplyRatio is how many times larger than its call an answer
	// relayed to a remote caller may be.
	ReplyRatio int
	// Deny lists the programs never called, besides rpcbind's
	// check_callit list (rpcbind.ForwardConfig.Deny); empty refuses
	// only rpcbind's.
	Deny []uint32
}

// openForwarder opens the sockets that remote calls are forwarded from.
func openForwarder(l RemoteCallLimits, log *slog.Logger) (*rpcbind.Forwarder, error) {
	return rpcbind.OpenForwarder(rpcbind.ForwardConfig{
		MaxPending: l.MaxPending,
		Timeout:    l.Timeout,
		Rate:       netlimit.NewSourceBuckets(l.Rate, float64(l.Burst)),
		ReplyRatio: l.ReplyRatio,
		Deny:       l.Deny,
		Logger:     log.With("part", "rmtcall"),
	})
}

// rpcbMulticastGroup is RPCB_MULTICAST_ADDR, the group libtirpc's
// rpc_broadcast sends its udp6 broadcasts to.
const rpcbMulticastGroup = "ff02::202"

// A multicastMember keeps the daemon's udp6 sockets that are bound to the
// wildcard address members of ff02::202 on every interface that is up and
// can multicast, so that udp6 broadcasts (rpcinfo -b, rpc_broadcast) reach
// them, also on interfaces that appear while the daemon runs. rpcbind
// means to do the same, but joins at start on a socket of its own that it
// then closes, which leaves the group at once.
type multicastMember struct {
	conns []*net.UDPConn
	log   *slog.Logger
	// joined are the interfaces, by index, where every socket is a
	// member. Only the goroutine that follows the interfaces changes it,
	// once start has handed it over.
	joined map[int]bool
}

// newMulticastMember returns the member for the wildcard udp6 sockets of
// ls, or nil when there are none (a host without IPv6, or -h).
func newMulticastMember(ls *listeners, log *slog.Logger) *multicastMember {
	m := &multicastMember{log: log, joined: map[int]bool{}}
	for _, u := range ls.udp {
		if u.netid == netid.UDP6 && peerAddr(u.conn).Addr().IsUnspecified() {
			m.conns = append(m.conns, u.conn)
		}
	}
	if len(m.conns) == 0 {
		return nil
	}
	return m
}

func peerAddr(c *net.UDPConn) netip.AddrPort {
	a, _ := c.LocalAddr().(*net.UDPAddr)
	if a == nil {
		return netip.AddrPort{}
	}
	return a.AddrPort()
}

// join makes the sockets members on the interfaces that are up and can
// multicast where they are not yet, and leaves the group on interfaces
// that are gone.
func (m *multicastMember) join() {
	ifs, err := net.Interfaces()
	if err != nil {
		m.log.Warn("cannot list the interfaces to join the rpcbind multicast group on", "err", err)
		return
	}
	present := map[int]bool{}
	for _, ifc := range ifs {
		present[ifc.Index] = true
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagMulticast == 0 || m.joined[ifc.Index] {
			continue
		}
		ok := true
		for _, c := range m.conns {
			// EADDRINUSE: already a member there.
			if err := setMembership(c, unix.IPV6_JOIN_GROUP, ifc.Index); err != nil && !errors.Is(err, unix.EADDRINUSE) {
				m.log.Warn("cannot join the rpcbind multicast group; udp6 broadcasts on this interface will not be answered",
					"group", rpcbMulticastGroup, "interface", ifc.Name, "err", err)
				ok = false
			}
		}
		if ok {
			m.joined[ifc.Index] = true
			m.log.Debug("joined the rpcbind multicast group", "group", rpcbMulticastGroup, "interface", ifc.Name)
		}
	}
	for index := range m.joined {
		if !present[index] {
			// The kernel has dropped the interface; the sockets'
			// memberships name its index until they leave.
			for _, c := range m.conns {
				_ = setMembership(c, unix.IPV6_LEAVE_GROUP, index)
			}
			delete(m.joined, index)
		}
	}
}

// follow joins on interfaces as they appear, until ctx is done.
func (m *multicastMember) follow(ctx context.Context) {
	if err := ifaddrs.Watch(ctx, m.join); err != nil {
		m.log.Warn("cannot follow interface changes; udp6 broadcasts on interfaces that appear later will not be answered", "err", err)
	}
}

// setMembership joins (IPV6_JOIN_GROUP) or leaves (IPV6_LEAVE_GROUP) the
// rpcbind multicast group on the interface of that index.
func setMembership(c *net.UDPConn, opt, index int) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	mreq := unix.IPv6Mreq{Multiaddr: netip.MustParseAddr(rpcbMulticastGroup).As16(), Interface: uint32(index)}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptIPv6Mreq(int(fd), unix.IPPROTO_IPV6, opt, &mreq)
	}); err != nil {
		return err
	}
	return serr
}
