// Command deb builds portmapd's Debian package with nfpm, from what `make
// build` left in the build directory (the binaries, their man pages and
// completion scripts) and the repository's units, documentation and
// maintainer scripts. `make deb` runs it.
//
// The package lives beside Debian's rpcbind rather than replacing it: it
// neither Provides nor Conflicts with rpcbind. rpcbind's package holds
// rpcinfo and is the way back (portmapctl migrate to-rpcbind starts it),
// nfs-common and others depend on it, and a Conflicts would make dpkg
// remove it before portmapd's files exist, leaving the host without a
// portmapper in between. Instead portmapd's units take rpcbind's names
// when enabled (Alias=rpcbind.socket, rpcbind.service), and the
// maintainer scripts switch the running host with portmapctl migrate,
// through the warm-start files, so that no RPC service restarts.
//
// It is a module of its own so that nfpm's dependencies stay out of
// portmapd's.
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

func main() {
	var (
		bin     = flag.String("bin", "bin", "build directory: portmapd, portmapctl and docs/ from make build")
		repo    = flag.String("repo", ".", "the repository's top")
		version = flag.String("version", "", "package version")
		arch    = flag.String("arch", "amd64", "Debian architecture")
		out     = flag.String("o", "", "the .deb to write (default BIN/portmapd_VERSION_ARCH.deb)")
	)
	flag.Parse()
	if err := build(*bin, *repo, *version, *arch, *out); err != nil {
		fmt.Fprintln(os.Stderr, "deb:", err)
		os.Exit(1)
	}
}

func build(bin, repo, version, arch, out string) error {
	if version == "" {
		return fmt.Errorf("no -version")
	}
	if out == "" {
		out = filepath.Join(bin, fmt.Sprintf("portmapd_%s_%s.deb", version, arch))
	}
	stage, err := os.MkdirTemp("", "portmapd-deb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	contents, err := layout(bin, repo, stage)
	if err != nil {
		return err
	}
	script := func(name string) string { return filepath.Join(repo, "dist/deb", name) }
	info := nfpm.WithDefaults(&nfpm.Info{
		Name:        "portmapd",
		Arch:        arch,
		Platform:    "linux",
		Version:     version,
		Section:     "net",
		Priority:    "optional",
		Maintainer:  "portmapd developers <portmapd@localhost>",
		Description: "ONC RPC portmapper, a drop-in replacement for rpcbind\nportmapd answers portmap version 2 and rpcbind versions 3 and 4 on UDP and\nTCP port 111 and /run/rpcbind.sock, with an HTTP face where services\nregister by name. Installing it switches the host from rpcbind with\nrpcbind's warm-start files, so that no RPC service restarts; removing it\nswitches back.",
		Homepage:    "https://github.com/portmapd/portmapd",
		Overridables: nfpm.Overridables{
			Depends:  []string{"libc6"},
			Suggests: []string{"rpcbind"},
			Contents: contents,
			Scripts: nfpm.Scripts{
				PostInstall: script("postinst"),
				PreRemove:   script("prerm"),
				PostRemove:  script("postrm"),
			},
		},
	})
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return err
	}
	pkg, err := nfpm.Get("deb")
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := pkg.Package(info, f); err != nil {
		f.Close()
		os.Remove(out)
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Println(out)
	return nil
}

// layout lists what the package installs where, writing into stage what
// needs changing on the way: the units name /usr, and man pages are
// compressed as Debian's policy wants.
func layout(bin, repo, stage string) (files.Contents, error) {
	file := func(src, dst string, mode os.FileMode) *files.Content {
		return &files.Content{Source: src, Destination: dst, FileInfo: &files.ContentFileInfo{Mode: mode}}
	}
	c := files.Contents{
		file(filepath.Join(bin, "portmapd"), "/usr/sbin/portmapd", 0o755),
		file(filepath.Join(bin, "portmapctl"), "/usr/bin/portmapctl", 0o755),
		file(filepath.Join(repo, "README.md"), "/usr/share/doc/portmapd/README.md", 0o644),
		file(filepath.Join(repo, "httpmap/README.md"), "/usr/share/doc/portmapd/httpmap/README.md", 0o644),
	}
	for _, u := range []string{"portmapd.service", "portmapd.socket"} {
		b, err := os.ReadFile(filepath.Join(repo, "dist/systemd", u))
		if err != nil {
			return nil, err
		}
		p := filepath.Join(stage, u)
		if err := os.WriteFile(p, bytes.ReplaceAll(b, []byte("/usr/local/"), []byte("/usr/")), 0o644); err != nil {
			return nil, err
		}
		c = append(c, file(p, "/usr/lib/systemd/system/"+u, 0o644))
	}
	pages, err := filepath.Glob(filepath.Join(bin, "docs/man/*.[18]"))
	if err != nil {
		return nil, err
	}
	if len(pages) == 0 {
		return nil, fmt.Errorf("no man pages in %s/docs/man: run make build", bin)
	}
	for _, page := range pages {
		gz := filepath.Join(stage, filepath.Base(page)+".gz")
		if err := gzipFile(page, gz); err != nil {
			return nil, err
		}
		section := page[len(page)-1:]
		c = append(c, file(gz, "/usr/share/man/man"+section+"/"+filepath.Base(gz), 0o644))
	}
	for _, prog := range []string{"portmapd", "portmapctl"} {
		c = append(c,
			file(filepath.Join(bin, "docs/completion/bash", prog), "/usr/share/bash-completion/completions/"+prog, 0o644),
			file(filepath.Join(bin, "docs/completion/zsh", "_"+prog), "/usr/share/zsh/vendor-completions/_"+prog, 0o644),
			file(filepath.Join(bin, "docs/completion/fish", prog+".fish"), "/usr/share/fish/vendor_completions.d/"+prog+".fish", 0o644))
	}
	return c, nil
}

// gzipFile compresses src into dst with no name or time in the header,
// as gzip -n does, so that the package is reproducible.
func gzipFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(b); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(dst, buf.Bytes(), 0o644)
}
