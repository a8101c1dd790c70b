package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portmapd/portmapd/internal/daemon"
	"github.com/portmapd/portmapd/rpcbind"
	"github.com/portmapd/portmapd/xdr"
)

// binary returns the portmapd under test: PORTMAPD_BIN, or a fresh build.
func binary(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("PORTMAPD_BIN"); b != "" {
		return b
	}
	out := filepath.Join(t.TempDir(), "portmapd")
	if msg, err := exec.Command("go", "build", "-o", out, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, msg)
	}
	return out
}

func TestCommandLine(t *testing.T) {
	secrets := t.TempDir()
	openPassword, emptyPassword := filepath.Join(secrets, "open"), filepath.Join(secrets, "empty")
	for path, mode := range map[string]os.FileMode{openPassword: 0o644, emptyPassword: 0o600} {
		content := "s3cret\n"
		if path == emptyPassword {
			content = "\n"
		}
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	etcd := []string{"-f", "--etcd", "http://127.0.0.1:1"}
	tests := []struct {
		name       string
		args       []string
		wantExit   int
		wantStderr []string
	}{
		{"-v prints rpcbind's two lines", []string{"-v"}, 0, []string{"portmapd ", "\ndebug: no, libset debug: no, libwrap: no, nss modules: files, remote calls: no, statedir: ", "user: root, "}},
		{"-v with -r says remote calls", []string{"-v", "-r"}, 0, []string{"nss modules: files, remote calls: yes, statedir: "}},
		{"-v with --enable-rmtcalls", []string{"--enable-rmtcalls", "-v"}, 0, []string{"remote calls: yes, "}},
		{"-v with -s names the user", []string{"-v", "-s"}, 0, []string{"user: " + daemon.DefaultRunAs() + ", "}},
		{"-v with -s and --user", []string{"-v", "-s", "--user", "nobody"}, 0, []string{"user: nobody, "}},
		{"unknown option", []string{"-x"}, 1, []string{"usage: portmapd [-adfhilrsvw]\n"}},
		{"unknown long option", []string{"--bogus"}, 1, []string{"usage: portmapd [-adfhilrsvw]\n"}},
		{"-h needs an address", []string{"-h"}, 1, []string{"usage: portmapd [-adfhilrsvw]\n"}},
		{"stray argument", []string{"-f", "extra"}, 1, []string{"usage: portmapd [-adfhilrsvw]\n"}},
		{"bad port", []string{"-f", "--port", "70000"}, 1, []string{"--port 70000", "usage:"}},
		{"bad trusted proxy", []string{"-f", "--trusted-proxy", "nonsense"}, 1, []string{"--trusted-proxy", "usage:"}},
		{"negative compaction size", []string{"-f", "--state-compact-bytes", "-1"}, 1, []string{"--state-compact-bytes -1: must not be negative", "usage:"}},
		{"compaction size not a number", []string{"-f", "--state-compact-bytes", "4M"}, 1, []string{"--state-compact-bytes", "usage:"}},
		{"per-source cap of 0", []string{"-f", "--max-conns-per-source", "0"}, 1, []string{"--max-conns-per-source 0: must be at least 1", "usage:"}},
		{"record timeout of 0", []string{"-f", "--record-timeout", "0s"}, 1, []string{"--record-timeout 0s: must be positive", "usage:"}},
		{"UDP reply burst below the largest reply", []string{"-f", "--udp-reply-burst", "8999"}, 1, []string{"--udp-reply-burst 8999: must be at least --max-message (9000)", "usage:"}},
		{"negative UDP reply rate", []string{"-f", "--udp-reply-rate", "-1"}, 1, []string{"--udp-reply-rate -1: must not be negative", "usage:"}},
		{"descriptor reserve of 0", []string{"-f", "--fd-reserve", "0"}, 1, []string{"--fd-reserve 0: must be at least 1", "usage:"}},
		{"negative remote-call rate", []string{"-f", "-r", "--rmtcall-rate", "-1"}, 1, []string{"--rmtcall-rate -1: must not be negative", "usage:"}},
		{"no remote calls waiting", []string{"-f", "-r", "--rmtcall-max-pending", "0"}, 1, []string{"--rmtcall-max-pending 0: must be at least 1", "usage:"}},
		{"unknown program to deny", []string{"-f", "-r", "--rmtcall-deny", "100029,nosuchprogram"}, 1, []string{`--rmtcall-deny "nosuchprogram": neither a program number nor a program named in /etc/rpc`, "usage:"}},
		{"program number to deny too large", []string{"-f", "-r", "--rmtcall-deny", "4294967296"}, 1, []string{"--rmtcall-deny 4294967296: not a program number", "usage:"}},
		{"no program to deny with one", []string{"-f", "-r", "--rmtcall-deny", "none", "--rmtcall-deny", "100029"}, 1, []string{"--rmtcall-deny none: cannot be given with other values", "usage:"}},
		{"HTTP cap of 0", []string{"-f", "--http-max-conns", "0"}, 1, []string{"--http-max-conns 0: must be at least 1", "usage:"}},
		{"HTTP per-source cap of 0", []string{"-f", "--http-max-conns-per-source", "0"}, 1, []string{"--http-max-conns-per-source 0: must be at least 1", "usage:"}},
		{"collector percent of 0", []string{"-f", "--gc-percent", "0"}, 1, []string{"--gc-percent 0: must be at least 1", "usage:"}},
		{"HTTP idle timeout of 0", []string{"-f", "--http-idle-timeout", "0s"}, 1, []string{"--http-idle-timeout 0s: must be positive", "usage:"}},
		{"empty HTTP address", []string{"-f", "--http", ""}, 1, []string{`--http: empty (use "off" to disable it)`, "usage:"}},
		{"empty HTTP socket", []string{"-f", "--http-socket", ""}, 1, []string{`--http-socket: empty (use "off" to disable it)`, "usage:"}},
		{"empty state directory", []string{"-f", "--state-dir", ""}, 1, []string{`--state-dir: empty (use "off" to disable it)`, "usage:"}},
		{"bad metrics audience", []string{"-f", "--metrics", "everyone"}, 1, []string{`--metrics "everyone": not "local", "all", "off" or a CIDR`, "usage:"}},
		{"metrics off with a CIDR", []string{"-f", "--metrics", "off", "--metrics", "10.0.0.0/8"}, 1, []string{"--metrics off: cannot be given with other values", "usage:"}},
		{"log burst of 0", []string{"-f", "--log-burst", "0"}, 1, []string{"--log-burst 0: must be at least 1", "usage:"}},
		{"unknown word", []string{"versions"}, 1, []string{`unexpected argument "versions"`, "usage: portmapd [-adfhilrsvw]\n"}},
		{"etcd user without a password", append(etcd, "--etcd-user", "alpha"), 1, []string{"--etcd-user alpha: needs --etcd-password-file", "usage:"}},
		{"etcd password without a user", append(etcd, "--etcd-password-file", emptyPassword), 1, []string{"--etcd-password-file " + emptyPassword + ": needs --etcd-user", "usage:"}},
		{"etcd password file open to others", append(etcd, "--etcd-user", "alpha", "--etcd-password-file", openPassword), 1,
			[]string{"--etcd-password-file " + openPassword + ": bad password file: mode 0644 lets group or others at it (chmod 600 it", "usage:"}},
		{"empty etcd password", append(etcd, "--etcd-user", "alpha", "--etcd-password-file", emptyPassword), 1, []string{"--etcd-password-file " + emptyPassword + ": bad password file: empty", "usage:"}},
		{"missing etcd password file", append(etcd, "--etcd-user", "alpha", "--etcd-password-file", filepath.Join(secrets, "none")), 1, []string{"none: no such file or directory", "usage:"}},
	}
	bin := binary(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			cmd := exec.Command(bin, tc.args...)
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantExit {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.wantExit, stderr.String())
			}
			for _, want := range tc.wantStderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
		})
	}
}

