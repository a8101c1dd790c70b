// Package oncrpc is an ONC RPC (RFC 5531) server and client in the shape
// of miekg/dns: a Server that serves UDP, TCP and local stream sockets
// within limits, a Handler and ReplyWriter, a ServeMux that routes by
// program, version and procedure, an AcceptFunc that authenticates each
// call before dispatch, and a Client that calls with encode and decode
// functions and decodes large replies as they arrive.
//
// It knows no program: the portmapper (package rpcbind) is one Handler on
// it. A Call says who sent it as a neutral peer.Peer, which each program
// turns into its own idea of a caller.
package oncrpc

import (
	"github.com/portmapd/portmapd/peer"
	"github.com/portmapd/portmapd/xdr"
)

// A Handler answers RPC calls.
//
// ServeRPC should write at most one reply to w. A handler that writes none
// sends nothing, which is how a datagram call is dropped on purpose (CALLIT
// with remote calls off), and a datagram call may be answered after
// ServeRPC returns, through Defer. A call's Args alias a buffer that is
// reused once ServeRPC returns.
type Handler interface {
	ServeRPC(w ReplyWriter, c *Call)
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(w ReplyWriter, c *Call)

// ServeRPC calls f(w, c).
func (f HandlerFunc) ServeRPC(w ReplyWriter, c *Call) { f(w, c) }

// A ReplyWriter sends the reply to one call.
type ReplyWriter interface {
	// WriteReply encodes h, then, for an accepted SUCCESS, the results
	// that body appends (body may be nil for void), and sends the reply
	// in one write.
	WriteReply(h xdr.ReplyHeader, body func(*xdr.Encoder)) error
}

// A Call is one decoded call and what the transport knows about its sender.
type Call struct {
	xdr.CallHeader
	// Args are the encoded procedure arguments.
	Args []byte
	// Peer is the sender, as the socket the call came through tells it;
	// its Transport is the name the Server was given for that socket.
	Peer peer.Peer
	// AuthSys holds the parsed credential of an AUTH_SYS call, as
	// DefaultAccept leaves it.
	AuthSys *xdr.AuthSysParms

	// args decodes Args for DecodeArgs: kept here, in a Call the server
	// reuses, so that decoding allocates nothing.
	args xdr.Decoder
}

// DecodeArgs decodes c.Args with decode and reports whether they were
// well-formed. Bytes after the arguments are ignored, as libtirpc's
// svc_getargs ignores them. decode must not keep the Decoder.
func (c *Call) DecodeArgs(decode func(*xdr.Decoder)) bool {
	c.args.Reset(c.Args)
	decode(&c.args)
	return c.args.Err() == nil
}

// Reply sends a SUCCESS reply whose results body encodes.
func Reply(w ReplyWriter, c *Call, body func(*xdr.Encoder)) error {
	return w.WriteReply(xdr.Accepted(c.XID, xdr.Success), body)
}

// ReplyError sends an accepted reply with a status other than SUCCESS and
// other than PROG_MISMATCH.
func ReplyError(w ReplyWriter, c *Call, stat xdr.AcceptStat) error {
	return w.WriteReply(xdr.Accepted(c.XID, stat), nil)
}

// ReplyBool sends a SUCCESS reply carrying a bool.
func ReplyBool(w ReplyWriter, c *Call, v bool) error {
	b := uint32(0)
	if v {
		b = 1
	}
	return ReplyUint32(w, c, b)
}

// ReplyUint32 sends a SUCCESS reply carrying an unsigned int. Through the
// Server's own writers it allocates nothing.
func ReplyUint32(w ReplyWriter, c *Call, v uint32) error {
	if f, ok := w.(valueReplier); ok {
		return f.replyUint32(c.XID, v)
	}
	return Reply(w, c, func(e *xdr.Encoder) { e.Uint32(v) })
}

// ReplyString sends a SUCCESS reply carrying a string. Through the
// Server's own writers it allocates nothing.
func ReplyString(w ReplyWriter, c *Call, s string) error {
	if f, ok := w.(valueReplier); ok {
		return f.replyString(c.XID, s)
	}
	return Reply(w, c, func(e *xdr.Encoder) { e.String(s) })
}

// Deny sends a MSG_DENIED reply with AUTH_ERROR and why.
func Deny(w ReplyWriter, c *Call, why xdr.AuthStat) error {
	return w.WriteReply(xdr.Denied(c.XID, why), nil)
}
