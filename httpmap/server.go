package httpmap

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/portmapd/portmapd/audit"
	"github.com/portmapd/portmapd/internal/rpcent"
	"github.com/portmapd/portmapd/netlimit"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/registry/health"
	"github.com/portmapd/portmapd/registry/lifetime"
)

// Defaults of Config.
const (
	// DefaultHTTPPort is the HTTP face's TCP port, httportmap's.
	DefaultHTTPPort          = "8111"
	DefaultHTTPAddr          = ":" + DefaultHTTPPort
	DefaultSocketPath        = "/run/portmapd.sock"
	DefaultPasswd            = "/etc/passwd"
	DefaultMaxConns          = 1024
	DefaultMaxConnsPerSource = 64
	DefaultIdleTimeout       = 30 * time.Second
	// Watchers: blocking queries and event streams (watch.go).
	DefaultMaxWatchers          = 512
	DefaultMaxWatchersPerSource = 16
	DefaultMaxWait              = 5 * time.Minute
	// Off as HTTPAddr or SocketPath disables that listener. It is the
	// command line's "off", and the daemon's word for none in its own
	// configuration too, so that flags pass through as they are.
	Off = "off"
)

// Config is the HTTP face's configuration, as the daemon's flags give it.
// The per-process registration cap is the registry's
// (registry.Options.MaxNamedPerProcess).
type Config struct {
	// HTTPAddr is the TCP address to serve, DefaultHTTPAddr when empty;
	// Off disables it.
	HTTPAddr string
	// SocketPath is the local HTTP socket through which processes
	// register, DefaultSocketPath when empty; Off disables it.
	SocketPath string
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the real client.
	TrustedProxies []netip.Prefix
	// Limits cap the connections. MaxConns caps the open connections
	// over TCP (HTTPAddr's and those diverted from the RPC port,
	// together), and separately those of the local socket;
	// DefaultMaxConns when 0. At the cap, the connection idle longest
	// between requests makes room; when none is idle, the new one is
	// closed at once. MaxConnsPerSource caps the open TCP connections
	// from one source address (an IPv6 /64) the same way;
	// DefaultMaxConnsPerSource when 0. Loopback and the TrustedProxies
	// have no such cap. IdleTimeout closes a keep-alive connection idle
	// this long between requests; DefaultIdleTimeout when 0.
	netlimit.Limits
	// Budget is the descriptor budget that TCP connections share with
	// the RPC face (the local socket's are not charged to it); none when
	// nil.
	Budget *netlimit.Budget
	// RPCNames is the file naming RPC programs, rpcent.DefaultPath when
	// empty.
	RPCNames string
	// Passwd is the file naming users on the page, DefaultPasswd when
	// empty.
	Passwd string
	// Hostname is shown on the page; os.Hostname when empty.
	Hostname string
	// Logger receives the log; nothing is logged when nil.
	Logger *slog.Logger
	// Now returns the current time; time.Now when nil.
	Now func() time.Time
	// MaxWatchers caps the blocking queries and event streams open at
	// once, DefaultMaxWatchers when 0; MaxWatchersPerSource those from
	// one source address over TCP (an IPv6 /64),
	// DefaultMaxWatchersPerSource when 0, with loopback, the local
	// socket and the TrustedProxies not capped so. Both stay below the
	// connection caps, since each holds a connection.
	MaxWatchers          int
	MaxWatchersPerSource int
	// MaxWait is the longest a blocking query waits (?wait= longer is
	// cut to it), and how long one without ?wait= waits;
	// DefaultMaxWait when 0.
	MaxWait time.Duration
	// Checks is the health checker whose TTLs a PUT on a registration
	// refreshes; without one, such a PUT is refused.
	Checks *health.Checker
	// Metrics, when set, is served at /metrics to this host (the local
	// socket, loopback, and the address a request arrived at) and to the
	// network addresses in MetricsFrom; others get 403.
	Metrics     http.Handler
	MetricsFrom []netip.Prefix
	// Observer, when set, is told of every request answered and every
	// connection the limits refuse or evict, for metrics.
	Observer Observer
	// Audit receives a line for every registration and deregistration
	// asked for; none when nil.
	Audit *audit.Logger
	// Fleet answers scope=fleet (fleet.go); without it, such a query is
	// refused with ErrNoFleet.
	Fleet Fleet
}

