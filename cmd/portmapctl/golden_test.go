package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/portmapd/portmapd/xdr"
)

var update = flag.Bool("update", false, "rewrite testdata/portmapctl/*.txt from portmapctl's output")

// rpcFile is Debian's /etc/rpc (netbase 6.4), the one the rpcinfo
// transcripts were recorded with.
var rpcFile = filepath.Join("testdata", "etc-rpc")

// A transcript is one recorded run: testdata/rpcinfo/*.txt (the real
// rpcinfo against the real rpcbind, see testdata/README) or
// testdata/portmapctl/*.txt (portmapctl's own goldens).
type transcript struct {
	Command string
	State   string
	result
}

func readTranscript(t *testing.T, path string) transcript {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var tr transcript
	var out, errb strings.Builder
	var section *strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case section == nil && strings.HasPrefix(line, "# command: "):
			tr.Command = strings.TrimPrefix(line, "# command: ")
		case section == nil && strings.HasPrefix(line, "# state: "):
			tr.State = strings.TrimPrefix(line, "# state: ")
		case section == nil && strings.HasPrefix(line, "# exit: "):
			tr.Exit, err = strconv.Atoi(strings.TrimPrefix(line, "# exit: "))
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
		case line == "-- stdout --":
			section = &out
		case line == "-- stderr --":
			section = &errb
		case section != nil:
			section.WriteString(line + "\n")
		default:
			t.Fatalf("%s: unexpected line %q", path, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	tr.Stdout, tr.Stderr = out.String(), errb.String()
	return tr
}

func (tr transcript) format() string {
	return fmt.Sprintf("# command: %s\n# state: %s\n# exit: %d\n-- stdout --\n%s-- stderr --\n%s",
		tr.Command, tr.State, tr.Exit, tr.Stdout, tr.Stderr)
}

// rpcinfoArgs translates an rpcinfo command line into portmapctl's.
func rpcinfoArgs(t *testing.T, command string) []string {
	t.Helper()
	f := strings.Fields(command)
	if f[0] != "rpcinfo" || len(f) < 2 {
		t.Fatalf("not an rpcinfo command: %q", command)
	}
	switch f[1] {
	case "-p":
		return append([]string{"dump"}, f[2:]...)
	case "-T":
		return append([]string{"ping", "-T", f[2]}, f[3:]...)
	case "-u":
		return append([]string{"ping", "-T", "udp"}, f[2:]...)
	case "-t":
		return append([]string{"ping", "-T", "tcp"}, f[2:]...)
	}
	t.Fatalf("no portmapctl equivalent for %q", command)
	return nil
}

// rpcinfo's prefix for messages it reports under its own name.
var rpcinfoPrefix = regexp.MustCompile(`(?m)^rpcinfo: `)

// Ports that record.sh registered and that the tests must replace by live
// ones when a ping follows them.
const (
	recordedSelfPort = 111 // where the portmapper (and 200002) live
	recordedDeadPort = 9   // where nothing listens
)

// setState gives a fresh server the table an rpcinfo transcript was
// recorded with (see record.sh). Ports are recorded ones unless live is
// set; then the portmapper's entries point at the test server and the
// dead port at a closed one, so that pings go where record.sh's went.
func setState(t *testing.T, s *testServer, state string, live bool) {
	t.Helper()
	self, dead := uint16(recordedSelfPort), uint16(recordedDeadPort)
	if live {
		self, dead = s.Port, closedPort(t)
	}
	switch state {
	case "empty":
		return
	case "fresh", "registered":
		s.addSelf(t, self)
	default:
		t.Fatalf("unknown state %q", state)
	}
	if state == "fresh" {
		return
	}
	const tcp, udp = xdr.ProtoTCP, xdr.ProtoUDP
	for _, m := range []xdr.Mapping{
		{Prog: 100003, Vers: 3, Prot: tcp, Port: 2049},
		{Prog: 100003, Vers: 3, Prot: udp, Port: 2049},
		{Prog: 100024, Vers: 1, Prot: udp, Port: 45678},
		{Prog: 100024, Vers: 1, Prot: tcp, Port: 45679},
		{Prog: 100021, Vers: 4, Prot: tcp, Port: 1},
		{Prog: 300019, Vers: 1, Prot: tcp, Port: 65535},
		{Prog: 536870912, Vers: 7, Prot: udp, Port: 700},
		{Prog: 4294967295, Vers: 4294967295, Prot: tcp, Port: 1023},
		{Prog: 200002, Vers: 1, Prot: udp, Port: uint32(self)},
		{Prog: 200002, Vers: 1, Prot: tcp, Port: uint32(self)},
		{Prog: 200000, Vers: 1, Prot: udp, Port: uint32(dead)},
		{Prog: 200000, Vers: 1, Prot: tcp, Port: uint32(dead)},
	} {
		s.addMapping(t, m)
	}
}

// TestAgainstRpcinfo runs portmapctl against an in-process portmapd in
// each state record.sh recorded rpcinfo against rpcbind, and compares
// standard output, standard error and exit status with rpcinfo's. The
// only difference allowed is the program name that prefixes messages.
func TestAgainstRpcinfo(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "rpcinfo", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txt")
		if strings.HasPrefix(name, "rpcb-") {
			continue // views without a command yet: TestRpcbFormats
		}
		want := readTranscript(t, file)
		t.Run(name, func(t *testing.T) {
			args := rpcinfoArgs(t, want.Command)
			timeout := "5s"
			var server string
			switch want.State {
			case "down":
				server = fmt.Sprintf("127.0.0.1:%d", closedPort(t))
			case "silent":
				server = fmt.Sprintf("127.0.0.1:%d", startSilent(t))
				timeout = "300ms"
			default:
				s := startServer(t, serverOptions{})
				// A dump shows the recorded ports; a ping must reach
				// live ones.
				setState(t, s, want.State, args[0] != "dump")
				server = s.Addr()
			}
			if strings.Contains(want.Command, "nosuchhost") {
				server = "" // resolve the host, not --server
			}
			full := []string{"--rpc-file", rpcFile, "--timeout", timeout}
			if server != "" {
				full = append(full, "--server", server)
			}
			full = append(full, args...)
			got := runCtl(t, full...)
			wantErr := rpcinfoPrefix.ReplaceAllString(want.Stderr, "portmapctl: ")
			if got.Stdout != want.Stdout {
				t.Errorf("portmapctl %s\nstdout:\n%s\nwant (rpcinfo):\n%s", strings.Join(full, " "), got.Stdout, want.Stdout)
			}
			if got.Stderr != wantErr {
				t.Errorf("portmapctl %s\nstderr:\n%s\nwant (rpcinfo):\n%s", strings.Join(full, " "), got.Stderr, wantErr)
			}
			if got.Exit != want.Exit {
				t.Errorf("portmapctl %s: exit %d, rpcinfo's %d", strings.Join(full, " "), got.Exit, want.Exit)
			}
		})
	}
}
