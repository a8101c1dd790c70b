package oncrpc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/portmapd/portmapd/netlimit"
	"github.com/portmapd/portmapd/peer"
	"github.com/portmapd/portmapd/xdr"
)

// Defaults for the Server's limits.
const (
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultRecordTimeout     = 10 * time.Second
	DefaultMaxConns          = 1024
	DefaultMaxConnsPerSource = 64
	// DefaultUDPReplyRate and DefaultUDPReplyBurst are the reply-byte
	// bucket that the daemon gives each remote UDP source: enough for
	// rpcinfo -p, a GETSTAT and a few lookups at once (a burst holds a
	// whole 9000-byte reply), too little to reflect more than 4 KiB/s at
	// anyone.
	DefaultUDPReplyRate  = 4096
	DefaultUDPReplyBurst = 16384
)

// aLongTimeAgo unblocks a pending read at once when set as its deadline.
var aLongTimeAgo = time.Unix(1, 0)

// A Server serves RPC calls on UDP, TCP and local stream sockets. Its
// fields must be set before serving starts.
type Server struct {
	// Handler answers calls.
	Handler Handler
	// Accept authenticates each call before it is dispatched;
	// DefaultAccept when nil.
	Accept AcceptFunc
	// Logger receives the server's messages; nothing is logged when nil.
	Logger *slog.Logger
	// LogCalls logs every call, like rpcbind -l, within CallLog's bound
	// on each source's lines (none when nil).
	LogCalls bool
	CallLog  *netlimit.LineLimiter
	// MaxMessage is the largest call accepted and the largest datagram
	// reply sent; xdr.DefaultMaxMessage when 0.
	MaxMessage int
	// MaxFragment is the largest record fragment written on a stream;
	// MaxMessage less the record mark when 0.
	MaxFragment int
	// IdleTimeout closes a connection that sends nothing for this long
	// between calls; DefaultIdleTimeout when 0.
	IdleTimeout time.Duration
	// RecordTimeout closes a connection that has not delivered its first
	// whole record this long after it was accepted, that takes longer to
	// deliver a later record once its first byte arrived, or to take a
	// reply, so that a peer cannot hold connections by sending nothing,
	// or a byte at a time, or by not reading; DefaultRecordTimeout when
	// 0, and never more than IdleTimeout.
	RecordTimeout time.Duration
	// MaxConns caps the open connections of each stream listener;
	// DefaultMaxConns when 0. At the cap, the connection idle longest
	// (between calls) is closed to make room; when none is idle, the new
	// one is closed at once.
	MaxConns int
	// MaxConnsPerSource caps the open connections of each stream
	// listener from one source address (an IPv6 /64), the same way;
	// DefaultMaxConnsPerSource when 0. Loopback and the local socket have
	// no such cap.
	MaxConnsPerSource int
	// Budget is the descriptor budget that TCP connections share with
	// the other listeners of the process (the local socket's connections
	// are not charged to it); none when nil.
	Budget *netlimit.Budget
	// ReplyLimit, when set, withholds a UDP reply to a non-loopback
	// source whose reply-byte bucket cannot pay the reply's excess over
	// its call, so that spoofed calls cannot reflect much traffic.
	ReplyLimit *netlimit.ReplyBuckets
	// Abort re-raises a handler's panic after logging it, crashing the
	// daemon where a debugger or core dump can see it (rpcbind -a).
	Abort bool
	// Divert, when set, receives the TCP connections whose first byte
	// cannot start an RPC record (an HTTP request line), with that byte
	// still to be read. Divert owns the connection.
	Divert func(net.Conn)
	// Observer, when set, is told of every call served and every limit
	// hit, for metrics.
	Observer Observer
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (s *Server) maxMessage() int {
	if s.MaxMessage > 0 {
		return s.MaxMessage
	}
	return xdr.DefaultMaxMessage
}

func (s *Server) maxFragment() int {
	if s.MaxFragment > 0 {
		return s.MaxFragment
	}
	// libtirpc's record stream fills a send buffer of MaxMessage bytes,
	// record mark included.
	return s.maxMessage() - 4
}

func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return DefaultIdleTimeout
}

func (s *Server) recordTimeout() time.Duration {
	t := DefaultRecordTimeout
	if s.RecordTimeout > 0 {
		t = s.RecordTimeout
	}
	return min(t, s.idleTimeout())
}

func (s *Server) maxConns() int {
	if s.MaxConns > 0 {
		return s.MaxConns
	}
	return DefaultMaxConns
}

func (s *Server) maxConnsPerSource() int {
	if s.MaxConnsPerSource > 0 {
		return s.MaxConnsPerSource
	}
	return DefaultMaxConnsPerSource
}

// rpcversEnd is the length of a call up to its rpcvers: xid, msg_type,
// rpcvers.
const rpcversEnd = 12