func (c *Config) setDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.HTTPAddr, DefaultHTTPAddr)
	def(&c.SocketPath, DefaultSocketPath)
	def(&c.RPCNames, rpcent.DefaultPath)
	def(&c.Passwd, DefaultPasswd)
	c.Limits = c.Limits.Or(netlimit.Limits{MaxConns: DefaultMaxConns, MaxConnsPerSource: DefaultMaxConnsPerSource, IdleTimeout: DefaultIdleTimeout})
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxWatchers <= 0 {
		c.MaxWatchers = DefaultMaxWatchers
	}
	if c.MaxWatchersPerSource <= 0 {
		c.MaxWatchersPerSource = DefaultMaxWatchersPerSource
	}
	if c.MaxWait <= 0 {
		c.MaxWait = DefaultMaxWait
	}
}

//go:embed assets
var assets embed.FS

// A Server is the HTTP face: an http.Handler for /portmap, and the
// listeners it is served on. Registrations it accepts end when their
// process exits, which the lifetime.Keeper it was given sees while it runs.
type Server struct {
	reg    *registry.Registry
	life   *lifetime.Keeper
	cfg    Config
	log    *slog.Logger
	names  *rpcent.Names
	page   *template.Template
	script template.JS
	csp    string
	divert *ConnListener
	// mux routes requests by method and path (routes); the zero ServeMux
	// is ready for them.
	mux    http.ServeMux
	http   *http.Server
	limits connLimits
	// watchers counts the blocking queries and event streams (watch.go);
	// stopping is closed when serving stops, to end them.
	watchers watchers
	stopping chan struct{}
	stopOnce sync.Once
}

