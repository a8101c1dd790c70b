package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/help.txt from portmapd --help")

// TestHelpText pins portmapd --help: every flag's name, letter, help and
// default, in order. The man page and the completion scripts are made
// from the same flags, so a change here is a change there too.
func TestHelpText(t *testing.T) {
	var stdout, stderr bytes.Buffer
	cmd := newRootCmd("portmapd", &stdout, &stderr)
	cmd.SetArgs([]string{"--help"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("--help: %v\n%s", err, stderr.String())
	}
	if stderr.Len() != 0 {
		t.Errorf("--help wrote to stderr:\n%s", stderr.String())
	}
	golden := filepath.Join("testdata", "help.txt")
	if *update {
		if err := os.WriteFile(golden, stdout.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stdout.Bytes(), want) {
		t.Errorf("--help differs from %s (go test -run TestHelpText -update rewrites it):\n%s", golden, stdout.String())
	}
}
