package httpmap

import (
	"context"
	"net"
	"testing"

	"go.uber.org/goleak"

	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/registry/lifetime"
)

// TestServerLeaksNothing makes and stops Servers many times: closed or
// shut down without serving, or ending because a listener fails at once.
// NewServer starts no goroutine, and nothing outlives the stop.
func TestServerLeaksNothing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, tc := range []struct {
		name string
		stop func(t *testing.T, s *Server)
	}{
		{"Close", func(t *testing.T, s *Server) { s.Close() }},
		{"Shutdown", func(t *testing.T, s *Server) {
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
		}},
		{"listener fails", func(t *testing.T, s *Server) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			l.Close()
			if err := s.ServeListeners(context.Background(), []net.Listener{l}); err == nil {
				t.Fatal("served on a closed listener")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 100 {
				reg := registry.New(registry.Options{})
				life, err := lifetime.New(reg, lifetime.Config{})
				if err != nil {
					t.Fatal(err)
				}
				idle := goleak.IgnoreCurrent()
				s, err := NewServer(reg, life, Config{HTTPAddr: Off, SocketPath: Off, RPCNames: "testdata/rpc", Passwd: "testdata/passwd", Hostname: "testhost"})
				if err != nil {
					t.Fatal(err)
				}
				if err := goleak.Find(idle); err != nil {
					t.Fatalf("NewServer started a goroutine: %v", err)
				}
				tc.stop(t, s)
				if err := life.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
