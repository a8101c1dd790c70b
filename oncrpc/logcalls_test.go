package oncrpc_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/portmapd/portmapd/netlimit"
	"github.com/portmapd/portmapd/oncrpc"
)

// lockedBuffer is a log sink the serving goroutines may share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLogCallsBounded: with LogCalls, each call is one line, up to what
// CallLog allows each source; the calls past it are counted, not logged,
// and each source has its own bound.
func TestLogCallsBounded(t *testing.T) {
	var buf lockedBuffer
	srv := &oncrpc.Server{
		Handler:  testMux(),
		Logger:   slog.New(slog.NewTextHandler(&buf, nil)),
		LogCalls: true,
		CallLog:  netlimit.NewLineLimiter(3, 1, nil),
	}
	ep := serve(t, srv)
	for _, network := range []string{"udp", "unix"} {
		c := ep.dial(t, network)
		for range 10 {
			if _, err := echo(ctxT(t), c, 1, 7); err != nil {
				t.Fatal(err)
			}
		}
	}
	out := buf.String()
	if n := strings.Count(out, "msg=call prog="); n != 6 {
		t.Errorf("%d call lines, want 3 for each of the 2 sources:\n%s", n, out)
	}
	if !strings.Contains(out, "netid=udp from=127.0.0.1:") || !strings.Contains(out, "netid=local") {
		t.Errorf("want lines of both sources:\n%s", out)
	}
}
