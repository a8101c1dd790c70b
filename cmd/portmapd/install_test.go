package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/portmapd/portmapd/internal/clidoc"
)

// repoRoot is the repository's top, from this package's directory.
const repoRoot = "../.."

// checkout copies what `make install` reads into a fresh directory, with
// stand-ins for the built binaries when built is set.
func checkout(t *testing.T, built bool) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"Makefile", "README.md", "httpmap/README.md", "dist/systemd/portmapd.service", "dist/systemd/portmapd.socket"} {
		b, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if built {
		for _, b := range []string{"bin/portmapd", "bin/portmapctl"} {
			dst := filepath.Join(dir, b)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		// What make build generates beside them.
		root := newRootCmd("portmapd", io.Discard, io.Discard)
		if err := clidoc.Generate(root, filepath.Join(dir, "bin/docs"), "8", "System Manager's Manual", "test"); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"man/portmapctl.1", "man/portmapctl-dump.1", "completion/bash/portmapctl", "completion/zsh/_portmapctl", "completion/fish/portmapctl.fish"} {
			dst := filepath.Join(dir, "bin/docs", f)
			if err := os.WriteFile(dst, []byte("portmapctl\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// sudoMake runs make in dir as under Debian's sudo: its secure_path, on
// which there is no go (GO names none, wherever go is installed).
func sudoMake(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	cmd := exec.Command("make", append([]string{"-C", dir, "GO=/nonexistent/go"}, args...)...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestAdminInstallsWithSudo: an administrator runs make build as himself
// and then sudo make install, to /usr. The install does not build, puts
// the binaries, units and documentation under PREFIX, and the units
// start the binary where it went.
func TestAdminInstallsWithSudo(t *testing.T) {
	dir := checkout(t, true)
	stage := t.TempDir()
	if out, err := sudoMake(t, dir, "install", "DESTDIR="+stage, "PREFIX=/usr"); err != nil {
		t.Fatalf("sudo make install: %v\n%s", err, out)
	}
	for _, f := range []string{
		"usr/sbin/portmapd", "usr/bin/portmapctl",
		"etc/systemd/system/portmapd.service", "etc/systemd/system/portmapd.socket",
		"usr/share/doc/portmapd/README.md", "usr/share/doc/portmapd/httpmap/README.md",
		"usr/share/man/man8/portmapd.8", "usr/share/man/man8/portmapd-version.8",
		"usr/share/man/man1/portmapctl.1", "usr/share/man/man1/portmapctl-dump.1",
		"usr/share/bash-completion/completions/portmapd", "usr/share/bash-completion/completions/portmapctl",
		"usr/share/zsh/site-functions/_portmapd", "usr/share/zsh/site-functions/_portmapctl",
		"usr/share/fish/vendor_completions.d/portmapd.fish", "usr/share/fish/vendor_completions.d/portmapctl.fish",
	} {
		if _, err := os.Stat(filepath.Join(stage, f)); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	for _, u := range []string{"portmapd.service", "portmapd.socket"} {
		b, err := os.ReadFile(filepath.Join(stage, "etc/systemd/system", u))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "/usr/local") {
			t.Errorf("%s still names /usr/local:\n%s", u, b)
		}
		if u == "portmapd.service" && !strings.Contains(string(b), "\nExecStart=/usr/sbin/portmapd ") {
			t.Errorf("%s does not start /usr/sbin/portmapd:\n%s", u, b)
		}
	}
}

// TestAdminInstallsWithoutBuilding: sudo make install before make build
// says what to do instead of failing to find go.
func TestAdminInstallsWithoutBuilding(t *testing.T) {
	dir := checkout(t, false)
	out, err := sudoMake(t, dir, "install", "DESTDIR="+t.TempDir())
	if err == nil {
		t.Fatalf("install without binaries succeeded:\n%s", out)
	}
	if !strings.Contains(out, "run make build first") || strings.Contains(out, "nonexistent/go") {
		t.Errorf("install without binaries says:\n%s", out)
	}
}

// TestREADMEReferencesExist: every Markdown file the README names is in
// the repository (and installed beside it), and none is outside it.
func TestREADMEReferencesExist(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile("[`(]([A-Za-z0-9_./-]+\\.md)[`)]").FindAllStringSubmatch(string(b), -1)
	if len(refs) == 0 {
		t.Fatal("the README names no Markdown file; the pattern is wrong")
	}
	for _, r := range refs {
		if strings.HasPrefix(r[1], "../") || strings.HasPrefix(r[1], "/") {
			t.Errorf("README refers outside the repository: %s", r[1])
			continue
		}
		if _, err := os.Stat(filepath.Join(repoRoot, r[1])); err != nil {
			t.Errorf("README refers to %s: %v", r[1], err)
		}
	}
}

// TestManPageRenders: the generated portmapd(8) renders with man (as
// `man ./portmapd.8` does), naming the command, its rpcbind options and
// its long flags, and the bash completion script parses.
func TestManPageRenders(t *testing.T) {
	manPath, err := exec.LookPath("man")
	if err != nil {
		t.Skip("needs man: apt-get install man-db groff-base")
	}
	dir := t.TempDir()
	root := newRootCmd("portmapd", io.Discard, io.Discard)
	if err := clidoc.Generate(root, dir, "8", "System Manager's Manual", "test"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(manPath, "./portmapd.8")
	cmd.Dir = filepath.Join(dir, "man")
	cmd.Env = append(os.Environ(), "MANWIDTH=100", "MANPAGER=cat", "PAGER=cat", "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("man ./portmapd.8: %v\n%s", err, out)
	}
	page := string(out)
	for _, want := range []string{"PORTMAPD(8)", "System Manager's Manual", "NAME", "portmapd - ONC RPC portmapper",
		"--warm-start[=false]", "--metrics", "--state-dir", "portmapd-version(8)"} {
		if !strings.Contains(page, want) {
			t.Errorf("the rendered page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "gendocs") {
		t.Errorf("the page names the hidden gendocs command:\n%s", page)
	}
	if bash, err := exec.LookPath("bash"); err == nil {
		if out, err := exec.Command(bash, "-n", filepath.Join(dir, "completion/bash/portmapd")).CombinedOutput(); err != nil {
			t.Errorf("bash -n on the completion script: %v\n%s", err, out)
		}
	}
}
