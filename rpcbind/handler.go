// Package rpcbind is portmapd's ONC RPC face: a small server framework in
// the shape of miekg/dns (Handler, ReplyWriter, ServeMux, Server), the
// portmapper procedures on top of the shared registry, and a client.
package rpcbind

import (
	"net/netip"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/xdr"
)

// A Handler answers RPC calls.
//
// ServeRPC should write at most one reply to w. A handler that writes none
// sends nothing, which is how a datagram call is dropped on purpose (CALLIT
// with remote calls off). A call's Args alias a buffer that is reused once
// ServeRPC returns.
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
	// Netid names the transport the call arrived on: udp, tcp, udp6,
	// tcp6 or local.
	Netid netid.ID
	// Remote is the sender's address for IP transports.
	Remote netip.AddrPort
	// Local is the address the call arrived at, for IP transports.
	Local netip.AddrPort
	// PeerCred is the kernel's account of a local-socket sender.
	PeerCred *registry.Cred
	// AuthSys holds the parsed credential of an AUTH_SYS call.
	AuthSys *xdr.AuthSysParms
}

// Caller describes the sender for the registry's access rules.
func (c *Call) Caller() registry.Caller {
	if c.Netid == netid.Local {
		return registry.Caller{Transport: registry.Local, Cred: c.PeerCred}
	}
	return registry.Caller{Transport: registry.Network, Addr: c.Remote}
}

// DecodeArgs decodes c.Args with decode and reports whether they were
// well-formed. Bytes after the arguments are ignored, as libtirpc's
// svc_getargs ignores them.
func (c *Call) DecodeArgs(decode func(*xdr.Decoder)) bool {
	d := xdr.NewDecoder(c.Args)
	decode(d)
	return d.Err() == nil
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
	return Reply(w, c, func(e *xdr.Encoder) { e.Bool(v) })
}

// ReplyUint32 sends a SUCCESS reply carrying an unsigned int.
func ReplyUint32(w ReplyWriter, c *Call, v uint32) error {
	return Reply(w, c, func(e *xdr.Encoder) { e.Uint32(v) })
}

// Deny sends a MSG_DENIED reply with AUTH_ERROR and why.
func Deny(w ReplyWriter, c *Call, why xdr.AuthStat) error {
	return w.WriteReply(xdr.Denied(c.XID, why), nil)
}
