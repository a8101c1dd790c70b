package systemd

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portmapd/portmapd/netid"
)

// socketFile opens a socket the way a .socket unit would and returns it as
// the file systemd would pass.
func socketFile(t *testing.T, domain, typ int, v6only int, bind unix.Sockaddr) *os.File {
	t.Helper()
	fd, err := unix.Socket(domain, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Skipf("cannot open socket family %d: %v", domain, err)
	}
	if domain == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Bind(fd, bind); err != nil {
		unix.Close(fd)
		t.Skipf("cannot bind: %v", err)
	}
	if typ == unix.SOCK_STREAM {
		if err := unix.Listen(fd, 16); err != nil {
			t.Fatal(err)
		}
	}
	return os.NewFile(uintptr(fd), "test")
}

func TestClassify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "rpcbind.sock")
	tests := []struct {
		name   string
		open   func(t *testing.T) *os.File
		netid  netid.ID
		errIs  error
		stream bool
	}{
		{"tcp", func(t *testing.T) *os.File {
			return socketFile(t, unix.AF_INET, unix.SOCK_STREAM, 0, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
		}, "tcp", nil, true},
		{"udp", func(t *testing.T) *os.File {
			return socketFile(t, unix.AF_INET, unix.SOCK_DGRAM, 0, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
		}, "udp", nil, false},
		{"tcp6 v6-only", func(t *testing.T) *os.File {
			return socketFile(t, unix.AF_INET6, unix.SOCK_STREAM, 1, &unix.SockaddrInet6{Addr: [16]byte{15: 1}})
		}, "tcp6", nil, true},
		{"udp6 v6-only", func(t *testing.T) *os.File {
			return socketFile(t, unix.AF_INET6, unix.SOCK_DGRAM, 1, &unix.SockaddrInet6{Addr: [16]byte{15: 1}})
		}, "udp6", nil, false},
		{"dual-stack tcp6 is refused", func(t *testing.T) *os.File {
			return socketFile(t, unix.AF_INET6, unix.SOCK_STREAM, 0, &unix.SockaddrInet6{})
		}, "", ErrDualStack, false},
		{"local stream", func(t *testing.T) *os.File {
			return socketFile(t, unix.AF_UNIX, unix.SOCK_STREAM, 0, &unix.SockaddrUnix{Name: sock})
		}, "local", nil, true},
		{"local datagram is refused", func(t *testing.T) *os.File {
			return socketFile(t, unix.AF_UNIX, unix.SOCK_DGRAM, 0, &unix.SockaddrUnix{Name: sock + ".dgram"})
		}, "", nil, false},
		{"not a socket", func(t *testing.T) *os.File {
			f, err := os.Open(os.DevNull)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}, "", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Classify(tc.open(t))
			if tc.netid == "" {
				if err == nil {
					t.Fatalf("classified as %q, want an error", s.Netid)
				}
				if tc.errIs != nil && !errors.Is(err, tc.errIs) {
					t.Fatalf("error %v, want %v", err, tc.errIs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Netid != tc.netid {
				t.Errorf("netid %q, want %q", s.Netid, tc.netid)
			}
			if tc.stream != (s.Listener != nil) || tc.stream == (s.PacketConn != nil) {
				t.Errorf("listener %v packet conn %v, want stream=%v", s.Listener, s.PacketConn, tc.stream)
			}
			if s.Listener != nil {
				s.Listener.Close()
			}
			if s.PacketConn != nil {
				s.PacketConn.Close()
			}
		})
	}
}

func TestFilesIgnoresOtherProcesses(t *testing.T) {
	t.Setenv("LISTEN_PID", "1")
	t.Setenv("LISTEN_FDS", "2")
	if files := Files(); files != nil {
		t.Fatalf("took %d descriptors meant for pid 1", len(files))
	}
	if os.Getenv("LISTEN_FDS") != "" {
		t.Error("LISTEN_FDS left in the environment")
	}
}

func TestNotify(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	if err := Notify("READY=1"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(buf[:n]); got != "READY=1" {
		t.Errorf("notified %q", got)
	}
	t.Setenv("NOTIFY_SOCKET", "")
	if err := Notify("READY=1"); err != nil {
		t.Errorf("without NOTIFY_SOCKET: %v", err)
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(dir, "missing"))
	if err := Notify("READY=1"); err == nil || !strings.Contains(err.Error(), "notify") {
		t.Errorf("missing socket: %v", err)
	}
}
