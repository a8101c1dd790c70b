package xdr

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
)

// TestRecordReaderGrowsWithData: a client accepts large replies, so its
// limit is high; a server claiming a 60 MiB fragment and sending 8 bytes
// must not make it allocate 60 MiB.
func TestRecordReaderGrowsWithData(t *testing.T) {
	msg := []byte{0x83, 0xc0, 0x00, 0x00, 1, 2, 3, 4, 5, 6, 7, 8}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := NewRecordReader(bytes.NewReader(msg), 64<<20).Next()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v, want unexpected EOF", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("allocated %d bytes for 8 bytes of data", grew)
	}
}
