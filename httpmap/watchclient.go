package httpmap

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/registry/srvname"
)

// WithPassing returns a Client like c whose Lookup, Dial, LookupIndex,
// WaitFor and Resolve see only instances whose checks pass.
func (c *Client) WithPassing() *Client {
	out := *c
	out.passing = true
	return &out
}

// Refresh refreshes the TTL of the caller's registrations of name (over
// the local socket), reporting status with an optional note, and returns
// them as they are now.
func (c *Client) Refresh(ctx context.Context, name string, status registry.Status, note string) ([]Instance, error) {
	q := url.Values{"status": {status.String()}}
	if note != "" {
		q.Set("note", note)
	}
	return c.do(ctx, http.MethodPut, listPath+"/"+url.PathEscape(name)+"?"+q.Encode(), nil)
}

// KeepAlive refreshes name's TTL as passing now and then every interval
// (which should be well within the TTL) until ctx is done, and returns
// nil then. A refusal (the registration is gone, or has no TTL) ends it
// with the server's *Error; while portmapd cannot be reached (it is
// restarting, say) it keeps trying.
func (c *Client) KeepAlive(ctx context.Context, name string, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		_, err := c.Refresh(ctx, name, registry.Passing, "")
		var ue *UnreachableError
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && !errors.As(err, &ue):
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// LookupIndex returns name's instances and the index of the registry's
// history they are as of. With after non-zero, the server first waits,
// for up to wait (its own cap, 5 minutes by default, if longer or zero),
// for a change of name after that index. A name without instances is an
// *Error with status 404, and the index still comes with it, for the
// next wait.
func (c *Client) LookupIndex(ctx context.Context, name string, after uint64, wait time.Duration) ([]Instance, uint64, error) {
	q, _ := url.ParseQuery(strings.TrimPrefix(c.ownerQuery(), "?"))
	if after != 0 {
		q.Set("index", strconv.FormatUint(after, 10))
		if wait > 0 {
			q.Set("wait", wait.String())
		}
	}
	path := listPath + "/" + url.PathEscape(name)
	if e := q.Encode(); e != "" {
		path += "?" + e
	}
	l, index, err := c.indexedListing(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, index, err
	}
	return l.Instances, index, nil
}

// WaitFor returns name's instances (only passing ones, after
// WithPassing) as soon as it has any, waiting for them with blocking
// queries: each wakes at the change that matters, so nothing is polled.
// It returns ctx's error when ctx ends first.
func (c *Client) WaitFor(ctx context.Context, name string) ([]Instance, error) {
	var after uint64
	for {
		ins, index, err := c.LookupIndex(ctx, name, after, 0)
		var he *Error
		switch {
		case err == nil && len(ins) > 0:
			return ins, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil && !(errors.As(err, &he) && he.Status == http.StatusNotFound):
			return nil, err
		case index == 0:
			return nil, errors.New("portmapd: no index in the answer to wait from")
		}
		after = index
	}
}

// A Target is where a name resolves to: a host and port, as an SRV record
// gives them.
type Target struct {
	// Host is the server's host for a remote client, and localhost for
	// the local socket's.
	Host  string
	Port  uint16
	Proto netid.ID
}

// Resolve finds where a DNS name of portmapd's scheme (see package
// srvname: backup.example.com, _tcp.backup.example.com,
// _v3._tcp.nfs.oncrpc.alt) points, by the same rules as the DNS face
// answers it: passing instances with a TCP or UDP port, each port once.
// It fails with the lookup's *Error 404 when there are none.
func (c *Client) Resolve(ctx context.Context, dnsName string) ([]Target, error) {
	q, err := srvname.Parse(dnsName)
	if err != nil {
		return nil, err
	}
	ins, err := c.WithPassing().Lookup(ctx, q.Name)
	if err != nil {
		return nil, err
	}
	host := c.host
	if host == "" {
		host = "localhost"
	}
	var out []Target
	for _, in := range ins {
		if in.Protocol != netid.TCP && in.Protocol != netid.UDP {
			continue
		}
		port, err := strconv.ParseUint(in.Port, 10, 16)
		if err != nil || port == 0 {
			continue
		}
		var vers uint32
		if in.RPC != nil {
			vers = in.RPC.Version
		}
		t := Target{Host: host, Port: uint16(port), Proto: in.Protocol}
		if q.Accepts(in.Protocol, in.RPC != nil, vers) && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, &Error{Status: http.StatusNotFound, Message: fmt.Sprintf("no passing instance answers %s", q)}
	}
	return out, nil
}

// Watch follows the registry's changes that f selects, calling fn with
// each, oldest first: from after (0: from now). When the connection
// breaks it connects again and resumes after the last change it saw, so
// that none is missed or seen twice, also across a restart of portmapd;
// when the server no longer has the changes to resume with, fn gets an
// Event of type EventReset, after which the caller should list again. It
// returns nil when ctx is done, fn's error when fn fails, and the
// server's *Error when it refuses the stream.
func (c *Client) Watch(ctx context.Context, after uint64, f Filter, fn func(Event) error) error {
	resume, last := after != 0, after
	for {
		err := c.watchOnce(ctx, resume, &last, f, fn)
		var he *Error
		var ce callbackError
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &ce):
			return ce.err
		case errors.As(err, &he):
			return he
		}
		resume = true
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// callbackError carries the error of Watch's fn out of watchOnce.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

// maxEventBytes bounds one line of the event stream.
const maxEventBytes = 4 << 20

// watchOnce reads one connection's event stream, keeping in *last the
// index of the last event, sent with the next connection as
// Last-Event-ID when resume is set.
func (c *Client) watchOnce(ctx context.Context, resume bool, last *uint64, f Filter, fn func(Event) error) error {
	h := http.Header{}
	h.Set("Accept", TypeEventStream)
	if resume {
		h.Set("Last-Event-ID", strconv.FormatUint(*last, 10))
	}
	resp, err := c.send(ctx, http.MethodGet, eventsPath+f.query(), h, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return refusal(resp.StatusCode, data)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4096), maxEventBytes)
	var id, data string
	for sc.Scan() {
		line := sc.Text()
		if line != "" {
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				id = value
			case "data":
				data = value
			}
			continue
		}
		if id != "" {
			if n, err := strconv.ParseUint(id, 10, 64); err == nil {
				*last = n
			}
		}
		if data != "" {
			var ev Event
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				return fmt.Errorf("portmapd: bad event: %w", err)
			}
			if err := fn(ev); err != nil {
				return callbackError{err}
			}
		}
		id, data = "", ""
	}
	if err := sc.Err(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return io.ErrUnexpectedEOF
}

// query is f as a query string, "" or "?...".
func (f Filter) query() string {
	q := url.Values{"service": f.Services, "user": f.Users, "prog": f.Progs}
	for _, u := range f.UIDs {
		q.Add("uid", strconv.FormatUint(uint64(u), 10))
	}
	for _, p := range f.PIDs {
		q.Add("pid", strconv.Itoa(int(p)))
	}
	if e := q.Encode(); e != "" {
		return "?" + e
	}
	return ""
}
