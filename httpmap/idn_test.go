package httpmap

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/portmapd/portmapd/registry"
)

func TestASCIIName(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: "app.example.com", want: "app.example.com"},
		// ASCII names are the registry's to judge, with its own rules.
		{in: "App.Example.com", want: "App.Example.com"},
		{in: "ab--c.example.com", want: "ab--c.example.com"},
		{in: "a_b.example.com", want: "a_b.example.com"},
		{in: "café.example.com", want: "xn--caf-dma.example.com"},
		// Lookup maps case, width and normalisation before converting.
		{in: "CAFÉ.example.com", want: "xn--caf-dma.example.com"},
		{in: "cafe\u0301.example.com", want: "xn--caf-dma.example.com"},
		{in: "ｃａｆｅ.example.com", want: "cafe.example.com"},
		{in: "App.café.example.com", want: "App.xn--caf-dma.example.com"},
		{in: "me@bücher.example", want: "me@xn--bcher-kva.example"},
		{in: "☃.example.com", want: "xn--n3h.example.com"},
		// The local part has no ASCII form: the registry refuses it.
		{in: "zoë@example.com", want: "zoë@example.com"},
		{in: "ca_fé.example.com", err: `label "ca_fé" has no ASCII form: disallowed rune U+005F`},
		{in: "\u0301x.example.com", err: "label \"\u0301x\" has no ASCII form"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := asciiName(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, registry.ErrBadName) {
					t.Fatalf("asciiName(%q) = %q, %v; want a bad-name error with %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("asciiName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestUnicodeName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"app.example.com", ""},
		{"xn--caf-dma.example.com", "café.example.com"},
		{"XN--CAF-DMA.example.com", "café.example.com"},
		{"App.xn--caf-dma.example.com", "App.café.example.com"},
		{"me@xn--bcher-kva.example", "me@bücher.example"},
		// Not valid punycode, or not a valid label once decoded: shown
		// only as it is.
		{"xn--zz.example.com", ""},
		{"xn--a-ecp.example.com", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := UnicodeName(tt.in); got != tt.want {
				t.Fatalf("UnicodeName(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestUnicodeNamesMatchEitherForm: a name registered in Unicode is held in
// its ASCII form, so lookups, filters, deregistration and exclusivity
// match whichever form is asked, and the page shows both.
func TestUnicodeNamesMatchEitherForm(t *testing.T) {
	l := startLive(t, registry.Options{})
	ctx := context.Background()
	child := sleeper(t, os.Geteuid())
	code, body := l.register(t, os.Geteuid(), child.Process.Pid, "café.example.com", "8080", "exclusive=1")
	if code != http.StatusCreated || !strings.Contains(body, "xn--caf-dma.example.com") {
		t.Fatalf("register: %d %s", code, body)
	}
	if got := l.reg.LookupNamed("xn--caf-dma.example.com"); len(got) != 1 || got[0].Name != "xn--caf-dma.example.com" {
		t.Fatalf("registry holds %+v, want the ASCII form", got)
	}
	for _, name := range []string{"café.example.com", "CAFÉ.example.com", "xn--caf-dma.example.com", "XN--CAF-DMA.example.com"} {
		t.Run("lookup "+name, func(t *testing.T) {
			ins, err := NewClient(l.tcp).Lookup(ctx, name)
			if err != nil || len(ins) != 1 || ins[0].Port != "8080" {
				t.Fatalf("%+v, %v", ins, err)
			}
			list, err := NewClient(l.tcp).List(ctx, Filter{Services: []string{name}})
			if err != nil || len(list) != 1 {
				t.Fatalf("filter: %+v, %v", list, err)
			}
		})
	}
	t.Run("exclusive across forms", func(t *testing.T) {
		other := sleeper(t, os.Geteuid())
		code, body := l.register(t, os.Geteuid(), other.Process.Pid, "xn--caf-dma.example.com", "8081")
		if code != http.StatusConflict {
			t.Fatalf("%d %s, want 409", code, body)
		}
	})
	t.Run("refusal names the character", func(t *testing.T) {
		code, body := l.register(t, os.Geteuid(), child.Process.Pid, "zoë@example.com", "1")
		if code != http.StatusBadRequest || !strings.Contains(body, "character 'ë' not allowed in local part") {
			t.Fatalf("%d %s", code, body)
		}
	})
	t.Run("page shows both forms", func(t *testing.T) {
		req := httptest.NewRequest("GET", "/portmap?format=html", nil)
		req.RemoteAddr = local
		rec := httptest.NewRecorder()
		l.ServeHTTP(rec, req)
		want := `<code>café.example.com</code><br><code class="ascii" title="the ASCII form portmapd holds">xn--caf-dma.example.com</code>`
		if !strings.Contains(rec.Body.String(), want) {
			t.Fatalf("page lacks %q:\n%s", want, rec.Body.String())
		}
	})
	t.Run("deregister by the Unicode form", func(t *testing.T) {
		code, body := curl(t, os.Geteuid(), "--unix-socket", l.sock, "-X", "DELETE", "http://localhost/portmap/caf%C3%A9.example.com")
		if code != http.StatusOK || len(l.reg.LookupNamed("xn--caf-dma.example.com")) != 0 {
			t.Fatalf("%d %s", code, body)
		}
	})
}
