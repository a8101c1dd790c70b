package xdr_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"testing"

	xdr2 "github.com/davecgh/go-xdr/xdr2"

	"github.com/portmapd/portmapd/xdr"
)

// allocLimit is how much a hostile message may make the decoder allocate
// in total: the message claims gigabytes, and anything near that is a bug.
const allocLimit = 64 << 10

// allocated returns the bytes f allocates, averaged over runs calls.
func allocated(runs int, f func()) uint64 {
	f() // warm up: one-time initialisation is not the decoder's doing
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

// maxAllocs bounds the objects a refused message may cost (decoder, error
// values and their text).
const maxAllocs = 32.0

// checkCheap fails when f allocates more than allocLimit bytes a call, or
// more than maxAllocs objects.
func checkCheap(t *testing.T, f func()) {
	t.Helper()
	if n := allocated(10, f); n > allocLimit {
		t.Errorf("allocated %d bytes a call, limit %d", n, allocLimit)
	}
	if n := testing.AllocsPerRun(10, f); n > maxAllocs {
		t.Errorf("%.0f allocations a call, limit %.0f", n, maxAllocs)
	}
}

func words(ws ...uint32) []byte {
	b := make([]byte, 0, 4*len(ws))
	for _, w := range ws {
		b = binary.BigEndian.AppendUint32(b, w)
	}
	return b
}

// TestAllocationMeasureWorks is the control for the tests below: the same
// measure does see go-xdr allocate what a 4-byte message claims when nothing
// bounds the length first (here 16 MiB, to keep the test light).
func TestAllocationMeasureWorks(t *testing.T) {
	const claim = 16 << 20
	msg := words(claim)
	n := allocated(1, func() {
		_, _, err := xdr2.NewDecoder(bytes.NewReader(msg)).DecodeOpaque()
		if err == nil {
			t.Fatal("go-xdr decoded a 16 MiB opaque from 4 bytes")
		}
	})
	if n < claim {
		t.Fatalf("measured %d bytes; go-xdr allocates %d here, so the measure is broken", n, claim)
	}
}

// TestHostileOpaqueLength2GiB: a 4-byte body claiming a 2 GiB opaque fails
// without allocating it, whatever bound the field has.
func TestHostileOpaqueLength2GiB(t *testing.T) {
	for _, claim := range []uint32{1 << 31, 1<<31 - 1, 1<<32 - 1, 1<<32 - 4} {
		msg := words(claim)
		var err error
		checkCheap(t, func() {
			d := xdr.NewDecoder(msg)
			if b := d.Opaque("args", 1<<62); b != nil {
				t.Fatalf("Opaque returned %d bytes", len(b))
			}
			err = d.Err()
		})
		var le *xdr.LengthError
		if !errors.As(err, &le) || le.Length != claim || le.Remaining != 0 || !errors.Is(err, xdr.ErrTruncated) {
			t.Errorf("claim %#x: %v, want a LengthError that is ErrTruncated", claim, err)
		}
	}
}

// TestHostileCallArgs2GiB: CALLIT's opaque arguments are bounded only by
// the message, so the message is all that stops a 2 GiB claim.
func TestHostileCallArgs2GiB(t *testing.T) {
	msg := words(100003, 3, 0, 1<<31)
	var err error
	checkCheap(t, func() {
		var c xdr.CallArgs
		d := xdr.NewDecoder(msg)
		c.Decode(d)
		err = d.Err()
	})
	var le *xdr.LengthError
	if !errors.As(err, &le) || le.Length != 1<<31 {
		t.Errorf("CallArgs.Decode: %v, want a LengthError", err)
	}
	// The same through CallResult.
	msg = words(111, 1<<31)
	checkCheap(t, func() {
		var c xdr.CallResult
		d := xdr.NewDecoder(msg)
		c.Decode(d)
		err = d.Err()
	})
	if !errors.As(err, &le) || le.Length != 1<<31 {
		t.Errorf("CallResult.Decode: %v, want a LengthError", err)
	}
	// And through RmtCallResult, after an empty address.
	msg = words(0, 1<<31)
	checkCheap(t, func() {
		var r xdr.RmtCallResult
		d := xdr.NewDecoder(msg)
		r.Decode(d)
		err = d.Err()
	})
	if !errors.As(err, &le) || le.Length != 1<<31 {
		t.Errorf("RmtCallResult.Decode: %v, want a LengthError", err)
	}
}

// TestHostileCredentialLength: opaque_auth bodies are bounded by 400 bytes
// and by the message, before anything is allocated.
func TestHostileCredentialLength(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  []byte
		max  int
	}{
		// The oracle's 40-byte call claiming a 0x7ffffff0-byte credential.
		{"cred 2 GiB", golden(t, "bad-call-cred-huge.hex"), 400},
		// 401 bytes claimed and present: the bound is the spec's, not
		// only the message's.
		{"cred 401", golden(t, "bad-call-cred-401.hex"), 400},
		{"verf 401", golden(t, "bad-call-verf-401.hex"), 400},
		{"verf 4 GiB", append(golden(t, "call-null-v2.hex")[:36], words(1<<32-1)...), 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			checkCheap(t, func() { _, _, err = xdr.DecodeCall(tc.msg) })
			var le *xdr.LengthError
			if !errors.As(err, &le) || le.Max != tc.max || !errors.Is(err, xdr.ErrBadHeader) {
				t.Errorf("DecodeCall: %v, want ErrBadHeader with a LengthError (max %d)", err, tc.max)
			}
		})
	}
}

