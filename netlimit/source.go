// Package netlimit bounds what network peers can take from a server: open
// connections per listener and per source address, a budget of file
// descriptors shared by every listener, and reply bytes per source. It
// knows nothing of the protocols it guards; rpcbind and httpmap both use it.
package netlimit

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
)

// SourceKey returns the block of addresses that per-source limits count
// a as one peer: the address itself for IPv4, its /64 for IPv6 (the
// smallest block a site is given, from which one host could otherwise
// draw countless addresses). It reports false for the addresses that are
// never limited: loopback, which only local users reach (and any of them
// has all of 127/8 and the local sockets anyway), and an invalid address,
// which is what an AF_UNIX peer has.
func SourceKey(a netip.Addr) (netip.Prefix, bool) {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() {
		return netip.Prefix{}, false
	}
	if a.Is4() {
		return netip.PrefixFrom(a, 32), true
	}
	p, _ := a.WithZone("").Prefix(64)
	return p, true
}

// remoteAddr returns the peer's IP address, or the zero Addr for a peer
// that has none (AF_UNIX).
func remoteAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// IsTemporary reports whether err, from accept or a datagram read, is a
// condition to wait out rather than the end of the socket: descriptors or
// buffers exhausted, or a peer that gave up before it was accepted.
func IsTemporary(err error) bool {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
			syscall.ECONNABORTED, syscall.EINTR, syscall.EAGAIN, syscall.ECONNREFUSED:
			return true
		}
	}
	return false
}

// outOfDescriptors reports whether err says the process or the system has
// no descriptor left.
func outOfDescriptors(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}
