package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommands runs sequences of portmapctl commands against one
// in-process portmapd each and compares every step with its golden file in
// testdata/portmapctl (go test -run TestCommands -update rewrites them).
// rpcinfo has no SET, UNSET or GETPORT of its own, so these goldens are
// portmapctl's; the dumps in them are checked against rpcinfo's format by
// TestAgainstRpcinfo.
func TestCommands(t *testing.T) {
	uid1000 := uint32(1000)
	type step struct {
		name string
		args []string
	}
	groups := []struct {
		name  string
		opts  serverOptions
		state string // setState's, with recorded ports
		// local points portmapctl at the server with --port and
		// --socket instead of --server, so that v3/v4 changes go over
		// the local socket.
		local bool
		steps []step
	}{
		{name: "change", state: "fresh", steps: []step{
			{"set-udp", []string{"set", "200100", "1", "udp", "4000"}},
			{"set-same-again", []string{"set", "200100", "1", "udp", "4000"}},
			{"set-other-port", []string{"set", "200100", "1", "udp", "4001"}},
			{"set-tcp-by-name", []string{"set", "nfs", "3", "TCP", "2049"}},
			{"set-alias", []string{"set", "rstat", "5", "udp", "65535"}},
			{"getport-udp", []string{"getport", "127.0.0.1", "200100", "1", "udp"}},
			{"getport-by-name", []string{"getport", "127.0.0.1", "nfsprog", "3", "tcp"}},
			{"getport-other-version", []string{"getport", "127.0.0.1", "200100", "9", "udp"}},
			{"getport-unregistered", []string{"getport", "127.0.0.1", "200100", "1", "tcp"}},
			{"dump-after-set", []string{"dump"}},
			{"unset", []string{"unset", "200100", "1"}},
			{"unset-again", []string{"unset", "200100", "1"}},
			{"unset-by-name", []string{"unset", "nfs", "3"}},
			{"dump-after-unset", []string{"dump", "127.0.0.1"}},
		}},
		{name: "denied", opts: serverOptions{denyAll: true}, state: "fresh", steps: []step{
			{"set-denied", []string{"set", "200100", "1", "udp", "4000"}},
			{"unset-denied", []string{"unset", "100000", "2"}},
			{"dump-unchanged", []string{"dump"}},
		}},
		{name: "rpcb", opts: serverOptions{uid: &uid1000}, state: "fresh", local: true, steps: []step{
			{"set-udp6-port", []string{"set", "200100", "1", "udp6", "4000"}},
			{"set-v4-tcp-uaddr", []string{"set", "--version", "4", "200100", "1", "tcp", "127.0.0.1.15.161"}},
			{"set-v3-udp", []string{"set", "--version", "3", "200100", "1", "udp", "4002"}},
			{"set-local-path", []string{"set", "200100", "1", "local", "/run/test.sock"}},
			{"set-other-address", []string{"set", "200100", "1", "udp6", "::1.15.160"}},
			{"table-after-set", []string{"table"}},
			{"summary-after-set", []string{"summary", "127.0.0.1"}},
			{"addrlist", []string{"addrlist", "127.0.0.1", "200100", "1"}},
			{"dump-v2-sees-v3-udp", []string{"dump"}},
			{"unset-v4-one-netid", []string{"unset", "--version", "4", "-T", "udp6", "200100", "1"}},
			{"table-after-unset-netid", []string{"table", "127.0.0.1"}},
			{"unset-v3-every-netid", []string{"unset", "--version", "3", "200100", "1"}},
			{"delete-not-owner", []string{"delete", "100000", "4"}},
			{"unset-not-owner", []string{"unset", "-T", "local", "100000", "3"}},
			{"table-after-unset", []string{"table"}},
			{"stats", []string{"stats"}},
		}},
		{name: "args", state: "fresh", steps: []step{
			{"set-bad-proto", []string{"set", "200100", "1", "sctp", "1"}},
			{"set-bad-port", []string{"set", "200100", "1", "udp", "65536"}},
			{"set-unknown-name", []string{"set", "nosuchprogram", "1", "udp", "1"}},
			{"set-prog-too-big", []string{"set", "4294967296", "1", "udp", "1"}},
			{"set-bad-vers", []string{"set", "200100", "v1", "udp", "1"}},
			{"set-negative-vers-is-a-flag", []string{"set", "200100", "-1", "udp", "1"}},
			{"unset-missing-vers", []string{"unset", "200100"}},
			{"getport-bad-vers", []string{"getport", "127.0.0.1", "200100", "one", "udp"}},
			{"ping-unsupported-netid", []string{"ping", "-T", "rawip", "127.0.0.1", "100000", "2"}},
			{"ping-too-many", []string{"ping", "127.0.0.1", "100000", "2", "3"}},
			{"dump-too-many", []string{"dump", "a", "b"}},
			{"set-v3-bad-uaddr", []string{"set", "200100", "1", "tcp6", "127.0.0.1.1.1"}},
			{"set-v3-not-uaddr", []string{"set", "200100", "1", "tcp6", "somewhere"}},
			{"set-v3-unknown-netid", []string{"set", "--version", "3", "200100", "1", "sctp", "1"}},
			{"set-bad-version", []string{"set", "--version", "5", "200100", "1", "udp", "1"}},
			{"unset-v2-with-netid", []string{"unset", "--version", "2", "-T", "udp", "200100", "1"}},
			{"table-local-netid", []string{"table", "-T", "local", "127.0.0.1"}},
			{"addrlist-missing-vers", []string{"addrlist", "127.0.0.1", "100000"}},
			{"getport-missing-vers-and-proto", []string{"getport", "127.0.0.1", "100000"}},
			{"set-missing-all", []string{"set"}},
			{"table-too-many", []string{"table", "a", "b", "c"}},
			{"lookup-missing-name", []string{"lookup"}},
			{"list-too-many", []string{"list", "x"}},
			{"register-missing-port", []string{"register", "a.example.com", "--", "true"}},
			{"register-missing-command", []string{"register", "a.example.com", "1"}},
			{"register-nothing-after-dash", []string{"register", "a.example.com", "1", "--"}},
			{"register-too-many", []string{"register", "a.example.com", "1", "2", "--", "true"}},
			{"call-over-tcp", []string{"call", "-T", "tcp", "127.0.0.1", "100000", "2", "0"}},
			{"call-missing-proc", []string{"call", "127.0.0.1", "100000", "2"}},
			{"call-bad-proc", []string{"call", "127.0.0.1", "100000", "2", "null"}},
			{"call-bad-args", []string{"call", "127.0.0.1", "100000", "2", "0", "xyz"}},
			{"call-bad-version", []string{"call", "--version", "5", "127.0.0.1", "100000", "2", "0"}},
			{"call-indirect-v3", []string{"call", "--indirect", "--version", "3", "127.0.0.1", "100000", "2", "0"}},
			{"broadcast-missing-vers", []string{"broadcast", "100000"}},
			{"broadcast-unknown-name", []string{"broadcast", "nosuchprogram", "1"}},
			{"register-listen-with-port", []string{"register", "a.example.com", "1", "--listen", "--", "cat"}},
			{"register-muxhelp-without-tcpmux", []string{"register", "a.example.com", "1", "--muxhelp", "--", "true"}},
		}},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			s := startServer(t, g.opts)
			setState(t, s, g.state, false)
			for _, st := range g.steps {
				if !t.Run(st.name, func(t *testing.T) {
					full := []string{"--rpc-file", rpcFile, "--timeout", "5s", "--server", s.Addr()}
					if g.local {
						full = append(full[:4], s.Flags()...)
					}
					full = append(full, st.args...)
					got := transcript{
						Command: "portmapctl " + strings.Join(st.args, " "),
						State:   g.name,
						result:  runCtl(t, full...),
					}
					path := filepath.Join("testdata", "portmapctl", g.name+"-"+st.name+".txt")
					if *update {
						if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
							t.Fatal(err)
						}
						if err := os.WriteFile(path, []byte(got.format()), 0o644); err != nil {
							t.Fatal(err)
						}
						return
					}
					want := readTranscript(t, path)
					if got.format() != want.format() {
						t.Errorf("got:\n%s\nwant (%s):\n%s", got.format(), path, want.format())
					}
				}) {
					return // later steps depend on this one
				}
			}
		})
	}
}
