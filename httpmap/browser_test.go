package httpmap

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/websocket"

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

// browserPatience bounds each wait for the browser: far longer than it
// takes, for a loaded machine.
const browserPatience = 90 * time.Second

// A browser is headless Chromium showing one page, driven over the
// DevTools protocol: the page runs as in a person's browser, its event
// stream open, for as long as the test looks at it.
type browser struct {
	t   *testing.T
	ws  *websocket.Conn
	id  int
	cmd *exec.Cmd
}

// openBrowser starts headless Chromium on url with extra flags, and
// connects to its page.
func openBrowser(t *testing.T, bin, url string, flags ...string) *browser {
	t.Helper()
	dir := t.TempDir()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars",
		"--remote-debugging-port=0", "--remote-allow-origins=*",
		"--user-data-dir=" + dir,
	}, flags...)
	cmd := exec.Command(bin, append(args, url)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	// Chromium writes the port it chose to DevToolsActivePort.
	var port string
	deadline := time.Now().Add(browserPatience)
	for port == "" {
		if b, err := os.ReadFile(filepath.Join(dir, "DevToolsActivePort")); err == nil {
			port, _, _ = strings.Cut(string(b), "\n")
		}
		if time.Now().After(deadline) {
			t.Fatal("chromium did not open its DevTools port")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var pageWS string
	for pageWS == "" {
		resp, err := http.Get("http://127.0.0.1:" + port + "/json/list")
		if err == nil {
			var targets []struct{ Type, URL, WebSocketDebuggerURL string }
			json.NewDecoder(resp.Body).Decode(&targets)
			resp.Body.Close()
			for _, tg := range targets {
				if tg.Type == "page" && strings.HasPrefix(tg.URL, url) {
					pageWS = tg.WebSocketDebuggerURL
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("chromium shows no page of %s", url)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ws, err := websocket.Dial(pageWS, "", "http://127.0.0.1/")
	if err != nil {
		t.Fatalf("DevTools: %v", err)
	}
	t.Cleanup(func() { ws.Close() })
	return &browser{t: t, ws: ws, cmd: cmd}
}

// call sends a DevTools command and returns its result.
func (b *browser) call(method string, params any) json.RawMessage {
	b.t.Helper()
	b.id++
	if err := websocket.JSON.Send(b.ws, map[string]any{"id": b.id, "method": method, "params": params}); err != nil {
		b.t.Fatalf("DevTools %s: %v", method, err)
	}
	b.ws.SetReadDeadline(time.Now().Add(browserPatience))
	for {
		var msg struct {
			ID     int
			Result json.RawMessage
			Error  *struct{ Message string }
		}
		if err := websocket.JSON.Receive(b.ws, &msg); err != nil {
			b.t.Fatalf("DevTools %s: %v", method, err)
		}
		if msg.ID != b.id {
			continue // an event, or an answer to an abandoned call
		}
		if msg.Error != nil {
			b.t.Fatalf("DevTools %s: %s", method, msg.Error.Message)
		}
		return msg.Result
	}
}

// eval evaluates a JavaScript expression in the page and returns its
// value as JSON.
func (b *browser) eval(expr string) string {
	b.t.Helper()
	var r struct {
		Result struct {
			Value json.RawMessage
		}
		ExceptionDetails *struct{ Text string }
	}
	json.Unmarshal(b.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}), &r)
	if r.ExceptionDetails != nil {
		return "exception: " + r.ExceptionDetails.Text
	}
	return string(r.Result.Value)
}

// await waits until expr is true in the page.
func (b *browser) await(what, expr string) {
	b.t.Helper()
	deadline := time.Now().Add(browserPatience)
	for b.eval(expr) != "true" {
		if time.Now().After(deadline) {
			b.t.Fatalf("the page never showed %s (%s)", what, expr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dom returns the page's document as it is now.
func (b *browser) dom() string {
	var s string
	json.Unmarshal([]byte(b.eval("document.documentElement.outerHTML")), &s)
	return s
}

// screenshot writes a PNG of the page to path.
func (b *browser) screenshot(path string) {
	b.t.Helper()
	var r struct{ Data string }
	json.Unmarshal(b.call("Page.captureScreenshot", map[string]any{"format": "png"}), &r)
	png, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil || len(png) == 0 {
		b.t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// screenshotDir is where the page's screenshots go for people to look at:
// $PORTMAPD_SCREENSHOTS, else the system's temporary directory.
func screenshotDir() string {
	if d := os.Getenv("PORTMAPD_SCREENSHOTS"); d != "" {
		return d
	}
	return os.TempDir()
}

// scriptRan is true once page.js has counted the rows: the page's CSP
// let its script run.
const scriptRan = `document.querySelector('[data-count-for="services"]').textContent !== ""`

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
	b := openBrowser(t, bin, url, "--window-size=1280,800")
	b.await("its script's row counts", scriptRan)
	dom := b.dom()
	for _, want := range []string{
		"<title>Services on live</title>",
		"<code>app.example.com</code>", "<code>/run/app/http.sock</code>",
		"<code>backup@region.example.com</code>", "<code>Metrics.Example.org</code>",
		// A Unicode name shows in both forms.
		"<code>bücher.example.com</code><br><code class=\"ascii\" title=\"the ASCII form portmapd holds\">xn--bcher-kva.example.com</code>",
		"<code>nfs.oncrpc.alt</code>", "<code>100003.oncrpc.alt</code>", "<code>/run/mountd.sock</code>",
		">portmapper<", "superuser", `<span class="health passing"`,
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
	path := filepath.Join(screenshotDir(), "portmap-desktop.png")
	b.screenshot(path)
	t.Logf("screenshot: %s", path)
	phone := openBrowser(t, bin, url, "--window-size=390,844")
	phone.await("its script's row counts", scriptRan)
	path = filepath.Join(screenshotDir(), "portmap-phone.png")
	phone.screenshot(path)
	t.Logf("screenshot: %s", path)
}

// TestBrowserPageUpdates checks that the page follows the registry as it
// changes, without a reload: a service that registers appears, one whose
// process exits goes, the counts follow, and a sort the viewer chose
// holds.
func TestBrowserPageUpdates(t *testing.T) {
	bin := needChromium(t)
	l := startLive(t, registry.Options{})
	first := sleeper(t, os.Geteuid())
	if code, body := l.register(t, os.Geteuid(), first.Process.Pid, "zeta.example.com", "8001"); code != 201 {
		t.Fatalf("register: %d %s", code, body)
	}
	b := openBrowser(t, bin, "http://"+l.tcp+"/portmap")
	b.await("that it is live", `!document.getElementById("live").hidden`)
	// Sort by service name, and mark this document: a reload would
	// lose both.
	b.eval(`document.querySelector("#services thead th button").click(); window.portmapdMark = "kept"`)
	second := sleeper(t, os.Geteuid())
	if code, body := l.register(t, os.Geteuid(), second.Process.Pid, "alpha.example.com", "8002"); code != 201 {
		t.Fatalf("register: %d %s", code, body)
	}
	b.await("the new service", `document.getElementById("services").textContent.indexOf("alpha.example.com") >= 0`)
	b.await("two services counted", `document.querySelector('[data-count-for="services"]').textContent === "(2)"`)
	if got := b.eval(`document.querySelector("#services tbody tr code").textContent`); got != `"alpha.example.com"` {
		t.Errorf("first row after the update: %s, want alpha.example.com (the sort kept)", got)
	}
	first.Process.Kill()
	b.await("the service of the process that exited gone", `document.getElementById("services").textContent.indexOf("zeta.example.com") < 0`)
	if got := b.eval(`window.portmapdMark`); got != `"kept"` {
		t.Errorf("the page was reloaded (mark %s)", got)
	}
}
