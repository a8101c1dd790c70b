package rpcbind

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/netlimit"
	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/peer"
	"github.com/portmapd/portmapd/xdr"
)

// Defaults of remote-call forwarding.
const (
	// DefaultMaxForwards is how many forwarded calls may wait for their
	// answers at once, as rpcbind's NFORWARD: past it, the call waiting
	// longest gives up its place.
	DefaultMaxForwards = 64
	// DefaultForwardTimeout is how long a forwarded call waits for its
	// answer, as rpcbind's MAXTIME_OFF; an answer later than that is
	// dropped.
	DefaultForwardTimeout = 5 * time.Minute
	// DefaultForwardRate and DefaultForwardBurst are the calls a second,
	// and at once, that one remote source (an IPv6 /64) may have
	// forwarded: rpcinfo -b sends two per round, ypbind one every few
	// seconds, a flood thousands.
	DefaultForwardRate  = 4
	DefaultForwardBurst = 16
	// DefaultForwardReplyRatio is how many times larger than the call that
	// asked for it a forwarded answer to a remote caller may be. A NULL
	// broadcast's answer is smaller than its call; the cap keeps a spoofed
	// call from reflecting a service's large answer at its victim.
	DefaultForwardReplyRatio = 2
)

// Programs that trust callers on this host, whose trust a forwarded call,
// which comes from the loopback address with the caller's credential,
// would borrow. illumos's rpcbind refuses them besides check_callit's
// list.
const (
	progKeyserv = 100029
	progAutofs  = 100099
)

// DefaultForwardDeny returns the programs a Forwarder refuses to call by
// default, on top of rpcbind's check_callit list: keyserv and the
// automounter (autofs), as illumos's rpcbind does.
func DefaultForwardDeny() []uint32 { return []uint32{progKeyserv, progAutofs} }

// maxAnswer is the largest answer a service's datagram can carry.
const maxAnswer = 65535

// acceptedReplyLen is the length of an accepted reply's header with an
// AUTH_NONE verifier, which forwarded answers carry: xid, msg_type,
// reply_stat, verifier flavour and length, accept_stat.
const acceptedReplyLen = 6 * 4

// ForwardConfig configures a Forwarder. Zero values take the defaults or,
// for the limits a nil or zero value turns off, none.
type ForwardConfig struct {
	// MaxPending bounds the forwarded calls waiting for their answers;
	// DefaultMaxForwards when 0.
	MaxPending int
	// Timeout is how long a forwarded call waits for its answer;
	// DefaultForwardTimeout when 0.
	Timeout time.Duration
	// Rate, when set, limits the calls each remote source has forwarded,
	// one token a call; loopback callers are not limited.
	Rate *netlimit.SourceBuckets
	// ReplyRatio, when positive, drops a forwarded answer to a remote
	// caller that is more than ReplyRatio times the size of its call.
	ReplyRatio int
	// Deny lists programs never called on a caller's behalf, any
	// procedure but NULL, besides those rpcbind refuses (check_callit),
	// which are always refused; a call to one is refused as those are.
	// Nil refuses only rpcbind's; DefaultForwardDeny is portmapd's
	// default.
	Deny []uint32
	// Logger receives the forwarder's messages; nothing is logged when
	// nil.
	Logger *slog.Logger
}

// A Forwarder makes the remote calls (CALLIT, BCAST, INDIRECT) that a
// Portmapper accepts on a caller's behalf, to services on this host, and
// relays their answers, as rpcbind built with remote calls does: each call
// goes out over UDP with a fresh xid from a socket of the caller's address
// family, and its answer goes back to the caller with the caller's xid,
// from the address and port the call arrived at (oncrpc.Defer). The
// serving loop never waits for an answer: a goroutine per socket reads the
// answers and matches them to the calls waiting, of which there are at
// most MaxPending.
//
// Its sockets are bound to the loopback addresses, so nothing off the host
// can send to them, and it only ever calls addresses of this host (see
// Portmapper.forwardTarget).
type Forwarder struct {
	maxPending int
	timeout    time.Duration
	rate       *netlimit.SourceBuckets
	replyRatio int
	deny       []uint32
	log        *slog.Logger
	// dropped counts the calls and answers dropped that a peer can cause
	// at will, in a few log lines.
	dropped *netlimit.LogThrottle

	v4, v6 *net.UDPConn
	wg     sync.WaitGroup

	mu      sync.Mutex
	pending []forwarded
	lastXID uint32
}

