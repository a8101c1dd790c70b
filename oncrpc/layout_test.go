package oncrpc_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/portmapd/portmapd"

// goTool returns the go command, run from the module's root, or skips.
func goTool(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	path, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go tool to inspect the module with: %v", err)
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = ".."
	return cmd
}

// deps lists the packages pkg imports, itself included, each with
// whether it is in the standard library.
func deps(t *testing.T, pkg string) map[string]bool {
	t.Helper()
	out, err := goTool(t, "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	m := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, std, _ := strings.Cut(line, " ")
		m[path] = std == "true"
	}
	return m
}

// TestImportsNoDomain: the framework imports, of portmapd, only the wire
// (xdr), the peer and the connection limits, so that no program's notions
// (the registry, the faces, netids, anything internal) leak into it; the
// peer package imports nothing of portmapd. Outside portmapd they use the
// standard library, x/sys and what xdr itself uses.
func TestImportsNoDomain(t *testing.T) {
	xdrDeps := deps(t, module+"/xdr")
	tests := []struct {
		pkg     string
		allowed []string // portmapd packages it may import besides itself
	}{
		{"oncrpc", []string{"xdr", "peer", "netlimit"}},
		{"peer", nil},
	}
	for _, tc := range tests {
		t.Run(tc.pkg, func(t *testing.T) {
			allowed := map[string]bool{module + "/" + tc.pkg: true}
			for _, a := range tc.allowed {
				allowed[module+"/"+a] = true
			}
			for path, std := range deps(t, module+"/"+tc.pkg) {
				_, viaXDR := xdrDeps[path]
				switch {
				case std, allowed[path], strings.HasPrefix(path, "golang.org/x/sys/"):
				case strings.HasPrefix(path, module+"/"):
					t.Errorf("%s imports %s", tc.pkg, path)
				case viaXDR && allowed[module+"/xdr"]:
				default:
					t.Errorf("%s imports %s, outside the standard library and x/sys", tc.pkg, path)
				}
			}
		})
	}
}

// TestBuildsOffLinux: the wire, the vocabulary, the peer, the framework
// and the portmapper with its client build for systems other than Linux,
// where what only Linux offers (peer credentials, IP_PKTINFO) is left
// out.
func TestBuildsOffLinux(t *testing.T) {
	for _, goos := range []string{"freebsd", "darwin"} {
		t.Run(goos, func(t *testing.T) {
			cmd := goTool(t, "build", "./xdr/...", "./netid/...", "./peer/...", "./oncrpc/...", "./rpcbind/...")
			cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH=amd64", "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("GOOS=%s go build: %v\n%s", goos, err, out)
			}
		})
	}
}