// unprivilegedArgs serve on kernel-chosen ports and private paths, so that
// the daemon runs beside anything else on the host.
func unprivilegedArgs(dir string) []string {
	return []string{"--port", "0", "--socket", filepath.Join(dir, "rpcbind.sock"), "--abstract-socket=false",
		"--lock-file", filepath.Join(dir, "lock"), "--http", "off", "--http-socket", "off",
		"--state-dir", filepath.Join(dir, "state"), "--log-file", filepath.Join(dir, "portmapd.log")}
}

// TestOffDisables: "off" does without the local socket, the lock file,
// the state directory and both HTTP listeners, and an empty --socket or
// --lock-file still means the same, as it did before "off" did.
func TestOffDisables(t *testing.T) {
	bin := binary(t)
	for _, none := range []string{"off", ""} {
		t.Run(fmt.Sprintf("%q", none), func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(bin, "-f", "--port", "0", "--abstract-socket=false", "--socket", none, "--lock-file", none,
				"--http", "off", "--http-socket", "off", "--state-dir", "off")
			// A value taken for a path would be made here.
			cmd.Dir = dir
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			sc := bufio.NewScanner(stderr)
			var log strings.Builder
			for sc.Scan() {
				log.WriteString(sc.Text() + "\n")
				if strings.Contains(sc.Text(), "portmapd serving") {
					if strings.Contains(sc.Text(), "local") {
						t.Errorf("serves a local socket: %s", sc.Text())
					}
					break
				}
			}
			if !strings.Contains(log.String(), "portmapd serving") {
				t.Fatalf("did not serve:\n%s", log.String())
			}
			if des, _ := os.ReadDir(dir); len(des) != 0 {
				t.Errorf("made %v in its working directory", des)
			}
		})
	}
}

