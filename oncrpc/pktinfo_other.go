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
func packetDestination([]byte) (netip.Addr, bool) { return netip.Addr{}, false }

// replySourceOOB adds nothing.
func replySourceOOB(oob []byte, _ netip.Addr) []byte { return oob }
