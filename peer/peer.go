// Package peer says who is at the other end of a request, as the socket it
// came through tells it: the addresses of an IP peer, and the kernel's
// account of the process behind a local (AF_UNIX) socket. It knows nothing
// of what a server does with that: each face of the daemon turns a Peer
// into the registry's idea of a caller.
//
// What only Linux can tell (SO_PEERCRED, the network namespace cookie,
// SO_PEERPIDFD) lives in its _linux files; elsewhere those report
// ErrNoCred, and the rest of the package works as on Linux.
package peer

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// A Peer is the sender of a request as its socket tells it.
type Peer struct {
	// Transport names the transport the request came through: Go's name
	// for the socket's network ("tcp", "udp", "unix") as FromConn sets
	// it, unless the server that received the request names its
	// transports otherwise (the RPC server names them by the netid it
	// serves, such as udp6 or local).
	Transport string
	// Addr is the sender's address and port, for IP transports. An IPv4
	// sender on an IPv6 socket is given as plain IPv4.
	Addr netip.AddrPort
	// Local is the address the request arrived at, for IP transports.
	Local netip.AddrPort
	// Cred is the kernel's account of the sending process, for a local
	// socket that carries one; nil otherwise.
	Cred *Cred
}

// Cred is the kernel's account of the process at the other end of a local
// socket, as it was when that process connected (SO_PEERCRED).
type Cred struct {
	UID, GID uint32
	PID      int32
	// NetNS is the cookie of the process's network namespace, 0 when the
	// kernel does not tell it.
	NetNS uint64
}

// ErrNoCred reports a connection that carries no peer credentials.
var ErrNoCred = errors.New("peer: connection has no peer credentials")

// FromConn returns what c tells of its peer: for an IP connection the
// addresses of both ends, for an AF_UNIX connection the credentials of the
// process that connected. The credentials are read now, which is what the
// kernel recorded at connect time (SO_PEERCRED describes the connecting
// process, not whoever holds the socket later). The error concerns the
// credentials alone: when they cannot be read, the Peer returned holds the
// rest.
func FromConn(c net.Conn) (Peer, error) {
	var p Peer
	switch a := c.LocalAddr().(type) {
	case nil:
		return p, nil
	case *net.UnixAddr:
		p.Transport = a.Network()
		cred, err := Credentials(c)
		if err != nil {
			return p, err
		}
		p.Cred = &cred
		return p, nil
	default:
		p.Transport = a.Network()
	}
	p.Addr = AddrPort(c.RemoteAddr())
	p.Local = AddrPort(c.LocalAddr())
	return p, nil
}

// AddrPort returns the IP address and port of a, with an IPv4-mapped IPv6
// address turned into plain IPv4 (net.TCPAddr keeps IPv4 peers of an
// AF_INET6 socket in 16-byte form); the zero AddrPort when a is not an IP
// address.
func AddrPort(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
	case *net.TCPAddr:
		ap = a.AddrPort()
	case nil:
	default:
		ap, _ = netip.ParseAddrPort(a.String())
	}
	return Unmap(ap)
}

// Unmap turns an IPv4-mapped IPv6 address into plain IPv4.
func Unmap(ap netip.AddrPort) netip.AddrPort {
	if ap.Addr().Is4In6() {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return ap
}

// String names the peer for a log line: the process behind a local
// socket, else the address, else the transport.
func (p Peer) String() string {
	switch {
	case p.Cred != nil:
		return fmt.Sprintf("pid %d uid %d", p.Cred.PID, p.Cred.UID)
	case p.Addr.IsValid():
		return p.Addr.String()
	}
	return p.Transport
}
