package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLiveRpcbind runs the portmapctl binary against the real rpcbind on
// port 111, in a private network and mount namespace, with no --server:
// its output must be rpcinfo's recorded output for the fresh table, and a
// SET it makes must show in the real rpcinfo -p. Root only.
func TestLiveRpcbind(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root to make a network namespace and run rpcbind on port 111")
	}
	if testing.Short() {
		t.Skip("skipped in -short mode: builds portmapctl and starts rpcbind")
	}
	for _, tool := range []string{"ip", "unshare", "rpcbind", "rpcinfo"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipped: %s not installed (Debian packages rpcbind, iproute2, util-linux)", tool)
		}
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "portmapctl")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	rpc, err := filepath.Abs(rpcFile)
	if err != nil {
		t.Fatal(err)
	}
	// Each step: a name and a command; the script writes NAME.out,
	// NAME.err and NAME.rc.
	steps := []struct{ name, cmd string }{
		{"dump-fresh", "$CTL dump"},
		{"ping-udp-v2", "$CTL ping -T udp 127.0.0.1 100000 2"},
		{"ping-tcp-all", "$CTL ping -T tcp 127.0.0.1 100000"},
		{"ping-tcp-name", "$CTL ping -T tcp 127.0.0.1 portmapper 2"},
		{"ping-udp-v5", "$CTL ping -T udp 127.0.0.1 100000 5"},
		{"ping-udp-unregistered", "$CTL ping -T udp 127.0.0.1 200001 1"},
		{"set", "$CTL set 200100 1 udp 4000"},
		{"getport", "$CTL getport 127.0.0.1 200100 1 udp"},
		{"rpcinfo-after-set", "rpcinfo -p 127.0.0.1"},
		{"unset", "$CTL unset 200100 1"},
		{"rpcinfo-after-unset", "rpcinfo -p 127.0.0.1"},
		// rpcinfo's v3/v4 views, over the real local socket and ::1.
		{"rpcb-dump-local-fresh", "$CTL table"},
		{"rpcb-summary-local-fresh", "$CTL summary"},
		{"rpcb-dump-tcp6-fresh", "$CTL table -T tcp6 ::1"},
		{"addrlist-fresh", "$CTL addrlist 127.0.0.1 100000 4"},
		{"addrlist-v6-fresh", "$CTL addrlist ::1 100000 3"},
		{"ping-tcp6-v4", "$CTL ping -T tcp6 ::1 100000 4"},
		{"ping-udp6-all", "$CTL ping -T udp6 ::1 100000"},
		{"ping-local-v3", "$CTL ping -T local localhost 100000 3"},
		{"ping-local-all", "$CTL ping -T local localhost rpcbind"},
		{"ping-tcp6-unregistered", "$CTL ping -T tcp6 ::1 200001 1"},
		// stats against rpcinfo -m, each a GETSTAT after the other.
		{"stats", "$CTL stats 127.0.0.1"},
		{"rpcinfo-m", "rpcinfo -m 127.0.0.1"},
		// v3/v4 changes over the local socket, seen by rpcinfo.
		{"set-v3-tcp6", "$CTL set 200100 1 tcp6 4000"},
		{"set-v4-local", "$CTL set --version 4 200100 1 local /run/test.sock"},
		{"rpcinfo-after-v3-set", "rpcinfo"},
		{"unset-v4-tcp6", "$CTL unset --version 4 -T tcp6 200100 1"},
		{"delete-v3", "$CTL delete 200100 1"},
		{"rpcinfo-after-delete", "rpcinfo -s"},
		{"delete-nobody", "setpriv --reuid=65534 --regid=65534 --clear-groups $CTL delete 100000 4"},
		// Loopback alone cannot broadcast.
		{"broadcast-no-interface", "$CTL broadcast 100000 2"},
	}
	var script strings.Builder
	fmt.Fprintf(&script, `set -u
mount -t tmpfs tmpfs /run && mkdir -p /run/lock || exit 1
rpcbind -f & pid=$!
i=0
until rpcinfo -T tcp 127.0.0.1 100000 2 >/dev/null 2>&1; do
	i=$((i+1)); [ $i -lt 100 ] || { kill $pid; exit 1; }; sleep 0.1
done
CTL="%s --rpc-file %s"
`, bin, rpc)
	for _, s := range steps {
		fmt.Fprintf(&script, "%s >%s/%s.out 2>%s/%s.err; echo $? >%s/%s.rc\n", s.cmd, dir, s.name, dir, s.name, dir, s.name)
	}
	script.WriteString("kill $pid; wait $pid 2>/dev/null; exit 0\n")

	ns := fmt.Sprintf("portmapctl-test-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("skipped: cannot make a network namespace: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	if out, err := exec.Command("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v %s", err, out)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, "unshare", "-m", "--propagation", "private", "sh", "-c", script.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("namespace script: %v\n%s", err, out)
	}

	read := func(name string) result {
		t.Helper()
		var r result
		b, err := os.ReadFile(filepath.Join(dir, name+".out"))
		if err != nil {
			t.Fatal(err)
		}
		r.Stdout = string(b)
		if b, err = os.ReadFile(filepath.Join(dir, name+".err")); err != nil {
			t.Fatal(err)
		}
		r.Stderr = string(b)
		if b, err = os.ReadFile(filepath.Join(dir, name+".rc")); err != nil {
			t.Fatal(err)
		}
		if r.Exit, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, name := range []string{"dump-fresh", "ping-udp-v2", "ping-tcp-all", "ping-tcp-name", "ping-udp-v5", "ping-udp-unregistered",
		"rpcb-dump-local-fresh", "rpcb-summary-local-fresh", "rpcb-dump-tcp6-fresh", "addrlist-fresh", "addrlist-v6-fresh",
		"ping-tcp6-v4", "ping-udp6-all", "ping-local-v3", "ping-local-all", "ping-tcp6-unregistered", "broadcast-no-interface"} {
		t.Run(name, func(t *testing.T) {
			want := readTranscript(t, filepath.Join("testdata", "rpcinfo", name+".txt"))
			want.Stderr = rpcinfoPrefix.ReplaceAllString(want.Stderr, "portmapctl: ")
			if got := read(name); got != want.result {
				t.Errorf("against rpcbind got %+v\nwant (rpcinfo's) %+v", got, want.result)
			}
		})
	}
	tests := []struct {
		name string
		want func(result) bool
	}{
		{"set", func(r result) bool { return r.Stdout == "true\n" && r.Exit == 0 }},
		{"getport", func(r result) bool { return r.Stdout == "4000\n" && r.Exit == 0 }},
		{"rpcinfo-after-set", func(r result) bool {
			return strings.Contains(r.Stdout, "\n    200100    1   udp   4000\n")
		}},
		{"unset", func(r result) bool { return r.Stdout == "true\n" && r.Exit == 0 }},
		{"rpcinfo-after-unset", func(r result) bool {
			return r.Exit == 0 && !strings.Contains(r.Stdout, "200100")
		}},
		{"stats", func(r result) bool {
			// rpcinfo -m ran just after: its own GETSTAT is one more.
			m := read("rpcinfo-m")
			return r.Exit == 0 && m.Exit == 0 && r.Stdout != "" &&
				bumpGetstat(r.Stdout) == m.Stdout
		}},
		{"set-v3-tcp6", func(r result) bool { return r.Stdout == "true\n" && r.Exit == 0 }},
		{"set-v4-local", func(r result) bool { return r.Stdout == "true\n" && r.Exit == 0 }},
		{"rpcinfo-after-v3-set", func(r result) bool {
			return strings.Contains(r.Stdout, "\n    200100    1    tcp6      ::.15.160              -          superuser\n") &&
				strings.Contains(r.Stdout, "\n    200100    1    local     /run/test.sock         -          superuser\n")
		}},
		{"unset-v4-tcp6", func(r result) bool { return r.Stdout == "true\n" && r.Exit == 0 }},
		{"delete-v3", func(r result) bool { return r == result{} }},
		{"rpcinfo-after-delete", func(r result) bool { return r.Exit == 0 && !strings.Contains(r.Stdout, "200100") }},
		{"delete-nobody", func(r result) bool {
			return r.Exit == 1 && r.Stderr == "portmapctl: Could not delete registration for prog 100000 version 4\n"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := read(tt.name); !tt.want(got) {
				t.Errorf("unexpected: %+v", got)
			}
		})
	}
}

// bumpGetstat adds one to the GETSTAT count of rpcinfo -m's output: the
// last counter of version 4's second row.
func bumpGetstat(out string) string {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "VERADDR INDRECT GETLIST GETSTAT") && i+1 < len(lines) {
			f := strings.Fields(lines[i+1])
			if len(f) != 4 {
				return out
			}
			n, err := strconv.Atoi(f[3])
			if err != nil {
				return out
			}
			var b strings.Builder
			for _, v := range append(f[:3], strconv.Itoa(n+1)) {
				b.WriteString(v + strings.Repeat(" ", 8*(1+len(v)/8)-len(v)))
			}
			lines[i+1] = b.String()
		}
	}
	return strings.Join(lines, "\n")
}
