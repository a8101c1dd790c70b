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

// A RecordReader reads RPC records from a byte stream, reassembling
// fragments and refusing records longer than its limit before reading them:
// whole (Next), or as a stream of their bytes (NextReader).
type RecordReader struct {
	r   io.Reader
	max int
	buf []byte
	hdr [4]byte
	// The record being read: bytes left in its current fragment, whether
	// that fragment is the last, and bytes claimed so far.
	left    int
	last    bool
	claimed uint64
	body    recordBody
}

// NewRecordReader returns a RecordReader that accepts records of at most max
// bytes (DefaultMaxMessage when max <= 0).
func NewRecordReader(r io.Reader, max int) *RecordReader {
	if max <= 0 {
		max = DefaultMaxMessage
	}
	rr := &RecordReader{r: r, max: max, last: true}
	rr.body.rr = rr
	return rr
}

// Next returns the next record. The slice is valid until the next call. It
// returns io.EOF only when the stream ends cleanly between records; a stream
// that ends inside a record gives io.ErrUnexpectedEOF.
func (rr *RecordReader) Next() ([]byte, error) {
	if err := rr.begin(); err != nil {
		return nil, err
	}
	rr.buf = rr.buf[:0]
	for {
		if rr.left == 0 {
			if rr.last {
				return rr.buf, nil
			}
			if err := rr.nextFragment(false); err != nil {
				return nil, err
			}
			continue
		}
		// Grow with the bytes that arrive, not with the length claimed:
		// a peer may announce far more than it ever sends.
		chunk := min(rr.left, readChunk)
		start := len(rr.buf)
		rr.buf = append(rr.buf, make([]byte, chunk)...)
		if _, err := io.ReadFull(rr.r, rr.buf[start:]); err != nil {
			return nil, noEOF(err)
		}
		rr.left -= chunk
	}
}

// NextReader returns the bytes of the next record as a reader, which reads
// them from the stream as it is read: the record is never held whole, so
// a large reply can be decoded as it arrives. The reader ends with io.EOF
// at the end of the record, with io.ErrUnexpectedEOF if the stream ends
// inside it, and with a *RecordTooLargeError once its fragments claim more
// than the limit. It is valid until the next call of Next or NextReader,
// which first skip whatever of it was not read. Errors are as Next's.
func (rr *RecordReader) NextReader() (io.Reader, error) {
	if err := rr.begin(); err != nil {
		return nil, err
	}
	return &rr.body, nil
}

// begin skips the rest of the record being read, if any, and reads the
// first fragment header of the next one.
func (rr *RecordReader) begin() error {
	if rr.left > 0 || !rr.last {
		if _, err := io.Copy(io.Discard, &rr.body); err != nil {
			return err
		}
	}
	rr.claimed = 0
	return rr.nextFragment(true)
}

// nextFragment reads a fragment header and checks the record's claimed
// size against the limit.
func (rr *RecordReader) nextFragment(first bool) error {
	if _, err := io.ReadFull(rr.r, rr.hdr[:]); err != nil {
		if first && errors.Is(err, io.EOF) {
			return io.EOF
		}
		return noEOF(err)
	}
	mark := binary.BigEndian.Uint32(rr.hdr[:])
	n := int(mark &^ lastFragment)
	rr.claimed += uint64(n)
	if rr.claimed > uint64(rr.max) {
		// The stream cannot be resynchronised: read no more of it.
		rr.left, rr.last = 0, true
		return &RecordTooLargeError{Size: rr.claimed, Max: rr.max}
	}
	rr.left, rr.last = n, mark&lastFragment != 0
	return nil
}

// recordBody reads the current record of its RecordReader.
type recordBody struct {
	rr *RecordReader
}

func (b *recordBody) Read(p []byte) (int, error) {
	rr := b.rr
	for rr.left == 0 {
		if rr.last {
			return 0, io.EOF
		}
		if err := rr.nextFragment(false); err != nil {
			return 0, err
		}
	}
	if len(p) > rr.left {
		p = p[:rr.left]
	}
	n, err := rr.r.Read(p)
	rr.left -= n
	if err != nil {
		if errors.Is(err, io.EOF) && rr.left > 0 {
			err = io.ErrUnexpectedEOF
		}
		if n > 0 && errors.Is(err, io.EOF) {
			err = nil
		}
	}
	return n, err
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
