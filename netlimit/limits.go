package netlimit

import "time"

// Limits are the caps that the daemon's flags put on a face's stream
// connections. Each face's Config embeds them, says what they mean for
// that face, and fills the ones left zero from its own defaults (Or).
type Limits struct {
	// MaxConns caps the open connections; at the cap, the face evicts
	// one it can spare or refuses the new one (see Limiter).
	MaxConns int
	// MaxConnsPerSource caps the open connections from one source
	// address (an IPv6 /64) the same way; loopback is not capped.
	MaxConnsPerSource int
	// IdleTimeout closes a connection over which nothing has passed for
	// this long.
	IdleTimeout time.Duration
}

// Or returns l with each limit that is not positive taken from def: the
// zero Limits are a face's defaults.
func (l Limits) Or(def Limits) Limits {
	if l.MaxConns <= 0 {
		l.MaxConns = def.MaxConns
	}
	if l.MaxConnsPerSource <= 0 {
		l.MaxConnsPerSource = def.MaxConnsPerSource
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = def.IdleTimeout
	}
	return l
}
