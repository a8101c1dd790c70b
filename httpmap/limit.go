package httpmap

import (
	"net"
	"net/http"
	"sync"

	"github.com/portmapd/portmapd/netlimit"
)

// connLimits admits the HTTP face's connections through netlimit: one
// limiter for TCP (the HTTP address and the connections diverted from the
// RPC port share it) and one for the local socket, and tells them which
// connections are idle from the server's ConnState reports.
type connLimits struct {
	network, local *netlimit.Limiter
	// slots maps each served net.Conn to its place.
	slots sync.Map
}

func newConnLimits(cfg Config) connLimits {
	return connLimits{
		network: netlimit.New(netlimit.Config{
			Name:         "http",
			MaxConns:     cfg.MaxConns,
			MaxPerSource: cfg.MaxConnsPerSource,
			// A trusted proxy's connections carry many clients.
			Uncapped: cfg.TrustedProxies,
			Budget:   cfg.Budget,
			Logger:   cfg.Logger,
			Observer: cfg.Observer,
		}),
		local: netlimit.New(netlimit.Config{
			Name:     "http-local",
			MaxConns: cfg.MaxConns,
			Local:    true,
			Budget:   cfg.Budget,
			Logger:   cfg.Logger,
			Observer: cfg.Observer,
		}),
	}
}

// listener returns l admitting through the limiter of its kind.
func (cl *connLimits) listener(l net.Listener) net.Listener {
	lim := cl.network
	if l.Addr().Network() == "unix" {
		lim = cl.local
	}
	return &limitedListener{Listener: netlimit.NewListener(l, lim), slots: &cl.slots}
}

// connState is http.Server.ConnState: a connection is busy from the moment
// it has read a request until it has answered it, and idle (evictable)
// before its first request and between requests.
func (cl *connLimits) connState(c net.Conn, state http.ConnState) {
	v, ok := cl.slots.Load(c)
	if !ok {
		return
	}
	slot := v.(*netlimit.Slot)
	switch state {
	case http.StateActive:
		// False when evicted an instant ago: the connection is closed
		// and the request's reply will fail to be written.
		slot.Busy()
	case http.StateIdle:
		slot.Idle()
	case http.StateClosed, http.StateHijacked:
		slot.Release()
		cl.slots.Delete(c)
	}
}

func (cl *connLimits) close() {
	cl.network.Close()
	cl.local.Close()
}

// limitedListener hands the HTTP server the connections its limiter admits.
type limitedListener struct {
	*netlimit.Listener
	slots *sync.Map
}

func (l *limitedListener) Accept() (net.Conn, error) {
	c, slot, err := l.AcceptSlot()
	if err != nil {
		return nil, err
	}
	l.slots.Store(c, slot)
	return c, nil
}
