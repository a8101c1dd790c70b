package httpmap

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portmapd/portmapd/netlimit"
	"github.com/portmapd/portmapd/registry"
)

// routeCounter is an Observer that records what it is told.
type routeCounter struct {
	mu     sync.Mutex
	served []string
	limits []string
}

func (c *routeCounter) HTTPServed(route string, code int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.served = append(c.served, route+" "+http.StatusText(code))
}

func (c *routeCounter) LimitHit(where, limit, action string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.limits = append(c.limits, where+" "+limit+" "+action)
}

// lists returns copies of what the counter was told.
func (c *routeCounter) lists() (served, limits []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.served), slices.Clone(c.limits)
}

var _ netlimit.Observer = (*routeCounter)(nil)

// TestMetricsAccess: /metrics is served to this host (loopback, the
// address the request arrived at) and to the addresses --metrics allows,
// also behind a trusted proxy, and refused (403) to everyone else; every
// request is told to the Observer with the pattern that routed it.
func TestMetricsAccess(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "portmapd_up 1\n") })
	obs := &routeCounter{}
	s := testServer(t, testRegistry(t), Config{
		Metrics:        metrics,
		MetricsFrom:    []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("198.51.100.1/32")},
		Observer:       obs,
	})
	tests := []struct {
		name, remote, forwarded string
		status                  int
	}{
		{"loopback", "127.0.0.1:4000", "", http.StatusOK},
		{"loopback6", "[::1]:4000", "", http.StatusOK},
		{"allowed", "192.0.2.7:4000", "", http.StatusOK},
		{"elsewhere", "203.0.113.9:4000", "", http.StatusForbidden},
		{"allowed behind proxy", "198.51.100.1:4000", "192.0.2.8", http.StatusOK},
		{"elsewhere behind proxy", "198.51.100.1:4000", "203.0.113.9", http.StatusForbidden},
		{"spoofed forward", "203.0.113.9:4000", "192.0.2.8", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "http://testhost/metrics", nil)
			req.RemoteAddr = tt.remote
			if tt.forwarded != "" {
				req.Header.Set("X-Forwarded-For", tt.forwarded)
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Errorf("%d %q, want %d", rec.Code, rec.Body, tt.status)
			}
		})
	}
	req := httptest.NewRequest("GET", "http://testhost/nowhere", nil)
	req.RemoteAddr = "127.0.0.1:4000"
	s.ServeHTTP(httptest.NewRecorder(), req)
	obs.mu.Lock()
	defer obs.mu.Unlock()
	want := []string{"GET /metrics OK", "GET /metrics OK", "GET /metrics OK", "GET /metrics Forbidden", "GET /metrics OK",
		"GET /metrics Forbidden", "GET /metrics Forbidden", " Not Found"}
	if len(obs.served) != len(want) {
		t.Fatalf("observer told %q, want %q", obs.served, want)
	}
	for i := range want {
		if obs.served[i] != want[i] {
			t.Errorf("request %d: observer told %q, want %q", i, obs.served[i], want[i])
		}
	}
}

// TestNoMetricsWithoutHandler: without Config.Metrics there is no
// /metrics.
func TestNoMetricsWithoutHandler(t *testing.T) {
	s := testServer(t, testRegistry(t), Config{})
	req := httptest.NewRequest("GET", "http://testhost/metrics", nil)
	req.RemoteAddr = "127.0.0.1:4000"
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound {
		t.Errorf("%d, want 404", rec.Code)
	}
}

// TestMetricsCountWatching: the routes watching added are counted under
// their own patterns, the event stream once it ends, and the stream
// still flushes each message through the Observer's recorder.
func TestMetricsCountWatching(t *testing.T) {
	obs := &routeCounter{}
	l := startLiveWith(t, registry.Options{}, Config{Observer: obs})
	child := sleeper(t, os.Geteuid())
	ctx := context.Background()
	if _, err := l.client.Register(ctx, Registration{PID: int32(child.Process.Pid), Services: []ServiceSpec{
		{Service: "ttl.example.com", Port: "8080", Checks: &CheckSpec{TTL: "1m"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.client.Refresh(ctx, "ttl.example.com", registry.Passing, ""); err != nil {
		t.Fatal(err)
	}
	s := openStream(t, "http://"+l.tcp+"/portmap/events", nil)
	if m := s.next(t); m["id"] == "" {
		t.Fatalf("first message %q, want the index", m)
	}
	s.body.Close()
	want := []string{"POST /portmap Created", "PUT /portmap/{name...} OK", "GET /portmap/events OK"}
	deadline := time.Now().Add(patience)
	for {
		served, _ := obs.lists()
		if slices.Equal(served, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("observer told %q, want %q", served, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// flushFailer is a ResponseWriter whose flush fails, as a connection
// whose client has gone does.
type flushFailer struct {
	httptest.ResponseRecorder
}

var errGone = errors.New("client gone")

func (*flushFailer) FlushError() error { return errGone }

// TestStatusRecorderPassesFlushErrors: the recorder the Observer needs
// does not hide a failed flush from a handler that streams (the event
// stream ends on it).
func TestStatusRecorderPassesFlushErrors(t *testing.T) {
	rec := &statusRecorder{ResponseWriter: &flushFailer{}}
	if err := http.NewResponseController(rec).Flush(); !errors.Is(err, errGone) {
		t.Errorf("Flush through the recorder: %v, want %v", err, errGone)
	}
	if rec.code != http.StatusOK {
		t.Errorf("a flush before any write sends 200; recorded %d", rec.code)
	}
}
