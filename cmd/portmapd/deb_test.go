package main

import (
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/portmapd/portmapd/internal/clidoc"
)

// buildDeb builds the binaries, their docs and the .deb as make deb does,
// into a fresh directory, and returns the .deb.
func buildDeb(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"go", "dpkg", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	bin := t.TempDir()
	for _, prog := range []string{"portmapd", "portmapctl"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, prog), "../"+prog).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", prog, err, out)
		}
		if out, err := exec.Command(filepath.Join(bin, prog), clidoc.Name, filepath.Join(bin, "docs")).CombinedOutput(); err != nil {
			t.Fatalf("%s gendocs: %v\n%s", prog, err, out)
		}
	}
	repo, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	deb := filepath.Join(bin, "portmapd.deb")
	cmd := exec.Command("go", "run", "-C", filepath.Join(repo, "dist/deb"), ".", "-bin", bin, "-repo", repo,
		"-version", "1.2.3", "-arch", debArch(), "-o", deb)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the .deb: %v\n%s", err, out)
	}
	return deb
}

// debArch is this machine's Debian architecture.
func debArch() string {
	if out, err := exec.Command("dpkg", "--print-architecture").Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	return runtime.GOARCH
}

// TestDebianPackage builds the .deb as make deb does and installs it with
// dpkg into a scratch root (its own database, maintainer scripts run
// outside a chroot with DPKG_ROOT set, which tells them there is no
// running host to switch): dpkg -s says it is installed, the files are
// where Debian wants them and work, and removing and purging it leaves
// nothing of it.
func TestDebianPackage(t *testing.T) {
	deb := buildDeb(t)
	fields, err := exec.Command("dpkg-deb", "-f", deb, "Package", "Version", "Architecture", "Depends", "Suggests", "Conflicts", "Provides").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Package: portmapd\n", "Version: 1.2.3\n", "Suggests: rpcbind\n"} {
		if !strings.Contains(string(fields), want) {
			t.Errorf("control lacks %q:\n%s", want, fields)
		}
	}
	if strings.Contains(string(fields), "Conflicts") || strings.Contains(string(fields), "Provides") {
		t.Errorf("the package lives beside rpcbind, but its control says:\n%s", fields)
	}

	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dpkg := func(args ...string) string {
		t.Helper()
		argv := append([]string{"--root=" + root, "--force-not-root", "--force-script-chrootless", "--force-depends", "--log=/dev/null"}, args...)
		out, err := exec.Command("dpkg", argv...).CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	dpkg("-i", deb)
	status := dpkg("-s", "portmapd")
	for _, want := range []string{"Status: install ok installed\n", "Version: 1.2.3\n"} {
		if !strings.Contains(status, want) {
			t.Errorf("dpkg -s lacks %q:\n%s", want, status)
		}
	}
	for _, f := range []string{
		"usr/sbin/portmapd", "usr/bin/portmapctl",
		"usr/lib/systemd/system/portmapd.service", "usr/lib/systemd/system/portmapd.socket",
		"usr/share/doc/portmapd/README.md",
		"usr/share/man/man8/portmapd.8.gz", "usr/share/man/man1/portmapctl.1.gz", "usr/share/man/man1/portmapctl-migrate.1.gz",
		"usr/share/bash-completion/completions/portmapctl", "usr/share/zsh/vendor-completions/_portmapctl",
		"usr/share/fish/vendor_completions.d/portmapctl.fish",
		"var/lib/dpkg/info/portmapd.postinst", "var/lib/dpkg/info/portmapd.prerm",
	} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	unit, err := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/portmapd.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "\nExecStart=/usr/sbin/portmapd ") || strings.Contains(string(unit), "/usr/local") {
		t.Errorf("the installed unit does not start /usr/sbin/portmapd:\n%s", unit)
	}
	if out, err := exec.Command(filepath.Join(root, "usr/sbin/portmapd"), "version").Output(); err != nil || !strings.HasPrefix(string(out), "portmapd ") {
		t.Errorf("the installed portmapd version: %v\n%s", err, out)
	}
	if page := gunzip(t, filepath.Join(root, "usr/share/man/man8/portmapd.8.gz")); !strings.Contains(page, `.TH "PORTMAPD" "8"`) {
		t.Errorf("portmapd.8.gz is not portmapd(8):\n%.300s", page)
	}

	dpkg("-P", "portmapd")
	if out, _ := exec.Command("dpkg", "--root="+root, "-s", "portmapd").CombinedOutput(); strings.Contains(string(out), "Status: install ok installed") {
		t.Errorf("still installed after a purge:\n%s", out)
	}
	for _, f := range []string{"usr/sbin/portmapd", "usr/share/man/man8/portmapd.8.gz"} {
		if _, err := os.Stat(filepath.Join(root, f)); err == nil {
			t.Errorf("%s left after a purge", f)
		}
	}
}

func gunzip(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
