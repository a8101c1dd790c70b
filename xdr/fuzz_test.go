package xdr_test

// Fuzz targets for every decoder a peer can reach. The seed corpora in
// testdata/fuzz/<FuzzName>/ come from the golden vectors in
// ../testdata/xdr (whole messages, credential bodies, procedure arguments
// and results cut out of them). Run one with, for example,
//
//	go test -run '^$' -fuzz '^FuzzDecodeCall$' -fuzztime 20s ./xdr/
//
// Invariants: no panic; nothing returned is longer than the input; what
// decodes re-encodes to something that decodes to the same value.

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"slices"
	"testing"
	"testing/iotest"

	"github.com/portmapd/portmapd/xdr"
)

func FuzzDecodeCall(f *testing.F) {
	f.Fuzz(func(t *testing.T, msg []byte) {
		h, args, err := xdr.DecodeCall(msg)
		if err != nil {
			var ce *xdr.CallError
			switch {
			case errors.Is(err, xdr.ErrNotCall):
			case errors.As(err, &ce) && errors.Is(err, xdr.ErrBadHeader):
				if ce.XID != h.XID {
					t.Fatalf("CallError xid %#x, header xid %#x", ce.XID, h.XID)
				}
			default:
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			if args != nil {
				t.Fatalf("args %x returned with error %v", args, err)
			}
			return
		}
		if len(args) > len(msg) || len(h.Cred.Body) > xdr.MaxAuthBytes || len(h.Verf.Body) > xdr.MaxAuthBytes {
			t.Fatalf("args %d, cred %d, verf %d bytes from a %d-byte message", len(args), len(h.Cred.Body), len(h.Verf.Body), len(msg))
		}
		if len(args) > 0 && &args[len(args)-1] != &msg[len(msg)-1] {
			t.Fatal("args are not the tail of the message")
		}
		var e xdr.Encoder
		h.Encode(&e)
		hdrLen := e.Len()
		if hdrLen+len(args) != len(msg) {
			t.Fatalf("header re-encodes to %d bytes, message had %d before the args", hdrLen, len(msg)-len(args))
		}
		h2, args2, err := xdr.DecodeCall(append(e.Bytes(), args...))
		if err != nil || !reflect.DeepEqual(h, h2) || !bytes.Equal(args, args2) {
			t.Fatalf("round trip: %+v %x %v, want %+v %x", h2, args2, err, h, args)
		}
	})
}

func FuzzDecodeReply(f *testing.F) {
	f.Fuzz(func(t *testing.T, msg []byte) {
		h, res, err := xdr.DecodeReply(msg)
		var re *xdr.ReplyError
		switch {
		case err == nil:
			if h.Stat != xdr.MsgAccepted || h.Accept != xdr.Success {
				t.Fatalf("no error for %+v", h)
			}
			if len(res) > len(msg) || (len(res) > 0 && &res[len(res)-1] != &msg[len(msg)-1]) {
				t.Fatal("results are not the tail of the message")
			}
		case errors.As(err, &re):
			if !reflect.DeepEqual(re.Header, h) || res != nil {
				t.Fatalf("ReplyError header %+v, returned %+v, results %x", re.Header, h, res)
			}
			if re.Error() == "" {
				t.Fatal("empty error text")
			}
		default:
			if res != nil {
				t.Fatalf("results %x with error %v", res, err)
			}
			return
		}
		var e xdr.Encoder
		h.Encode(&e)
		h2, res2, err2 := xdr.DecodeReply(append(e.Bytes(), res...))
		if !reflect.DeepEqual(h, h2) || !bytes.Equal(res, res2) || (err == nil) != (err2 == nil) {
			t.Fatalf("round trip: %+v %x %v, want %+v %x %v", h2, res2, err2, h, res, err)
		}
	})
}

// FuzzRecordReader reads records with a small limit from the input, in one
// piece and a byte at a time, and expects the same records and error from
// both; the records it read, framed again, read back the same.
func FuzzRecordReader(f *testing.F) {
	const max = 64
	read := func(r io.Reader) ([][]byte, error) {
		rr := xdr.NewRecordReader(r, max)
		var recs [][]byte
		for {
			rec, err := rr.Next()
			if err != nil {
				if rec != nil {
					return nil, errors.New("record returned with an error")
				}
				return recs, err
			}
			if len(rec) > max {
				return nil, errors.New("record over the limit")
			}
			recs = append(recs, bytes.Clone(rec))
		}
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		recs, err := read(bytes.NewReader(stream))
		total := 0
		for _, r := range recs {
			total += 4 + len(r)
		}
		if total > len(stream) {
			t.Fatalf("%d records of %d bytes with marks from %d bytes", len(recs), total, len(stream))
		}
		var tl *xdr.RecordTooLargeError
		switch {
		case err == io.EOF, err == io.ErrUnexpectedEOF:
		case errors.As(err, &tl):
			if tl.Max != max || tl.Size <= max {
				t.Fatalf("RecordTooLargeError %+v", tl)
			}
		default:
			t.Fatalf("unexpected error %v", err)
		}
		recs1, err1 := read(iotest.OneByteReader(bytes.NewReader(stream)))
		if !reflect.DeepEqual(recs, recs1) || !sameError(err, err1) {
			t.Fatalf("one byte at a time: %d records, %v; at once: %d records, %v", len(recs1), err1, len(recs), err)
		}
		// Read as streams, records are the same bytes, with the same
		// error at the end.
		recs3, err3 := readStreams(iotest.HalfReader(bytes.NewReader(stream)), max, 0)
		if !slices.EqualFunc(recs, recs3, bytes.Equal) || !sameError(err, err3) {
			t.Fatalf("as streams: %d records, %v; whole: %d records, %v", len(recs3), err3, len(recs), err)
		}
		// Read only in part, the rest of each is skipped: the next
		// record starts where it should, and the error is the same
		// (the part read of the record it ends in may come first).
		const part = 3
		recs4, err4 := readStreams(bytes.NewReader(stream), max, part)
		if len(recs4) == len(recs)+1 && err != io.EOF {
			recs4 = recs4[:len(recs)]
		}
		if len(recs4) != len(recs) || !sameError(err, err4) {
			t.Fatalf("read in part: %d records, %v; whole: %d records, %v", len(recs4), err4, len(recs), err)
		}
		for i := range recs {
			if want := recs[i][:min(part, len(recs[i]))]; !bytes.Equal(recs4[i], want) {
				t.Fatalf("record %d read in part: %x, want %x", i, recs4[i], want)
			}
		}
		var again []byte
		for i, r := range recs {
			again = xdr.AppendRecord(again, r, 1+i%7)
		}
		recs2, err2 := read(bytes.NewReader(again))
		if err2 != io.EOF || len(recs2) != len(recs) || (len(recs) > 0 && !reflect.DeepEqual(recs, recs2)) {
			t.Fatalf("re-framed: %d records, %v; want %d records", len(recs2), err2, len(recs))
		}
	})
}

