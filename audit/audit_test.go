package audit

import (
	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/portmapd/portmapd/registry"
)

// syncBuffer is a log sink safe for the limiter's timer goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestChange: each change is one INFO line naming who (uid, pid and
// executable of a local caller, the address of a remote one), what and
// the result; a caller changing in a loop logs its burst and then a line
// counting the rest when the logger closes; the daemon's own changes are
// not logged.
func TestChange(t *testing.T) {
	var buf syncBuffer
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), Options{Burst: 4, PerMinute: 1})
	self := registry.Caller{Transport: registry.Local, Cred: &registry.Cred{UID: 1000, PID: int32(os.Getpid())}}
	remote := registry.Caller{Transport: registry.Network, Addr: netip.MustParseAddrPort("192.0.2.7:800")}
	what := []slog.Attr{slog.Uint64("prog", 300000)}
	l.Change(self, "set", what, Done, nil)
	l.Change(remote, "set", what, Refused, errors.New("changes are only accepted from local callers"))
	l.Change(registry.Caller{Transport: registry.Internal}, "set", what, Done, nil)
	for range 100 {
		l.Change(self, "unset", what, Done, nil)
	}
	l.Close()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{
		`level=INFO msg=audit op=set prog=300000 result=done uid=1000 pid=` + strconv.Itoa(os.Getpid()) + ` exe=` + exe,
		`level=INFO msg=audit op=set prog=300000 result=refused err="changes are only accepted from local callers" from=192.0.2.7:800`,
		`level=INFO msg=audit op=unset prog=300000 result=done uid=1000`,
		`level=INFO msg=audit op=unset prog=300000 result=done uid=1000`,
		`level=INFO msg=audit op=unset prog=300000 result=done uid=1000`,
		`level=INFO msg=audit source="uid 1000" not_logged=97 why="this source's audit lines are rate-limited"`,
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		if _, rest, ok := strings.Cut(lines[i], " level="); !ok || !strings.Contains("level="+rest, w) {
			t.Errorf("line %d:\n%s\nwant it to contain\n%s", i, lines[i], w)
		}
	}
}
