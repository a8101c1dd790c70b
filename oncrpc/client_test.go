package oncrpc_test

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/xdr"
)

// successReply encodes a SUCCESS reply to xid carrying v.
func successReply(xid, v uint32) []byte {
	var e xdr.Encoder
	h := xdr.Accepted(xid, xdr.Success)
	h.Encode(&e)
	e.Uint32(v)
	return e.Bytes()
}

// TestClientSkipsStaleReplies: a reply to an earlier call (one that timed
// out) is passed over, on a stream and on datagrams, and the call returns
// the reply to itself.
func TestClientSkipsStaleReplies(t *testing.T) {
	tests := []struct {
		name string
		// pair returns the client's connection, and the server's
		// functions to read one call and to send one reply.
		pair func(t *testing.T) (client net.Conn, read func() []byte, write func([]byte))
	}{
		{"stream", func(t *testing.T) (net.Conn, func() []byte, func([]byte)) {
			client, server := net.Pipe()
			t.Cleanup(func() { _ = server.Close() })
			rr := xdr.NewRecordReader(server, 1<<16)
			read := func() []byte {
				msg, err := rr.Next()
				if err != nil {
					t.Error(err)
				}
				return msg
			}
			write := func(msg []byte) { _, _ = server.Write(xdr.AppendRecord(nil, msg, 0)) }
			return client, read, write
		}},
		{"datagram", func(t *testing.T) (net.Conn, func() []byte, func([]byte)) {
			server, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = server.Close() })
			client, err := net.DialUDP("udp4", nil, server.LocalAddr().(*net.UDPAddr))
			if err != nil {
				t.Fatal(err)
			}
			var from *net.UDPAddr
			read := func() []byte {
				buf := make([]byte, 1<<16)
				n, addr, err := server.ReadFromUDP(buf)
				if err != nil {
					t.Error(err)
				}
				from = addr
				return buf[:n]
			}
			write := func(msg []byte) { _, _ = server.WriteToUDP(msg, from) }
			return client, read, write
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn, read, write := tc.pair(t)
			c := oncrpc.NewClient(conn)
			defer c.Close()
			go func() {
				call := read()
				if len(call) < 4 {
					return
				}
				xid := binary.BigEndian.Uint32(call)
				write(successReply(xid-1, 1))
				write(successReply(xid, 2))
			}()
			var got uint32
			if err := c.Call(ctxT(t), testProg, 1, procEcho, nil, func(d *xdr.Decoder) { got = d.Uint32() }); err != nil {
				t.Fatal(err)
			}
			if got != 2 {
				t.Errorf("result %d, want 2 from the reply to this call", got)
			}
		})
	}
}

// TestCallList: a list reply is decoded element by element into a slice.
func TestCallList(t *testing.T) {
	var mux oncrpc.ServeMux
	mux.HandleFunc(testProg, 1, 3, func(w oncrpc.ReplyWriter, c *oncrpc.Call) {
		_ = oncrpc.Reply(w, c, func(e *xdr.Encoder) {
			xdr.EncodeList(e, []uint32{5, 6, 7}, func(v *uint32, e *xdr.Encoder) { e.Uint32(*v) })
		})
	})
	ep := serve(t, &oncrpc.Server{Handler: &mux})
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			list, err := oncrpc.CallList(ctxT(t), ep.dial(t, network), testProg, 1, 3, nil, 8,
				func(v *uint32, d *xdr.Decoder) { *v = d.Uint32() })
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != 3 || list[0] != 5 || list[1] != 6 || list[2] != 7 {
				t.Errorf("list %v, want [5 6 7]", list)
			}
		})
	}
}