// TestHostileRecordMark2GiB: a record mark claiming 2^31-1 bytes is refused
// with *RecordTooLargeError before the record is read or allocated.
func TestHostileRecordMark2GiB(t *testing.T) {
	for _, mark := range []uint32{0xffffffff, 0x7fffffff} {
		stream := append(words(mark), make([]byte, 4096)...)
		var (
			err      error
			consumed int
		)
		checkCheap(t, func() {
			r := bytes.NewReader(stream)
			_, err = xdr.NewRecordReader(r, 0).Next()
			consumed = len(stream) - r.Len()
		})
		var tl *xdr.RecordTooLargeError
		if !errors.As(err, &tl) || tl.Size != 1<<31-1 || tl.Max != xdr.DefaultMaxMessage {
			t.Errorf("mark %#x: %v, want *RecordTooLargeError{Size 2147483647, Max 9000}", mark, err)
		}
		if consumed != 4 {
			t.Errorf("mark %#x: read %d bytes, want only the 4 of the mark", mark, consumed)
		}
	}
}

// TestHostileRecordFragmentsAddUp: fragments that are each small but add up
// to more than the limit are refused at the mark that crosses it, before its
// fragment is read (the oracle's tcp-2-fragments-total-9001 shape).
func TestHostileRecordFragmentsAddUp(t *testing.T) {
	var stream []byte
	stream = append(stream, words(5000)...)
	stream = append(stream, make([]byte, 5000)...)
	stream = append(stream, words(1<<31|4001)...)
	stream = append(stream, make([]byte, 4001)...)
	r := bytes.NewReader(stream)
	_, err := xdr.NewRecordReader(r, 0).Next()
	var tl *xdr.RecordTooLargeError
	if !errors.As(err, &tl) || tl.Size != 9001 {
		t.Fatalf("Next: %v, want *RecordTooLargeError{Size 9001}", err)
	}
	if left := r.Len(); left != 4001 {
		t.Errorf("%d bytes left unread, want the 4001 of the refused fragment", left)
	}

	// Exactly the limit is fine, in one fragment or in two.
	msg := make([]byte, xdr.DefaultMaxMessage)
	for _, frag := range []int{0, 5000} {
		rec, err := xdr.NewRecordReader(bytes.NewReader(xdr.AppendRecord(nil, msg, frag)), 0).Next()
		if err != nil || len(rec) != len(msg) {
			t.Errorf("9000-byte record in fragments of %d: %d bytes, %v", frag, len(rec), err)
		}
	}
}

