package httpmap

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"
)

// TestUnreachableError: a client that cannot reach portmapd says so, and
// where it looked, instead of Go's request and dial error.
func TestUnreachableError(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.sock")
	refused := filepath.Join(dir, "refused.sock")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: refused, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ul.SetUnlinkOnClose(false)
	ul.Close()
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := tl.Addr().String()
	tl.Close()
	// A listener that never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	tests := []struct {
		name   string
		client *Client
		want   string
	}{
		{"no socket", NewLocalClient(missing), "portmapd is not running: there is no socket " + missing},
		{"socket without a listener", NewLocalClient(refused), "portmapd is not running: nothing listens on its HTTP socket " + refused},
		{"closed port", NewClient(closed), "portmapd is not reachable: nothing listens at " + closed},
		{"no answer", NewClient(silent.Addr().String()), "no answer from portmapd's HTTP face at " + silent.Addr().String() + " in the time allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			_, err := tt.client.Lookup(ctx, "x.example.com")
			var ue *UnreachableError
			if !errors.As(err, &ue) || err.Error() != tt.want {
				t.Fatalf("got %v (%T), want %q", err, err, tt.want)
			}
		})
	}
}

// TestRefusal: a refusal reads as the server's reason, from its JSON
// error body or, failing that, its text, with the status.
func TestRefusal(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string
	}{
		{"JSON", `{"error":"no such registration: \"x.example.com\""}` + "\n", `no such registration: "x.example.com"`},
		{"text", "too many blocking queries and event streams\n", "too many blocking queries and event streams"},
		{"JSON without a reason", `{"other":1}`, `{"other":1}`},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := refusal(http.StatusNotFound, []byte(tt.body))
			if got.Status != http.StatusNotFound || got.Message != tt.want {
				t.Errorf("got %d %q, want 404 %q", got.Status, got.Message, tt.want)
			}
		})
	}
}
