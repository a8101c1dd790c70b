package syncio

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
)

// TestConcurrentWrites has goroutines write lines to each writer at once
// (the race detector catches a write that is not serialised) and checks
// that every line arrives whole.
func TestConcurrentWrites(t *testing.T) {
	const writers, lines = 8, 200
	tests := []struct {
		name string
		// open returns the writer under test and what was written.
		open func() (io.Writer, func() string)
	}{
		{"Writer over a bytes.Buffer", func() (io.Writer, func() string) {
			var b bytes.Buffer
			return NewWriter(&b), b.String
		}},
		{"zero Buffer", func() (io.Writer, func() string) {
			var b Buffer
			return &b, b.String
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, written := tt.open()
			var wg sync.WaitGroup
			for range writers {
				wg.Go(func() {
					for range lines {
						if n, err := io.WriteString(w, "one whole line\n"); n != 15 || err != nil {
							t.Errorf("Write: %d, %v", n, err)
							return
						}
					}
				})
			}
			wg.Wait()
			got := written()
			if want := strings.Repeat("one whole line\n", writers*lines); got != want {
				t.Errorf("wrote %d bytes, want %d lines of %q", len(got), writers*lines, "one whole line\n")
			}
		})
	}
}

// TestBufferStringWhileWriting reads a Buffer while goroutines write to it:
// each read is a prefix of the final contents, never a torn one.
func TestBufferStringWhileWriting(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				b.Write([]byte("x"))
			}
		})
	}
	for range 100 {
		if s := b.String(); strings.Trim(s, "x") != "" {
			t.Fatalf("String read %q", s)
		}
	}
	wg.Wait()
	if got := b.String(); got != strings.Repeat("x", 800) {
		t.Errorf("String = %d bytes, want 800", len(got))
	}
}
