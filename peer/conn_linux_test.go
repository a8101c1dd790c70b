package peer_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/portmapd/portmapd/peer"
)

// TestFromConnUnix: a local connection's Peer is its transport and the
// connecting process's credentials, with no IP addresses.
func TestFromConnUnix(t *testing.T) {
	c, pid := acceptFrom(t)
	p, err := peer.FromConn(c)
	if err != nil {
		t.Fatal(err)
	}
	if p.Transport != "unix" || p.Addr.IsValid() || p.Local.IsValid() {
		t.Errorf("peer %+v, want transport unix and no addresses", p)
	}
	if p.Cred == nil || int(p.Cred.PID) != pid || p.Cred.UID != uint32(os.Geteuid()) {
		t.Fatalf("credentials %+v, want pid %d uid %d", p.Cred, pid, os.Geteuid())
	}
	if want := fmt.Sprintf("pid %d uid %d", pid, os.Geteuid()); p.String() != want {
		t.Errorf("String() = %q, want %q", p.String(), want)
	}
}

// TestPidFD: the pidfd names the process that connected.
func TestPidFD(t *testing.T) {
	c, pid := acceptFrom(t)
	fd, err := peer.PidFD(c)
	if errors.Is(err, unix.ENOPROTOOPT) {
		t.Skipf("kernel has no SO_PEERPIDFD (Linux 6.5): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	info, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("\nPid:\t%d\n", pid); !strings.Contains(string(info), want) {
		t.Errorf("pidfd's fdinfo does not name pid %d:\n%s", pid, info)
	}
	if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("pidfd flags %#x, %v: want close-on-exec", flags, err)
	}
	if _, err := peer.PidFD(&net.TCPConn{}); err == nil {
		t.Error("pidfd of a connection that is not a socket")
	}
}
