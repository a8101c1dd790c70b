package oncrpc

import (
	"errors"
	"net"
	"net/netip"

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
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.Addr{}, netip.Addr{}, false
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo: ifindex, spec_dst, addr.
			var a, spec [4]byte
			copy(spec[:], m.Data[4:8])
			copy(a[:], m.Data[8:12])
			dst, src := netip.AddrFrom4(a), netip.AddrFrom4(spec)
			if src.IsUnspecified() {
				src = dst
			}
			return dst, src, true
		case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= unix.SizeofInet6Pktinfo:
			var a [16]byte
			copy(a[:], m.Data[:16])
			dst := netip.AddrFrom16(a)
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
// datagram from src.
func replySourceOOB(oob []byte, src netip.Addr) []byte {
	if src.Is4() {
		info := unix.Inet4Pktinfo{Spec_dst: src.As4()}
		return append(oob, unix.PktInfo4(&info)...)
	}
	info := unix.Inet6Pktinfo{Addr: src.As16()}
	return append(oob, unix.PktInfo6(&info)...)
}
