package migrate

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestReadOptions(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "rpcbind.conf")
	def := filepath.Join(dir, "default")
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(conf, []byte("RPCBIND_OPTIONS='-h 192.0.2.1'\nOPTIONS=-l\n"), 0o644))
	must(os.WriteFile(def, []byte("# Debian\n\nexport OPTIONS=\"-w -f\"\n"), 0o644))
	got, err := readOptions([]string{conf, def, filepath.Join(dir, "missing")})
	if err != nil {
		t.Fatal(err)
	}
	// A later file overrides an earlier one's variable, as systemd's
	// EnvironmentFile does.
	if want := []string{"-h", "192.0.2.1", "-w", "-f"}; !slices.Equal(got, want) {
		t.Errorf("options %q, want %q", got, want)
	}
}

func TestHasWarmStart(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want bool
	}{
		{[]string{"-w"}, true},
		{[]string{"-f", "-w"}, true},
		{[]string{"-fw"}, true},
		{[]string{"--warm-start"}, true},
		{[]string{"--warm-start-dir", "/run/rpcbind"}, false},
		{[]string{"-f"}, false},
		{[]string{"-h", "w"}, false},
		{nil, false},
	} {
		if got := hasWarmStart(tt.args); got != tt.want {
			t.Errorf("hasWarmStart(%q) = %v, want %v", tt.args, got, tt.want)
		}
	}
}
