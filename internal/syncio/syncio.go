// Package syncio has writers that goroutines may share: children's output
// copied by os/exec, log lines, a test's collected output.
package syncio

import (
	"bytes"
	"io"
	"sync"
)

// A Writer serialises the writes to a writer that is not safe for
// concurrent use, such as a bytes.Buffer or a command's output.
type Writer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewWriter returns a Writer that writes to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write writes p to the writer, one Write at a time.
func (w *Writer) Write(p []byte) (int, error) { return w.writeTo(w.w, p) }

// writeTo writes p to dst under w's lock.
func (w *Writer) writeTo(dst io.Writer, p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return dst.Write(p)
}

// A Buffer is a bytes.Buffer that goroutines may write to while another
// reads it. The zero Buffer is empty and ready for use.
type Buffer struct {
	// lock serialises the writes to buf and its reads; it has no writer
	// of its own.
	lock Writer
	buf  bytes.Buffer
}

// Write appends p to the buffer.
func (b *Buffer) Write(p []byte) (int, error) { return b.lock.writeTo(&b.buf, p) }

// String returns everything written so far.
func (b *Buffer) String() string {
	b.lock.mu.Lock()
	defer b.lock.mu.Unlock()
	return b.buf.String()
}
