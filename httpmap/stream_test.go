package httpmap

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/registry"
)

// bigRegistry holds n RPC programs with two entries each and a few named
// services.
func bigRegistry(t *testing.T, n int) *registry.Registry {
	t.Helper()
	reg := registry.New(registry.Options{Now: func() time.Time { return testNow }})
	internal := registry.Caller{Transport: registry.Internal}
	if _, err := reg.RegisterNamed(internal, registry.Process{PID: 42, UID: 1000, GID: 1000, Start: 1}, []registry.Service{
		{Name: "a.example.com", Network: netid.TCP, Port: 80},
		{Name: "b.example.com", Network: netid.UDP, Port: 81},
		{Name: "c.example.com", Network: netid.TCP, Port: 82},
	}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		for _, id := range []netid.ID{netid.TCP, netid.UDP} {
			e := registry.Entry{Prog: 0x40000000 + uint32(i), Vers: 1, Netid: id, Addr: "0.0.0.0." + strconv.Itoa(4+i%200) + ".1"}
			if ok, err := reg.Set(internal, e); !ok || err != nil {
				t.Fatal(ok, err)
			}
		}
	}
	return reg
}

// flushCounter is a ResponseWriter that keeps nothing of the body: it
// counts the writes and their largest, and every so often measures the
// live heap.
type flushCounter struct {
	header          http.Header
	code            int
	writes, largest int
	bytes           int
	peakHeap        uint64
}

func (w *flushCounter) Header() http.Header { return w.header }
func (w *flushCounter) WriteHeader(code int) {
	w.code = code
}

func (w *flushCounter) Write(p []byte) (int, error) {
	w.writes++
	w.largest = max(w.largest, len(p))
	w.bytes += len(p)
	if w.writes%8 == 1 {
		w.peakHeap = max(w.peakHeap, liveHeap())
	}
	return len(p), nil
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestListingStreams: in every format, a listing of 40,000 entries
// reaches the connection in many writes of at most the stream's buffer,
// and the live heap while it is written grows by a fixed bound, a
// fraction of the document: it is never whole in memory.
func TestListingStreams(t *testing.T) {
	s := testServer(t, bigRegistry(t, 20000), Config{})
	for _, typ := range []string{TypeCSV, TypeXML, TypeJSON, TypeHTML} {
		t.Run(typ, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/portmap", nil)
			req.RemoteAddr = local
			req.Header.Set("Accept", typ)
			w := &flushCounter{header: http.Header{}}
			before := liveHeap()
			s.ServeHTTP(w, req)
			if w.code != http.StatusOK {
				t.Fatalf("status %d", w.code)
			}
			if w.writes < 4 || w.largest > streamBuffer {
				t.Errorf("%d bytes in %d writes, the largest %d: want many of at most %d", w.bytes, w.writes, w.largest, streamBuffer)
			}
			// A chunk of entries and the buffer, a fixed bound far
			// below the document.
			const bound = 256 << 10
			if w.bytes < 3*bound {
				t.Fatalf("a document of %d bytes is too small to show the bound", w.bytes)
			}
			if grew := int64(w.peakHeap) - int64(before); grew > bound {
				t.Errorf("live heap grew by %d bytes while writing %d", grew, w.bytes)
			}
			if w.header.Get("Content-Length") != "" {
				t.Errorf("Content-Length %s on a streamed listing", w.header.Get("Content-Length"))
			}
		})
	}
}

// rowsOf returns the rows of a listing in format typ: CSV lines after the
// header, XML instances, JSON instances (as their JSON), the page's rows.
func rowsOf(t *testing.T, typ, body string) []string {
	t.Helper()
	switch typ {
	case TypeCSV:
		lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
		return lines[1:]
	case TypeXML:
		return regexp.MustCompile(`<instance>.*?</instance>`).FindAllString(body, -1)
	case TypeJSON:
		var l struct{ Instances []json.RawMessage }
		if err := json.Unmarshal([]byte(body), &l); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		var out []string
		for _, in := range l.Instances {
			out = append(out, string(in))
		}
		return out
	}
	return regexp.MustCompile(`(?s)<tr>\n<td data-label=.*?</tr>`).FindAllString(body, -1)
}

