package oncrpc

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/portmapd/portmapd/netlimit"
	"github.com/portmapd/portmapd/xdr"
)

// ErrReplied reports a second reply to the same call.
var ErrReplied = errors.New("oncrpc: call already answered")

// ErrReplyWithheld reports a datagram reply not sent because its excess
// over the call is more than the source's reply-byte bucket holds.
var ErrReplyWithheld = errors.New("oncrpc: reply withheld: the source's reply-byte rate is spent")

// ErrReplyTooLarge reports a datagram reply over the size limit. Nothing
// was sent; the handler may still answer, for example with SYSTEM_ERR.
var ErrReplyTooLarge = errors.New("oncrpc: reply exceeds the datagram size limit")

// replyWriter is a ReplyWriter the server can prepare for the next call.
type replyWriter interface {
	ReplyWriter
	// reset readies the writer for a new call whose accepted replies
	// carry verf.
	reset(verf xdr.OpaqueAuth)
	// sent is the header of the reply given since reset, nil for none.
	sent() *xdr.ReplyHeader
	// deferred reports that the handler deferred its reply (Defer)
	// since reset.
	deferred() bool
}

// replyBuffer encodes one reply at a time into reused storage.
type replyBuffer struct {
	enc     xdr.Encoder
	verf    xdr.OpaqueAuth
	written bool
	// last is the header of the reply last encoded since reset, for
	// the Server's Observer; encoded says there is one.
	last    xdr.ReplyHeader
	encoded bool
	// handedOff says the reply was deferred to another writer.
	handedOff bool
}

func (b *replyBuffer) reset(verf xdr.OpaqueAuth) {
	b.verf, b.written, b.encoded, b.handedOff = verf, false, false, false
}

func (b *replyBuffer) deferred() bool { return b.handedOff }

// sent returns the header of the reply given to the call since reset, or
// nil when there was none.
func (b *replyBuffer) sent() *xdr.ReplyHeader {
	if !b.encoded {
		return nil
	}
	return &b.last
}

// begin encodes h after reserve words of room, and reports whether
// results follow it: an accepted SUCCESS.
func (b *replyBuffer) begin(reserve int, h xdr.ReplyHeader) bool {
	b.enc.Reset()
	for range reserve {
		b.enc.Uint32(0)
	}
	if h.Stat == xdr.MsgAccepted {
		h.Verf = b.verf
	}
	h.Encode(&b.enc)
	b.last, b.encoded = h, true
	return h.Stat == xdr.MsgAccepted && h.Accept == xdr.Success
}

// The replies below encode the reply after reserve words of room, or
// fail with ErrReplied when the call has its reply already.

// reply encodes h and, after an accepted SUCCESS, what body writes.
func (b *replyBuffer) reply(reserve int, h xdr.ReplyHeader, body func(*xdr.Encoder)) ([]byte, error) {
	if b.written {
		return nil, ErrReplied
	}
	if b.begin(reserve, h) && body != nil {
		body(&b.enc)
	}
	return b.enc.Bytes(), nil
}

// uint32Reply encodes a SUCCESS reply of v.
func (b *replyBuffer) uint32Reply(reserve int, xid, v uint32) ([]byte, error) {
	if b.written {
		return nil, ErrReplied
	}
	if b.begin(reserve, xdr.Accepted(xid, xdr.Success)) {
		b.enc.Uint32(v)
	}
	return b.enc.Bytes(), nil
}

// stringReply encodes a SUCCESS reply of s.
func (b *replyBuffer) stringReply(reserve int, xid uint32, s string) ([]byte, error) {
	if b.written {
		return nil, ErrReplied
	}
	if b.begin(reserve, xdr.Accepted(xid, xdr.Success)) {
		b.enc.String(s)
	}
	return b.enc.Bytes(), nil
}

// A valueReplier sends a SUCCESS reply of one value without a body
// function: a function value passed through the ReplyWriter interface
// escapes, and so does what it captures, which made every lookup
// allocate. The server's own writers are valueRepliers; ReplyUint32 and
// ReplyString fall back to WriteReply for any other ReplyWriter.
type valueReplier interface {
	replyUint32(xid, v uint32) error
	replyString(xid uint32, s string) error
}

// datagramWriter answers a UDP call with one datagram, sent from the
// address the call arrived at.
type datagramWriter struct {
	replyBuffer
	conn *net.UDPConn
	to   netip.AddrPort
	oob  []byte
	// batched says the serving loop sends the reply, with the others of
	// its batch of datagrams, once every call of the batch is served;
	// queued says there is one to send, in enc.
	batched, queued bool
	// limit is the largest datagram sent, as libtirpc's svc_dg_reply
	// cannot encode a larger one.
	limit int
	// callLen is the size of the call being answered; replyLimit charges
	// the reply's excess over it to the caller's source, and withheld
	// counts the replies it refuses.
	callLen    int
	replyLimit *netlimit.ReplyBuckets
	withheld   *netlimit.LogThrottle
	// srv and netid are for telling srv's Observer of a withheld reply.
	srv   *Server
	netid string
}

