package handoff

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portmapd/portmapd/peer"
)

// self accepts hand-offs from this process only, as a service accepts
// them from portmapd's.
func self(c peer.Cred) error {
	if c.PID != int32(os.Getpid()) {
		return errors.New("not this process")
	}
	return nil
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// TestHandOver: a connection sent over a hand-off socket arrives whole:
// what the client sends reaches the service on the descriptor it was
// given, and the service's answer reaches the client, after the sender
// has closed its own descriptor.
func TestHandOver(t *testing.T) {
	for _, path := range []string{"", "/sock"} {
		name := "abstract"
		if path != "" {
			name = "path"
			path = t.TempDir() + path
		}
		t.Run(name, func(t *testing.T) {
			l, err := Listen(path, self)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if path == "" && !strings.HasPrefix(l.Path(), "@portmapd-handoff-") {
				t.Fatalf("abstract listener at %q", l.Path())
			}
			client, server := tcpPair(t)
			h, err := Dial(context.Background(), l.Path(), uint32(os.Geteuid()))
			if err != nil {
				t.Fatal(err)
			}
			if err := Send(h, "echo.example.com", server); err != nil {
				t.Fatal(err)
			}
			h.Close()
			server.Close()
			got, err := l.AcceptHandoff()
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != "echo.example.com" {
				t.Errorf("name %q", got.Name)
			}
			c, err := got.Conn()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, ok := c.(*net.TCPConn); !ok {
				t.Errorf("handed over a %T", c)
			}
			client.Write([]byte("ping"))
			buf := make([]byte, 4)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
				t.Fatalf("service read %q, %v", buf, err)
			}
			c.Write([]byte("pong"))
			client.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "pong" {
				t.Fatalf("client read %q, %v", buf, err)
			}
		})
	}
}

// TestDialRefusesAnotherUser: portmapd sends nothing to a socket whose
// listener is not the registration's user.
func TestDialRefusesAnotherUser(t *testing.T) {
	l, err := Listen("", self)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = Dial(context.Background(), l.Path(), uint32(os.Geteuid())+1)
	if !errors.Is(err, ErrNotOwner) {
		t.Fatalf("Dial: %v, want ErrNotOwner", err)
	}
}

// TestListenerRefusesStrangers: a connection from a process the verify
// function refuses is closed unread and skipped; the next good one is
// taken.
func TestListenerRefusesStrangers(t *testing.T) {
	calls := 0
	l, err := Listen("", func(c peer.Cred) error {
		calls++
		if calls == 1 {
			return errors.New("stranger")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var rejected []error
	l.Rejected = func(err error) { rejected = append(rejected, err) }
	for _, name := range []string{"first.example.com", "second.example.com"} {
		_, server := tcpPair(t)
		h, err := Dial(context.Background(), l.Path(), uint32(os.Geteuid()))
		if err != nil {
			t.Fatal(err)
		}
		if err := Send(h, name, server); err != nil {
			t.Fatal(err)
		}
		h.Close()
	}
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if len(rejected) != 1 || !strings.Contains(rejected[0].Error(), "stranger") {
		t.Fatalf("rejected %v, want the first connection", rejected)
	}
}

// socketpair returns a connected pair of AF_UNIX stream sockets.
func socketpair(t *testing.T) (a, b *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "pair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

// TestReceiveRefuses: anything but one printable name line with one socket
// attached is refused, and the descriptors that came with it are closed.
func TestReceiveRefuses(t *testing.T) {
	_, sock := socketpair(t)
	sockFD := func() []int { return []int{fd(t, sock)} }
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	tests := []struct {
		name string
		data string
		fds  func() []int
	}{
		{"no descriptor", "a.example.com\n", func() []int { return nil }},
		{"two descriptors", "a.example.com\n", func() []int { return []int{fd(t, sock), fd(t, sock)} }},
		{"not a socket", "a.example.com\n", func() []int { return []int{int(r.Fd())} }},
		{"no line end", "a.example.com", sockFD},
		{"empty name", "\n", sockFD},
		{"space in name", "a b\n", sockFD},
		{"control character", "a\x01b\n", sockFD},
		{"too long", strings.Repeat("a", MaxName+1) + "\n", sockFD},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := socketpair(t)
			var oob []byte
			if fds := tt.fds(); len(fds) > 0 {
				oob = unix.UnixRights(fds...)
			}
			if _, _, err := a.WriteMsgUnix([]byte(tt.data), oob, nil); err != nil {
				t.Fatal(err)
			}
			a.CloseWrite()
			before := openFDs(t)
			h, err := Receive(b)
			if !errors.Is(err, ErrBadMessage) {
				if h != nil {
					h.File.Close()
				}
				t.Fatalf("Receive: %+v, %v; want ErrBadMessage", h, err)
			}
			if after := openFDs(t); after > before {
				t.Errorf("%d descriptors left open", after-before)
			}
		})
	}
}

// fd returns a duplicate of c's descriptor, closed when t ends.
func fd(t *testing.T, c syscall.Conn) int {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	dup := -1
	raw.Control(func(f uintptr) { dup, err = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(dup) })
	return dup
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip(err)
	}
	return len(ents)
}

// FuzzReceive: no message, with a socket attached or not, makes Receive
// panic, and what it accepts is one printable name with one socket.
func FuzzReceive(f *testing.F) {
	f.Add([]byte("echo.example.com\n"), true)
	f.Add([]byte("\n"), true)
	f.Add([]byte("a\nb\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, attach bool) {
		a, b := socketpair(t)
		_, sock := socketpair(t)
		var oob []byte
		if attach {
			oob = unix.UnixRights(fd(t, sock))
		}
		if _, _, err := a.WriteMsgUnix(data, oob, nil); err != nil {
			if len(data) == 0 {
				return
			}
			t.Fatal(err)
		}
		a.CloseWrite()
		h, err := Receive(b)
		if err != nil {
			return
		}
		defer h.File.Close()
		if !attach || !printable([]byte(h.Name)) || len(h.Name) > MaxName {
			t.Fatalf("accepted %q (attached %v)", h.Name, attach)
		}
	})
}
