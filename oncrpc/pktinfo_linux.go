package oncrpc

import (
	"errors"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// enablePacketInfo asks the kernel to report each datagram's destination
// address when conn is bound to a wildcard address, so that a reply can
// leave from the address the call was sent to: a client that called
// 127.0.0.1 or one of several interface addresses drops a reply from any
// other. It reports whether destinations will be reported.
func enablePacketInfo(conn *net.UDPConn) bool {
	la, ok := conn.LocalAddr().(*net.UDPAddr)
	if !ok || !la.IP.IsUnspecified() {
		return false
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		if la.IP.To4() != nil {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		}
	})
	return err == nil && serr == nil
}

// packetDestination finds, in a datagram's control messages, the address
// the datagram was sent to (the header's destination) and the address a
// reply to it is to leave from: the local address the kernel names for
// answering it (in_pktinfo's ipi_spec_dst, which libtirpc's svc_dg sends
// back the same way), which for a datagram sent to a broadcast address is
// the address of the interface that received it, since no datagram can
// leave from a broadcast address. The kernel sometimes leaves it 0.0.0.0
// (for the first datagram from another of the host's addresses over
// loopback, say); the destination is the source then, and sendDatagram
// deals with one that cannot be. A datagram sent to an IPv6 multicast
// group gets no source (src is the zero Addr), and the kernel takes the
// address of the link the reply goes out on.
func packetDestination(oob []byte) (dst, src netip.Addr, ok bool) {
	// One message at a time: ParseSocketControlMessage would allocate
	// a slice of them for every datagram.
	for len(oob) >= unix.SizeofCmsghdr {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			return netip.Addr{}, netip.Addr{}, false
		}
		oob = rest
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo: ifindex, spec_dst, addr.
			dst, src := netip.AddrFrom4([4]byte(data[8:12])), netip.AddrFrom4([4]byte(data[4:8]))
			if src.IsUnspecified() {
				src = dst
			}
			return dst, src, true
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			dst := netip.AddrFrom16([16]byte(data[:16]))
			if dst.IsMulticast() {
				return dst, netip.Addr{}, true
			}
			return dst, dst, true
		}
	}
	return netip.Addr{}, netip.Addr{}, false
}

// unsendableSource reports whether err says that a datagram cannot leave
// from the source its control message named: not an address of this host
// (a broadcast address the kernel did not replace by the interface's).
func unsendableSource(err error) bool {
	return errors.Is(err, unix.ENETUNREACH) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EADDRNOTAVAIL)
}

// replySourceOOB appends the control message that makes the kernel send a
// datagram from src, in place when oob has room (the serving loops give
// it room, so that a reply allocates nothing).
func replySourceOOB(oob []byte, src netip.Addr) []byte {
	level, typ, size := unix.IPPROTO_IP, unix.IP_PKTINFO, unix.SizeofInet4Pktinfo
	if !src.Is4() {
		level, typ, size = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, unix.SizeofInet6Pktinfo
	}
	start := len(oob)
	oob = append(oob, make([]byte, unix.CmsgSpace(size))...)
	b := oob[start:]
	h := unix.Cmsghdr{Level: int32(level), Type: int32(typ)}
	h.SetLen(unix.CmsgLen(size))
	copy(b, unsafe.Slice((*byte)(unsafe.Pointer(&h)), unix.SizeofCmsghdr))
	data := b[unix.CmsgLen(0):]
	if src.Is4() {
		// struct in_pktinfo: ifindex, spec_dst, addr.
		a := src.As4()
		copy(data[4:8], a[:])
	} else {
		// struct in6_pktinfo: addr, ifindex.
		a := src.As16()
		copy(data[:16], a[:])
	}
	return oob
}