// TestListingPages: following Link: rel="next" from ?limit=2 reads, in
// every format, the rows of the whole listing, each once, in order; the
// last page has no Link.
func TestListingPages(t *testing.T) {
	s := testServer(t, bigRegistry(t, 7), Config{})
	get := func(target, typ string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		req.RemoteAddr = local
		req.Header.Set("Accept", typ)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", target, rec.Code, rec.Body)
		}
		return rec
	}
	link := regexp.MustCompile(`^<(/portmap\?[^>]*)>; rel="next"$`)
	for _, typ := range []string{TypeCSV, TypeXML, TypeJSON, TypeHTML} {
		t.Run(typ, func(t *testing.T) {
			whole := rowsOf(t, typ, get("/portmap", typ).Body.String())
			if len(whole) < 10 {
				t.Fatalf("%d rows: too few to page", len(whole))
			}
			var paged []string
			pages := 0
			for target := "/portmap?limit=2"; target != ""; pages++ {
				if pages > len(whole) {
					t.Fatal("paging does not end")
				}
				rec := get(target, typ)
				paged = append(paged, rowsOf(t, typ, rec.Body.String())...)
				target = ""
				if l := rec.Header().Get("Link"); l != "" {
					m := link.FindStringSubmatch(l)
					if m == nil {
						t.Fatalf("Link %q", l)
					}
					target = m[1]
				}
			}
			if strings.Join(paged, "\n") != strings.Join(whole, "\n") {
				t.Errorf("pages hold\n%s\nwant\n%s", strings.Join(paged, "\n"), strings.Join(whole, "\n"))
			}
			// 3 named instances and 7 programs, 2 rows a page.
			if pages != 5 {
				t.Errorf("%d pages, want 5", pages)
			}
		})
	}
}

// TestListingPageFilters: a page's Link keeps the query's filters and
// format, and a filter applies before the limit.
func TestListingPageFilters(t *testing.T) {
	s := testServer(t, bigRegistry(t, 7), Config{})
	req := httptest.NewRequest(http.MethodGet, "/portmap?format=csv&uid=1000&limit=1", nil)
	req.RemoteAddr = local
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if got, want := rowsOf(t, TypeCSV, rec.Body.String()), []string{"a.example.com,1000,42,,80,passing,"}; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows %q, want %q", got, want)
	}
	l := rec.Header().Get("Link")
	for _, want := range []string{"format=csv", "uid=1000", "limit=1", "after=s"} {
		if !strings.Contains(l, want) {
			t.Errorf("Link %q lacks %s", l, want)
		}
	}
}

func TestListingBadPage(t *testing.T) {
	s := testServer(t, bigRegistry(t, 1), Config{})
	for _, target := range []string{"/portmap?limit=0", "/portmap?limit=x", "/portmap?limit=-1", "/portmap?after=", "/portmap?after=x1.a", "/portmap?after=p1.x", "/portmap?after=s0.a", "/portmap?after=p1"} {
		t.Run(target, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, target, nil)
			req.RemoteAddr = local
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != http.StatusBadRequest {
				t.Errorf("%d %s, want 400", rec.Code, rec.Body)
			}
		})
	}
}

// TestCSVOneRowPerProgram: a program's entries show as one row of the
// plain listing, with its versions and their netids; XML and JSON keep
// an instance per entry.
func TestCSVOneRowPerProgram(t *testing.T) {
	reg := registry.New(registry.Options{Now: func() time.Time { return testNow }})
	internal := registry.Caller{Transport: registry.Internal}
	for _, e := range []registry.Entry{
		{Prog: 100000, Vers: 4, Netid: "tcp", Addr: "0.0.0.0.0.111"},
		{Prog: 100000, Vers: 3, Netid: "tcp", Addr: "0.0.0.0.0.111"},
		{Prog: 100000, Vers: 2, Netid: "tcp", Addr: "0.0.0.0.0.111"},
		{Prog: 100000, Vers: 4, Netid: "udp", Addr: "0.0.0.0.0.111"},
		{Prog: 100000, Vers: 2, Netid: "udp", Addr: "0.0.0.0.0.111"},
		{Prog: 100000, Vers: 4, Netid: "local", Addr: "/run/rpcbind.sock"},
	} {
		if ok, err := reg.Set(internal, e); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	s := testServer(t, reg, Config{})
	body := func(typ string) string {
		req := httptest.NewRequest(http.MethodGet, "/portmap", nil)
		req.RemoteAddr = local
		req.Header.Set("Accept", typ)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec.Body.String()
	}
	if got, want := body(TypeCSV), "service,user,pid,prog,port,health,versions\n100000.oncrpc.alt,0,,,111,passing,2:tcp/udp 3:tcp 4:tcp/udp/local\n"; got != want {
		t.Errorf("CSV\n%s\nwant\n%s", got, want)
	}
	// Under its number and its name (portmapper), each entry.
	if n := len(rowsOf(t, TypeXML, body(TypeXML))); n != 12 {
		t.Errorf("XML has %d instances, want 12", n)
	}
	if n := len(rowsOf(t, TypeJSON, body(TypeJSON))); n != 12 {
		t.Errorf("JSON has %d instances, want 12", n)
	}
}
