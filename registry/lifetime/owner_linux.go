package lifetime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Definitions of linux/inet_diag.h and linux/tcp_states.h for the owner.
const (
	inetDiagMsgUID = 64 // idiag_uid in struct inet_diag_msg
	tcpSynRecv     = 3  // TCP_SYN_RECV: a connection not accepted yet
	// inetDiagNoCookie is INET_DIAG_NOCOOKIE: look the socket up by its
	// addresses alone.
	inetDiagNoCookie = ^uint32(0)
)

// ErrNotFound reports a connection whose other end ConnOwner could not
// find on this host.
var ErrNotFound = errors.New("no such socket on this host")

// ConnOwner returns the uid owning the socket at the other end of c, a TCP
// connection this process made to a port of this host in its own network
// namespace. The kernel gives that socket the owner of the listening
// socket it came from, and once the service accepts it, the user of the
// process that accepted it: either way the service's user, whoever
// registered the port. The socket is looked up by its addresses
// (sock_diag, as ss does) once the kernel has completed the connection:
// until then (wait at most) it is half-open and has no owner to tell.
func ConnOwner(c net.Conn, wait time.Duration) (uint32, error) {
	local, remote := addrPort(c.LocalAddr()), addrPort(c.RemoteAddr())
	if !local.IsValid() || !remote.IsValid() {
		return 0, fmt.Errorf("lifetime: owner of %v: not a TCP connection", c.RemoteAddr())
	}
	fd, err := openSockDiag()
	if err != nil {
		return 0, fmt.Errorf("lifetime: owner of %v: %w", remote, err)
	}
	defer unix.Close(fd)
	dc := diagConn{fd: fd, buf: make([]byte, 4096)}
	deadline := time.Now().Add(wait)
	for pause := time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		uid, state, err := dc.owner(local, remote)
		switch {
		case err != nil && !errors.Is(err, ErrNotFound):
			return 0, fmt.Errorf("lifetime: owner of %v: %w", remote, err)
		case err == nil && state != tcpSynRecv:
			return uid, nil
		case time.Now().After(deadline):
			if err != nil {
				return 0, fmt.Errorf("lifetime: owner of %v: %w", remote, err)
			}
			return 0, fmt.Errorf("lifetime: owner of %v: connection not accepted yet", remote)
		}
		time.Sleep(pause)
	}
}

// owner asks for the one socket whose own address is remote and whose
// peer is local, and returns its owner and TCP state.
func (c *diagConn) owner(local, remote netip.AddrPort) (uid uint32, state uint8, err error) {
	d := diagDump{unix.AF_INET6, unix.IPPROTO_TCP}
	if remote.Addr().Is4() {
		d.family = unix.AF_INET
	}
	id := inetDiagSockID{If: 0, Cookie: [2]uint32{inetDiagNoCookie, inetDiagNoCookie}}
	binary.BigEndian.PutUint16(id.SPort[:], remote.Port())
	binary.BigEndian.PutUint16(id.DPort[:], local.Port())
	putAddr(id.Src[:], remote.Addr())
	putAddr(id.Dst[:], local.Addr())
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
		return 0, 0, err
	}
	if err := c.send(req); err != nil {
		return 0, 0, err
	}
	found := false
	// The answer is the socket, if there is one, then the
	// acknowledgement (NLM_F_ACK) that ends it.
	r := diagReply{dump: d, seq: c.seq, visit: func(p []byte) error {
		if len(p) < sizeofInetDiagMsg {
			return malformed("inet_diag_msg of %d bytes", len(p))
		}
		found = true
		state = p[inetDiagMsgState]
		uid = binary.NativeEndian.Uint32(p[inetDiagMsgUID:])
		return nil
	}}
	for !r.done {
		b, err := c.recv()
		if err != nil {
			return 0, 0, err
		}
		if err := r.parse(b); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return 0, 0, ErrNotFound
			}
			return 0, 0, err
		}
	}
	if !found {
		return 0, 0, ErrNotFound
	}
	return uid, state, nil
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
