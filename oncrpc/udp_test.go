package oncrpc_test

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/xdr"
)

const (
	procSilent   = 5 // answers nothing
	procDeferred = 6 // answers its uint32 argument after returning
)

// TestUDPBursts: calls sent faster than they are answered, from several
// sockets at once, so that the server reads them several to a batch, are
// each answered once, to their own source, whatever the others of their
// batch do: answer, answer later (Defer), stay silent, or be no call at
// all (dropped) or a call of another RPC version (RPC_MISMATCH).
func TestUDPBursts(t *testing.T) {
	mux := testMux()
	mux.HandleFunc(testProg, 1, procSilent, func(oncrpc.ReplyWriter, *oncrpc.Call) {})
	mux.HandleFunc(testProg, 1, procDeferred, func(w oncrpc.ReplyWriter, c *oncrpc.Call) {
		var v uint32
		c.DecodeArgs(func(d *xdr.Decoder) { v = d.Uint32() })
		later, ok := oncrpc.Defer(w)
		if !ok {
			t.Error("a datagram call cannot be deferred")
			return
		}
		xid := c.XID
		go func() {
			time.Sleep(time.Millisecond)
			_ = later.WriteReply(xdr.Accepted(xid, xdr.Success), func(e *xdr.Encoder) { e.Uint32(v) })
		}()
	})
	ep := serve(t, &oncrpc.Server{Handler: mux})

	const sockets, calls = 4, 50
	type want struct {
		answered bool
		mismatch bool
		value    uint32
	}
	conns := make([]*net.UDPConn, sockets)
	wants := make([]map[uint32]want, sockets)
	for s := range conns {
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(ep.udp))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		_ = c.SetReadBuffer(1 << 20)
		conns[s], wants[s] = c, map[uint32]want{}
	}
	for i := range calls {
		for s, c := range conns {
			xid := uint32(s<<16 | i)
			value := uint32(s*1000 + i)
			var msg []byte
			var w want
			switch i % 5 {
			case 0, 1:
				msg, w = call(xid, 2, procEcho, value), want{answered: true, value: value}
			case 2:
				msg, w = call(xid, 2, procSilent, value), want{}
			case 3:
				msg, w = call(xid, 2, procDeferred, value), want{answered: true, value: value}
			case 4:
				if i%10 == 4 {
					msg, w = call(xid, 3, procEcho, value), want{answered: true, mismatch: true}
				} else {
					msg, w = []byte{1, 2, 3}, want{} // not a call: dropped
				}
			}
			wants[s][xid] = w
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
		}
	}
	for s, c := range conns {
		expected := 0
		for _, w := range wants[s] {
			if w.answered {
				expected++
			}
		}
		buf := make([]byte, 1500)
		for got := 0; got < expected; got++ {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("socket %d: %d of %d replies: %v", s, got, expected, err)
			}
			xid := binary.BigEndian.Uint32(buf)
			w, ok := wants[s][xid]
			if !ok || !w.answered {
				t.Fatalf("socket %d: reply to xid %#x, which is not to be answered (or again)", s, xid)
			}
			delete(wants[s], xid)
			h, err := xdr.DecodeReplyHeader(xdr.NewDecoder(buf[:n]))
			if rejected, ok := replyError(err); ok {
				h, err = rejected, nil
			}
			switch {
			case err != nil:
				t.Fatalf("socket %d, xid %#x: %v", s, xid, err)
			case w.mismatch:
				if h.Stat != xdr.MsgDenied || h.Reject != xdr.RPCMismatch {
					t.Errorf("socket %d, xid %#x: %+v, want RPC_MISMATCH", s, xid, h)
				}
			case h.Stat != xdr.MsgAccepted || h.Accept != xdr.Success || binary.BigEndian.Uint32(buf[n-4:]) != w.value:
				t.Errorf("socket %d, xid %#x: %+v % x, want %d", s, xid, h, buf[:n], w.value)
			}
		}
		// Nothing more comes: the silent and dropped calls stay so.
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if n, err := c.Read(buf); err == nil {
			t.Errorf("socket %d: unexpected reply % x", s, buf[:n])
		}
	}
}

// call encodes a call of testProg version 1, procedure proc, with one
// uint32 argument, in RPC version rpcvers.
func call(xid, rpcvers, proc, arg uint32) []byte {
	var e xdr.Encoder
	h := xdr.CallHeader{XID: xid, RPCVers: rpcvers, Prog: testProg, Vers: 1, Proc: proc}
	h.Encode(&e)
	e.Uint32(arg)
	return e.Bytes()
}
