package rpcbind

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/xdr"
)

// rpcbTestClient serves the portmapper on TCP and UDP of 127.0.0.1 and on a
// local socket, with a fixed clock, and returns a client for network
// ("tcp", "udp" or "unix").
func rpcbTestClient(t *testing.T, network string, now time.Time) *Client {
	t.Helper()
	reg := registry.New(registry.Options{})
	mux := &oncrpc.ServeMux{}
	(&Portmapper{Registry: reg, Now: func() time.Time { return now }}).Register(mux)
	srv := &oncrpc.Server{Handler: mux, Logger: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var addr string
	switch network {
	case "tcp":
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = ln.Addr().String()
		go func() { _ = srv.ServeStream(ctx, ln, "tcp"); close(done) }()
	case "unix":
		path := filepath.Join(t.TempDir(), "rpcbind.sock")
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		addr = path
		go func() { _ = srv.ServeStream(ctx, ln, "local"); close(done) }()
	case "udp":
		pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		addr = pc.LocalAddr().String()
		go func() { _ = srv.ServeUDP(ctx, pc, "udp"); _ = pc.Close(); close(done) }()
	}
	dial := Dial
	if network == "unix" {
		dial = func(ctx context.Context, _, path string) (*Client, error) { return DialLocal(ctx, path) }
	}
	c, err := dial(ctx, network, addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Retransmit = 200 * time.Millisecond
	t.Cleanup(func() {
		_ = c.Close()
		cancel()
		<-done
	})
	return c
}

// TestClientRpcb walks every v3/v4 client call in order over each
// transport, against the in-process portmapper.
func TestClientRpcb(t *testing.T) {
	now := time.Unix(1700000000, 0)
	transports := []struct {
		network, netid string
		addr           string // a universal address of the netid
		taddr          []byte // its struct sockaddr
	}{
		{"tcp", "tcp", "127.0.0.1.3.232",
			[]byte{2, 0, 3, 232, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"udp", "udp", "127.0.0.1.3.233",
			[]byte{2, 0, 3, 233, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"unix", "local", "/run/test.sock",
			append([]byte{1, 0}, "/run/test.sock"...)},
	}
	for _, tr := range transports {
		t.Run(tr.network, func(t *testing.T) {
			c := rpcbTestClient(t, tr.network, now)
			reg := xdr.RPCB{Prog: 200100, Vers: 2, Netid: tr.netid, Addr: tr.addr, Owner: "ignored"}
			steps := []struct {
				name string
				call func(ctx context.Context) (any, error)
				want any
			}{
				{"gettime v3", func(ctx context.Context) (any, error) { return c.GetTime(ctx, 3) }, uint32(now.Unix())},
				{"gettime v4", func(ctx context.Context) (any, error) { return c.GetTime(ctx, 4) }, uint32(now.Unix())},
				{"set v3", func(ctx context.Context) (any, error) { return c.RpcbSet(ctx, 3, reg) }, true},
				{"set same again v4", func(ctx context.Context) (any, error) { return c.RpcbSet(ctx, 4, reg) }, true},
				{"set elsewhere v4", func(ctx context.Context) (any, error) {
					other := reg
					other.Addr = tr.addr[:len(tr.addr)-1] + "9"
					return c.RpcbSet(ctx, 4, other)
				}, false},
				{"getaddr v3 other version", func(ctx context.Context) (any, error) {
					return c.GetAddr(ctx, 3, xdr.RPCB{Prog: 200100, Vers: 9, Netid: tr.netid})
				}, tr.addr},
				{"getversaddr exact", func(ctx context.Context) (any, error) {
					return c.GetVersAddr(ctx, xdr.RPCB{Prog: 200100, Vers: 2, Netid: tr.netid})
				}, tr.addr},
				{"getversaddr other version", func(ctx context.Context) (any, error) {
					return c.GetVersAddr(ctx, xdr.RPCB{Prog: 200100, Vers: 9, Netid: tr.netid})
				}, ""},
				{"getaddr v4 unregistered", func(ctx context.Context) (any, error) {
					return c.GetAddr(ctx, 4, xdr.RPCB{Prog: 200101, Vers: 1})
				}, ""},
				{"dump v3", func(ctx context.Context) (any, error) { return dumpWithoutOwners(c.RpcbDump(ctx, 3)) },
					[]xdr.RPCB{{Prog: 200100, Vers: 2, Netid: tr.netid, Addr: tr.addr}}},
				{"dump v4", func(ctx context.Context) (any, error) { return dumpWithoutOwners(c.RpcbDump(ctx, 4)) },
					[]xdr.RPCB{{Prog: 200100, Vers: 2, Netid: tr.netid, Addr: tr.addr}}},
				{"uaddr2taddr", func(ctx context.Context) (any, error) {
					nb, err := c.Uaddr2Taddr(ctx, 3, tr.addr)
					return nb.Buf[:min(len(nb.Buf), len(tr.taddr))], err
				}, tr.taddr},
				{"taddr2uaddr", func(ctx context.Context) (any, error) {
					return c.Taddr2Uaddr(ctx, 4, xdr.Netbuf{MaxLen: 128, Buf: tr.taddr})
				}, tr.addr},
				{"uaddr2taddr malformed", func(ctx context.Context) (any, error) {
					nb, err := c.Uaddr2Taddr(ctx, 4, "not an address")
					return len(nb.Buf), err
				}, 0},
				{"unset v4", func(ctx context.Context) (any, error) {
					return c.RpcbUnset(ctx, 4, xdr.RPCB{Prog: 200100, Vers: 2, Netid: tr.netid})
				}, true},
				{"unset again v3, every netid", func(ctx context.Context) (any, error) {
					return c.RpcbUnset(ctx, 3, xdr.RPCB{Prog: 200100, Vers: 2})
				}, true},
				{"dump empty", func(ctx context.Context) (any, error) { return c.RpcbDump(ctx, 4) }, []xdr.RPCB(nil)},
				{"getstat", func(ctx context.Context) (any, error) {
					s, err := c.GetStat(ctx)
					v3, v4 := s[1], s[2]
					return [][]int32{
						{v3.Info[xdr.RpcbProcGettime], v3.Info[xdr.RpcbProcSet], v3.SetInfo, v3.Info[xdr.RpcbProcUnset], v3.UnsetInfo},
						{v4.Info[xdr.RpcbProcGettime], v4.Info[xdr.RpcbProcSet], v4.SetInfo, v4.Info[xdr.RpcbProcUnset], v4.UnsetInfo, v4.Info[xdr.RpcbProcGetstat]},
					}, err
				}, [][]int32{{1, 1, 1, 1, 1}, {1, 2, 1, 1, 1, 1}}},
			}
			for _, st := range steps {
				t.Run(st.name, func(t *testing.T) {
					got, err := st.call(ctxT(t))
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(got, st.want) {
						t.Errorf("got %#v, want %#v", got, st.want)
					}
				})
			}
		})
	}
}

func dumpWithoutOwners(list []xdr.RPCB, err error) ([]xdr.RPCB, error) {
	for i := range list {
		list[i].Owner = ""
	}
	return list, err
}

// TestClientRpcbErrors checks what the calls refuse or report.
func TestClientRpcbErrors(t *testing.T) {
	c := rpcbTestClient(t, "tcp", time.Now())
	tests := []struct {
		name string
		call func(ctx context.Context) error
		want string
	}{
		{"set v2", func(ctx context.Context) error { _, err := c.RpcbSet(ctx, 2, xdr.RPCB{}); return err }, "version 2 has no rpcbind procedures"},
		{"unset v5", func(ctx context.Context) error { _, err := c.RpcbUnset(ctx, 5, xdr.RPCB{}); return err }, "version 5 has no rpcbind procedures"},
		{"dump v2", func(ctx context.Context) error { _, err := c.RpcbDump(ctx, 2); return err }, "version 2 has no rpcbind procedures"},
		{"getaddr v1", func(ctx context.Context) error { _, err := c.GetAddr(ctx, 1, xdr.RPCB{}); return err }, "version 1 has no rpcbind procedures"},
		{"gettime v0", func(ctx context.Context) error { _, err := c.GetTime(ctx, 0); return err }, "version 0 has no rpcbind procedures"},
		{"uaddr2taddr v2", func(ctx context.Context) error { _, err := c.Uaddr2Taddr(ctx, 2, ""); return err }, "version 2 has no rpcbind procedures"},
		{"taddr2uaddr v2", func(ctx context.Context) error { _, err := c.Taddr2Uaddr(ctx, 2, xdr.Netbuf{}); return err }, "version 2 has no rpcbind procedures"},
		{"remote set", func(ctx context.Context) error {
			// A v3 SET of an address nobody serves is still accepted
			// from loopback: the error path is the server's reply.
			_, err := c.RpcbSet(ctx, 3, xdr.RPCB{Prog: 1, Vers: 1, Netid: "tcp", Addr: "127.0.0.1.0.1"})
			return err
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(ctxT(t))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
