package httpmap

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/portmapd/portmapd/registry"
)

// TestRoutes: every path answers each method as it always has: the
// status, the Allow header of a 405 and the first line of the body. A
// stylesheet's path is also a name's, and stays the stylesheet's for
// every method; a type that is not offered is refused before a method or
// a name is looked at.
func TestRoutes(t *testing.T) {
	s := testServer(t, testRegistry(t), Config{})
	const refused = "method not allowed; allowed: "
	tests := []struct {
		method, target, accept string
		status                 int
		allow, body            string
	}{
		{"GET", "/", "", http.StatusFound, "", `<a href="/portmap">Found</a>.`},
		{"PUT", "/", "", http.StatusFound, "", ""},
		{"GET", "/elsewhere", "", http.StatusNotFound, "", "404 page not found"},
		{"GET", "/portmap", "", http.StatusOK, "", "service,user,pid,prog,port"},
		{"HEAD", "/portmap", "", http.StatusOK, "", ""},
		{"GET", "/portmap/", "", http.StatusOK, "", "service,user,pid,prog,port"},
		{"DELETE", "/portmap?service=a.example.com&port=1", "", http.StatusForbidden, "", "registering and deregistering are only accepted over the local socket"},
		{"DELETE", "/portmap/", "", http.StatusBadRequest, "", "bad registration request: no services"},
		{"DELETE", "/portmap/app.example.com", "", http.StatusForbidden, "", "registering and deregistering are only accepted over the local socket"},
		{"PUT", "/portmap", "", http.StatusMethodNotAllowed, listingMethods, refused + listingMethods},
		{"PATCH", "/portmap/", "", http.StatusMethodNotAllowed, listingMethods, refused + listingMethods},
		{"OPTIONS", "/portmap/app.example.com", "", http.StatusMethodNotAllowed, nameMethods, refused + nameMethods},
		{"PUT", "/portmap/app.example.com", "", http.StatusForbidden, "", "registering and deregistering are only accepted over the local socket"},
		{"GET", "/portmap?index=x", "", http.StatusBadRequest, "", `index= "x" is not an index`},
		{"GET", "/portmap?index=1&wait=-1s", "", http.StatusBadRequest, "", `wait= "-1s" is not a positive duration`},
		{"GET", "/portmap?index=0", "", http.StatusOK, "", "service,user,pid,prog,port,health"},
		{"GET", "/portmap?passing=maybe", "", http.StatusBadRequest, "", `bad passing filter "maybe"`},
		{"PUT", "/portmap", "image/png", http.StatusNotAcceptable, "", "not acceptable; available: "},
		{"PUT", "/portmap/app.example.com", "image/png", http.StatusNotAcceptable, "", "not acceptable; available: "},
		{"GET", "/portmap/app.example.com", "", http.StatusOK, "", "service,user,pid,prog,port"},
		{"POST", "/portmap/app.example.com", "", http.StatusOK, "", "service,user,pid,prog,port"},
		{"HEAD", "/portmap/app.example.com", "", http.StatusOK, "", ""},
		{"GET", "/portmap/a%2Fb.example.com", "", http.StatusNotFound, "", `no such registration: "a/b.example.com"`},
		{"GET", "/portmap/xn--.example.com", "", http.StatusNotFound, "", "no such registration"},
		{"PUT", "/portmap/%C3%A9-.example.com", "", http.StatusBadRequest, "", `bad service name: "é-.example.com"`},
		{"GET", xslPath, "image/png", http.StatusOK, "", "<?xml"},
		{"HEAD", cssPath, "", http.StatusOK, "", ""},
		{"POST", cssPath, "", http.StatusMethodNotAllowed, stylesheetMethods, refused + stylesheetMethods},
		{"DELETE", xslPath, "", http.StatusMethodNotAllowed, stylesheetMethods, refused + stylesheetMethods},
		{"PUT", cssPath, "image/png", http.StatusMethodNotAllowed, stylesheetMethods, refused + stylesheetMethods},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "http://testhost"+tt.target, nil)
			req.RemoteAddr = local
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			body, _, _ := strings.Cut(rec.Body.String(), "\n")
			if rec.Code != tt.status || rec.Header().Get("Allow") != tt.allow || !strings.HasPrefix(body, tt.body) {
				t.Errorf("%d, Allow %q, body %q; want %d, Allow %q, body starting %q",
					rec.Code, rec.Header().Get("Allow"), body, tt.status, tt.allow, tt.body)
			}
		})
	}
}

// TestHandlerErrors: the error a handler returns is answered by the
// adapter with its status and a body in the type asked for; a handler
// that answers itself and returns nil is left alone; the name is read,
// or refused, before the handler runs.
func TestHandlerErrors(t *testing.T) {
	s := testServer(t, testRegistry(t), Config{})
	answered := func(q *request) error {
		q.w.WriteHeader(http.StatusTeapot)
		io.WriteString(q.w, "answered "+q.name+"\n")
		return nil
	}
	tests := []struct {
		name        string
		h           handler
		named       bool
		target, acc string
		status      int
		contentType string
		body        string
	}{
		{"not found, text", func(*request) error {
			return &registry.NamedError{Name: "x.example.com", Err: registry.ErrNotFound}
		}, false, "/portmap", "", http.StatusNotFound, "text/plain; charset=utf-8", "no such registration: \"x.example.com\"\n"},
		{"too many watchers, JSON", func(*request) error {
			return fmt.Errorf("%w (at most 1)", errTooManyWatchers)
		}, false, "/portmap", TypeJSON, http.StatusTooManyRequests, "application/json; charset=utf-8", `{"error":"too many blocking queries and event streams (at most 1)"}` + "\n"},
		{"unknown error, one line", func(*request) error {
			return errors.New("two\nlines")
		}, false, "/portmap", "", http.StatusInternalServerError, "text/plain; charset=utf-8", "two lines\n"},
		{"answered", answered, false, "/portmap", "", http.StatusTeapot, "", "answered \n"},
		{"answered with its name", answered, true, "/portmap/%C3%A9.example.com", "", http.StatusTeapot, "", "answered xn--9ca.example.com\n"},
		{"bad name", answered, true, "/portmap/%C3%A9-.example.com", "", http.StatusBadRequest, "text/plain; charset=utf-8", "bad service name: \"é-.example.com\": label \"é-\" has no ASCII form: invalid label \"é-\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mux http.ServeMux
			adapt := s.listing
			if tt.named {
				adapt = s.named
			}
			mux.Handle("/portmap/{name...}", adapt(tt.h))
			mux.Handle("/portmap", adapt(tt.h))
			req := httptest.NewRequest("GET", "http://testhost"+tt.target, nil)
			req.RemoteAddr = local
			if tt.acc != "" {
				req.Header.Set("Accept", tt.acc)
			}
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			if rec.Code != tt.status || rec.Header().Get("Content-Type") != tt.contentType {
				t.Errorf("%d, Content-Type %q; want %d, %q", rec.Code, rec.Header().Get("Content-Type"), tt.status, tt.contentType)
			}
			if tt.body != "" && rec.Body.String() != tt.body {
				t.Errorf("body %q, want %q", rec.Body.String(), tt.body)
			}
		})
	}
}
