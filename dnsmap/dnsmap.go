// Package dnsmap is portmapd's DNS face: it answers SRV and A/AAAA
// queries for the registry's names, under the scheme of package
// registry/srvname, from the registry itself, and only with instances
// whose checks pass. It is built on github.com/miekg/dns and is opt-in
// (the daemon's --dns).
//
// An SRV record's target is the host's name, and its A and AAAA records
// come in the additional section: the loopback addresses for a client on
// loopback, the host's other addresses for anyone else. Records have TTL
// 0, since an instance may stop passing at any moment. Only TCP and UDP
// ports are answered, which is all that a viewer on another host may see
// of the registry by the HTTP face's rule too.
//
// What a peer can take is bounded as on the other faces (netlimit): TCP
// connections in total and per source, and over UDP the bytes by which
// replies to one remote source exceed its queries; a reply past that is
// not sent. UDP replies are cut to what the client can take (512 bytes,
// or its EDNS0 size), with the TC bit set.
package dnsmap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/portmapd/portmapd/internal/rpcent"
	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/netid/ifaddrs"
	"github.com/portmapd/portmapd/netlimit"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/registry/srvname"
)

// Defaults of Config.
const (
	DefaultMaxConns          = 256
	DefaultMaxConnsPerSource = 16
	DefaultIdleTimeout       = 10 * time.Second
)

// Config configures the DNS face.
type Config struct {
	// Hostname is the target of every SRV record; os.Hostname when
	// empty.
	Hostname string
	// RPCNames is the file naming RPC programs, rpcent.DefaultPath when
	// empty.
	RPCNames string
	// Interfaces lists this host's addresses, the A and AAAA records of
	// Hostname for a client not on loopback; ifaddrs.ReadSource when
	// nil.
	Interfaces ifaddrs.Source
	// ReplyLimit bounds the bytes by which UDP replies to one remote
	// source may exceed its queries; none when nil. Loopback is never
	// limited.
	ReplyLimit *netlimit.ReplyBuckets
	// Limits cap the TCP connections: MaxConns and MaxConnsPerSource in
	// total and from one address (an IPv6 /64, loopback not capped),
	// DefaultMaxConns and DefaultMaxConnsPerSource when 0; IdleTimeout
	// closes one that asks nothing for this long between queries,
	// DefaultIdleTimeout when 0. Budget is the daemon's descriptor
	// budget they are charged to; none when nil.
	netlimit.Limits
	Budget *netlimit.Budget
	// Observer, when set, is told of each TCP connection refused or
	// evicted at a limit and each UDP reply withheld, where "dns" (the
	// daemon's metrics).
	Observer netlimit.Observer
	// Logger receives the log; nothing is logged when nil.
	Logger *slog.Logger
}

// A Server answers DNS queries from a registry. NewServer starts nothing;
// Serve serves until its context ends.
type Server struct {
	reg   *registry.Registry
	cfg   Config
	log   *slog.Logger
	names *rpcent.Names
	host  string
	lim   *netlimit.Limiter
}

// NewServer returns a Server of reg.
func NewServer(reg *registry.Registry, cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
	}
	if cfg.RPCNames == "" {
		cfg.RPCNames = rpcent.DefaultPath
	}
	if cfg.Interfaces == nil {
		cfg.Interfaces = ifaddrs.ReadSource
	}
	cfg.Limits = cfg.Limits.Or(netlimit.Limits{MaxConns: DefaultMaxConns, MaxConnsPerSource: DefaultMaxConnsPerSource, IdleTimeout: DefaultIdleTimeout})
	return &Server{
		reg: reg,
		cfg: cfg,
		log: cfg.Logger,
		// The same names as the HTTP face shows.
		names: rpcent.NewNames(cfg.RPCNames, func(name string) bool { return registry.ValidateName(name) == nil }),
		host:  dns.Fqdn(cfg.Hostname),
		lim: netlimit.New(netlimit.Config{
			Name: faceName, MaxConns: cfg.MaxConns, MaxPerSource: cfg.MaxConnsPerSource,
			Budget: cfg.Budget, Logger: cfg.Logger, Observer: cfg.Observer,
		}),
	}
}

// Listen opens UDP and TCP on addr (host:port). With port 0 the two share
// the port the system gives UDP, tried again with another when TCP's is
// taken. A daemon that gives up root opens them before it does.
func Listen(addr string) (*net.UDPConn, net.Listener, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dnsmap: %w", err)
	}
	host, _, _ := net.SplitHostPort(addr)
	for try := 0; ; try++ {
		pc, err := net.ListenUDP("udp", ua)
		if err != nil {
			return nil, nil, fmt.Errorf("dnsmap: %w", err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if ua.Port != 0 || try == maxPortTries || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("dnsmap: %w", err)
		}
	}
}

