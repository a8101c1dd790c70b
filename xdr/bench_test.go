package xdr_test

import (
	"testing"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/xdr"
)

func BenchmarkDecodeCall(b *testing.B) {
	for _, name := range []string{"call-getport-v2.hex", "call-auth-sys.hex"} {
		msg := golden(b, name)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if _, _, err := xdr.DecodeCall(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeGetport is a whole GETPORT request: header, then the
// mapping in its arguments.
func BenchmarkDecodeGetport(b *testing.B) {
	msg := golden(b, "call-getport-v2.hex")
	b.ReportAllocs()
	d := xdr.NewDecoder(nil)
	for b.Loop() {
		_, args, err := xdr.DecodeCall(msg)
		if err != nil {
			b.Fatal(err)
		}
		var m xdr.Mapping
		d.Reset(args)
		m.Decode(d)
		if d.Finish() != nil {
			b.Fatal(d.Finish())
		}
	}
}

// BenchmarkEncodeDump encodes a DUMP reply of 1000 mappings into a reused
// buffer, as the server does.
func BenchmarkEncodeDump(b *testing.B) {
	list := make([]xdr.Mapping, 1000)
	for i := range list {
		list[i] = xdr.Mapping{Prog: 0x40000000 + uint32(i), Vers: 1, Prot: netid.ProtoUDP, Port: uint32(1024 + i)}
	}
	h := xdr.Accepted(1, xdr.Success)
	e := xdr.NewEncoder(nil)
	b.ReportAllocs()
	for b.Loop() {
		e.Reset()
		h.Encode(e)
		xdr.EncodeList(e, list, (*xdr.Mapping).Encode)
	}
	if e.Len() != 24+1000*20+4 {
		b.Fatalf("encoded %d bytes", e.Len())
	}
	b.SetBytes(int64(e.Len()))
}

func BenchmarkRecordReader(b *testing.B) {
	stream := golden(b, "record-many-fragments.hex")
	rd := &repeatReader{data: stream}
	rr := xdr.NewRecordReader(rd, 0)
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		if _, err := rr.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

// repeatReader serves data over and over.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := copy(p, r.data[r.off:])
	r.off = (r.off + n) % len(r.data)
	return n, nil
}
