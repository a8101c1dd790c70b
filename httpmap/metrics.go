package httpmap

import (
	"io"
	"net/http"
	"net/netip"
	"slices"

	"github.com/portmapd/portmapd/netlimit"
)

// metricsPath is where Config.Metrics is served.
const metricsPath = "/metrics"

// An Observer is told what the HTTP face serves, for counting (the
// daemon's metrics). It must only count and return.
type Observer interface {
	// LimitHit is told of each connection the face's limits refuse or
	// evict; where is "http" (TCP) or "http-local" (the socket).
	netlimit.Observer
	// HTTPServed is told of each request answered: the pattern that
	// routed it ("GET /portmap/{name...}"; "" when none did) and the
	// status code sent.
	HTTPServed(route string, code int)
}

// serveMetrics serves Config.Metrics to the callers allowed to read it:
// this host's own (the local socket, loopback, and the address a request
// arrived at) and those in Config.MetricsFrom; others get 403.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	p := senderFrom(r)
	if s.external(p, r) {
		client, _, ok := s.client(p, r)
		if !ok || !slices.ContainsFunc(s.cfg.MetricsFrom, func(pf netip.Prefix) bool { return pf.Contains(client) }) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, "metrics are served to this host only (portmapd --metrics CIDR allows others)\n")
			return
		}
	}
	s.cfg.Metrics.ServeHTTP(w, r)
}

// statusRecorder remembers the status code a handler sends, for the
// Observer. Unwrap lets http.ResponseController reach the connection's
// writer, and Flush passes through with its error (FlushError), so that
// streaming responses work and learn when their client is gone.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusRecorder) Flush() { _ = w.FlushError() }

// FlushError flushes, as http.ResponseController's Flush asks of a writer
// that has it, and returns the error of the writer beneath.
func (w *statusRecorder) FlushError() error {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
