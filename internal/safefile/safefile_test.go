package safefile

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func openTemp(t *testing.T, p Policy) (*Dir, string) {
	t.Helper()
	path := t.TempDir()
	d, err := OpenDir(path, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, path
}

func TestOpenDir(t *testing.T) {
	for _, tc := range []struct {
		name   string
		root   bool
		policy Policy
		setup  func(t *testing.T, dir string) string
		// refused is what the error says, "" for none.
		refused string
		// perm is the directory's mode afterwards.
		perm os.FileMode
	}{
		{name: "own", setup: chmod(0o755), perm: 0o755},
		{name: "a link to a directory", setup: func(t *testing.T, dir string) string {
			link := dir + "-link"
			if err := os.Symlink(dir, link); err != nil {
				t.Fatal(err)
			}
			return link
		}, refused: "is a symbolic link (to ", perm: 0o700},
		{name: "a file", setup: func(t *testing.T, dir string) string {
			f := filepath.Join(dir, "f")
			if err := os.WriteFile(f, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return f
		}, refused: "not a directory", perm: 0o700},
		{name: "world-writable", setup: chmod(0o777), refused: "mode 0777 lets every user write it", perm: 0o777},
		{name: "world-writable and sticky", setup: chmod(os.ModeSticky | 0o777), refused: "mode 1777 lets every user write it", perm: 0o777},
		{name: "private made owner-only", policy: Policy{Private: true}, setup: chmod(0o777), perm: 0o700},
		{name: "private unreadable made owner-only", policy: Policy{Private: true}, setup: chmod(0o300), perm: 0o700},
		{name: "another user's", root: true, setup: chown(12345, 12345), refused: "owned by uid 12345, which is neither", perm: 0o700},
		{name: "another user's, allowed", root: true, policy: Policy{Owners: []uint32{12345}}, setup: chown(12345, 12345), perm: 0o700},
		{name: "private, another user's", root: true, policy: Policy{Private: true}, setup: chown(12345, 12345), refused: "owned by uid 12345, not by this process's uid 0", perm: 0o700},
		{name: "writable by another group", root: true, setup: func(t *testing.T, dir string) string {
			chown(0, 12345)(t, dir)
			return chmod(0o770)(t, dir)
		}, refused: "mode 0770 lets group 12345 write it", perm: 0o770},
		{name: "writable by an allowed group", root: true, policy: Policy{Groups: []uint32{12345}}, setup: func(t *testing.T, dir string) string {
			chown(0, 12345)(t, dir)
			return chmod(0o770)(t, dir)
		}, perm: 0o770},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			if tc.root && os.Geteuid() != 0 {
				t.Skip("needs root to give the directory away")
			}
			dir := filepath.Join(t.TempDir(), "d")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			path := tc.setup(t, dir)
			d, err := OpenDir(path, tc.policy)
			var ue *UntrustedError
			switch {
			case tc.refused == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.refused != "" && (!errors.As(err, &ue) || !strings.Contains(err.Error(), tc.refused)):
				t.Fatalf("OpenDir: %v, want it refused saying %q", err, tc.refused)
			case err == nil:
				d.Close()
			}
			if fi, _ := os.Stat(dir); fi.Mode().Perm() != tc.perm {
				t.Errorf("mode afterwards %v, want %v", fi.Mode().Perm(), tc.perm)
			}
		})
	}
}

func chmod(perm os.FileMode) func(t *testing.T, dir string) string {
	return func(t *testing.T, dir string) string {
		t.Helper()
		if err := os.Chmod(dir, perm); err != nil {
			t.Fatal(err)
		}
		return dir
	}
}

func chown(uid, gid int) func(t *testing.T, dir string) string {
	return func(t *testing.T, dir string) string {
		t.Helper()
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		return dir
	}
}