// faceName is the DNS face's name in its limiter's log lines and to an
// Observer.
const faceName = "dns"

// maxPortTries bounds the search for a port free for both UDP and TCP.
const maxPortTries = 16

// Timeouts of a TCP connection.
const (
	tcpTimeout = 5 * time.Second
	// maxTCPQueries is how many queries one TCP connection may ask.
	maxTCPQueries = 128
)

// Serve answers queries on pc and ln (either may be nil) until ctx is
// done or one of them fails, then closes them.
func (s *Server) Serve(ctx context.Context, pc net.PacketConn, ln net.Listener) error {
	var servers []*dns.Server
	if pc != nil {
		servers = append(servers, &dns.Server{PacketConn: pc, Handler: s})
	}
	if ln != nil {
		servers = append(servers, &dns.Server{
			Listener: &limitedListener{netlimit.NewListener(ln, s.lim)}, Handler: s,
			ReadTimeout: tcpTimeout, WriteTimeout: tcpTimeout,
			IdleTimeout: func() time.Duration { return s.cfg.IdleTimeout }, MaxTCPQueries: maxTCPQueries,
		})
	}
	errc := make(chan error, len(servers))
	var started sync.WaitGroup
	for _, srv := range servers {
		started.Add(1)
		var once sync.Once
		srv.NotifyStartedFunc = func() { once.Do(started.Done) }
		go func() {
			err := srv.ActivateAndServe()
			once.Do(started.Done) // it failed to start
			errc <- err
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	// A server shuts down only once started.
	started.Wait()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	for _, srv := range servers {
		_ = srv.ShutdownContext(sctx)
	}
	s.lim.Close()
	return err
}

// limitedListener admits TCP connections through the server's limiter.
type limitedListener struct {
	*netlimit.Listener
}

// Accept returns the next connection within the limits; closing it
// gives its place back.
func (l *limitedListener) Accept() (net.Conn, error) {
	c, slot, err := l.AcceptSlot()
	if err != nil {
		return nil, err
	}
	return &slotConn{Conn: c, slot: slot}, nil
}

type slotConn struct {
	net.Conn
	slot *netlimit.Slot
}

func (c *slotConn) Close() error {
	c.slot.Release()
	return c.Conn.Close()
}

// remoteOf is the address a query came from; the zero Addr when unknown.
func remoteOf(a net.Addr) (netip.Addr, bool) {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap(), true
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap(), false
	}
	return netip.Addr{}, false
}

// ServeDNS answers one query. A query that is not one question of class
// IN is refused as not implemented; a name outside the registry's is
// NXDOMAIN.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	m.RecursionAvailable = false
	src, udp := remoteOf(w.RemoteAddr())
	switch {
	case r.Opcode != dns.OpcodeQuery || len(r.Question) != 1 || r.Question[0].Qclass != dns.ClassINET:
		m.SetRcode(r, dns.RcodeNotImplemented)
	default:
		m.Answer, m.Extra, m.Rcode = s.answer(r.Question[0], src)
	}
	size := dns.MaxMsgSize
	if udp {
		size = dns.MinMsgSize
		if opt := r.IsEdns0(); opt != nil {
			size = max(int(opt.UDPSize()), dns.MinMsgSize)
		}
	}
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(uint16(min(size, dns.DefaultMsgSize)), false)
	}
	m.Truncate(size)
	if udp && s.cfg.ReplyLimit != nil && !src.IsLoopback() && !s.cfg.ReplyLimit.Allow(src, r.Len(), m.Len(), time.Now()) {
		// Withheld: this source has taken its share.
		if s.cfg.Observer != nil {
			s.cfg.Observer.LimitHit(faceName, netlimit.LimitReplyRate, netlimit.ActionWithheld)
		}
		return
	}
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("dns reply not sent", "remote", w.RemoteAddr(), "err", err)
	}
}

// plainName returns a name in presentation form (me\@example.com., as
// the dns package gives a question's) as its labels' bytes joined by
// dots, as the registry spells names (me@example.com); false when a
// label holds a dot, which no registered name can.
func plainName(name string) (string, bool) {
	buf := make([]byte, 256) // a name in wire form is at most 255 bytes
	n, err := dns.PackDomainName(dns.Fqdn(name), buf, 0, nil, false)
	if err != nil {
		return "", false
	}
	var labels []string
	for off := 0; off < n && buf[off] != 0; {
		l := int(buf[off])
		label := string(buf[off+1 : off+1+l])
		if strings.Contains(label, ".") {
			return "", false
		}
		labels = append(labels, label)
		off += 1 + l
	}
	return strings.Join(labels, "."), true
}

