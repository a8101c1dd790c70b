package httpmap

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
