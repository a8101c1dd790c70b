package oncrpc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/portmapd/portmapd/xdr"
)

// Client defaults.
const (
	// DefaultRetransmit is how long a UDP client waits before sending a
	// call again.
	DefaultRetransmit = time.Second
	// DefaultMaxReply bounds the replies a client reads over a stream: a
	// DUMP of a large registry is big, but not without limit.
	DefaultMaxReply = 64 << 20
	maxDatagram     = 65535
)

// A Client makes RPC calls over one connection, one call at a time.
type Client struct {
	conn   net.Conn
	stream bool
	// Cred is sent with every call; AUTH_NONE when zero.
	Cred xdr.OpaqueAuth
	// Retransmit is the UDP resend interval; DefaultRetransmit when 0.
	Retransmit time.Duration
	// MaxReply bounds a stream reply; DefaultMaxReply when 0.
	MaxReply int

	mu  sync.Mutex
	xid uint32
	rr  *xdr.RecordReader
	enc xdr.Encoder
	buf []byte
	// reply decodes the reply of the call in progress; datagram reads
	// a datagram reply for it.
	reply    xdr.StreamDecoder
	datagram bytes.Reader
}

// Dial connects to an RPC server. network is udp, udp4, udp6, tcp, tcp4,
// tcp6 or unix.
func Dial(ctx context.Context, network, address string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return NewClient(conn), nil
}

// NewClient returns a Client that calls over conn, which it owns. Record
// marking is used unless conn is a datagram socket. (A unix stream
// connection also has datagram methods, so the network decides.)
func NewClient(conn net.Conn) *Client {
	switch conn.LocalAddr().Network() {
	case "udp", "udp4", "udp6", "unixgram":
		return &Client{conn: conn, xid: uint32(time.Now().UnixNano())}
	}
	return &Client{conn: conn, stream: true, xid: uint32(time.Now().UnixNano())}
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// LocalAddr returns the client's address.
func (c *Client) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// RemoteAddr returns the server's address.
func (c *Client) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// Call calls procedure proc of prog, vers with the arguments args encodes
// (nil for void) and decodes the results with res (nil to ignore them). A
// reply other than SUCCESS is a *xdr.ReplyError. ctx bounds the whole call,
// retransmissions included.
func (c *Client) Call(ctx context.Context, prog, vers, proc uint32, args func(*xdr.Encoder), res func(*xdr.Decoder)) error {
	return c.CallStream(ctx, prog, vers, proc, args, func(s *xdr.StreamDecoder) error {
		d := s.All()
		if err := s.Err(); err != nil {
			return err
		}
		if res != nil {
			res(d)
		}
		return d.Err()
	})
}

// CallStream is Call for results too large to hold twice, such as a DUMP
// of a large registry: res decodes them from s as the reply arrives, so
// that over a stream the reply is never held whole. An error res returns
// is reported as the results' decoding error.
func (c *Client) CallStream(ctx context.Context, prog, vers, proc uint32, args func(*xdr.Encoder), res func(*xdr.StreamDecoder) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.xid++
	xid := c.xid
	h := xdr.CallHeader{XID: xid, RPCVers: xdr.RPCVersion, Prog: prog, Vers: vers, Proc: proc, Cred: c.Cred}
	c.enc.Reset()
	h.Encode(&c.enc)
	if args != nil {
		args(&c.enc)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(aLongTimeAgo) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.conn.SetDeadline(dl)
	} else {
		_ = c.conn.SetDeadline(time.Time{})
	}
	var s *xdr.StreamDecoder
	var err error
	if c.stream {
		s, err = c.roundTripStream(xid)
	} else {
		s, err = c.roundTripDatagram(ctx, xid)
	}
	if err == nil && res != nil {
		if err = res(s); err != nil && s.Err() == nil {
			err = fmt.Errorf("rpc: cannot decode results of %d/%d/%d: %w", prog, vers, proc, err)
		}
	}
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("rpc: call to %d/%d/%d: %w", prog, vers, proc, ctx.Err())
	}
	return err
}

// roundTripStream sends the call and returns the reply with the same xid,
// positioned at its results, as it is read from the connection.
func (c *Client) roundTripStream(xid uint32) (*xdr.StreamDecoder, error) {
	if c.rr == nil {
		max := c.MaxReply
		if max <= 0 {
			max = DefaultMaxReply
		}
		c.rr = xdr.NewRecordReader(bufio.NewReader(c.conn), max)
	}
	out := xdr.AppendRecord(c.buf[:0], c.enc.Bytes(), 0)
	c.buf = out
	if _, err := c.conn.Write(out); err != nil {
		return nil, err
	}
	for {
		body, err := c.rr.NextReader()
		if err != nil {
			return nil, err
		}
		// A reply to an earlier call that timed out is skipped, the
		// rest of it with it.
		if ok, err := c.replyTo(xid, body); ok || err != nil {
			return &c.reply, err
		}
	}
}

func (c *Client) roundTripDatagram(ctx context.Context, xid uint32) (*xdr.StreamDecoder, error) {
	if cap(c.buf) < maxDatagram {
		c.buf = make([]byte, maxDatagram)
	}
	buf := c.buf[:maxDatagram]
	every := c.Retransmit
	if every <= 0 {
		every = DefaultRetransmit
	}
	for {
		if _, err := c.conn.Write(c.enc.Bytes()); err != nil {
			return nil, err
		}
		resend := time.Now().Add(every)
		if dl, ok := ctx.Deadline(); ok && dl.Before(resend) {
			resend = dl
		}
		_ = c.conn.SetReadDeadline(resend)
		for {
			n, err := c.conn.Read(buf)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
				break // no answer yet: send again
			}
			if err != nil {
				// Includes a refused datagram (ICMP port unreachable).
				return nil, err
			}
			if n >= 4 && replyXID(buf[:n]) == xid {
				c.datagram.Reset(buf[:n])
				_, err := c.replyTo(xid, &c.datagram)
				return &c.reply, err
			}
		}
	}
}

// replyTo decodes the header of the reply msg and reports whether it
// answers the call xid; if so c.reply is left at its results.
func (c *Client) replyTo(xid uint32, msg io.Reader) (bool, error) {
	c.reply.Reset(msg)
	d := c.reply.Next(xdr.MaxReplyHeader)
	if d.Remaining() >= 4 && replyXID(d.Rest()) != xid {
		return false, nil
	}
	if _, err := xdr.DecodeReplyHeader(d); err != nil {
		if rerr := c.reply.Err(); rerr != nil {
			return true, rerr
		}
		return true, err
	}
	return true, nil
}

func replyXID(b []byte) uint32 {
	if len(b) < 4 {
		return 0
	}
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// Null calls procedure 0 of prog, vers: the ping every RPC program answers.
func (c *Client) Null(ctx context.Context, prog, vers uint32) error {
	return c.Call(ctx, prog, vers, 0, nil, nil)
}

// CallList calls a procedure whose result is an XDR optional-data list
// (the shape of a portmapper's DUMP), decoding it element by element, of
// at most maxItem bytes each with its flag, as it arrives.
func CallList[T any](ctx context.Context, c *Client, prog, vers, proc uint32, args func(*xdr.Encoder), maxItem int, decode func(*T, *xdr.Decoder)) ([]T, error) {
	var list []T
	err := c.CallStream(ctx, prog, vers, proc, args, func(s *xdr.StreamDecoder) (err error) {
		list, err = xdr.StreamList(s, maxItem, decode)
		return err
	})
	return list, err
}