// readStreams reads the records of r with NextReader: whole, or only
// their first part bytes (when part > 0), leaving NextReader to skip the
// rest.
func readStreams(r io.Reader, max, part int) ([][]byte, error) {
	rr := xdr.NewRecordReader(r, max)
	var recs [][]byte
	for {
		body, err := rr.NextReader()
		if err != nil {
			return recs, err
		}
		if part > 0 {
			body = io.LimitReader(body, int64(part))
		}
		rec, err := io.ReadAll(body)
		if err != nil {
			return recs, err
		}
		recs = append(recs, rec)
	}
}

func sameError(a, b error) bool {
	var ta, tb *xdr.RecordTooLargeError
	if errors.As(a, &ta) && errors.As(b, &tb) {
		return *ta == *tb
	}
	return a == b
}

func FuzzParseAuthSys(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := xdr.ParseAuthSys(body)
		if err != nil {
			if !reflect.DeepEqual(p, xdr.AuthSysParms{}) {
				t.Fatalf("%+v returned with error %v", p, err)
			}
			return
		}
		if len(p.MachineName) > xdr.MaxMachineName || len(p.GIDs) > xdr.MaxGroups {
			t.Fatalf("name %d bytes, %d gids", len(p.MachineName), len(p.GIDs))
		}
		if size := 20 + (len(p.MachineName)+3)&^3 + 4*len(p.GIDs); size > len(body) {
			t.Fatalf("%d bytes of authsys_parms from a %d-byte body", size, len(body))
		}
		a := sysAuth(p)
		p2, err := xdr.ParseAuthSys(a.Body)
		if err != nil || !reflect.DeepEqual(p, p2) {
			t.Fatalf("round trip: %+v, %v; want %+v", p2, err, p)
		}
		if !bytes.HasPrefix(body, a.Body[:4]) {
			t.Fatalf("stamp changed")
		}
	})
}