// A forwarded call waiting for its answer.
type forwarded struct {
	active bool
	// xid is the forwarded call's, to which the answer must reply;
	// target is where it went, from where the answer must come.
	xid    uint32
	target netip.AddrPort
	// at is when it was forwarded, or last asked for again.
	at time.Time
	// What identifies the caller's call, to tell a retransmission.
	callerXID, proc, vers uint32
	caller                netip.AddrPort
	// uaddr is the service's address as the caller can reach it, which
	// the answer carries; callLen the size of the caller's call; limited
	// says the caller is remote, so that ReplyRatio applies.
	uaddr   string
	callLen int
	limited bool
	// reply answers the caller.
	reply oncrpc.ReplyWriter
}

func (f *forwarded) indirect() bool { return f.proc == xdr.RpcbProcIndirect }

// OpenForwarder opens the sockets that remote calls are forwarded from, an
// ephemeral port on 127.0.0.1 and one on ::1 (not on a host without IPv6
// loopback, whose udp6 calls are then not forwarded), and starts reading
// the answers that come back to them. Close stops it.
func OpenForwarder(cfg ForwardConfig) (*Forwarder, error) {
	f := &Forwarder{
		maxPending: cfg.MaxPending,
		timeout:    cfg.Timeout,
		rate:       cfg.Rate,
		replyRatio: cfg.ReplyRatio,
		deny:       slices.Clone(cfg.Deny),
		log:        cfg.Logger,
		lastXID:    rand.Uint32(),
	}
	if f.maxPending <= 0 {
		f.maxPending = DefaultMaxForwards
	}
	if f.timeout <= 0 {
		f.timeout = DefaultForwardTimeout
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	f.dropped = netlimit.NewLogThrottle(f.log, slog.LevelInfo, "remote calls not forwarded or not answered", 0)
	f.pending = make([]forwarded, f.maxPending)
	var err error
	if f.v4, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		return nil, fmt.Errorf("rpcbind: socket for forwarded calls: %w", err)
	}
	if f.v6, err = net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback}); err != nil {
		f.log.Warn("udp6 remote calls will not be forwarded: no IPv6 loopback socket", "err", err)
		f.v6 = nil
	}
	for _, conn := range []*net.UDPConn{f.v4, f.v6} {
		if conn != nil {
			f.wg.Add(1)
			go f.readAnswers(conn)
		}
	}
	return f, nil
}

// Close closes the forwarder's sockets and waits for its goroutines. Calls
// still waiting get no answer.
func (f *Forwarder) Close() error {
	var errs []error
	for _, conn := range []*net.UDPConn{f.v4, f.v6} {
		if conn != nil {
			errs = append(errs, conn.Close())
		}
	}
	f.wg.Wait()
	f.dropped.Flush()
	return errors.Join(errs...)
}

// A forwardRequest is what a Portmapper hands its Forwarder: the caller's
// call and where the service it names is. Its arguments alias the
// server's buffer: forward sends them before the handler returns.
type forwardRequest struct {
	c *oncrpc.Call
	// proc and vers are the portmapper's procedure and version called.
	proc, vers uint32
	args       xdr.CallArgs
	// target is where the service listens, an address of this host;
	// uaddr is that address as the caller can reach it.
	target netip.AddrPort
	uaddr  string
}

