package xdr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// lastFragment is the record-mark bit that ends a record (RFC 5531 §11).
const lastFragment = 1 << 31

// readChunk is how much of a fragment is read, and allocated, at a time.
const readChunk = 64 << 10

// DefaultMaxMessage is rpcbind's RPC_MAXDATASIZE: the largest call it
// accepts, in bytes.
const DefaultMaxMessage = 9000

// A RecordTooLargeError reports a record whose fragments add up to more than
// the reader's limit. The stream cannot be resynchronised after it.
type RecordTooLargeError struct {
	Size uint64 // bytes the record claimed so far
	Max  int
}

func (e *RecordTooLargeError) Error() string {
	return fmt.Sprintf("rpc: record of at least %d bytes exceeds limit %d", e.Size, e.Max)
}

// A RecordReader reads whole RPC records from a byte stream, reassembling
// fragments and refusing records longer than its limit before reading them.
type RecordReader struct {
	r   io.Reader
	max int
	buf []byte
	hdr [4]byte
}

// NewRecordReader returns a RecordReader that accepts records of at most max
// bytes (DefaultMaxMessage when max <= 0).
func NewRecordReader(r io.Reader, max int) *RecordReader {
	if max <= 0 {
		max = DefaultMaxMessage
	}
	return &RecordReader{r: r, max: max}
}

// Next returns the next record. The slice is valid until the next call. It
// returns io.EOF only when the stream ends cleanly between records; a stream
// that ends inside a record gives io.ErrUnexpectedEOF.
func (rr *RecordReader) Next() ([]byte, error) {
	rr.buf = rr.buf[:0]
	for first := true; ; first = false {
		if _, err := io.ReadFull(rr.r, rr.hdr[:]); err != nil {
			if first && errors.Is(err, io.EOF) {
				return nil, io.EOF
			}
			return nil, noEOF(err)
		}
		mark := binary.BigEndian.Uint32(rr.hdr[:])
		n := int(mark &^ lastFragment)
		if total := uint64(len(rr.buf)) + uint64(n); total > uint64(rr.max) {
			return nil, &RecordTooLargeError{Size: total, Max: rr.max}
		}
		// Grow with the bytes that arrive, not with the length claimed:
		// a peer may announce far more than it ever sends.
		for n > 0 {
			chunk := min(n, readChunk)
			start := len(rr.buf)
			rr.buf = append(rr.buf, make([]byte, chunk)...)
			if _, err := io.ReadFull(rr.r, rr.buf[start:]); err != nil {
				return nil, noEOF(err)
			}
			n -= chunk
		}
		if mark&lastFragment != 0 {
			return rr.buf, nil
		}
	}
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// AppendRecord appends msg to dst framed as one record of fragments of at
// most maxFragment bytes each (one fragment when maxFragment <= 0).
func AppendRecord(dst, msg []byte, maxFragment int) []byte {
	if maxFragment <= 0 || maxFragment > lastFragment-1 {
		maxFragment = lastFragment - 1
	}
	for {
		n := min(len(msg), maxFragment)
		mark := uint32(n)
		if n == len(msg) {
			mark |= lastFragment
		}
		dst = binary.BigEndian.AppendUint32(dst, mark)
		dst = append(dst, msg[:n]...)
		msg = msg[n:]
		if len(msg) == 0 {
			return dst
		}
	}
}
