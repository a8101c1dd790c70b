package httpmap

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/registry/health"
	"github.com/portmapd/portmapd/registry/lifetime"
)

// errTooLarge reports a request body longer than maxBodyBytes.
var errTooLarge = errors.New("request body too large")

// A localOnlyError refuses a change asked for anywhere but the local
// socket, the only place whose peer credentials say who asks. It is
// registry.ErrNotLocal, told with the socket to use.
type localOnlyError struct {
	socket string
}

func (e *localOnlyError) Error() string {
	return "registering and deregistering are only accepted over the local socket " + e.socket + ", whose peer credentials identify the caller"
}

func (e *localOnlyError) Unwrap() error { return registry.ErrNotLocal }

// statusOf maps an error to its HTTP status: that of the first error in
// the table that err is (errors.Is), else 500.
func statusOf(err error) int {
	for _, e := range [...]struct {
		err    error
		status int
	}{
		{errTooLarge, http.StatusRequestEntityTooLarge},
		{registry.ErrNotFound, http.StatusNotFound},
		{registry.ErrExclusive, http.StatusConflict},
		{registry.ErrNotLocal, http.StatusForbidden},
		{registry.ErrNotYours, http.StatusForbidden},
		{registry.ErrReservedName, http.StatusForbidden},
		{ErrShadowedName, http.StatusForbidden},
		{registry.ErrCapReached, http.StatusForbidden},
		{registry.ErrBadName, http.StatusBadRequest},
		{registry.ErrBadEndpoint, http.StatusBadRequest},
		{registry.ErrBadCheck, http.StatusBadRequest},
		{health.ErrNoTTL, http.StatusConflict},
		{errTooManyWatchers, http.StatusTooManyRequests},
		{ErrBadRequest, http.StatusBadRequest},
		{errBadFilter, http.StatusBadRequest},
		{errBadParam, http.StatusBadRequest},
		{lifetime.ErrGone, http.StatusGone},
		{ErrNoFleet, http.StatusNotImplemented},
		{ErrFleetUnavailable, http.StatusServiceUnavailable},
	} {
		if errors.Is(err, e.err) {
			return e.status
		}
	}
	return http.StatusInternalServerError
}

// ErrorBody is the JSON form of an error response.
type ErrorBody struct {
	Error string `json:"error"`
}

// fail answers q with err's status and a one-line body saying what was
// wrong, in err's own words: JSON when q asked for JSON, else plain text.
func (s *Server) fail(q *request, err error) { s.writeError(q.w, q.typ, err) }

// writeError is fail for a response of type typ.
func (s *Server) writeError(w http.ResponseWriter, typ string, err error) {
	code := statusOf(err)
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	if code == http.StatusInternalServerError {
		s.log.Error("request failed", "err", err)
	}
	h := w.Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	if typ == TypeJSON {
		h.Set("Content-Type", TypeJSON+"; charset=utf-8")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(ErrorBody{msg})
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	io.WriteString(w, msg+"\n")
}
