package httpmap

import (
	"encoding/csv"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/registry"
)

// csvRegistry holds names and RPC addresses that a spreadsheet would take
// for formulas, and fields that need RFC 4180 quoting.
func csvRegistry(t *testing.T) *registry.Registry {
	t.Helper()
	reg := registry.New(registry.Options{Now: func() time.Time { return testNow }})
	internal := registry.Caller{Transport: registry.Internal}
	p := registry.Process{PID: 42, UID: 1000, GID: 1000, Start: 1, Exe: "/opt/my app/\"quoted\",exe"}
	if _, err := reg.RegisterNamed(internal, p, []registry.Service{
		{Name: "=1+2@evil.example.com", Network: netid.TCP, Port: 80, Flags: registry.Public},
		{Name: "+x@example.com", Network: netid.TCP, Port: 81},
		{Name: "-x@example.com", Network: netid.TCP, Port: 82},
		{Name: "plain.example.com", Network: netid.TCP, Port: 83},
	}); err != nil {
		t.Fatal(err)
	}
	// A program each: the plain listing shows a program in one row, its
	// first entry's address.
	for i, addr := range []string{"=HYPERLINK(\"http://evil\")", "@SUM(A1)", "\t=1", "\r=1", "a;=1,b\nc"} {
		if ok, err := reg.Set(internal, registry.Entry{Prog: 300000 + uint32(i), Vers: 1, Netid: "x", Addr: addr}); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	return reg
}

// csvValues returns every field of every row after the header, as
// encoding/csv (RFC 4180) reads them.
func csvValues(t *testing.T, body string) []string {
	t.Helper()
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("not RFC 4180 CSV: %v\n%s", err, body)
	}
	var out []string
	for _, row := range rows[1:] {
		out = append(out, row...)
	}
	return out
}

const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"

// TestCSVForPrograms: programs get every value exactly, quoted as RFC 4180
// requires, however they ask for CSV.
func TestCSVForPrograms(t *testing.T) {
	s := testServer(t, csvRegistry(t), Config{})
	exact := exactValues(t, s)
	for _, want := range []string{"=1+2@evil.example.com", "/opt/my app/\"quoted\",exe", "=HYPERLINK(\"http://evil\")", "\t=1", "\r=1", "a;=1,b\nc"} {
		if !slices.Contains(exact, want) {
			t.Fatalf("listing lacks %q: %q", want, exact)
		}
	}
	tests := []struct{ name, target, accept string }{
		{"no Accept", "/portmap", ""},
		{"Accept text/csv", "/portmap", TypeCSV},
		{"format=csv with Accept text/csv", "/portmap?format=csv", TypeCSV},
		{"format=csv as curl asks", "/portmap?format=csv", "*/*"},
		{"format=csv without Accept", "/portmap?format=csv", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := csvGet(s, tt.target, tt.accept)
			if got := csvValues(t, rec.Body.String()); !slices.Equal(got, exact) {
				t.Errorf("values %q, want %q", got, exact)
			}
			if cd := rec.Header().Get("Content-Disposition"); cd != "" {
				t.Errorf("Content-Disposition %q for a program", cd)
			}
		})
	}
}

// TestCSVForBrowsers: CSV a browser asks for (the page's CSV link) is a
// download whose cells cannot start a formula.
func TestCSVForBrowsers(t *testing.T) {
	s := testServer(t, csvRegistry(t), Config{})
	exact := exactValues(t, s)
	rec := csvGet(s, "/portmap?format=csv", browserAccept)
	if cd := rec.Header().Get("Content-Disposition"); cd != `attachment; filename="portmap.csv"` {
		t.Errorf("Content-Disposition %q, want an attachment", cd)
	}
	got := csvValues(t, rec.Body.String())
	if len(got) != len(exact) {
		t.Fatalf("%d values, want %d", len(got), len(exact))
	}
	for i, v := range exact {
		t.Run(v, func(t *testing.T) {
			want := v
			if v != "" && strings.ContainsAny(v[:1], "=+-@\t\r") {
				want = "'" + v
			}
			if got[i] != want {
				t.Fatalf("cell %q, want %q", got[i], want)
			}
		})
	}
	// Every cell is quoted, so that a spreadsheet splitting on ';' finds
	// no cell boundary inside one.
	if want := "\n\"plain.example.com\",\"1000\",\"42\",\"\",\"83\",\"passing\",\"\"\n"; !strings.Contains(rec.Body.String(), want) {
		t.Errorf("body lacks %q:\n%s", want, rec.Body.String())
	}
}

func exactValues(t *testing.T, s *Server) []string {
	t.Helper()
	return csvValues(t, csvGet(s, "/portmap", "").Body.String())
}

func csvGet(s *Server, target, accept string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, target, nil)
	req.RemoteAddr = local
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}