// TestWriteFileReplacesLinks puts links where the file and every
// temporary name the old code used are written: the links are replaced,
// their target never written.
func TestWriteFileReplacesLinks(t *testing.T) {
	d, dir := openTemp(t, Policy{})
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"state", "state.tmp"} {
		if err := os.Symlink(victim, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.WriteFile("state", []byte("new"), 0o640, -1, -1); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "secret" {
		t.Errorf("victim now holds %q", b)
	}
	fi, err := os.Lstat(filepath.Join(dir, "state"))
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o640 {
		t.Fatalf("state: %v %v, want a regular file 0640", fi, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "state")); string(b) != "new" {
		t.Errorf("state holds %q", b)
	}
	names, err := d.Names()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if IsTemp(n) {
			t.Errorf("temporary file %s left behind", n)
		}
	}
}

func TestWriteFileOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files away")
	}
	d, dir := openTemp(t, Policy{})
	if err := d.WriteFile("f", []byte("x"), 0o600, 12345, 54321); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(dir, "f"))
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 12345 || st.Gid != 54321 {
		t.Errorf("owner %d:%d, want 12345:54321", st.Uid, st.Gid)
	}
}

// TestChownFile gives a directory's files to another user, as portmapd
// -s does with its state directory before it gives up root, and leaves
// alone what a user who may write the directory could have put there to
// have another file changed.
func TestChownFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files away")
	}
	const owner, other, to = 4321, 12345, 777
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the name
		want  bool
	}{
		{"root's file", func(t *testing.T, dir string) string { return file(t, dir, "f", 0) }, true},
		{"the directory owner's file", func(t *testing.T, dir string) string { return file(t, dir, "f", owner) }, true},
		{"another user's file", func(t *testing.T, dir string) string { return file(t, dir, "f", other) }, false},
		{"a link to root's file", func(t *testing.T, dir string) string {
			elsewhere := t.TempDir()
			target := filepath.Join(elsewhere, file(t, elsewhere, "target", 0))
			if err := os.Symlink(target, filepath.Join(dir, "l")); err != nil {
				t.Fatal(err)
			}
			return "l"
		}, false},
		{"a second name of root's file", func(t *testing.T, dir string) string {
			f := file(t, dir, "f", 0)
			if err := os.Link(filepath.Join(dir, f), filepath.Join(dir, "g")); err != nil {
				t.Fatal(err)
			}
			return "g"
		}, false},
		{"a FIFO", func(t *testing.T, dir string) string {
			if err := syscall.Mkfifo(filepath.Join(dir, "p"), 0o600); err != nil {
				t.Fatal(err)
			}
			return "p"
		}, false},
		{"a directory", func(t *testing.T, dir string) string {
			if err := os.Mkdir(filepath.Join(dir, "d"), 0o700); err != nil {
				t.Fatal(err)
			}
			return "d"
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			name := tc.setup(t, dir)
			chown(owner, owner)(t, dir)
			d, err := OpenDir(dir, Policy{Owners: []uint32{owner}})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			// Through a link, what counts is the file it names.
			var before syscall.Stat_t
			if err := syscall.Stat(filepath.Join(dir, name), &before); err != nil {
				t.Fatal(err)
			}
			done, err := d.ChownFile(name, to, to)
			if err != nil || done != tc.want {
				t.Fatalf("ChownFile = %v, %v; want %v", done, err, tc.want)
			}
			var after syscall.Stat_t
			if err := syscall.Stat(filepath.Join(dir, name), &after); err != nil {
				t.Fatal(err)
			}
			if changed := after.Uid == to; changed != tc.want || !tc.want && after.Uid != before.Uid {
				t.Errorf("owner %d (was %d), want changed %v", after.Uid, before.Uid, tc.want)
			}
		})
	}
}