// serve decodes msg, authenticates it and hands it to the handler. It
// reports false for a message whose header is not believed (truncated, not
// a call, an opaque_auth over 400 bytes): rpcbind answers those with
// silence and closes a stream, since its position in the stream is no
// longer known.
//
// A call of another RPC version is answered MSG_DENIED RPC_MISMATCH (low 2,
// high 2), as RFC 5531 §9 requires, whatever follows its version (whose
// layout only that version defines), and the stream stays open. Here
// portmapd departs from rpcbind, whose libtirpc drops such a call in
// silence: the reply is no longer than the call, so it reflects nothing,
// and the caller learns why it failed.
func (s *Server) serve(w replyWriter, msg []byte, c *Call) bool {
	h, args, err := xdr.DecodeCall(msg)
	if (err == nil || isHeaderError(err)) && len(msg) >= rpcversEnd && h.RPCVers != xdr.RPCVersion {
		s.logger().Debug("answered RPC_MISMATCH", "netid", c.Peer.Transport, "from", c.Peer.String(), "rpcvers", h.RPCVers)
		w.reset(xdr.OpaqueAuth{})
		_ = w.WriteReply(xdr.ReplyHeader{XID: h.XID, Stat: xdr.MsgDenied, Reject: xdr.RPCMismatch, Mismatch: xdr.Mismatch{Low: xdr.RPCVersion, High: xdr.RPCVersion}}, nil)
		if s.Observer != nil {
			c.CallHeader = h
			s.Observer.CallServed(c, w.sent(), w.deferred())
		}
		return true
	}
	if err != nil {
		s.logger().Debug("dropped undecodable message", "netid", c.Peer.Transport, "from", c.Peer.String(), "err", err)
		if s.Observer != nil {
			s.Observer.Malformed(c.Peer.Transport)
		}
		return false
	}
	c.CallHeader, c.Args, c.AuthSys = h, args, nil
	accept := s.Accept
	if accept == nil {
		accept = DefaultAccept
	}
	verf, why := accept(c)
	w.reset(verf)
	if why != xdr.AuthOK {
		_ = Deny(w, c, why)
	} else {
		if s.LogCalls {
			s.logCall(c)
		}
		s.handle(w, c)
	}
	if s.Observer != nil {
		s.Observer.CallServed(c, w.sent(), w.deferred())
	}
	return true
}

// isHeaderError reports whether DecodeCall's err is a *xdr.CallError: a
// call whose header could not be read past its xid. (Apart, so that the
// target errors.As needs is made only for a call that failed.)
func isHeaderError(err error) bool {
	var headerErr *xdr.CallError
	return errors.As(err, &headerErr)
}

// logCall logs c, unless its source has logged as many lines as CallLog
// allows; the next line it may log says how many it did not.
func (s *Server) logCall(c *Call) {
	ok, notLogged := s.CallLog.Allow(callSource(c.Peer))
	if !ok {
		return
	}
	attrs := []any{"prog", c.Prog, "vers", c.Vers, "proc", c.Proc, "netid", c.Peer.Transport, "from", c.Peer.String()}
	if notLogged > 0 {
		attrs = append(attrs, "not_logged_before", notLogged)
	}
	s.logger().Info("call", attrs...)
}

// callSource is the source whose calls CallLog bounds together: a local
// peer's uid, a network peer's address (an IPv6 /64).
func callSource(p peer.Peer) string {
	switch {
	case p.Cred != nil:
		return "uid " + strconv.FormatUint(uint64(p.Cred.UID), 10)
	case !p.Addr.IsValid():
		return "local"
	}
	if key, limited := netlimit.SourceKey(p.Addr.Addr()); limited {
		return key.String()
	}
	return p.Addr.Addr().String()
}

// limitHit tells the Observer, if any, that a peer on netid ran into
// limit and what was done.
func (s *Server) limitHit(netid, limit, action string) {
	if s != nil && s.Observer != nil {
		s.Observer.LimitHit(netid, limit, action)
	}
}

// handle runs the handler so that a panic answers SYSTEM_ERR instead of
// taking the daemon down.
func (s *Server) handle(w replyWriter, c *Call) {
	defer func() {
		if v := recover(); v != nil {
			s.logger().Error("handler panicked", "prog", c.Prog, "vers", c.Vers, "proc", c.Proc,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if s.Abort {
				panic(v)
			}
			_ = ReplyError(w, c, xdr.SystemErr)
		}
	}()
	s.Handler.ServeRPC(w, c)
}

// ServeStream answers calls on connections accepted from ln until ctx is
// done. netid names the transport in TI-RPC's terms (tcp, tcp6 or local),
// as for ServeUDP. The connections of an AF_UNIX listener are local: they
// carry the peer's kernel credentials, and have no per-source cap and no
// share of the Budget; the others are admitted within MaxConns,
// MaxConnsPerSource and the Budget (see netlimit).
func (s *Server) ServeStream(ctx context.Context, ln net.Listener, netid string) error {
	local := ln.Addr().Network() == "unix"
	lim := netlimit.New(netlimit.Config{
		Name:         netid,
		MaxConns:     s.maxConns(),
		MaxPerSource: s.maxConnsPerSource(),
		Local:        local,
		Budget:       s.Budget,
		Logger:       s.logger(),
		Observer:     s.Observer,
	})
	defer lim.Close()
	// A peer may announce a record over the limit on every connection it
	// opens: the log counts those it resets rather than lines for each.
	resets := netlimit.NewLogThrottle(s.logger(), slog.LevelWarn, "connections reset: record too large", 0, "netid", netid)
	defer resets.Flush()
	lln := netlimit.NewListener(ln, lim)
	var (
		mu    sync.Mutex
		conns = make(map[net.Conn]struct{})
		wg    sync.WaitGroup
	)
	// On stop, reads and writes under way end at once: a client that
	// reads none of its replies must not hold up the daemon's exit.
	stop := context.AfterFunc(ctx, func() {
		_ = lln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.SetDeadline(aLongTimeAgo)
		}
		mu.Unlock()
	})
	defer stop()
	defer wg.Wait()
	for {
		c, slot, err := lln.AcceptSlot()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("oncrpc: %s accept: %w", netid, err)
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			diverted := s.serveConn(ctx, c, slot, netid, local, resets)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			if !diverted {
				_ = c.Close()
			}
			slot.Release()
		}()
	}
}