// TestHostileRecordManyEmptyFragments: empty non-last fragments cost the
// reader nothing but the marks.
func TestHostileRecordManyEmptyFragments(t *testing.T) {
	stream := bytes.Repeat(words(0), 10000)
	stream = append(stream, words(1<<31|4)...)
	stream = append(stream, 1, 2, 3, 4)
	var rec []byte
	var err error
	checkCheap(t, func() { rec, err = xdr.NewRecordReader(bytes.NewReader(stream), 16).Next() })
	if err != nil || !bytes.Equal(rec, []byte{1, 2, 3, 4}) {
		t.Errorf("Next = %x, %v", rec, err)
	}
}

// TestHostileAuthSysGIDCount: an AUTH_SYS body claiming 0xffffffff gids is
// refused before the gid slice is made.
func TestHostileAuthSysGIDCount(t *testing.T) {
	for _, count := range []uint32{0xffffffff, 0x80000000, 0x40000000, 17} {
		body := words(1, 0, 1000, 1000, count, 1, 2, 3)
		var err error
		checkCheap(t, func() { _, err = xdr.ParseAuthSys(body) })
		var le *xdr.LengthError
		if !errors.As(err, &le) || le.Field != "gids" || le.Length != count {
			t.Errorf("gids count %#x: %v, want a LengthError for gids", count, err)
		}
	}
	// 16 gids claimed, 3 present: truncated, not a 16-element read past
	// the end.
	if _, err := xdr.ParseAuthSys(words(1, 0, 1000, 1000, 16, 1, 2, 3)); err == nil {
		t.Error("16 gids claimed with 3 present was accepted")
	}
}

// TestHostileAuthSysMachineName: machinename is bounded by 255 bytes.
func TestHostileAuthSysMachineName(t *testing.T) {
	name := func(n int) []byte {
		b := words(1, uint32(n))
		b = append(b, make([]byte, (n+3)&^3)...)
		return append(b, words(0, 0, 0)...)
	}
	if p, err := xdr.ParseAuthSys(name(255)); err != nil || len(p.MachineName) != 255 {
		t.Errorf("255-byte name: %d bytes, %v", len(p.MachineName), err)
	}
	var le *xdr.LengthError
	if _, err := xdr.ParseAuthSys(name(256)); !errors.As(err, &le) || le.Field != "machinename" || le.Max != xdr.MaxMachineName {
		t.Errorf("256-byte name: %v, want a LengthError for machinename", err)
	}
	var err error
	checkCheap(t, func() { _, err = xdr.ParseAuthSys(words(1, 1<<31-1, 0, 0, 0)) })
	if !errors.As(err, &le) {
		t.Errorf("2 GiB name: %v", err)
	}
}

// TestHostilePmaplist: a pmaplist that promises entries (TRUE) and then ends
// fails without a result, and what it allocates is bounded by the message:
// there is no count to preallocate from.
func TestHostilePmaplist(t *testing.T) {
	entry := words(1, 100000, 2, 17, 111)
	for _, tc := range []struct {
		name string
		msg  []byte
	}{
		{"TRUE and nothing", words(1)},
		{"TRUE and half an entry", words(1, 100000, 2)},
		{"1000 entries then TRUE", append(bytes.Repeat(entry, 1000), words(1)...)},
		{"1000 entries and no FALSE", bytes.Repeat(entry, 1000)},
		{"bool 2", words(2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				list []xdr.Mapping
				err  error
			)
			n := allocated(5, func() {
				d := xdr.NewDecoder(tc.msg)
				list = xdr.DecodeList(d, (*xdr.Mapping).Decode)
				err = d.Err()
			})
			if err == nil || list != nil {
				t.Errorf("DecodeList = %d entries, %v; want nil and an error", len(list), err)
			}
			if limit := uint64(8*len(tc.msg)) + allocLimit; n > limit {
				t.Errorf("allocated %d bytes for a %d-byte message (limit %d)", n, len(tc.msg), limit)
			}
		})
	}
}
