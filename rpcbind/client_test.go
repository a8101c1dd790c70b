package rpcbind

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"testing"

	"github.com/portmapd/portmapd/internal/netns"
	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/xdr"
)

// TestClientOverUnixStream: a unix stream connection has datagram methods
// too, but needs record marking like TCP.
func TestClientOverUnixStream(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rpcbind.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	mux := &oncrpc.ServeMux{}
	(&Portmapper{Registry: registry.New(registry.Options{})}).Register(mux)
	srv := &oncrpc.Server{Handler: mux, Logger: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.ServeStream(ctx, ln, "local"); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	c, err := Dial(ctxT(t), "unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, err := c.PmapSet(ctxT(t), xdr.Mapping{Prog: 0x2fff0001, Vers: 1, Prot: netid.ProtoTCP, Port: 1}); err != nil || !ok {
		t.Fatalf("SET over the local socket: %v %v", ok, err)
	}
}

// TestDialReservedUDP checks, as root in a network namespace of its own,
// the source port DialReservedUDP connects from: the highest free
// reserved port, of the server's family, and any port when none is free.
func TestDialReservedUDP(t *testing.T) {
	h := netns.NewHost(t, "resvport")
	var all []int
	for port := 600; port <= 1023; port++ {
		all = append(all, port)
	}
	tests := []struct {
		name   string
		server string
		// held are the reserved ports in use (on 0.0.0.0) when it dials.
		held   []int
		lo, hi int
	}{
		{"the highest reserved port", "127.0.0.1:0", nil, 1023, 1023},
		{"past the ports in use", "127.0.0.1:0", []int{1023, 1022}, 1021, 1021},
		{"an IPv6 server", "[::1]:0", nil, 1023, 1023},
		{"any port when every reserved one is in use", "127.0.0.1:0", all, 1024, 65535},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := h.Do(func() error {
				server, err := net.ListenPacket("udp", tt.server)
				if err != nil {
					return err
				}
				defer server.Close()
				for _, port := range tt.held {
					c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: port})
					if err != nil {
						return err
					}
					defer c.Close()
				}
				c, err := DialReservedUDP(ctxT(t), server.LocalAddr().String())
				if err != nil {
					return err
				}
				defer c.Close()
				local := c.LocalAddr().(*net.UDPAddr)
				if local.Port < tt.lo || local.Port > tt.hi {
					t.Errorf("connected from port %d, want %d to %d", local.Port, tt.lo, tt.hi)
				}
				if got, want := c.RemoteAddr().String(), server.LocalAddr().String(); got != want {
					t.Errorf("connected to %s, want %s", got, want)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
