package xdr_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	xdr2 "github.com/davecgh/go-xdr/xdr2"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/xdr"
)

// marshal encodes v with go-xdr, the reference implementation.
func marshal(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := xdr2.Marshal(&b, v); err != nil {
		t.Fatalf("xdr2.Marshal(%#v): %v", v, err)
	}
	return b.Bytes()
}

func encode(f func(e *xdr.Encoder)) []byte {
	var e xdr.Encoder
	f(&e)
	return e.Bytes()
}

// TestEncoderMatchesGoXDR encodes the same values with the append Encoder
// and with go-xdr's reflection Marshal and expects the same bytes.
func TestEncoderMatchesGoXDR(t *testing.T) {
	for n := 0; n <= 8; n++ {
		s := "abcdefgh"[:n]
		b := []byte(s)
		t.Run(fmt.Sprintf("string-%d", n), func(t *testing.T) {
			if got, want := encode(func(e *xdr.Encoder) { e.String(s) }), marshal(t, s); !bytes.Equal(got, want) {
				t.Errorf("String(%q) = %x, go-xdr %x", s, got, want)
			}
		})
		t.Run(fmt.Sprintf("opaque-%d", n), func(t *testing.T) {
			if got, want := encode(func(e *xdr.Encoder) { e.Opaque(b) }), marshal(t, b); !bytes.Equal(got, want) {
				t.Errorf("Opaque(%x) = %x, go-xdr %x", b, got, want)
			}
		})
		t.Run(fmt.Sprintf("fixed-opaque-%d", n), func(t *testing.T) {
			var want bytes.Buffer
			if _, err := xdr2.NewEncoder(&want).EncodeFixedOpaque(b); err != nil {
				t.Fatal(err)
			}
			if got := encode(func(e *xdr.Encoder) { e.FixedOpaque(b) }); !bytes.Equal(got, want.Bytes()) {
				t.Errorf("FixedOpaque(%x) = %x, go-xdr %x", b, got, want.Bytes())
			}
		})
	}

	for _, v := range []uint32{0, 1, 111, 0x7fffffff, 0x80000000, math.MaxUint32} {
		if got, want := encode(func(e *xdr.Encoder) { e.Uint32(v) }), marshal(t, v); !bytes.Equal(got, want) {
			t.Errorf("Uint32(%d) = %x, go-xdr %x", v, got, want)
		}
		if got, want := encode(func(e *xdr.Encoder) { e.Int32(int32(v)) }), marshal(t, int32(v)); !bytes.Equal(got, want) {
			t.Errorf("Int32(%d) = %x, go-xdr %x", int32(v), got, want)
		}
	}
	for _, v := range []bool{false, true} {
		if got, want := encode(func(e *xdr.Encoder) { e.Bool(v) }), marshal(t, v); !bytes.Equal(got, want) {
			t.Errorf("Bool(%v) = %x, go-xdr %x", v, got, want)
		}
	}

	// Structs: the wire types have the same layout as their go-xdr
	// reflection equivalents.
	for _, m := range []xdr.Mapping{{}, {xdr.PmapProg, 2, netid.ProtoTCP, 111}, {math.MaxUint32, 1, 99, 70000}} {
		if got, want := encode(m.Encode), marshal(t, m); !bytes.Equal(got, want) {
			t.Errorf("Mapping %+v = %x, go-xdr %x", m, got, want)
		}
	}
	for n := 0; n <= 8; n++ {
		c := xdr.CallArgs{Prog: 100003, Vers: 3, Proc: 0, Args: bytes.Repeat([]byte{0xa5}, n)}
		if got, want := encode(c.Encode), marshal(t, c); !bytes.Equal(got, want) {
			t.Errorf("CallArgs with %d bytes = %x, go-xdr %x", n, got, want)
		}
		r := xdr.CallResult{Port: 2049, Res: bytes.Repeat([]byte{0x5a}, n)}
		if got, want := encode(r.Encode), marshal(t, r); !bytes.Equal(got, want) {
			t.Errorf("CallResult with %d bytes = %x, go-xdr %x", n, got, want)
		}
		rr := xdr.RmtCallResult{Addr: strings.Repeat("1", n), Results: bytes.Repeat([]byte{0x5a}, n)}
		if got, want := encode(rr.Encode), marshal(t, rr); !bytes.Equal(got, want) {
			t.Errorf("RmtCallResult with %d bytes = %x, go-xdr %x", n, got, want)
		}
	}
	// authsys_parms as go-xdr sees it: gids<16> is a counted array.
	type authSysBody struct {
		Stamp       uint32
		MachineName string
		UID, GID    uint32
		GIDs        []uint32
	}
	for n := 0; n <= 8; n++ {
		p := xdr.AuthSysParms{Stamp: 7, MachineName: "hostname"[:n], UID: 1000, GID: 100, GIDs: make([]uint32, n)}
		want := marshal(t, authSysBody(p))
		if got := sysAuth(p); got.Flavor != xdr.AuthSys || !bytes.Equal(got.Body, want) {
			t.Errorf("AuthSysParms %+v = %v %x, go-xdr body %x", p, got.Flavor, got.Body, want)
		}
	}
	// An opaque_auth is {flavor, opaque body<400>}.
	type opaqueAuth struct {
		Flavor uint32
		Body   []byte
	}
	h := xdr.CallHeader{XID: 9, RPCVers: 2, Prog: 100000, Vers: 4, Proc: 3,
		Cred: xdr.OpaqueAuth{Flavor: xdr.AuthSys, Body: []byte{1, 2, 3, 4, 5}}, Verf: xdr.OpaqueAuth{Flavor: 99, Body: []byte{6}}}
	want := marshal(t, struct {
		XID, Mtype, RPCVers, Prog, Vers, Proc uint32
		Cred, Verf                            opaqueAuth
	}{9, 0, 2, 100000, 4, 3, opaqueAuth{1, []byte{1, 2, 3, 4, 5}}, opaqueAuth{99, []byte{6}}})
	if got := encode(h.Encode); !bytes.Equal(got, want) {
		t.Errorf("CallHeader = %x, go-xdr %x", got, want)
	}
}

