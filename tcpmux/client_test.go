package tcpmux

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/portmapd/portmapd/httpmap"
	"github.com/portmapd/portmapd/internal/netns"
)

// TestDial: the Go client gets the service's connection on "+", whose
// first bytes are the service's own, and the reason on "-".
func TestDial(t *testing.T) {
	m := startMux(t, Config{})
	l := m.listen(t, httpmap.ServiceSpec{Service: "greet.example.com"})
	go netns.ServeEach(l, func(c net.Conn) {
		io.WriteString(c, "hello\n")
		echo(c)
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c, err := Dial(ctx, m.addr, "greet.example.com")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if got, _ := r.ReadString('\n'); got != "hello\n" {
		t.Fatalf("greeting %q", got)
	}
	io.WriteString(c, "ping\n")
	if got, _ := r.ReadString('\n'); got != "ping\n" {
		t.Fatalf("echo %q", got)
	}

	_, err = Dial(ctx, m.addr, "nothing.example.com")
	var re *RefusedError
	if !errors.As(err, &re) || re.Reason != "Service not available" {
		t.Fatalf("unknown name: %v", err)
	}
}

// TestDialNotTCPMUX: a server that does not answer as TCPMUX does, or
// not at all, is an error, within ctx.
func TestDialNotTCPMUX(t *testing.T) {
	tests := []struct {
		name  string
		serve func(net.Conn)
	}{
		{"another protocol", func(c net.Conn) { io.WriteString(c, "SSH-2.0-OpenSSH\r\n") }},
		{"no line end", func(c net.Conn) {
			for {
				if _, err := io.WriteString(c, "++++++++"); err != nil {
					return
				}
			}
		}},
		{"closed", func(net.Conn) {}},
		{"silent", func(c net.Conn) { io.Copy(io.Discard, c) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go netns.ServeEach(ln, tt.serve)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			c, err := Dial(ctx, ln.Addr().String(), "a.example.com")
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			var re *RefusedError
			if errors.As(err, &re) {
				t.Fatalf("taken for a refusal: %v", err)
			}
		})
	}
}

// rw answers a request with a fixed reply.
type rw struct {
	io.Reader
	io.Writer
}

// FuzzAskFor: no reply panics Dial's reading, reads past the first line
// end, or passes for a reply but a "+" or "-" line.
func FuzzAskFor(f *testing.F) {
	f.Add([]byte("+\r\nservice bytes"))
	f.Add([]byte("-Service not available\r\n"))
	f.Add([]byte("SSH-2.0\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		reply, err := askFor(rw{r, io.Discard}, "a.example.com")
		if read := len(in) - r.Len(); read > maxReply {
			t.Fatalf("read %d bytes", read)
		}
		if err != nil {
			return
		}
		if reply == "" || reply[0] != '+' && reply[0] != '-' || strings.ContainsAny(reply, "\n") {
			t.Fatalf("reply %q", reply)
		}
		if rest := r.Len(); rest != len(in)-bytes.IndexByte(in, '\n')-1 {
			t.Fatalf("read past the line end: %d bytes left", rest)
		}
	})
}
