package httpmap

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"

	"github.com/portmapd/portmapd/netlimit"
)

// routeCounter is an Observer that records what it is told.
type routeCounter struct {
	mu     sync.Mutex
	served []string
}

func (c *routeCounter) HTTPServed(route string, code int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.served = append(c.served, route+" "+http.StatusText(code))
}

func (c *routeCounter) LimitHit(where, limit, action string) {}

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
