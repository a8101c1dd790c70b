package httpmap

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/registry"
)

// An Error is a refusal from the server: its status and the one-line
// reason it gave.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("portmapd: %s (HTTP %d)", e.Message, e.Status)
}

// A Client talks to a portmapd HTTP face: over the local socket, where it
// may register, or over TCP to any host, where it may only look up.
type Client struct {
	hc   *http.Client
	base string
	// host is the TCP host services are dialled on; "" for the local
	// socket, where services are on this host.
	host string
	// where is what the client dials: the local socket's path, or
	// host:port.
	where string
	// owner restricts lookups to one user's registrations (WithOwner).
	owner url.Values
	// passing restricts lookups to passing instances (WithPassing).
	passing bool
}

// NewLocalClient returns a Client for the daemon's local socket (empty:
// DefaultSocketPath), the only place registrations are accepted.
func NewLocalClient(socketPath string) *Client {
	if socketPath == "" {
		socketPath = DefaultSocketPath
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socketPath)
		},
		// A connection is tied to the process whose credentials the
		// server read at connect; one is plenty.
		MaxConnsPerHost: 1,
	}
	return &Client{hc: &http.Client{Transport: tr}, base: "http://localhost", where: socketPath}
}

// NewClient returns a Client for the HTTP face at addr (host:port, or a
// host, meaning DefaultHTTPPort).
func NewClient(addr string) *Client {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(strings.Trim(addr, "[]"), DefaultHTTPPort)
	}
	host, _, _ := net.SplitHostPort(addr)
	return &Client{hc: &http.Client{}, base: "http://" + addr, host: host, where: addr}
}

// An UnreachableError reports that the client could not talk to portmapd
// at all: nothing listens where it looked, it may not connect there, or
// the connection failed.
type UnreachableError struct {
	// Where is what the client dialled: the local socket's path, or
	// host:port.
	Where string
	// Local is true for the local socket.
	Local bool
	Err   error
}

