//go:build !linux

package oncrpc

import (
	"context"
	"net"
	"runtime"

	"github.com/portmapd/portmapd/netlimit"
)

// udpLoops is how many loops serve one socket, each reading a datagram
// while the others serve theirs.
func udpLoops() int { return min(runtime.GOMAXPROCS(0), 4) }

// udpServer serves a UDP socket one datagram at a time where there are
// no batches (recvmmsg, sendmmsg).
type udpServer struct {
	s        *Server
	conn     *net.UDPConn
	netid    string
	pktinfo  bool
	withheld *netlimit.LogThrottle
}

func (s *Server) newUDPServer(conn *net.UDPConn, netid string, pktinfo bool, withheld *netlimit.LogThrottle) *udpServer {
	return &udpServer{s, conn, netid, pktinfo, withheld}
}

func (u *udpServer) loop(ctx context.Context) error {
	return u.s.datagramLoop(ctx, u.conn, u.netid, u.pktinfo, u.withheld)
}
