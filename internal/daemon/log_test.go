package daemon

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestJournalLog: when stderr is the stream JOURNAL_STREAM names, each
// line starts with the journal's priority of its level and has no time;
// when JOURNAL_STREAM names another stream (a child of a service whose
// stderr was redirected), lines are plain, with times.
func TestJournalLog(t *testing.T) {
	for _, tt := range []struct {
		name    string
		matches bool
	}{
		{"journal", true},
		{"inherited", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var st unix.Stat_t
			if err := unix.Fstat(int(f.Fd()), &st); err != nil {
				t.Fatal(err)
			}
			ino := st.Ino
			if !tt.matches {
				ino++
			}
			t.Setenv("JOURNAL_STREAM", strconv.FormatUint(st.Dev, 10)+":"+strconv.FormatUint(ino, 10))
			log := NewLogger(f, slog.LevelDebug, &Reporter{}, "")
			log.Error("e")
			log.With("part", "x").Warn("w")
			log.Info("i")
			log.Debug("d")
			b, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			want := []string{"<3>level=ERROR msg=e", "<4>level=WARN msg=w part=x", "<6>level=INFO msg=i", "<7>level=DEBUG msg=d"}
			if len(lines) != len(want) {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), b)
			}
			for i, w := range want {
				if !tt.matches {
					if !strings.HasPrefix(lines[i], "time=") || !strings.HasSuffix(lines[i], w[3:]) {
						t.Errorf("line %d: %q, want a time and %q", i, lines[i], w[3:])
					}
					continue
				}
				if lines[i] != w {
					t.Errorf("line %d: %q, want %q", i, lines[i], w)
				}
			}
		})
	}
}