func FuzzDecodeMapping(f *testing.F) {
	f.Fuzz(func(t *testing.T, args []byte) {
		var m xdr.Mapping
		d := xdr.NewDecoder(args)
		m.Decode(d)
		if err := d.Finish(); err != nil {
			if len(args) == 16 {
				t.Fatalf("16 bytes refused: %v", err)
			}
			return
		}
		// A mapping has no padding or lengths: it re-encodes exactly.
		if got := encode(m.Encode); !bytes.Equal(got, args) {
			t.Fatalf("re-encoded %x, input %x", got, args)
		}
	})
}

func FuzzDecodeCallArgs(f *testing.F) {
	f.Fuzz(func(t *testing.T, args []byte) {
		var c xdr.CallArgs
		d := xdr.NewDecoder(args)
		c.Decode(d)
		if err := d.Err(); err != nil {
			if c.Args != nil {
				t.Fatalf("%d bytes of args with error %v", len(c.Args), err)
			}
			return
		}
		if 16+len(c.Args) > len(args) {
			t.Fatalf("%d bytes of args from %d bytes", len(c.Args), len(args))
		}
		var c2 xdr.CallArgs
		d2 := xdr.NewDecoder(encode(c.Encode))
		c2.Decode(d2)
		if err := d2.Finish(); err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip: %+v, %v; want %+v", c2, err, c)
		}
	})
}

func FuzzDecodeRmtCallResult(f *testing.F) {
	f.Add(golden(f, "reply-rmtcall-v3.hex")[24:])
	f.Fuzz(func(t *testing.T, res []byte) {
		var r xdr.RmtCallResult
		d := xdr.NewDecoder(res)
		r.Decode(d)
		if err := d.Err(); err != nil {
			if r.Results != nil {
				t.Fatalf("%d bytes of results with error %v", len(r.Results), err)
			}
			return
		}
		if 8+len(r.Addr)+len(r.Results) > len(res) {
			t.Fatalf("%d bytes of address and results from %d bytes", len(r.Addr)+len(r.Results), len(res))
		}
		var r2 xdr.RmtCallResult
		d2 := xdr.NewDecoder(encode(r.Encode))
		r2.Decode(d2)
		if err := d2.Finish(); err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip: %+v, %v; want %+v", r2, err, r)
		}
	})
}

func FuzzDecodeList(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		d := xdr.NewDecoder(data)
		list := xdr.DecodeList(d, (*xdr.Mapping).Decode)
		if err := d.Err(); err != nil {
			if list != nil {
				t.Fatalf("%d entries with error %v", len(list), err)
			}
			return
		}
		if 20*len(list)+4 > len(data) {
			t.Fatalf("%d entries from %d bytes", len(list), len(data))
		}
		// Bools are 0 or 1 and mappings have no padding: the list
		// re-encodes to exactly the bytes it was read from.
		got := encode(func(e *xdr.Encoder) { xdr.EncodeList(e, list, (*xdr.Mapping).Encode) })
		if consumed := data[:len(data)-d.Remaining()]; !bytes.Equal(got, consumed) {
			t.Fatalf("re-encoded %x, read %x", got, consumed)
		}
	})
}

// FuzzStreamList: a list decoded as it is read, however the reads fall,
// is the list decoded from the whole message, and fails where it fails.
func FuzzStreamList(f *testing.F) {
	list := []xdr.RPCB{
		{Prog: 100000, Vers: 4, Netid: "tcp", Addr: "0.0.0.0.0.111", Owner: "superuser"},
		{Prog: 100003, Vers: 3, Netid: "local", Addr: "/run/nfs.sock", Owner: "1000"},
	}
	whole := encode(func(e *xdr.Encoder) { xdr.EncodeList(e, list, (*xdr.RPCB).Encode) })
	f.Add(whole)
	f.Add(whole[:len(whole)-4])
	f.Add(whole[:len(whole)/2])
	f.Add([]byte{0, 0, 0, 0})
	const maxItem = 4 + 4*2 + 3*(4+xdr.MaxRPCBString)
	f.Fuzz(func(t *testing.T, data []byte) {
		d := xdr.NewDecoder(data)
		want := xdr.DecodeList(d, (*xdr.RPCB).Decode)
		for _, r := range []struct {
			name string
			r    io.Reader
		}{
			{"whole", bytes.NewReader(data)},
			{"one byte at a time", iotest.OneByteReader(bytes.NewReader(data))},
		} {
			got, err := xdr.StreamList(xdr.NewStreamDecoder(r.r), maxItem, (*xdr.RPCB).Decode)
			if (err != nil) != (d.Err() != nil) || !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: %d entries, %v; from the whole message: %d entries, %v", r.name, len(got), err, len(want), d.Err())
			}
		}
	})
}