// TestDecoderMatchesGoXDR decodes go-xdr's encoding of strings and opaques
// of every padding with the bounded Decoder.
func TestDecoderMatchesGoXDR(t *testing.T) {
	for n := 0; n <= 8; n++ {
		s := "abcdefgh"[:n]
		d := xdr.NewDecoder(append(marshal(t, s), marshal(t, []byte(s))...))
		gotS := d.String("s", 8)
		gotB := d.Opaque("b", 8)
		if err := d.Finish(); err != nil || gotS != s || string(gotB) != s {
			t.Errorf("len %d: String %q, Opaque %q, %v", n, gotS, gotB, err)
		}
	}
	for _, m := range []xdr.Mapping{{}, {xdr.PmapProg, 2, netid.ProtoTCP, 111}, {math.MaxUint32, 1, 99, 70000}} {
		var got xdr.Mapping
		d := xdr.NewDecoder(marshal(t, m))
		got.Decode(d)
		if err := d.Finish(); err != nil || got != m {
			t.Errorf("Mapping %+v decoded as %+v, %v", m, got, err)
		}
	}
}

func TestEncoderReuse(t *testing.T) {
	storage := make([]byte, 0, 64)
	e := xdr.NewEncoder(storage[:10])
	if e.Len() != 0 {
		t.Fatalf("NewEncoder keeps %d old bytes", e.Len())
	}
	e.Uint32(1)
	e.String("abc")
	if e.Len() != 12 || &e.Bytes()[0] != &storage[:1][0] {
		t.Errorf("Len %d; storage not reused", e.Len())
	}
	e.Reset()
	if e.Len() != 0 || len(e.Bytes()) != 0 {
		t.Errorf("after Reset: %x", e.Bytes())
	}
	e.Int32(-2)
	if got := e.Bytes(); !bytes.Equal(got, []byte{0xff, 0xff, 0xff, 0xfe}) {
		t.Errorf("Int32(-2) = %x", got)
	}
}

