package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/portmapd/portmapd/internal/netns"
	"github.com/portmapd/portmapd/rpcbind"
	"github.com/portmapd/portmapd/xdr"
	"golang.org/x/sys/unix"
)

// Environment of TestHelperNoIPv6: the JSON argv it runs without IPv6,
// and whether it passes that command sockets as systemd would.
const (
	envNoIPv6         = "PORTMAPD_NOIPV6_ARGV"
	envNoIPv6Activate = "PORTMAPD_NOIPV6_ACTIVATE"
)

// TestWithoutIPv6 starts portmapd on hosts without IPv6: it must start,
// serve IPv4 and say so in one line. With IPv6 switched off in the
// namespace, rpcbind -h 127.0.0.1 aborts (it cannot bind ::1), and so did
// portmapd; where the kernel opens no IPv6 socket at all (ipv6.disable=1,
// emulated with a seccomp filter), rpcbind.socket cannot even be set up.
func TestWithoutIPv6(t *testing.T) {
	netns.Require(t)
	for _, tc := range []struct {
		name string
		// sysctl switches IPv6 off; otherwise socket(AF_INET6) fails.
		sysctl bool
		// activated passes portmapd its sockets as systemd would.
		activated bool
		flags     []string
		netids    []string
	}{
		{"disable_ipv6", true, false, nil, []string{"local", "tcp", "tcp6", "udp", "udp6"}},
		{"disable_ipv6 with -h", true, false, []string{"-h", "127.0.0.1"}, []string{"local", "tcp", "tcp6", "udp"}},
		{"no AF_INET6", false, false, nil, []string{"local", "tcp", "udp"}},
		{"no AF_INET6 with -h", false, false, []string{"-h", "127.0.0.1", "-h", "::1"}, []string{"local", "tcp", "udp"}},
		{"no AF_INET6, socket-activated", false, true, nil, []string{"local", "tcp", "udp"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := netns.NewHost(t, "no6")
			argv := append([]string{portmapdBin(t), "-f", "--http", "off", "--state-dir", "off"}, tc.flags...)
			var cmd = h.Command(argv...)
			if tc.sysctl {
				h.Sysctl("net.ipv6.conf.all.disable_ipv6=1")
			} else {
				if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
					t.Skip("the seccomp filter is written for amd64 and arm64")
				}
				b, _ := json.Marshal(argv)
				cmd = h.Command(os.Args[0], "-test.run=^TestHelperNoIPv6$")
				cmd.Env = append(cmd.Env, envNoIPv6+"="+string(b))
				if tc.activated {
					cmd.Env = append(cmd.Env, envNoIPv6Activate+"=1")
				}
			}
			p := h.Start(cmd)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := p.WaitOutput(ctx, "portmapd serving"); err != nil {
				t.Fatalf("%v\n%s", err, p.Output())
			}
			if n := strings.Count(p.Output(), "no IPv6 on this host"); n != 1 {
				t.Errorf("said %d times that there is no IPv6, want once:\n%s", n, p.Output())
			}
			var netids []string
			err := h.Do(func() error {
				for _, network := range []string{"udp4", "tcp4"} {
					c, err := rpcbind.Dial(ctx, network, "127.0.0.1:111")
					if err != nil {
						return err
					}
					defer c.Close()
					if err := c.Null(ctx, xdr.PmapProg, xdr.PmapVers); err != nil {
						return fmt.Errorf("%s: %w", network, err)
					}
					list, err := c.RpcbDump(ctx, xdr.RpcbVers)
					if err != nil {
						return fmt.Errorf("%s: %w", network, err)
					}
					netids = netids[:0]
					for _, r := range list {
						if !slices.Contains(netids, r.Netid) {
							netids = append(netids, r.Netid)
						}
					}
				}
				return nil
			})
			if err != nil {
				t.Fatalf("IPv4: %v\n%s", err, p.Output())
			}
			slices.Sort(netids)
			if !slices.Equal(netids, tc.netids) {
				t.Errorf("the portmapper is registered on %v, want %v", netids, tc.netids)
			}
		})
	}
}

// TestHelperNoIPv6 is not a test: run with PORTMAPD_NOIPV6_ARGV set, it
// runs that command where socket(AF_INET6) fails with EAFNOSUPPORT, as on
// a kernel booted with ipv6.disable=1. With PORTMAPD_NOIPV6_ACTIVATE=1 it
// passes the command the sockets systemd would: IPv4 TCP and UDP on port
// 111 and /run/rpcbind.sock, the IPv6 ones left out.
func TestHelperNoIPv6(t *testing.T) {
	var argv []string
	if err := json.Unmarshal([]byte(os.Getenv(envNoIPv6)), &argv); err != nil || len(argv) == 0 {
		t.Skip("helper process only")
	}
	fail := func(what string, err error) {
		fmt.Fprintln(os.Stderr, what+":", err)
		os.Exit(2)
	}
	if err := denyIPv6Sockets(); err != nil {
		fail("seccomp", err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	if os.Getenv(envNoIPv6Activate) == "1" {
		var files []*os.File
		for _, open := range []func() (interface{ File() (*os.File, error) }, error){
			func() (interface{ File() (*os.File, error) }, error) {
				ln, err := net.Listen("tcp4", "0.0.0.0:111")
				return ln.(*net.TCPListener), err
			},
			func() (interface{ File() (*os.File, error) }, error) {
				c, err := net.ListenPacket("udp4", "0.0.0.0:111")
				return c.(*net.UDPConn), err
			},
			func() (interface{ File() (*os.File, error) }, error) {
				ln, err := net.Listen("unix", "/run/rpcbind.sock")
				return ln.(*net.UnixListener), err
			},
		} {
			s, err := open()
			if err != nil {
				fail("listen", err)
			}
			f, err := s.File()
			if err != nil {
				fail("listen", err)
			}
			files = append(files, f)
		}
		// LISTEN_PID names the process that execs the command.
		cmd = exec.Command("sh", append([]string{"-c", `LISTEN_PID=$$ LISTEN_FDS=3 exec "$@"`, "sh"}, argv...)...)
		cmd.ExtraFiles = files
	}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		os.Exit(ee.ExitCode())
	}
	if err != nil {
		fail("run", err)
	}
	os.Exit(0)
}

// denyIPv6Sockets installs, on every thread of the process and so on its
// children, a seccomp filter under which socket(AF_INET6, ...) fails with
// EAFNOSUPPORT and every other call is allowed.
func denyIPv6Sockets() error {
	arch := map[string]uint32{"amd64": unix.AUDIT_ARCH_X86_64, "arm64": unix.AUDIT_ARCH_AARCH64}[runtime.GOARCH]
	// Offsets in struct seccomp_data; args[0]'s low half comes first on
	// these little-endian machines.
	const offNR, offArch, offArg0 = 0, 4, 16
	ld := func(k uint32) unix.SockFilter {
		return unix.SockFilter{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: k}
	}
	jne := func(k uint32, skip uint8) unix.SockFilter {
		return unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: k, Jf: skip}
	}
	ret := func(k uint32) unix.SockFilter { return unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: k} }
	filter := []unix.SockFilter{
		ld(offArch), jne(arch, 5),
		ld(offNR), jne(unix.SYS_SOCKET, 3),
		ld(offArg0), jne(unix.AF_INET6, 1),
		ret(unix.SECCOMP_RET_ERRNO | uint32(unix.EAFNOSUPPORT)),
		ret(unix.SECCOMP_RET_ALLOW),
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	if errno != 0 {
		return errno
	}
	return nil
}
