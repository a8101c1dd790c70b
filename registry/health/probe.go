package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/xdr"
)

// An endpoint is where a check connects: a Go network and address on
// this host.
type endpoint struct {
	network string // tcp, udp or unix
	addr    string
}

// loopbacks are the addresses a named service's port is probed on, in
// order: it was registered by a port on this host, and is reached there.
var loopbacks = [...]netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()}

// serviceEndpoints returns where a named service is probed.
func serviceEndpoints(s registry.Service) []endpoint {
	switch s.Network {
	case netid.Unix:
		return []endpoint{{"unix", s.Path}}
	case netid.TCP, netid.UDP:
		var eps []endpoint
		for _, a := range loopbacks {
			eps = append(eps, endpoint{string(s.Network), netip.AddrPortFrom(a, s.Port).String()})
		}
		return eps
	}
	return nil
}

// entryEndpoints returns where an RPC entry is probed, and false when it
// may not be: its address is neither a local socket, nor a wildcard or
// loopback address, nor one of the host's own (which host lists, read
// only when needed), or its netid is none of these.
func entryEndpoints(e registry.Entry, host func() []netip.Addr) ([]endpoint, bool) {
	id := e.Netid.Lower()
	if id.IsLocal() {
		if e.Addr == "" {
			return nil, false
		}
		return []endpoint{{"unix", e.Addr}}, true
	}
	if !id.IsIP() {
		return nil, false
	}
	ap, ok := netid.ParseUaddr(e.Addr)
	if !ok || ap.Port() == 0 {
		return nil, false
	}
	nc, _ := netid.Lookup(id)
	a := ap.Addr().Unmap()
	switch {
	case a.IsUnspecified():
		a = loopbacks[0]
		if id.Is6() {
			a = loopbacks[1]
		}
	case a.IsLoopback():
	case !slices.Contains(host(), a):
		return nil, false
	}
	return []endpoint{{nc.Proto, netip.AddrPortFrom(a, ap.Port()).String()}}, true
}

// probe runs the active checks at the first of eps that a connection can
// be made to, and returns the worst of their findings.
func probe(ctx context.Context, c registry.Checks, eps []endpoint) registry.Health {
	worst := registry.Health{}
	note := func(h registry.Health) {
		if h.Status > worst.Status || worst.Output == "" && h.Status == worst.Status {
			worst = h
		}
	}
	if c.TCP {
		note(probeConnect(ctx, eps))
	}
	if c.HTTP != "" {
		note(probeHTTP(ctx, eps, c.HTTP))
	}
	if c.RPC {
		note(probeRPC(ctx, eps, c.RPCProg, c.RPCVers))
	}
	return worst
}

func critical(format string, args ...any) registry.Health {
	return registry.Health{Status: registry.Critical, Output: fmt.Sprintf(format, args...)}
}

// dial connects to the first of eps that accepts, and returns the last
// failure when none does.
func dial(ctx context.Context, eps []endpoint) (net.Conn, error) {
	var d net.Dialer
	err := errors.New("nowhere to connect to")
	for _, ep := range eps {
		var c net.Conn
		if c, err = d.DialContext(ctx, ep.network, ep.addr); err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, err
}

// probeConnect is the tcp check: a connection is made.
func probeConnect(ctx context.Context, eps []endpoint) registry.Health {
	c, err := dial(ctx, eps)
	if err != nil {
		return critical("tcp: %v", err)
	}
	c.Close()
	return registry.Health{Output: "tcp: connected to " + c.RemoteAddr().String()}
}

// probeHTTP is the http check: GET path on this host; 2xx is passing,
// 429 warning, the rest critical. It follows no redirect (one could lead
// off the host) and uses no proxy.
func probeHTTP(ctx context.Context, eps []endpoint, path string) registry.Health {
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dial(ctx, eps)
		},
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 16 << 10,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://localhost"+path, nil)
	if err != nil {
		return critical("http: %v", err)
	}
	req.Header.Set("User-Agent", "portmapd-health")
	resp, err := hc.Do(req)
	if err != nil {
		return critical("http: GET %s: %v", path, errors.Unwrap(err))
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	out := "http: GET " + path + ": " + resp.Status
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return registry.Health{Output: out}
	case resp.StatusCode == http.StatusTooManyRequests:
		return registry.Health{Status: registry.Warning, Output: out}
	}
	return registry.Health{Status: registry.Critical, Output: out}
}

// probeRPC is the rpc check: a NULL call to prog, vers is answered. With
// vers 0 any version will do, so a version mismatch is an answer too.
func probeRPC(ctx context.Context, eps []endpoint, prog, vers uint32) registry.Health {
	what := "rpc: NULL " + strconv.FormatUint(uint64(prog), 10) + "/" + strconv.FormatUint(uint64(vers), 10)
	var err error
	for _, ep := range eps {
		var c *oncrpc.Client
		if c, err = oncrpc.Dial(ctx, ep.network, ep.addr); err != nil {
			continue
		}
		err = c.Null(ctx, prog, vers)
		c.Close()
		var re *xdr.ReplyError
		if err == nil || vers == 0 && errors.As(err, &re) && re.Header.Stat == xdr.MsgAccepted && re.Header.Accept == xdr.ProgMismatch {
			return registry.Health{Output: what + ": answered at " + ep.addr}
		}
		if re != nil || ctx.Err() != nil {
			break // answered, but not as it should; or out of time
		}
	}
	return critical("%s: %v", what, err)
}