func (w *datagramWriter) WriteReply(h xdr.ReplyHeader, body func(*xdr.Encoder)) error {
	return w.send(w.reply(0, h, body))
}

func (w *datagramWriter) replyUint32(xid, v uint32) error { return w.send(w.uint32Reply(0, xid, v)) }

func (w *datagramWriter) replyString(xid uint32, s string) error {
	return w.send(w.stringReply(0, xid, s))
}

// send sends the encoded reply b, or queues it for its batch, within the
// size limit and the source's reply-byte bucket; encoding's error, when
// there is one, is returned instead.
func (w *datagramWriter) send(b []byte, encoding error) error {
	if encoding != nil {
		return encoding
	}
	if len(b) > w.limit {
		return ErrReplyTooLarge
	}
	w.written = true
	if !w.replyLimit.Allow(w.to.Addr(), w.callLen, len(b), time.Now()) {
		w.withheld.Note("withheld")
		w.srv.limitHit(w.netid, netlimit.LimitReplyRate, netlimit.ActionWithheld)
		return ErrReplyWithheld
	}
	if w.batched {
		w.queued = true
		return nil
	}
	return sendDatagram(w.conn, b, w.oob, w.to)
}

// sendDatagram sends b to to from conn, from the source that oob names
// when it names one. Should the kernel refuse that source, the datagram
// goes from the source the kernel picks for to: the call's destination
// stands in for the source when the kernel did not name one, and a
// broadcast address cannot be one.
func sendDatagram(conn *net.UDPConn, b, oob []byte, to netip.AddrPort) error {
	_, _, err := conn.WriteMsgUDPAddrPort(b, oob, to)
	if err != nil && len(oob) > 0 && unsendableSource(err) {
		_, _, err = conn.WriteMsgUDPAddrPort(b, nil, to)
	}
	return err
}

// deferReply returns a writer that answers the call w answers later, as w
// would, with an AUTH_NONE verifier. It shares nothing with w, which the
// server reuses for the next call once the handler returns.
func (w *datagramWriter) deferReply() ReplyWriter {
	w.handedOff = true
	d := &deferredDatagram{w: *w}
	d.w.replyBuffer = replyBuffer{}
	d.w.oob = slices.Clone(w.oob)
	// Sent when given: its batch has long gone by then.
	d.w.batched, d.w.queued = false, false
	return d
}

// deferredDatagram is a datagramWriter detached from the serving loop,
// for a goroutine other than the handler's to answer with.
type deferredDatagram struct {
	mu sync.Mutex
	w  datagramWriter
}

func (d *deferredDatagram) WriteReply(h xdr.ReplyHeader, body func(*xdr.Encoder)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.w.WriteReply(h, body)
}

// deferrer is a ReplyWriter whose reply can be sent after the handler
// returns.
type deferrer interface {
	deferReply() ReplyWriter
}

// Defer detaches the reply to the call that w answers from its handler,
// for a handler that learns the answer later (the portmapper's forwarded
// remote calls): the ReplyWriter it returns sends the reply as w would
// have (on the same socket, to the caller, from the address the call
// arrived at, within the Server's reply-byte limit), at most once, from
// any goroutine, once the handler has returned. The handler then leaves w
// alone. A deferred reply carries an AUTH_NONE verifier, as rpcbind's
// forwarded replies do: the verifier the Server's AcceptFunc chose belongs
// to the handler's turn.
//
// Only a datagram call can be answered later: on a stream the next call
// is read once the handler returns, so Defer reports false there.
func Defer(w ReplyWriter) (ReplyWriter, bool) {
	d, ok := w.(deferrer)
	if !ok {
		return nil, false
	}
	return d.deferReply(), true
}

// streamWriter answers a call on a connection with one record.
type streamWriter struct {
	replyBuffer
	conn        net.Conn
	maxFragment int
	framed      []byte
	// failed is the error of a write that did not complete (the peer
	// did not take the reply in time, or is gone): the stream may hold
	// part of a record, so the connection cannot go on.
	failed error
}

// A stream reply's first word is room for its record mark.

func (w *streamWriter) WriteReply(h xdr.ReplyHeader, body func(*xdr.Encoder)) error {
	return w.send(w.reply(1, h, body))
}

func (w *streamWriter) replyUint32(xid, v uint32) error { return w.send(w.uint32Reply(1, xid, v)) }

func (w *streamWriter) replyString(xid uint32, s string) error {
	return w.send(w.stringReply(1, xid, s))
}

// send frames and writes the encoded reply b, whose first word is room
// for the record mark; encoding's error, when there is one, is returned
// instead.
func (w *streamWriter) send(b []byte, encoding error) error {
	if encoding != nil {
		return encoding
	}
	w.written = true
	msg := b[4:]
	if len(msg) <= w.maxFragment {
		binary.BigEndian.PutUint32(b, uint32(len(msg))|1<<31)
	} else {
		w.framed = xdr.AppendRecord(w.framed[:0], msg, w.maxFragment)
		b = w.framed
	}
	_, err := w.conn.Write(b)
	if err != nil {
		w.failed = err
	}
	return err
}