// file makes the file dir/name owned by uid and returns name.
func file(t *testing.T, dir, name string, uid int) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestNewFileAbort(t *testing.T) {
	d, dir := openTemp(t, Policy{})
	f, err := d.Create("f", 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Abort()
	if des, _ := os.ReadDir(dir); len(des) != 0 {
		t.Errorf("left %v", des)
	}
}

// TestOpen opens each kind of thing that can sit where a state file is
// expected; only a regular file within the bound is opened, and a FIFO
// does not block.
func TestOpen(t *testing.T) {
	d, dir := openTemp(t, Policy{})
	if err := os.WriteFile(filepath.Join(dir, "file"), []byte("12345"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "file"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		max  int64
		err  error
	}{
		{"file", 5, nil},
		{"file", 4, ErrTooLarge},
		{"link", 5, ErrSymlink},
		{"fifo", 5, ErrNotRegular},
		{"dir", 5, ErrNotRegular},
		{"missing", 5, fs.ErrNotExist},
		{"../file", 5, fs.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				b, _, err := d.ReadFile(tc.name, tc.max)
				if err == nil && string(b) != "12345" {
					err = errors.New("read " + string(b))
				}
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, tc.err) && (tc.err != nil || err != nil) {
					t.Errorf("ReadFile(%q, %d): %v, want %v", tc.name, tc.max, err, tc.err)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("ReadFile(%q) blocked", tc.name)
			}
		})
	}
}

func TestRenameNoReplace(t *testing.T) {
	d, dir := openTemp(t, Policy{})
	for _, n := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.RenameNoReplace("a", "b"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("rename onto an existing name: %v, want it to exist", err)
	}
	if err := d.RenameNoReplace("a", "c"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "c")); string(b) != "a" {
		t.Errorf("c holds %q", b)
	}
}

// TestListenUnix checks that a socket still answered on is never taken
// over or removed, that one nobody listens on any more is replaced, and
// that anything else at the name is left alone.
func TestListenUnix(t *testing.T) {
	d, dir := openTemp(t, Policy{})
	path := filepath.Join(dir, "s")

	live, err := d.ListenUnix("s", 0o666)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o666 {
		t.Errorf("socket mode %v, want 0666", fi.Mode().Perm())
	}
	if _, err := d.ListenUnix("s", 0o666); !errors.Is(err, ErrInUse) {
		t.Errorf("second listener: %v, want ErrInUse", err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the first listener's socket is gone: %v", err)
	}
	c.Close()

	// A listener that died without removing its socket.
	live.SetUnlinkOnClose(false)
	live.Close()
	again, err := d.ListenUnix("s", 0o600)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	again.Close()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left after Close: %v", err)
	}

	if err := os.WriteFile(path, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ListenUnix("s", 0o666); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "data" {
		t.Errorf("the regular file was replaced")
	}
}

// handMadeInfo is a FileInfo with no system status, as a test or an
// in-memory file system makes.
type handMadeInfo struct{ fs.FileInfo }

func (handMadeInfo) Sys() any { return nil }

// TestFileOwner: the owner of a file read through a Dir, one given away,
// and none for a FileInfo without a status.
func TestFileOwner(t *testing.T) {
	d, _ := openTemp(t, Policy{})
	for _, tc := range []struct {
		name   string
		chown  int // -1: keep this process's
		wantOK bool
	}{
		{"own", -1, true},
		{"given away", 12345, true},
		{"hand made", -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := os.Geteuid()
			if tc.chown >= 0 {
				if os.Geteuid() != 0 {
					t.Skip("needs root to give files away")
				}
				want = tc.chown
			}
			if err := d.WriteFile(tc.name, []byte("x"), 0o600, tc.chown, -1); err != nil {
				t.Fatal(err)
			}
			_, fi, err := d.ReadFile(tc.name, 1)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.wantOK {
				fi = handMadeInfo{fi}
			}
			uid, ok := FileOwner(fi)
			if ok != tc.wantOK || ok && uid != want {
				t.Errorf("FileOwner = %d, %v; want %d, %v", uid, ok, want, tc.wantOK)
			}
		})
	}
}
