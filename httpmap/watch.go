package httpmap

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portmapd/portmapd/netlimit"
	"github.com/portmapd/portmapd/registry"
)

// IndexHeader carries, on every listing and lookup, the index of the
// registry's last change it includes: the index= of the next blocking
// query.
const IndexHeader = "X-Portmap-Index"

// A ParamError reports a parameter of a blocking query or an event
// stream (index=, wait=, Last-Event-ID) that cannot be read.
type ParamError struct {
	Key, Value, Want string
}

// errBadParam is what every *ParamError is.
var errBadParam = errors.New("bad parameter")

func (e *ParamError) Error() string { return fmt.Sprintf("%s %q is not %s", e.Key, e.Value, e.Want) }

func (e *ParamError) Unwrap() error { return errBadParam }

// errTooManyWatchers refuses a blocking query or event stream past
// Config.MaxWatchers or MaxWatchersPerSource.
var errTooManyWatchers = errors.New("too many blocking queries and event streams")

// watchers bounds the requests that wait for changes: each holds a
// connection for as long as it waits, so there are fewer of them, in
// total and per source, than connections.
type watchers struct {
	max, perSource int
	uncapped       []netip.Prefix
	// obs, when set, is told of each watcher refused at a cap.
	obs netlimit.Observer

	mu       sync.Mutex
	total    int
	bySource map[netip.Prefix]int
}

func newWatchers(cfg Config) watchers {
	return watchers{max: cfg.MaxWatchers, perSource: cfg.MaxWatchersPerSource, uncapped: cfg.TrustedProxies, obs: cfg.Observer,
		bySource: map[netip.Prefix]int{}}
}

// Limits a watcher refused is counted under, beside the connection caps
// netlimit names.
const (
	limitWatchers          = "watchers"
	limitWatchersPerSource = "watchers_per_source"
)

// acquire counts a watcher from p, and returns the function that stops
// counting it, or errTooManyWatchers.
func (w *watchers) acquire(p *sender) (func(), error) {
	src, capped := netip.Prefix{}, false
	if p.caller.Transport == registry.Network {
		src, capped = netlimit.SourceKey(p.caller.Addr.Addr())
		for _, u := range w.uncapped {
			capped = capped && !u.Contains(p.caller.Addr.Addr().Unmap())
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.total >= w.max || capped && w.bySource[src] >= w.perSource {
		if w.obs != nil {
			where, limit := "http", limitWatchers
			if p.caller.Transport == registry.Local {
				where = "http-local"
			}
			if w.total < w.max {
				limit = limitWatchersPerSource
			}
			w.obs.LimitHit(where, limit, netlimit.ActionRefused)
		}
		return nil, fmt.Errorf("%w (at most %d, %d from one address)", errTooManyWatchers, w.max, w.perSource)
	}
	w.total++
	if capped {
		w.bySource[src]++
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.total--
			if capped {
				if w.bySource[src]--; w.bySource[src] <= 0 {
					delete(w.bySource, src)
				}
			}
		})
	}, nil
}

// writeGrace is how long an answer may take to write once a wait ends.
const writeGrace = 30 * time.Second

// block makes a request with index= wait, before it is answered, until
// the registry has a change after that index that the request would see
// (of its name or filters, and within the remote view), for at most wait=
// (Config.MaxWait, which also caps it). An index in the past, or not of
// this history, is answered at once. It fails only on a bad index= or
// wait=, or with errTooManyWatchers.
func (s *Server) block(q *request, f filter) error {
	v := q.r.URL.Query()
	after, err := strconv.ParseUint(v.Get("index"), 10, 64)
	if err != nil {
		return &ParamError{"index=", v.Get("index"), "an index"}
	}
	wait := s.cfg.MaxWait
	if w := v.Get("wait"); w != "" {
		d, err := parseDuration(w)
		if err != nil || d <= 0 {
			return &ParamError{"wait=", w, "a positive duration"}
		}
		wait = min(d, wait)
	}
	release, err := s.watchers.acquire(q.sender)
	if err != nil {
		return err
	}
	defer release()
	_ = http.NewResponseController(q.w).SetWriteDeadline(time.Now().Add(wait + writeGrace))
	timer := time.NewTimer(wait)
	defer timer.Stop()
	external := s.external(q.sender, q.r)
	for {
		index, changed := s.reg.Watch()
		if index < after {
			return nil // another history's index
		}
		if index > after {
			cs, ok := s.reg.ChangesSince(after)
			if !ok || s.relevant(q, f, external, cs) {
				return nil
			}
			after = index
		}
		select {
		case <-changed:
		case <-timer.C:
			return nil
		case <-q.r.Context().Done():
			return nil
		case <-s.stopping:
			return nil
		}
	}
}

// relevant reports whether any of cs changes what q sees.
func (s *Server) relevant(q *request, f filter, external bool, cs []registry.Change) bool {
	// A change of health may take an instance out of a passing= view
	// as well as into it: for waking, every change of health counts.
	f.passing = false
	for _, c := range cs {
		if len(s.visible(q, f, external, c)) > 0 {
			return true
		}
	}
	return false
}

// changeInstances presents what a change added, removed or changed, as
// the listing would show it.
func (s *Server) changeInstances(c registry.Change) []Instance {
	switch c.Op {
	case registry.OpSet, registry.OpUnset, registry.OpEntryHealth:
		return rpcInstances(c.Entry, s.names)
	case registry.OpRegister, registry.OpDeregister, registry.OpServiceHealth:
		return []Instance{serviceInstance(c.Service)}
	}
	return nil
}

// visible returns the instances of a change that q selects (of q's name,
// passing its filters) and may see: for a remote viewer, what the rule of
// every listing (remoteView) leaves.
func (s *Server) visible(q *request, f filter, external bool, c registry.Change) []Instance {
	var out []Instance
	for _, in := range s.changeInstances(c) {
		if (q.name == "" || strings.EqualFold(in.Service, q.name)) && f.match(in, q.users) {
			out = append(out, in)
		}
	}
	if external {
		out = remoteView(view{named: out}).named
	}
	return out
}
