package rpcbind

import (
	"bufio"
	"context"
	"errors"
	"fmt"
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
	var reply []byte
	var err error
	if c.stream {
		reply, err = c.roundTripStream(xid)
	} else {
		reply, err = c.roundTripDatagram(ctx, xid)
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("rpc: call to %d/%d/%d: %w", prog, vers, proc, ctx.Err())
		}
		return err
	}
	_, results, err := xdr.DecodeReply(reply)
	if err != nil {
		return err
	}
	if res != nil {
		d := xdr.NewDecoder(results)
		res(d)
		if err := d.Err(); err != nil {
			return fmt.Errorf("rpc: cannot decode results of %d/%d/%d: %w", prog, vers, proc, err)
		}
	}
	return nil
}

func (c *Client) roundTripStream(xid uint32) ([]byte, error) {
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
		reply, err := c.rr.Next()
		if err != nil {
			return nil, err
		}
		if replyXID(reply) == xid {
			return reply, nil
		}
	}
}

func (c *Client) roundTripDatagram(ctx context.Context, xid uint32) ([]byte, error) {
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
				return buf[:n], nil
			}
		}
	}
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

// PmapSet registers m with a v2 SET.
func (c *Client) PmapSet(ctx context.Context, m xdr.Mapping) (bool, error) {
	return c.callBool(ctx, xdr.PmapProcSet, m.Encode)
}

// PmapUnset removes prog, vers with a v2 UNSET.
func (c *Client) PmapUnset(ctx context.Context, prog, vers uint32) (bool, error) {
	m := xdr.Mapping{Prog: prog, Vers: vers}
	return c.callBool(ctx, xdr.PmapProcUnset, m.Encode)
}

func (c *Client) callBool(ctx context.Context, proc uint32, args func(*xdr.Encoder)) (bool, error) {
	var ok bool
	err := c.Call(ctx, xdr.PmapProg, xdr.PmapVers, proc, args, func(d *xdr.Decoder) { ok = d.Bool() })
	return ok, err
}

// GetPort asks for the port of prog, vers over protocol prot (xdr.ProtoTCP
// or xdr.ProtoUDP); 0 means not registered.
func (c *Client) GetPort(ctx context.Context, prog, vers, prot uint32) (uint32, error) {
	m := xdr.Mapping{Prog: prog, Vers: vers, Prot: prot}
	var port uint32
	err := c.Call(ctx, xdr.PmapProg, xdr.PmapVers, xdr.PmapProcGetport, m.Encode, func(d *xdr.Decoder) { port = d.Uint32() })
	return port, err
}

// Dump returns the portmapper's v2 list.
func (c *Client) Dump(ctx context.Context) ([]xdr.Mapping, error) {
	var list []xdr.Mapping
	err := c.Call(ctx, xdr.PmapProg, xdr.PmapVers, xdr.PmapProcDump, nil, func(d *xdr.Decoder) {
		list = xdr.DecodeList(d, (*xdr.Mapping).Decode)
	})
	return list, err
}
