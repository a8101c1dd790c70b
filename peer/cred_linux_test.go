package peer_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/portmapd/portmapd/peer"
)

// dialEnv, when set, makes the test binary a client that connects to the
// socket it names and waits for the server to hang up.
const dialEnv = "PEER_TEST_DIAL"

func TestMain(m *testing.M) {
	if path := os.Getenv(dialEnv); path != "" {
		c, err := net.Dial("unix", path)
		if err != nil {
			os.Exit(3)
		}
		var b [1]byte
		c.Read(b[:])
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// acceptFrom listens on a fresh path, runs the test binary as a client
// through wrap (a command prefix such as unshare -n) and returns the
// accepted connection and the client's pid.
func acceptFrom(t *testing.T, wrap ...string) (net.Conn, int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	argv := append(wrap, os.Args[0])
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), dialEnv+"="+path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		cmd.Wait()
	})
	return c, cmd.Process.Pid
}

func TestCredentials(t *testing.T) {
	own, err := peer.OwnNetNS()
	if err != nil {
		t.Skipf("kernel does not give namespace cookies: %v", err)
	}
	tests := []struct {
		name   string
		wrap   []string
		sameNS bool
	}{
		{name: "same namespace", sameNS: true},
		{name: "another network namespace", wrap: []string{"unshare", "-n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.wrap) > 0 {
				if os.Geteuid() != 0 {
					t.Skip("needs root to make a network namespace")
				}
				if _, err := exec.LookPath(tc.wrap[0]); err != nil {
					t.Skipf("%s not installed (util-linux)", tc.wrap[0])
				}
			}
			c, pid := acceptFrom(t, tc.wrap...)
			cred, err := peer.Credentials(c)
			if err != nil {
				t.Fatal(err)
			}
			if cred.UID != uint32(os.Geteuid()) {
				t.Errorf("uid %d, want %d", cred.UID, os.Geteuid())
			}
			// unshare execs the client in place, so the pid is the same.
			if int(cred.PID) != pid {
				t.Errorf("pid %d, want %d", cred.PID, pid)
			}
			if cred.NetNS == 0 {
				t.Fatal("no namespace cookie")
			}
			if got := cred.NetNS == own; got != tc.sameNS {
				t.Errorf("peer namespace %d, own %d: same is %v, want %v", cred.NetNS, own, got, tc.sameNS)
			}
		})
	}
}

func TestCredentialsNotUnix(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := peer.Credentials(a); err == nil {
		t.Fatal("credentials of a pipe")
	}
}
