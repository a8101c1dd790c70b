package oncrpc

import (
	"github.com/portmapd/portmapd/netlimit"
	"github.com/portmapd/portmapd/xdr"
)

// An Observer is told what the Server does, for counting (the daemon's
// metrics). Its methods are called on the serving goroutines, after each
// reply is sent, so they must only count and return; a Server without one
// pays one comparison per call.
type Observer interface {
	// LimitHit is told of every limit a peer runs into: connection caps
	// and evictions (netlimit's), records and datagrams over MaxMessage,
	// and UDP replies withheld by ReplyLimit. where is the netid.
	netlimit.Observer
	// CallServed is told of each call that decoded, after its handler
	// returned: reply is the header of the reply sent, or nil when none
	// was (a handler's silence, a reply too large to send); deferred
	// says the handler deferred its reply (Defer), to be sent later, or
	// never, from another goroutine. A call answered RPC_MISMATCH has
	// only its rpcvers, prog, vers and proc read, whatever they are.
	CallServed(c *Call, reply *xdr.ReplyHeader, deferred bool)
	// Malformed is told of each message dropped because it is not a
	// call the server can read, on transport netid.
	Malformed(netid string)
}
