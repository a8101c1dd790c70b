package oncrpc

import (
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

// packetDestination finds the destination address in a datagram's
// control messages.
func packetDestination(oob []byte) (netip.Addr, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.Addr{}, false
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo: ifindex, spec_dst, addr; addr is the
			// header's destination.
			var a [4]byte
			copy(a[:], m.Data[8:12])
			return netip.AddrFrom4(a), true
		case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= unix.SizeofInet6Pktinfo:
			var a [16]byte
			copy(a[:], m.Data[:16])
			return netip.AddrFrom16(a), true
		}
	}
	return netip.Addr{}, false
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
