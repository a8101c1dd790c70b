// Package clidoc generates what a distribution ships beside portmapd's
// commands: their man pages, from the cobra command trees with cobra's
// doc generator, and their bash, zsh and fish completion. Each command
// has a hidden "gendocs" subcommand (Command) that `make docs` runs, so
// that the pages say exactly what the flags of the binary being installed
// are; nothing generated is committed.
package clidoc

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// Name is the hidden subcommand's name.
const Name = "gendocs"

// Command returns the hidden command that writes root's man pages into
// DIR/man (section section, one page per command: PROG.SECTION,
// PROG-SUB.SECTION, ...) and its completion scripts into
// DIR/completion/{bash,zsh,fish}. version goes into the pages' footer;
// their date is SOURCE_DATE_EPOCH's when it is set, for reproducible
// builds, else today's.
func Command(root *cobra.Command, section, manual, version string) *cobra.Command {
	return &cobra.Command{
		Use:    Name + " DIR",
		Short:  "write the man pages and completion scripts into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return Generate(root, args[0], section, manual, version)
		},
	}
}

// Generate writes what Command's command writes.
func Generate(root *cobra.Command, dir, section, manual, version string) error {
	date := time.Now()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("clidoc: SOURCE_DATE_EPOCH %q: %w", s, err)
		}
		date = time.Unix(sec, 0).UTC()
	}
	man := filepath.Join(dir, "man")
	if err := os.MkdirAll(man, 0o755); err != nil {
		return fmt.Errorf("clidoc: %w", err)
	}
	root.DisableAutoGenTag = true
	hdr := &doc.GenManHeader{Section: section, Date: &date, Source: root.Name() + " " + version, Manual: manual}
	if err := doc.GenManTree(root, hdr, man); err != nil {
		return fmt.Errorf("clidoc: man pages: %w", err)
	}
	name := root.Name()
	for _, sh := range []struct {
		dir, file string
		gen       func(path string) error
	}{
		{"bash", name, func(p string) error { return root.GenBashCompletionFileV2(p, true) }},
		{"zsh", "_" + name, root.GenZshCompletionFile},
		{"fish", name + ".fish", func(p string) error { return root.GenFishCompletionFile(p, true) }},
	} {
		d := filepath.Join(dir, "completion", sh.dir)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("clidoc: %w", err)
		}
		if err := sh.gen(filepath.Join(d, sh.file)); err != nil {
			return fmt.Errorf("clidoc: %s completion: %w", sh.dir, err)
		}
	}
	return nil
}