// forward sends r's call to its service and leaves the answer to the
// goroutine that reads them; w is the caller's reply writer. It answers
// nothing itself but INDIRECT's errors: a call it drops (the source over
// its rate, a retransmission of a call still waiting, a credential it
// cannot pass on) gets silence, as from rpcbind.
func (f *Forwarder) forward(w oncrpc.ReplyWriter, r forwardRequest) {
	c := r.c
	indirect := r.proc == xdr.RpcbProcIndirect
	now := time.Now()
	if !f.rate.Take(c.Peer.Addr.Addr(), 1, now) {
		f.dropped.Note("source over its rate")
		return
	}
	cred, ok := forwardedCred(c, now)
	if !ok {
		// rpcbind passes AUTH_NONE and AUTH_SYS only.
		if indirect {
			_ = oncrpc.Deny(w, c, xdr.AuthTooWeak)
		}
		return
	}
	conn := f.v4
	if r.target.Addr().Is6() {
		conn = f.v6
	}
	reply, deferred := oncrpc.Defer(w)
	if conn == nil || !deferred {
		if indirect {
			_ = oncrpc.ReplyError(w, c, xdr.SystemErr)
		}
		return
	}
	_, limited := netlimit.SourceKey(c.Peer.Addr.Addr())
	xid, ok := f.register(forwarded{
		target:    r.target,
		callerXID: c.XID,
		proc:      r.proc,
		vers:      r.vers,
		caller:    c.Peer.Addr,
		uaddr:     r.uaddr,
		callLen:   callLen(c),
		limited:   limited,
		reply:     reply,
	}, now)
	if !ok {
		f.dropped.Note("retransmission of a call still waiting")
		return
	}
	var e xdr.Encoder
	h := xdr.CallHeader{XID: xid, RPCVers: xdr.RPCVersion, Prog: r.args.Prog, Vers: r.args.Vers, Proc: r.args.Proc, Cred: cred}
	h.Encode(&e)
	e.FixedOpaque(r.args.Args)
	if _, err := conn.WriteToUDPAddrPort(e.Bytes(), r.target); err != nil {
		f.log.Debug("cannot forward a remote call", "to", r.target, "err", err)
		if s, ok := f.take(xid, r.target, now); ok && s.indirect() {
			_ = s.reply.WriteReply(xdr.Accepted(s.callerXID, xdr.SystemErr), nil)
		}
	}
}

// forwardedCred is the credential a forwarded call carries: none for a
// call with none, and for AUTH_SYS the caller's, encoded afresh with the
// time as its stamp, as libtirpc's authunix_create does for rpcbind. Other
// flavours cannot be passed on.
func forwardedCred(c *oncrpc.Call, now time.Time) (xdr.OpaqueAuth, bool) {
	switch c.Cred.Flavor {
	case xdr.AuthNone:
		return xdr.OpaqueAuth{}, true
	case xdr.AuthSys:
		p := c.AuthSys
		if p == nil {
			parsed, err := xdr.ParseAuthSys(c.Cred.Body)
			if err != nil {
				return xdr.OpaqueAuth{}, false
			}
			p = &parsed
		}
		sys := *p
		sys.Stamp = uint32(now.Unix())
		return sys.OpaqueAuth(), true
	}
	return xdr.OpaqueAuth{}, false
}

// callLen is the size of c's message: its header, credential, verifier
// and arguments, which run to the end of the message.
func callLen(c *oncrpc.Call) int {
	return 6*4 + 2*4 + pad4(len(c.Cred.Body)) + 2*4 + pad4(len(c.Verf.Body)) + len(c.Args)
}

func pad4(n int) int { return (n + 3) &^ 3 }

// register enters s as waiting for its answer and returns the xid to
// forward it with. It reports false for a retransmission of a call still
// waiting (the same xid, procedure and version from the same address),
// whose wait it renews instead, as rpcbind does. Calls waiting past the
// timeout are given up; when every place is taken, the call waiting
// longest gives up its own.
func (f *Forwarder) register(s forwarded, now time.Time) (uint32, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	free, oldest := -1, -1
	for i := range f.pending {
		p := &f.pending[i]
		if p.active && now.Sub(p.at) > f.timeout {
			*p = forwarded{}
		}
		if !p.active {
			if free < 0 {
				free = i
			}
			continue
		}
		if p.callerXID == s.callerXID && p.proc == s.proc && p.vers == s.vers && p.caller == s.caller {
			p.at = now
			return 0, false
		}
		if oldest < 0 || p.at.Before(f.pending[oldest].at) {
			oldest = i
		}
	}
	if free < 0 {
		free = oldest
		f.dropped.Note("call waiting longest given up for a new one")
	}
	s.active, s.at, s.xid = true, now, f.newXID()
	f.pending[free] = s
	return s.xid, true
}