func (e *UnreachableError) Error() string {
	what := "portmapd's HTTP face at " + e.Where
	if e.Local {
		what = "portmapd's HTTP socket " + e.Where
	}
	var op *net.OpError
	dial := errors.As(e.Err, &op) && op.Op == "dial"
	switch {
	case dial && errors.Is(e.Err, syscall.ENOENT):
		return "portmapd is not running: there is no socket " + e.Where
	case dial && errors.Is(e.Err, syscall.ECONNREFUSED):
		if e.Local {
			return "portmapd is not running: nothing listens on its HTTP socket " + e.Where
		}
		return "portmapd is not reachable: nothing listens at " + e.Where
	case errors.Is(e.Err, syscall.EACCES), errors.Is(e.Err, syscall.EPERM):
		return "permission denied connecting to " + what
	case errors.Is(e.Err, context.DeadlineExceeded):
		return "no answer from " + what + " in the time allowed"
	case dial:
		return "cannot connect to " + what + ": " + errText(op.Err)
	}
	return "no answer from " + what + ": " + errText(e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// errText is err's text without the request that Go's HTTP client puts
// before it (`Get "http://localhost/portmap": `).
func errText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

// do sends a request and returns the instances of the JSON listing it
// answers, or the server's refusal as an *Error.
func (c *Client) do(ctx context.Context, method, path string, body any) ([]Instance, error) {
	l, err := c.listing(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	return l.Instances, nil
}

// listing sends a request and decodes the JSON listing it answers.
func (c *Client) listing(ctx context.Context, method, path string, body any) (*Listing, error) {
	l, _, err := c.indexedListing(ctx, method, path, body)
	return l, err
}

// indexedListing is listing, with the index the answer is as of
// (IndexHeader), also with a refusal.
func (c *Client) indexedListing(ctx context.Context, method, path string, body any) (*Listing, uint64, error) {
	var l Listing
	index, err := c.call(ctx, method, path, body, &l)
	if err != nil {
		return nil, index, err
	}
	return &l, index, nil
}

// getJSON gets path and decodes its JSON answer into out.
func (c *Client) getJSON(ctx context.Context, path string, out any) error {
	_, err := c.call(ctx, http.MethodGet, path, nil, out)
	return err
}

// call sends a request and decodes the JSON it answers into out, and
// returns the index the answer is as of (IndexHeader), also with a
// refusal.
func (c *Client) call(ctx context.Context, method, path string, body, out any) (uint64, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	h := http.Header{}
	h.Set("Accept", TypeJSON)
	if body != nil {
		h.Set("Content-Type", TypeJSON)
	}
	resp, err := c.send(ctx, method, path, h, rd)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	index, _ := strconv.ParseUint(resp.Header.Get(IndexHeader), 10, 64)
	// A listing of a busy host is large, but not unbounded.
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, c.unreachable(err)
	}
	if resp.StatusCode >= 300 {
		return index, refusal(resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return index, fmt.Errorf("portmapd: bad listing: %w", err)
	}
	return index, nil
}

// send sends a request for path with header and body, and returns the
// server's answer, or an *UnreachableError when none came.
func (c *Client) send(ctx context.Context, method, path string, header http.Header, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header = header
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.unreachable(err)
	}
	return resp, nil
}

// unreachable reports err, met talking to the server, as an
// *UnreachableError.
func (c *Client) unreachable(err error) error {
	return &UnreachableError{Where: c.where, Local: c.host == "", Err: err}
}

// refusal is the server's refusal with status, in the words of its body:
// an ErrorBody's, or else the text.
func refusal(status int, body []byte) *Error {
	var eb ErrorBody
	if json.Unmarshal(body, &eb) != nil || eb.Error == "" {
		eb.Error = strings.TrimSpace(string(body))
	}
	return &Error{Status: status, Message: eb.Error}
}

// Register registers reg's services, all or none, and returns those added.
func (c *Client) Register(ctx context.Context, reg Registration) ([]Instance, error) {
	return c.do(ctx, http.MethodPost, listPath, reg)
}

// Deregister removes reg's services, all or none, and returns them.
func (c *Client) Deregister(ctx context.Context, reg Registration) ([]Instance, error) {
	return c.do(ctx, http.MethodDelete, listPath, reg)
}

// WithOwner returns a Client like c whose Lookup and Dial see only the
// registrations of owner: a decimal uid, or a user name that the server
// resolves in its own user database. Exclusivity is per uid, so any user
// may register a name that another holds; a client that trusts only, say,
// root's instance of a name asks with WithOwner("0"). An empty owner sees
// everyone's. (List takes its owners in its Filter.)
func (c *Client) WithOwner(owner string) *Client {
	out := *c
	switch {
	case owner == "":
		out.owner = nil
	case isDecimal(owner):
		out.owner = url.Values{"uid": {owner}}
	default:
		out.owner = url.Values{"user": {owner}}
	}
	return &out
}

func isDecimal(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

// ownerQuery is the query part ("" or "?...") that restricts a lookup to
// the owner and, after WithPassing, to passing instances.
func (c *Client) ownerQuery() string {
	q := url.Values{}
	for k, v := range c.owner {
		q[k] = v
	}
	if c.passing {
		q.Set("passing", "1")
	}
	if e := q.Encode(); e != "" {
		return "?" + e
	}
	return ""
}

// Filter selects what List returns; each field matches any of its values.
type Filter struct {
	Services, Users, Progs []string
	UIDs                   []uint32
	PIDs                   []int32
}

// List returns the instances passing f.
func (c *Client) List(ctx context.Context, f Filter) ([]Instance, error) {
	return c.do(ctx, http.MethodGet, listPath+f.query(), nil)
}

// Ping checks that the server answers, at the cost of a listing of
// nothing.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.listing(ctx, http.MethodGet, listPath+"?service=.", nil)
	return err
}

// Removals returns the latest registrations the daemon removed on its own,
// oldest first, and how many of each kind it has removed since it started.
func (c *Client) Removals(ctx context.Context) ([]Removal, KindCounts, error) {
	// The filter matches no instance: only the removals are wanted.
	l, err := c.listing(ctx, http.MethodGet, listPath+"?service=.", nil)
	if err != nil {
		return nil, KindCounts{}, err
	}
	return l.RecentRemovals, l.Removed, nil
}

// Lookup returns the instances of name (of the owner, after WithOwner);
// an *Error with status 404 when there are none.
func (c *Client) Lookup(ctx context.Context, name string) ([]Instance, error) {
	return c.do(ctx, http.MethodGet, listPath+"/"+url.PathEscape(name)+c.ownerQuery(), nil)
}

// ErrNoInstance reports a name none of whose instances could be dialled.
var ErrNoInstance = errors.New("portmapd: no instance could be reached")

// Dial connects to the first instance of name that answers, trying them in
// the server's order as httportmap does. UDP instances are skipped, and so
// are AF_UNIX paths unless the client talks to this host's local socket,
// and TCPMUX hand-off sockets.
func (c *Client) Dial(ctx context.Context, name string) (net.Conn, error) {
	ins, err := c.Lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	errs := []error{ErrNoInstance}
	for _, in := range ins {
		var network, addr string
		switch in.Protocol {
		case netid.TCP:
			host := c.host
			if host == "" {
				host = "localhost"
			}
			network, addr = "tcp", net.JoinHostPort(host, in.Port)
		case netid.Unix:
			// A TCPMUX hand-off socket is not the service: it takes
			// connections from portmapd alone.
			if !c.onThisHost() || in.TCPMux || !registry.IsUnixPath(in.Port) {
				continue
			}
			network, addr = "unix", in.Port
		default:
			continue
		}
		conn, err := d.DialContext(ctx, network, addr)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("%s: %w", name, errors.Join(errs...))
}

// onThisHost reports whether the server, and so its services' AF_UNIX
// paths, are on this host.
func (c *Client) onThisHost() bool {
	if c.host == "" || c.host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(c.host)
	return err == nil && a.IsLoopback()
}