// waitLocal waits until the daemon answers on its local socket.
func waitLocal(t *testing.T, sock string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := rpcbind.Dial(ctx, "unix", sock)
		if err == nil {
			err = c.Null(ctx, xdr.PmapProg, xdr.RpcbVers4)
			c.Close()
		}
		cancel()
		if err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("daemon never answered on %s", sock)
}

// TestDetaches: without -f the command returns once the daemon it leaves
// behind serves, as rpcbind does.
func TestDetaches(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(binary(t), unprivilegedArgs(dir)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("detaching start failed: %v\n%s", err, out)
	}
	sock := filepath.Join(dir, "rpcbind.sock")
	waitLocal(t, sock)
	stopDaemonHolding(t, filepath.Join(dir, "lock"))
}

// TestRunAsDaemonUser: -s gives up root, by default for the user rpcbind
// runs as here, once the sockets are open.
func TestRunAsDaemonUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("-s needs root to change user: run make test as root")
	}
	u, err := user.Lookup(daemon.DefaultRunAs())
	if err != nil {
		t.Skipf("no user %q on this host: %v", daemon.DefaultRunAs(), err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary(t), append(unprivilegedArgs(dir), "-f", "-s")...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitLocal(t, filepath.Join(dir, "rpcbind.sock"))
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "Uid:") {
			fields := strings.Fields(line)
			for _, id := range fields[1:] {
				if id != u.Uid {
					t.Errorf("%s, want every uid %s (%s)", line, u.Uid, u.Username)
				}
			}
		}
	}
}

// stopDaemonHolding finds the daemon by the lock file it holds and stops
// it with SIGTERM.
func stopDaemonHolding(t *testing.T, lock string) {
	t.Helper()
	out, err := exec.Command("fuser", lock).Output()
	if err != nil {
		out, _ = exec.Command("pgrep", "-f", lock).Output()
	}
	for _, pid := range strings.Fields(string(out)) {
		_ = exec.Command("kill", "-TERM", strings.TrimRight(pid, ":")).Run()
	}
}

// TestVersionCommand: portmapd version prints the version and the build
// information the binary carries, on standard output.
func TestVersionCommand(t *testing.T) {
	out, err := exec.Command(binary(t), "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"portmapd ", "\ngo\tgo1.", "\npath\tgithub.com/portmapd/portmapd/cmd/portmapd\n", "\ndep\tgithub.com/spf13/cobra\t"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("portmapd version lacks %q:\n%s", want, out)
		}
	}
}