// newXID returns an xid no waiting call has, never 0.
func (f *Forwarder) newXID() uint32 {
	for {
		f.lastXID++
		if f.lastXID == 0 {
			continue
		}
		inUse := false
		for i := range f.pending {
			if f.pending[i].active && f.pending[i].xid == f.lastXID {
				inUse = true
				break
			}
		}
		if !inUse {
			return f.lastXID
		}
	}
}

// take removes and returns the call waiting for the answer xid from from.
// A call that waited past the timeout is no longer waiting.
func (f *Forwarder) take(xid uint32, from netip.AddrPort, now time.Time) (forwarded, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.pending {
		p := &f.pending[i]
		if p.active && p.xid == xid && p.target == from {
			s := *p
			*p = forwarded{}
			return s, now.Sub(s.at) <= f.timeout
		}
	}
	return forwarded{}, false
}

// Pending returns how many forwarded calls wait for their answers.
func (f *Forwarder) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for i := range f.pending {
		if f.pending[i].active {
			n++
		}
	}
	return n
}

// readAnswers reads the services' answers arriving on conn until it is
// closed.
func (f *Forwarder) readAnswers(conn *net.UDPConn) {
	defer f.wg.Done()
	// One byte more than the largest answer tells one cut short.
	buf := make([]byte, maxAnswer+1)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if netlimit.IsTemporary(err) {
				continue
			}
			f.log.Error("reading answers to forwarded calls", "err", err)
			return
		}
		if n <= maxAnswer {
			f.answer(buf[:n], peer.Unmap(from))
		}
	}
}

// answer relays msg, the answer from a service at from, to the caller
// whose call it answers, as rpcbind's handle_reply does: SUCCESS with the
// service's address (v2: its port) and results; anything else, SYSTEM_ERR
// to INDIRECT and nothing to CALLIT and BCAST. An answer that is no reply,
// or to no call waiting, is dropped.
func (f *Forwarder) answer(msg []byte, from netip.AddrPort) {
	h, results, err := xdr.DecodeReply(msg)
	var rejected *xdr.ReplyError
	if err != nil && !errors.As(err, &rejected) {
		return
	}
	s, ok := f.take(h.XID, from, time.Now())
	if !ok {
		return
	}
	if err != nil {
		if s.indirect() {
			_ = s.reply.WriteReply(xdr.Accepted(s.callerXID, xdr.SystemErr), nil)
		}
		return
	}
	var size int
	var body func(*xdr.Encoder)
	if s.vers == xdr.PmapVers {
		port, _ := netid.UaddrPort(s.uaddr)
		size = 4 + 4 + pad4(len(results))
		body = func(e *xdr.Encoder) { (&xdr.CallResult{Port: uint32(port), Res: results}).Encode(e) }
	} else {
		size = 4 + pad4(len(s.uaddr)) + 4 + pad4(len(results))
		body = func(e *xdr.Encoder) { (&xdr.RmtCallResult{Addr: s.uaddr, Results: results}).Encode(e) }
	}
	if s.limited && f.replyRatio > 0 && acceptedReplyLen+size > f.replyRatio*s.callLen {
		f.dropped.Note("answer too large for its call")
		if s.indirect() {
			_ = s.reply.WriteReply(xdr.Accepted(s.callerXID, xdr.SystemErr), nil)
		}
		return
	}
	err = s.reply.WriteReply(xdr.Accepted(s.callerXID, xdr.Success), body)
	if errors.Is(err, oncrpc.ErrReplyTooLarge) && s.indirect() {
		_ = s.reply.WriteReply(xdr.Accepted(s.callerXID, xdr.SystemErr), nil)
	}
}
