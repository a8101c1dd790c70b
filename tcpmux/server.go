package tcpmux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/netlimit"
	"github.com/portmapd/portmapd/peer"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/tcpmux/handoff"
)

// Defaults of Config.
const (
	// DefaultPort is RFC 1078's port. Binding it needs root, which a
	// daemon that gives it up has when it opens its listeners.
	DefaultPort              = 1
	DefaultMaxConns          = 1024
	DefaultMaxConnsPerSource = 64
	DefaultTimeout           = 10 * time.Second
	DefaultIdleTimeout       = time.Hour
	// Off as Addr disables the listener, as the zero Config does.
	Off = "off"
)

// Replies. After "+" the service's protocol starts; after "-" portmapd
// closes the connection. Every refusal of a well-formed name is the same,
// so that a client learns no more than the remote view of /portmap shows.
const (
	replyOK          = "+\r\n"
	replyUnavailable = "-Service not available\r\n"
	replyTooLong     = "-Service name too long\r\n"
	replyBadName     = "-Not a service name\r\n"
	replyTimeout     = "-Timed out waiting for a service name\r\n"
)

// Config is the TCPMUX face's configuration, as the daemon's flags give
// it.
type Config struct {
	// Addr is the TCP address to serve; none when "" or Off.
	Addr string
	// Limits cap the connections. MaxConns caps the open connections,
	// DefaultMaxConns when 0. At the cap the connection that has waited
	// longest for its name makes room; when every one has named its
	// service, the new one is refused. MaxConnsPerSource caps them per
	// source address (an IPv6 /64) the same way,
	// DefaultMaxConnsPerSource when 0; loopback is not capped.
	// IdleTimeout closes a spliced connection over which nothing has
	// passed either way for this long; DefaultIdleTimeout when 0.
	netlimit.Limits
	// Timeout bounds reading the name from when the connection is
	// accepted, and then reaching the service and answering;
	// DefaultTimeout when 0.
	Timeout time.Duration
	// Budget is the descriptor budget shared with the other faces' TCP
	// connections; none when nil.
	Budget *netlimit.Budget
	// Observer, when set, is told of each connection refused or evicted
	// at a limit (the daemon's metrics).
	Observer netlimit.Observer
	// Logger receives the log; nothing is logged when nil.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	c.Limits = c.Limits.Or(netlimit.Limits{MaxConns: DefaultMaxConns, MaxConnsPerSource: DefaultMaxConnsPerSource, IdleTimeout: DefaultIdleTimeout})
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Enabled reports whether c asks for a listener.
func (c Config) Enabled() bool { return c.Addr != "" && c.Addr != Off }

// Listen opens the TCP listener cfg names, for Serve; nil without error
// when it names none. A daemon that gives up root opens it before, since
// port 1 is privileged.
func Listen(cfg Config) (net.Listener, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("tcpmux: %w", err)
	}
	return ln, nil
}

// A Server is the TCPMUX face over a registry.
type Server struct {
	reg *registry.Registry
	cfg Config
	log *slog.Logger
	// lim admits the clients' connections; backends charges the
	// connections spliced to services to the descriptor budget.
	lim, backends *netlimit.Limiter
	// refused counts, and logs at most once an interval, the requests
	// that were not served, by reason.
	refused *netlimit.LogThrottle

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewServer returns a Server over reg. It starts nothing: Serve serves.
func NewServer(reg *registry.Registry, cfg Config) *Server {
	cfg.setDefaults()
	return &Server{
		reg: reg,
		cfg: cfg,
		log: cfg.Logger,
		lim: netlimit.New(netlimit.Config{
			Name:         "tcpmux",
			MaxConns:     cfg.MaxConns,
			MaxPerSource: cfg.MaxConnsPerSource,
			Budget:       cfg.Budget,
			Logger:       cfg.Logger,
			Observer:     cfg.Observer,
		}),
		backends: netlimit.New(netlimit.Config{Name: "tcpmux-spliced", Budget: cfg.Budget, Logger: cfg.Logger, Observer: cfg.Observer}),
		refused:  netlimit.NewLogThrottle(cfg.Logger, slog.LevelInfo, "tcpmux requests not served", 0),
		conns:    map[net.Conn]struct{}{},
	}
}

// Serve serves TCPMUX on ln until ctx is done or ln fails; then it closes
// ln and every connection it still serves (spliced ones with their
// services; connections handed over are the services' own by then) and
// returns once they are done.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	l := netlimit.NewListener(ln, s.lim)
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var err error
	for {
		c, slot, aerr := l.AcceptSlot()
		if aerr != nil {
			if ctx.Err() == nil {
				err = fmt.Errorf("tcpmux: %w", aerr)
			}
			break
		}
		if !s.track(c) {
			c.Close()
			slot.Release()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(ctx, c, slot)
		}()
	}
	l.Close()
	s.closeAll()
	s.wg.Wait()
	s.lim.Close()
	s.backends.Close()
	s.refused.Flush()
	return err
}

// track records an open connection for closeAll; false once serving has
// stopped.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