func TestDecoderPrimitives(t *testing.T) {
	t.Run("bool", func(t *testing.T) {
		for _, tc := range []struct {
			in   []byte
			want bool
			ok   bool
		}{
			{[]byte{0, 0, 0, 0}, false, true},
			{[]byte{0, 0, 0, 1}, true, true},
			{[]byte{0, 0, 0, 2}, false, false},
			{[]byte{0xff, 0xff, 0xff, 0xff}, false, false},
			{[]byte{0, 0, 1}, false, false},
		} {
			d := xdr.NewDecoder(tc.in)
			if got := d.Bool(); got != tc.want || (d.Err() == nil) != tc.ok {
				t.Errorf("Bool(%x) = %v, %v", tc.in, got, d.Err())
			}
		}
	})
	t.Run("sticky error", func(t *testing.T) {
		d := xdr.NewDecoder([]byte{0, 0, 0, 5, 0, 0, 0, 6})
		if d.Uint32() != 5 || d.Remaining() != 4 {
			t.Fatal("first word")
		}
		d.String("s", 2) // length 6 > 2
		first := d.Err()
		var le *xdr.LengthError
		if !errors.As(first, &le) || le.Field != "s" || le.Length != 6 || le.Max != 2 {
			t.Fatalf("Err = %v, want a LengthError for s", first)
		}
		if errors.Is(first, xdr.ErrTruncated) {
			t.Errorf("a length over its bound is not truncation: %v", first)
		}
		if d.Uint32() != 0 || d.Opaque("x", 10) != nil || d.Err() != first || d.Finish() != first {
			t.Errorf("error not sticky: %v", d.Err())
		}
	})
	t.Run("truncated length", func(t *testing.T) {
		d := xdr.NewDecoder([]byte{0, 0, 0, 5, 'a', 'b', 'c', 'd'}) // 5 bytes need 8
		if s := d.String("s", 255); s != "" || !errors.Is(d.Err(), xdr.ErrTruncated) {
			t.Errorf("String = %q, %v; want ErrTruncated", s, d.Err())
		}
		if msg := d.Err().Error(); msg != "xdr: s length 5 exceeds the 4 bytes remaining" {
			t.Errorf("message %q", msg)
		}
	})
	t.Run("padding counts", func(t *testing.T) {
		// 5 bytes of data and 3 of padding are present: fine.
		d := xdr.NewDecoder([]byte{0, 0, 0, 5, 'a', 'b', 'c', 'd', 'e', 0, 0, 0})
		if s := d.String("s", 5); s != "abcde" || d.Finish() != nil {
			t.Errorf("String = %q, %v", s, d.Finish())
		}
	})
	t.Run("trailing data", func(t *testing.T) {
		d := xdr.NewDecoder([]byte{0, 0, 0, 1, 0})
		d.Uint32()
		if d.Err() != nil || d.Finish() != xdr.ErrTrailingData || !bytes.Equal(d.Rest(), []byte{0}) {
			t.Errorf("Finish = %v, Rest %x", d.Finish(), d.Rest())
		}
	})
	t.Run("reset", func(t *testing.T) {
		d := xdr.NewDecoder(nil)
		d.Uint32()
		if !errors.Is(d.Err(), xdr.ErrTruncated) {
			t.Fatalf("Err = %v", d.Err())
		}
		d.Reset([]byte{0, 0, 0, 7})
		if d.Err() != nil || d.Uint32() != 7 || d.Finish() != nil {
			t.Errorf("after Reset: %v", d.Err())
		}
	})
	t.Run("opaque is a copy", func(t *testing.T) {
		msg := []byte{0, 0, 0, 2, 'h', 'i', 0, 0}
		b := xdr.NewDecoder(msg).Opaque("b", 8)
		msg[4] = 'X'
		if string(b) != "hi" {
			t.Errorf("Opaque result changed with the message: %q", b)
		}
	})
	t.Run("empty opaque", func(t *testing.T) {
		d := xdr.NewDecoder([]byte{0, 0, 0, 0})
		if b := d.Opaque("b", 0); b != nil || d.Finish() != nil {
			t.Errorf("Opaque = %#v, %v", b, d.Finish())
		}
	})
}

