package httpmap

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// discardWriter is a ResponseWriter that keeps nothing.
type discardWriter struct{ header http.Header }

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) WriteHeader(int)             {}
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkListing writes /portmap in each format at 10,000 and 100,000
// entries (5,000 and 50,000 programs of two), as the goal (a
// JSON listing of 10,000 in 15 ms) measures it, without the connection.
func BenchmarkListing(b *testing.B) {
	for _, entries := range []int{10000, 100000} {
		s := testServer(&testing.T{}, bigRegistry(&testing.T{}, entries/2), Config{})
		for _, typ := range []string{TypeCSV, TypeXML, TypeJSON, TypeHTML} {
			b.Run(fmt.Sprintf("entries=%d/%s", entries, typ), func(b *testing.B) {
				req := httptest.NewRequest(http.MethodGet, "/portmap", nil)
				req.RemoteAddr = local
				req.Header.Set("Accept", typ)
				b.ReportAllocs()
				for b.Loop() {
					s.ServeHTTP(&discardWriter{header: http.Header{}}, req)
				}
			})
		}
	}
}