// serveConn answers the calls of one connection, marking slot busy while
// it reads or answers a call and idle between calls, and notes in resets
// a reset for a record over the limit. It reports whether the connection
// was handed to Divert, which then owns it.
func (s *Server) serveConn(ctx context.Context, conn net.Conn, slot *netlimit.Slot, netid string, local bool, resets *netlimit.LogThrottle) (diverted bool) {
	p, err := peer.FromConn(conn)
	if err != nil {
		s.logger().Warn("local connection without peer credentials", "err", err)
	}
	p.Transport = netid
	c := Call{Peer: p}
	idle, record := s.idleTimeout(), s.recordTimeout()
	br := bufio.NewReaderSize(conn, 4096)
	rr := xdr.NewRecordReader(br, s.maxMessage())
	w := &streamWriter{conn: conn, maxFragment: s.maxFragment()}
	// The first record must be whole within the record timeout of the
	// accept; a peer that sends nothing is not worth the idle timeout.
	_ = conn.SetReadDeadline(time.Now().Add(record))
	for first := true; ; first = false {
		if !first {
			slot.Idle()
			_ = conn.SetReadDeadline(time.Now().Add(idle))
		}
		// Checked after the deadline is set: a cancellation from now on
		// sets the deadline in the past itself.
		if ctx.Err() != nil {
			return false
		}
		next, err := br.Peek(1)
		if err != nil {
			s.connEnded(ctx, conn, &c, err, resets)
			return false
		}
		if !slot.Busy() {
			// Evicted to make room just as a call arrived.
			return false
		}
		if first && s.Divert != nil && !local && startsHTTPMethod(next[0]) {
			// The HTTP server admits it within its own limits.
			slot.Release()
			s.Divert(&peekedConn{Conn: conn, r: br})
			return true
		}
		if !first {
			_ = conn.SetReadDeadline(time.Now().Add(record))
		}
		msg, err := rr.Next()
		if err != nil {
			s.connEnded(ctx, conn, &c, err, resets)
			return false
		}
		// A peer that does not take its reply holds the connection busy,
		// out of eviction's reach: no longer than a record may take.
		_ = conn.SetWriteDeadline(time.Now().Add(record))
		if ctx.Err() != nil || !s.serve(w, msg, &c) {
			return false
		}
		if w.failed != nil {
			s.logger().Debug("closing connection: reply not sent", "netid", netid, "from", c.Peer.String(), "err", w.failed)
			return false
		}
	}
}

// connEnded logs why reading a connection stopped, and resets it when the
// peer sent a record over the limit, counting that in resets.
func (s *Server) connEnded(ctx context.Context, conn net.Conn, c *Call, err error, resets *netlimit.LogThrottle) {
	var tooLarge *xdr.RecordTooLargeError
	switch {
	case errors.As(err, &tooLarge):
		s.logger().Debug("resetting connection: record too large", "netid", c.Peer.Transport, "from", c.Peer.String(), "err", err)
		resets.Note("reset")
		s.limitHit(c.Peer.Transport, netlimit.LimitRecordSize, netlimit.ActionReset)
		// Reset rather than close, as rpcbind does: the rest of the
		// record is never read, and the peer learns at once.
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	case errors.Is(err, io.EOF), ctx.Err() != nil:
	default:
		s.logger().Debug("closing connection", "netid", c.Peer.Transport, "from", c.Peer.String(), "err", err)
	}
}

// startsHTTPMethod reports whether b can begin an HTTP request line, whose
// method is upper-case ASCII. A record mark starting with such a byte
// would announce a fragment of over a gigabyte, which no portmapper call
// is; anything else, however malformed, is treated as RPC so that the
// record limits apply to it.
func startsHTTPMethod(b byte) bool { return 'A' <= b && b <= 'Z' }

// peekedConn is a connection whose first bytes were read ahead.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
