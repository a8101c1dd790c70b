package xdr

import (
	"errors"
	"io"
)

// A StreamDecoder decodes a message as it is read, one item at a time,
// holding only a window of it: enough for the largest item, never the
// whole message. A client reading a DUMP of a large registry this way
// needs memory for the decoded list, not for the list and the reply
// besides.
type StreamDecoder struct {
	r io.Reader
	// buf[off:end] is read and not yet consumed.
	buf      []byte
	off, end int
	// rerr is the reader's error; io.EOF once the message is all read.
	rerr error
	d    Decoder
}

// NewStreamDecoder returns a StreamDecoder reading the message from r,
// which ends with io.EOF at the message's end.
func NewStreamDecoder(r io.Reader) *StreamDecoder {
	return &StreamDecoder{r: r}
}

// Reset makes s read a new message from r, keeping its window's memory.
func (s *StreamDecoder) Reset(r io.Reader) {
	s.r, s.off, s.end, s.rerr = r, 0, 0, nil
	s.d.Reset(nil)
}

// streamChunk is the least a StreamDecoder reads at a time.
const streamChunk = 16 << 10

// Next returns a Decoder over the next bytes of the message: at least max
// of them, or all that remain when fewer do. max bounds the encoded size of
// what the caller decodes next; a length beyond what the Decoder holds is
// then an error of the message, not of the window. What the caller decodes
// is consumed at the next call of Next. The Decoder is valid until then.
func (s *StreamDecoder) Next(max int) *Decoder {
	s.off = s.end - s.d.Remaining()
	if s.end-s.off < max && s.rerr == nil {
		s.fill(max)
	}
	s.d.Reset(s.buf[s.off:s.end])
	return &s.d
}

// fill reads until max bytes are unconsumed or the reader stops.
func (s *StreamDecoder) fill(max int) {
	n := copy(s.buf, s.buf[s.off:s.end])
	s.off, s.end = 0, n
	if want := max + streamChunk; cap(s.buf) < want {
		// Grows to the largest item asked for, not to a length the
		// message claims.
		buf := make([]byte, want)
		copy(buf, s.buf[:n])
		s.buf = buf
	}
	s.buf = s.buf[:cap(s.buf)]
	for s.end < max && s.rerr == nil {
		k, err := s.r.Read(s.buf[s.end:])
		s.end += k
		if err != nil {
			s.rerr = err
		}
	}
}

// Err returns the reader's error, other than the end of the message: a
// message cut short, too long or not read in time. It explains a decoding
// error better than the truncation the Decoder saw, so check it first.
func (s *StreamDecoder) Err() error {
	if errors.Is(s.rerr, io.EOF) {
		return nil
	}
	return s.rerr
}

// All returns a Decoder over the rest of the message, read whole, for
// results that are small or not a list. The window grows with the bytes
// that arrive; the message's reader bounds them.
func (s *StreamDecoder) All() *Decoder {
	s.off = s.end - s.d.Remaining()
	s.end = copy(s.buf, s.buf[s.off:s.end])
	s.off = 0
	for s.rerr == nil {
		if s.end == len(s.buf) {
			s.buf = append(s.buf[:s.end], make([]byte, streamChunk)...)
			s.buf = s.buf[:cap(s.buf)]
		}
		k, err := s.r.Read(s.buf[s.end:])
		s.end += k
		if err != nil {
			s.rerr = err
		}
	}
	s.d.Reset(s.buf[:s.end])
	return &s.d
}

// StreamList reads an XDR optional-data list from s, as DecodeList does,
// one element at a time; maxItem bounds an element's encoded size, flag
// included. The elements are gathered in fixed-size blocks and copied once
// into a list of the exact length, so that the list's growth costs twice
// its size rather than the several times that appending would. On error it
// returns nil and the error.
func StreamList[T any](s *StreamDecoder, maxItem int, decode func(*T, *Decoder)) ([]T, error) {
	const block = 1024
	var (
		blocks [][]T
		cur    []T
		zero   T
		n      int
	)
	for {
		d := s.Next(maxItem)
		if !d.Bool() {
			break
		}
		if len(cur) == cap(cur) {
			if cur != nil {
				blocks = append(blocks, cur)
			}
			cur = make([]T, 0, block)
		}
		// Decoding in place, as DecodeList does, saves an allocation
		// per element.
		cur = append(cur, zero)
		decode(&cur[len(cur)-1], d)
		if d.Err() != nil {
			break
		}
		n++
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	if err := s.d.Err(); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	out := make([]T, 0, n)
	for _, b := range blocks {
		out = append(out, b...)
	}
	return append(out, cur...), nil
}
