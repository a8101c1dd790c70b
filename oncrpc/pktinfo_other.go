//go:build !linux

package oncrpc

import (
	"net"
	"net/netip"
)

// enablePacketInfo reports false: only Linux's IP_PKTINFO is used, so
// elsewhere a reply to a call on a wildcard-bound socket leaves from the
// address the kernel chooses.
func enablePacketInfo(*net.UDPConn) bool { return false }

// packetDestination is never called without packet information.
func packetDestination([]byte) (dst, src netip.Addr, ok bool) {
	return netip.Addr{}, netip.Addr{}, false
}

// unsendableSource is never called without a source.
func unsendableSource(error) bool { return false }

// replySourceOOB adds nothing.
func replySourceOOB(oob []byte, _ netip.Addr) []byte { return oob }