// NewServer returns a Server over reg, whose registrations life watches.
// It starts nothing: Serve or ServeListeners serves it, Close stops it.
func NewServer(reg *registry.Registry, life *lifetime.Keeper, cfg Config) (*Server, error) {
	cfg.setDefaults()
	page, err := template.New("page.html").Funcs(template.FuncMap{"table": newPageTable}).ParseFS(assets, "assets/page.html", "assets/fleet.html")
	if err != nil {
		return nil, fmt.Errorf("httpmap: page template: %w", err)
	}
	js, err := assets.ReadFile("assets/page.js")
	if err != nil {
		return nil, fmt.Errorf("httpmap: %w", err)
	}
	sum := sha256.Sum256(js)
	s := &Server{
		reg:  reg,
		life: life,
		cfg:  cfg,
		log:  cfg.Logger,
		// A program's name is shown only when it can be a label of a
		// service name.
		names:  rpcent.NewNames(cfg.RPCNames, func(name string) bool { return registry.ValidateName(name) == nil }),
		page:   page,
		script: template.JS(js),
		// The page needs nothing but its own inline style, its one
		// script, pinned by hash, and its own origin for the event
		// stream and the listing the script reads.
		csp:      "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
		divert:   NewConnListener(nil),
		limits:   newConnLimits(cfg),
		watchers: newWatchers(cfg),
		stopping: make(chan struct{}),
	}
	s.routes()
	s.http = &http.Server{
		Handler:           s,
		ConnContext:       connContext,
		ConnState:         s.limits.connState,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// Divert hands the server a connection accepted on another port, the RPC
// port 111, whose first bytes (still readable from c) are not an RPC record
// mark. It blocks until the server accepts c, so call it from the
// connection's own goroutine; after Close it closes c.
func (s *Server) Divert(c net.Conn) {
	if err := s.divert.Deliver(c); err != nil {
		s.log.Debug("diverted connection dropped", "remote", c.RemoteAddr(), "err", err)
	}
}

// DivertListener returns the listener that Divert feeds, for serving it
// by hand with Serve.
func (s *Server) DivertListener() net.Listener { return s.divert }

// Serve serves HTTP on l until Close or Shutdown. Requests arriving on an
// AF_UNIX listener carry their peer's credentials and may register. Its
// connections are admitted within the limits of Config (MaxConns,
// MaxConnsPerSource, Budget).
func (s *Server) Serve(l net.Listener) error {
	err := s.http.Serve(s.limits.listener(l))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// shutdownGrace is how long requests under way may take to finish once
// serving is to stop; then their connections are closed. A stopping
// daemon must not wait on a client that sends nothing.
const shutdownGrace = 250 * time.Millisecond

// ServeListeners serves HTTP on ls (as Listen opened them) and on diverted
// connections until ctx is done or one of them fails; then it closes them,
// gives requests under way a moment to finish and closes every
// connection. Requests arriving on an AF_UNIX listener carry
// their peer's credentials and may register.
func (s *Server) ServeListeners(ctx context.Context, ls []net.Listener) error {
	ls = append(ls[:len(ls):len(ls)], s.divert)
	errc := make(chan error, len(ls))
	for _, l := range ls {
		go func() { errc <- s.Serve(l) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if s.Shutdown(sctx) != nil {
		s.Close()
	}
	return err
}

// Shutdown stops serving gracefully, as http.Server.Shutdown does, ending
// blocking queries (which answer) and event streams at once.
// Registrations stay in the registry.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	s.divert.Close()
	err := s.http.Shutdown(ctx)
	s.limits.close()
	return err
}

// Close stops serving at once.
func (s *Server) Close() error {
	s.stop()
	s.divert.Close()
	err := s.http.Close()
	s.limits.close()
	return err
}

// stop tells the watchers that serving stops.
func (s *Server) stop() { s.stopOnce.Do(func() { close(s.stopping) }) }

// register registers reg's services for the process it names (the caller
// when none), to end when that process exits.
func (s *Server) register(p *sender, reg *Registration) ([]registry.Service, error) {
	svcs, err := reg.services()
	if err != nil {
		return nil, err
	}
	if p.caller.Transport != registry.Local || p.caller.Cred == nil {
		return nil, &localOnlyError{s.cfg.SocketPath}
	}
	// Refuse a bad request before touching the process it names.
	for _, sv := range svcs {
		if err := registry.CheckService(sv); err != nil {
			return nil, err
		}
		if p := shadowingPath(sv.Name); p != "" {
			return nil, &registry.NamedError{Name: sv.Name, Err: ErrShadowedName, Detail: "GET " + p + " serves something else"}
		}
	}
	var h *lifetime.Handle
	if reg.PID == 0 || reg.PID == p.caller.Cred.PID {
		h, err = p.openProcess(s.life)
	} else {
		h, err = s.life.Open(reg.PID)
	}
	if err != nil {
		return nil, err
	}
	if reg.StartTime != 0 && reg.StartTime != h.Start {
		h.Close()
		return nil, &lifetime.Error{Op: "open", PID: h.PID, Err: lifetime.ErrGone}
	}
	added, err := s.life.Register(p.caller, h, svcs)
	if err != nil {
		return nil, err
	}
	for _, a := range added {
		s.cfg.Audit.Change(p.caller, "register", auditService(a), audit.Done, nil)
	}
	return added, nil
}

// deregister removes services and stops watching processes left with none.
func (s *Server) deregister(c registry.Caller, svcs []registry.Service, name string) ([]registry.Service, error) {
	var removed []registry.Service
	var err error
	if svcs != nil {
		removed, err = s.reg.DeregisterNamed(c, svcs)
	} else {
		removed, err = s.reg.DeregisterName(c, name)
	}
	s.life.Deregistered(removed)
	for _, r := range removed {
		s.cfg.Audit.Change(c, "deregister", auditService(r), audit.Done, nil)
	}
	if errors.Is(err, registry.ErrNotLocal) {
		err = &localOnlyError{s.cfg.SocketPath}
	}
	if err != nil {
		s.auditFailure(c, "deregister", svcs, name, err)
	}
	return removed, err
}

// hostOf strips the port from an HTTP Host header.
func hostOf(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return strings.Trim(h, "[]")
}