func TestStatusStrings(t *testing.T) {
	for _, tc := range []struct {
		v    fmt.Stringer
		want string
	}{
		{xdr.Success, "SUCCESS"}, {xdr.SystemErr, "SYSTEM_ERR"}, {xdr.AcceptStat(6), "accept_stat(6)"},
		{xdr.RPCMismatch, "RPC_MISMATCH"}, {xdr.AuthError, "AUTH_ERROR"}, {xdr.RejectStat(2), "reject_stat(2)"},
		{xdr.AuthOK, "AUTH_OK"}, {xdr.AuthTooWeak, "AUTH_TOOWEAK"}, {xdr.AuthFailed, "AUTH_FAILED"}, {xdr.AuthStat(13), "auth_stat(13)"},
		{xdr.AuthStat(1<<32 - 1), "auth_stat(4294967295)"},
	} {
		if got := tc.v.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestDecodeReplyErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  []byte
		want string
	}{
		{"call", golden(t, "call-null-v2.hex"), "rpc: not a reply message"},
		{"unknown reply_stat", []byte{0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2}, "rpc: unknown reply_stat 2"},
		{"unknown reject_stat", []byte{0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2}, "rpc: unknown reject_stat 2"},
		{"truncated", []byte{0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}, "rpc: reply xid 0x1: xdr: message truncated"},
		{"empty", nil, "rpc: reply xid 0x0: xdr: message truncated"},
		{"mismatch cut", []byte{0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2}, "rpc: reply xid 0x1: xdr: message truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, res, err := xdr.DecodeReply(tc.msg)
			var re *xdr.ReplyError
			if err == nil || errors.As(err, &re) || res != nil {
				t.Fatalf("DecodeReply = %x, %v; want a decoding error", res, err)
			}
			if err.Error() != tc.want {
				t.Errorf("error %q, want %q", err, tc.want)
			}
		})
	}
}

func TestDecodeCallArgsAlias(t *testing.T) {
	msg := golden(t, "call-set-v2.hex")
	_, args, err := xdr.DecodeCall(msg)
	if err != nil {
		t.Fatal(err)
	}
	if len(args) != 16 || &args[0] != &msg[len(msg)-16] {
		t.Errorf("args %x do not alias the last 16 bytes of the message", args)
	}
}

// TestRegressions keeps the inputs of bugs found while writing these tests.
func TestRegressions(t *testing.T) {
	t.Run("ParseAuthSys accepts bytes after the authsys_parms", func(t *testing.T) {
		// rpcbind answers SUCCESS to the oracle's auth-sys-trailing-in-body
		// and auth-sys-len-400; portmapd answered AUTH_BADCRED.
		body := append(sysAuth(oracleSys).Body, 0, 0, 0, 0, 0, 0, 0, 0)
		if p, err := xdr.ParseAuthSys(body); err != nil || p.MachineName != "oracle" {
			t.Errorf("ParseAuthSys = %+v, %v", p, err)
		}
	})
	t.Run("DecodeList without its FALSE returns nil", func(t *testing.T) {
		// One whole entry and no terminator: the entry came back with
		// the error.
		d := xdr.NewDecoder(words(1, 100000, 2, 17, 111))
		if l := xdr.DecodeList(d, (*xdr.Mapping).Decode); l != nil || !errors.Is(d.Err(), xdr.ErrTruncated) {
			t.Errorf("DecodeList = %+v, %v", l, d.Err())
		}
	})
}
