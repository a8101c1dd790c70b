package httpmap

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portmapd/portmapd/registry"
)

func needChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium not installed: apt-get install chromium")
	return ""
}

// chromium runs headless Chromium on url with extra flags and returns its
// standard output.
func chromium(t *testing.T, bin, url string, flags ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(),
	}, flags...)
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v", flags, err)
	}
	return string(out)
}

// screenshotDir is where the page's screenshots go for people to look at:
// $PORTMAPD_SCREENSHOTS, else the system's temporary directory.
func screenshotDir() string {
	if d := os.Getenv("PORTMAPD_SCREENSHOTS"); d != "" {
		return d
	}
	return os.TempDir()
}

func TestBrowserPage(t *testing.T) {
	bin := needChromium(t)
	l := startLive(t, registry.Options{})
	child := sleeper(t, os.Geteuid())
	pid := strconv.Itoa(child.Process.Pid)
	for _, svc := range [][2]string{
		{"app.example.com", "8080"}, {"app.example.com", "/run/app/http.sock"},
		{"backup@region.example.com", "9100"}, {"Metrics.Example.org", "9090"},
		{"bücher.example.com", "9443"},
	} {
		if code, body := curl(t, os.Geteuid(), "--unix-socket", l.sock, "-d", "service="+svc[0], "-d", "port="+svc[1], "-d", "pid="+pid, "-d", "public=1", "http://localhost/portmap"); code != 201 {
			t.Fatalf("register %v: %d %s", svc, code, body)
		}
	}
	internal := registry.Caller{Transport: registry.Internal}
	for _, e := range []registry.Entry{
		{Prog: 100000, Vers: 4, Netid: "tcp", Addr: "0.0.0.0.0.111"},
		{Prog: 100000, Vers: 2, Netid: "udp", Addr: "0.0.0.0.0.111"},
		{Prog: 100003, Vers: 3, Netid: "tcp6", Addr: "::.8.1"},
		{Prog: 100005, Vers: 3, Netid: "local", Addr: "/run/mountd.sock"},
	} {
		l.reg.Set(internal, e)
	}
	url := "http://" + l.tcp + "/portmap"
	dom := chromium(t, bin, url, "--dump-dom", "--virtual-time-budget=2000")
	for _, want := range []string{
		"<title>Services on live</title>",
		"<code>app.example.com</code>", "<code>/run/app/http.sock</code>",
		"<code>backup@region.example.com</code>", "<code>Metrics.Example.org</code>",
		// A Unicode name shows in both forms.
		"<code>bücher.example.com</code><br><code class=\"ascii\" title=\"the ASCII form portmapd holds\">xn--bcher-kva.example.com</code>",
		"<code>nfs.oncrpc.alt</code>", "<code>100003.oncrpc.alt</code>", "<code>/run/mountd.sock</code>",
		">portmapper<", "superuser",
		// The script ran (the page's CSP allowed it) and counted rows.
		`data-count-for="services">(5)</span>`, `data-count-for="rpc">(4)</span>`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("DOM lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}
	for _, shot := range []struct{ name, size string }{
		{"portmap-desktop.png", "1280,800"},
		{"portmap-phone.png", "390,844"},
	} {
		path := filepath.Join(screenshotDir(), shot.name)
		chromium(t, bin, url, "--screenshot="+path, "--window-size="+shot.size, "--virtual-time-budget=2000")
		if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
			t.Fatalf("no screenshot at %s: %v", path, err)
		}
		t.Logf("screenshot: %s", path)
	}
}
