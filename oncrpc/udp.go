package oncrpc

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/portmapd/portmapd/netlimit"
	"github.com/portmapd/portmapd/peer"
)

// ServeUDP answers calls arriving on conn until ctx is done. netid names
// the transport in TI-RPC's terms (udp or udp6): it is the Transport of
// each call's Peer, and names the transport in the log. Replies leave
// from the address each call arrived at, even when conn is bound to a
// wildcard address (from the receiving interface's address for a call sent
// to a broadcast or multicast address).
//
// On Linux one loop serves the socket, reading the datagrams and sending
// the replies in batches, up to udpBatch of each per system call
// (recvmmsg and sendmmsg): a reply leaves once every call read with its
// own has been served. A lookup (GETPORT, GETADDR with AUTH_NONE) is
// answered without allocating. Elsewhere min(GOMAXPROCS, 4) loops serve
// it, a datagram at a time.
func (s *Server) ServeUDP(ctx context.Context, conn *net.UDPConn, netid string) error {
	pktinfo := enablePacketInfo(conn)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(aLongTimeAgo) })
	defer stop()
	withheld := netlimit.NewLogThrottle(s.logger(), slog.LevelWarn, "UDP replies withheld: reply-byte rate limit", 0, "netid", netid)
	defer withheld.Flush()
	workers := udpLoops()
	errs := make(chan error, workers)
	for range workers {
		go func() {
			u := s.newUDPServer(conn, netid, pktinfo, withheld)
			errs <- u.loop(ctx)
		}()
	}
	var first error
	for range workers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// readError is what a UDP serving loop makes of a failed read: nil to
// stop (the context is done), errRetry to read again, or the error that
// ends serving.
func (s *Server) readError(ctx context.Context, netid string, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	if netlimit.IsTemporary(err) {
		return errRetry
	}
	return fmt.Errorf("oncrpc: %s read: %w", netid, err)
}

// errRetry tells a UDP serving loop to read again.
var errRetry = fmt.Errorf("oncrpc: read again")

// serveDatagram serves one datagram of n bytes, received in msg (which
// holds at most the limit and one byte more, so that a datagram over the
// limit shows), from the address from, with its control messages oob,
// answering through w with c, both reused from one datagram to the next.
func (s *Server) serveDatagram(w *datagramWriter, c *Call, msg []byte, n int, from netip.AddrPort, oob []byte, pktinfo bool, local netip.AddrPort) {
	if n > w.limit {
		s.logger().Debug("dropped oversized datagram", "netid", w.netid, "from", from, "limit", w.limit)
		s.limitHit(w.netid, netlimit.LimitMessageSize, netlimit.ActionDropped)
		return
	}
	*c = Call{Peer: peer.Peer{Transport: w.netid, Addr: peer.Unmap(from), Local: local}}
	w.oob = w.oob[:0]
	if pktinfo {
		if dst, src, ok := packetDestination(oob); ok {
			c.Peer.Local = netip.AddrPortFrom(dst, local.Port())
			if src.IsValid() {
				w.oob = replySourceOOB(w.oob, src)
			}
		}
	}
	w.to, w.callLen, w.queued = from, n, false
	s.serve(w, msg[:n], c)
}

// newDatagramWriter returns a writer of replies to calls on conn.
func (s *Server) newDatagramWriter(conn *net.UDPConn, netid string, withheld *netlimit.LogThrottle) *datagramWriter {
	return &datagramWriter{conn: conn, limit: s.maxMessage(), replyLimit: s.ReplyLimit, withheld: withheld, srv: s, netid: netid, oob: make([]byte, 0, 64)}
}

// datagramLoop serves conn one datagram per read and one reply per
// write: where the system has no batches, and where conn does not give
// its descriptor.
func (s *Server) datagramLoop(ctx context.Context, conn *net.UDPConn, netid string, pktinfo bool, withheld *netlimit.LogThrottle) error {
	// One byte more than the limit tells an oversized datagram from one
	// that fits exactly.
	buf := make([]byte, s.maxMessage()+1)
	oob := make([]byte, 256)
	w := s.newDatagramWriter(conn, netid, withheld)
	c := new(Call)
	local := peer.AddrPort(conn.LocalAddr())
	for {
		n, oobn, _, from, err := conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			switch err := s.readError(ctx, netid, err); err {
			case errRetry:
				continue
			default:
				return err
			}
		}
		s.serveDatagram(w, c, buf, n, from, oob[:oobn], pktinfo, local)
	}
}
