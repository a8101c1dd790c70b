package lifetime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Definitions of linux/inet_diag.h for the owner.
const (
	inetDiagMsgUID = 64 // idiag_uid in struct inet_diag_msg
	tcpListen      = 10 // TCP_LISTEN
	// inetDiagNoCookie is INET_DIAG_NOCOOKIE: look the socket up by its
	// addresses alone.
	inetDiagNoCookie = ^uint32(0)
)

// ErrNotFound reports a connection whose listener ConnOwner could not find
// on this host.
var ErrNotFound = errors.New("no such listening socket on this host")

// ConnOwner returns the uid owning the listening socket that c, a TCP
// connection this process made to a port of this host in its own network
// namespace, reached: the user who opened the service's listening socket,
// whoever registered the port. The listener is looked up as the kernel
// chose it for c, by the address and port c connected to (sock_diag, as ss
// does). Its owner, unlike that of the connection it accepted (which
// becomes the accepting process's user once accepted), does not change.
func ConnOwner(c net.Conn) (uint32, error) {
	remote := addrPort(c.RemoteAddr())
	if !remote.IsValid() {
		return 0, fmt.Errorf("lifetime: owner of %v: not a TCP connection", c.RemoteAddr())
	}
	fd, err := openSockDiag()
	if err != nil {
		return 0, fmt.Errorf("lifetime: owner of %v: %w", remote, err)
	}
	defer unix.Close(fd)
	dc := diagConn{fd: fd, buf: make([]byte, 4096)}
	uid, err := dc.listenerOwner(remote)
	if err != nil {
		return 0, fmt.Errorf("lifetime: owner of %v: %w", remote, err)
	}
	return uid, nil
}

// listenerOwner asks for the socket that a connection from nowhere
// (the zero address and port, which no connection has) to addr would
// reach: the kernel looks for a connection with those addresses, finds
// none, and answers with the listener that would accept it.
func (c *diagConn) listenerOwner(addr netip.AddrPort) (uint32, error) {
	d := diagDump{unix.AF_INET6, unix.IPPROTO_TCP}
	if addr.Addr().Is4() {
		d.family = unix.AF_INET
	}
	id := inetDiagSockID{Cookie: [2]uint32{inetDiagNoCookie, inetDiagNoCookie}}
	binary.BigEndian.PutUint16(id.SPort[:], addr.Port())
	putAddr(id.Src[:], addr.Addr())
	body := inetDiagReqV2{Family: d.family, Protocol: d.protocol, States: ^uint32(0), ID: id}
	c.seq++
	hdr := unix.NlMsghdr{
		Len:   uint32(unix.SizeofNlMsghdr + binary.Size(body)),
		Type:  unix.SOCK_DIAG_BY_FAMILY,
		Flags: unix.NLM_F_REQUEST | unix.NLM_F_ACK,
		Seq:   c.seq,
	}
	req, err := binary.Append(make([]byte, 0, hdr.Len), binary.NativeEndian, hdr)
	if err == nil {
		req, err = binary.Append(req, binary.NativeEndian, body)
	}
	if err != nil {
		return 0, err
	}
	if err := c.send(req); err != nil {
		return 0, err
	}
	var uid uint32
	found := false
	// The answer is the socket, if there is one, then the
	// acknowledgement (NLM_F_ACK) that ends it.
	r := diagReply{dump: d, seq: c.seq, visit: func(p []byte) error {
		if len(p) < sizeofInetDiagMsg {
			return malformed("inet_diag_msg of %d bytes", len(p))
		}
		if p[inetDiagMsgState] != tcpListen {
			return malformed("the listener of %v is in TCP state %d", addr, p[inetDiagMsgState])
		}
		found = true
		uid = binary.NativeEndian.Uint32(p[inetDiagMsgUID:])
		return nil
	}}
	for !r.done {
		b, err := c.recv()
		if err != nil {
			return 0, err
		}
		if err := r.parse(b); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return 0, ErrNotFound
			}
			return 0, err
		}
	}
	if !found {
		return 0, ErrNotFound
	}
	return uid, nil
}

// putAddr writes a as inet_diag_sockid holds it: IPv4 in the first four
// bytes, IPv6 in all sixteen.
func putAddr(b []byte, a netip.Addr) {
	if a.Is4() {
		v4 := a.As4()
		copy(b, v4[:])
		return
	}
	v6 := a.As16()
	copy(b, v6[:])
}

// addrPort is a's IP address and port, IPv4 unmapped; the zero AddrPort
// when a is not TCP.
func addrPort(a net.Addr) netip.AddrPort {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	ap := ta.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