// serveConn reads the name c asks for and answers it.
func (s *Server) serveConn(ctx context.Context, c net.Conn, slot *netlimit.Slot) {
	defer s.untrack(c)
	defer slot.Release()
	defer c.Close()
	c.SetDeadline(time.Now().Add(s.cfg.Timeout))
	name, err := readName(c)
	switch {
	case errors.Is(err, errTooLong):
		s.refuse(c, "too_long", replyTooLong)
		return
	case errors.Is(err, errBadName):
		s.refuse(c, "bad_name", replyBadName)
		return
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The deadline has passed: give the answer a moment of its own.
		c.SetWriteDeadline(time.Now().Add(time.Second))
		s.refuse(c, "timeout", replyTimeout)
		return
	case err != nil:
		// The client left, or the connection was evicted.
		return
	}
	// From now on the connection is in use and not evictable.
	if !slot.Busy() {
		return
	}
	c.SetDeadline(time.Now().Add(s.cfg.Timeout))
	if name == helpName {
		s.help(c)
		lingerClose(c)
		return
	}
	for _, svc := range s.route(name) {
		var done bool
		switch svc.Network {
		case netid.Unix:
			done = s.handOver(ctx, c, name, svc)
		case netid.TCP:
			done = s.splice(ctx, c, name, svc)
		}
		if done {
			return
		}
	}
	s.refuse(c, "unavailable", replyUnavailable)
}

// refuse answers c with reply and counts the refusal by reason.
func (s *Server) refuse(c net.Conn, reason, reply string) {
	s.refused.Note(reason)
	c.Write([]byte(reply))
	lingerClose(c)
}

// Bounds of what lingerClose reads and waits for.
const (
	lingerBytes = 64 << 10
	lingerTime  = time.Second
)

// lingerClose ends the answer on c (a FIN after it) and reads what the
// client still sends, up to lingerBytes or for lingerTime, until it
// closes too: closing with unread input would reset the connection, and
// a reset can destroy the answer before the client has read it.
func lingerClose(c net.Conn) {
	tc, ok := c.(*net.TCPConn)
	if !ok || tc.CloseWrite() != nil {
		return
	}
	tc.SetReadDeadline(time.Now().Add(lingerTime))
	io.CopyN(io.Discard, tc, lingerBytes)
}

// handOver passes c to the hand-off socket svc registered. It reports
// whether c has been answered; false means svc could not be reached and
// nothing was said.
func (s *Server) handOver(ctx context.Context, c net.Conn, name string, svc registry.Service) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	h, err := handoff.Dial(ctx, svc.Path, svc.UID)
	if err != nil {
		s.unreachable(name, svc, err)
		return false
	}
	defer h.Close()
	h.SetDeadline(time.Now().Add(s.cfg.Timeout))
	if _, err := c.Write([]byte(replyOK)); err != nil {
		return true
	}
	if err := handoff.Send(h, name, sc); err != nil {
		// The client has its "+", and now sees the connection end. A
		// service that closes its hand-off connections at once does
		// this at every client's will: it is counted, not logged.
		s.refused.Note("handoff_failed")
		s.log.Debug("tcpmux: hand-over failed after the client was answered", "service", name, "socket", svc.Path, "pid", svc.PID, "err", err)
		return true
	}
	s.log.Debug("tcpmux: handed over", "service", name, "remote", c.RemoteAddr(), "socket", svc.Path, "pid", svc.PID)
	return true
}

// splice connects c to the TCP port svc registered and copies between
// them until both directions have ended. It reports whether c has been
// answered; false means the port could not be reached and nothing was
// said.
func (s *Server) splice(ctx context.Context, c net.Conn, name string, svc registry.Service) bool {
	client, ok := c.(*net.TCPConn)
	if !ok {
		return false
	}
	local := peer.AddrPort(c.LocalAddr()).Addr()
	backend, err := s.dialService(ctx, svc, local)
	if err != nil {
		s.unreachable(name, svc, err)
		return false
	}
	slot, err := s.backends.Admit(netip.Addr{}, func() { backend.Close() })
	if err != nil {
		backend.Close()
		s.unreachable(name, svc, err)
		return false
	}
	defer slot.Release()
	slot.Busy()
	if !s.track(backend) {
		backend.Close()
		return true
	}
	defer s.untrack(backend)
	if _, err := c.Write([]byte(replyOK)); err != nil {
		backend.Close()
		return true
	}
	c.SetDeadline(time.Time{})
	s.log.Debug("tcpmux: spliced", "service", name, "remote", c.RemoteAddr(), "port", svc.Port, "pid", svc.PID)
	pipe(client, backend, s.cfg.IdleTimeout)
	return true
}

// unreachable counts a registration that could not be reached, and says
// why at debug level: the reason names the registration, which the
// client must not learn.
func (s *Server) unreachable(name string, svc registry.Service, err error) {
	reason := "unreachable"
	if errors.Is(err, handoff.ErrNotOwner) || errors.Is(err, errNotOwner) {
		reason = "not_owner"
	}
	s.refused.Note(reason)
	s.log.Debug("tcpmux: service not reached", "service", name, "endpoint", svc.Endpoint(), "uid", svc.UID, "pid", svc.PID, "err", err)
}