// A target is one port an instance listens on, for an SRV record.
type target struct {
	proto netid.ID
	port  uint16
}

// answer returns the answer and additional records of q, asked by src,
// and the rcode.
func (s *Server) answer(q dns.Question, src netip.Addr) (ans, extra []dns.RR, rcode int) {
	if strings.EqualFold(q.Name, s.host) {
		return s.addressRecords(q.Name, q.Qtype, src), nil, dns.RcodeSuccess
	}
	name, ok := plainName(q.Name)
	if !ok {
		return nil, nil, dns.RcodeNameError
	}
	sq, err := srvname.Parse(name)
	if err != nil {
		return nil, nil, dns.RcodeNameError
	}
	targets := s.targets(sq)
	if len(targets) == 0 {
		return nil, nil, dns.RcodeNameError
	}
	hdr := func(t uint16) dns.RR_Header { return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET} }
	bare := sq.Proto == "" && !sq.HasVers
	if q.Qtype == dns.TypeSRV || q.Qtype == dns.TypeANY {
		for _, t := range targets {
			ans = append(ans, &dns.SRV{Hdr: hdr(dns.TypeSRV), Port: t.port, Target: s.host})
		}
		extra = s.addressRecords(s.host, dns.TypeANY, src)
	}
	if bare && (q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA || q.Qtype == dns.TypeANY) {
		ans = append(ans, s.addressRecords(q.Name, q.Qtype, src)...)
	}
	return ans, extra, dns.RcodeSuccess
}

// targets returns the ports of the passing instances that sq asks for,
// in registration order, each once: a named service of sq's name with a
// TCP or UDP port, and RPC programs on an IP netid named so under
// oncrpc.alt, by number or by their /etc/rpc name, as the HTTP face names
// them.
func (s *Server) targets(sq srvname.Query) []target {
	var out []target
	add := func(t target) {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	for _, svc := range s.reg.LookupNamed(sq.Name) {
		if (svc.Network == netid.TCP || svc.Network == netid.UDP) && svc.Port != 0 &&
			svc.Health.Status == registry.Passing && sq.Accepts(svc.Network, false, 0) {
			add(target{svc.Network, svc.Port})
		}
	}
	if !registry.IsReservedName(sq.Name) {
		return out
	}
	s.names.Refresh()
	name := strings.ToLower(sq.Name)
	for e := range s.reg.All() {
		id := e.Netid.Lower()
		if !id.IsIP() || e.Health.Status != registry.Passing {
			continue
		}
		port, ok := netid.UaddrPort(e.Addr)
		if !ok || port == 0 {
			continue
		}
		nc, _ := netid.Lookup(id)
		proto := netid.ID(nc.Proto)
		if !sq.Accepts(proto, true, e.Vers) {
			continue
		}
		number := strconv.FormatUint(uint64(e.Prog), 10) + "." + registry.ReservedZone
		official := s.names.Name(e.Prog)
		if name == number || official != "" && name == strings.ToLower(official)+"."+registry.ReservedZone {
			add(target{proto, port})
		}
	}
	return out
}

// addressRecords returns the A and AAAA records (as qtype asks: A, AAAA
// or ANY for both) of this host named name, for a client at src.
func (s *Server) addressRecords(name string, qtype uint16, src netip.Addr) []dns.RR {
	var out []dns.RR
	for _, a := range s.hostAddrs(src) {
		switch {
		case a.Is4() && (qtype == dns.TypeA || qtype == dns.TypeANY):
			out = append(out, &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET}, A: a.AsSlice()})
		case a.Is6() && (qtype == dns.TypeAAAA || qtype == dns.TypeANY):
			out = append(out, &dns.AAAA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET}, AAAA: a.AsSlice()})
		}
	}
	return out
}

// loopbacks are this host's addresses for a client on loopback.
var loopbacks = []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()}

// hostAddrs returns the addresses this host is reached at by a client at
// src: loopback for a loopback client, else its interfaces' addresses
// that are up, not loopback and not link-local (which need a zone).
func (s *Server) hostAddrs(src netip.Addr) []netip.Addr {
	if !src.IsValid() || src.IsLoopback() {
		return loopbacks
	}
	list, err := s.cfg.Interfaces(netip.Addr{})
	if err != nil {
		s.log.Warn("cannot list the interfaces' addresses", "err", err)
	}
	var out []netip.Addr
	for _, a := range list {
		ip := a.Prefix.Addr()
		if a.Up && !a.Loopback && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() && !slices.Contains(out, ip) {
			out = append(out, ip)
		}
	}
	return out
}
