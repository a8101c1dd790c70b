// Package safefile creates, replaces, reads and removes the files portmapd
// keeps in directories, relative to an open descriptor of the directory
// and never following a symbolic link, so that a user who may also write
// the directory (rpcbind's _rpc in /run/rpcbind) cannot turn root's writes
// to another file. A directory is opened once, checked (its owner and who
// else may write it) and then used only through its descriptor:
//
//   - a file is created under a fresh random name with O_EXCL|O_NOFOLLOW,
//     given its owner with fchown on the open descriptor, synced, and
//     renamed to its final name;
//   - a file is read with O_NOFOLLOW|O_NONBLOCK and used only if fstat
//     says it is a regular file no larger than the caller's bound, so a
//     FIFO never blocks and a planted device is never read;
//   - names are removed and renamed with unlinkat and renameat.
package safefile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Errors a Dir's methods wrap, to be told apart with errors.Is.
var (
	// ErrSymlink reports a symbolic link where a file or directory was
	// expected.
	ErrSymlink = errors.New("is a symbolic link")
	// ErrNotRegular reports a FIFO, device, socket or directory where a
	// regular file was expected.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge reports a file larger than its reader accepts.
	ErrTooLarge = errors.New("larger than allowed")
	// ErrInUse reports a socket that something still answers on.
	ErrInUse = errors.New("in use: a running process answers on it")
)

// An UntrustedError says why a directory is not used.
type UntrustedError struct {
	Path   string
	Reason string
}

func (e *UntrustedError) Error() string { return e.Path + ": " + e.Reason }

// Policy says whose directory may be used.
type Policy struct {
	// Private requires the directory to belong to the effective uid, and
	// makes it owner-only (0700) when it is not.
	Private bool
	// Owners are the uids that may own a directory that is not Private,
	// besides the effective uid and root.
	Owners []uint32
	// Groups are the gids whose write permission on a directory that is
	// not Private is accepted, besides the effective gid and root's.
	// Write permission for everyone is never accepted.
	Groups []uint32
}

// A Dir is an open directory. Its methods are safe for concurrent use;
// Close it when done.
type Dir struct {
	fd   int
	path string
	uid  uint32
	gid  uint32
	perm os.FileMode
}

// OpenDir opens the directory at path and checks it against p. The last
// component of path must not be a symbolic link (earlier ones may, like
// /var/run → /run). It does not create the directory.
func OpenDir(path string, p Policy) (*Dir, error) {
	pfd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		target, _ := os.Readlink(path)
		return nil, &UntrustedError{path, fmt.Sprintf("%v (to %s); give the directory itself", ErrSymlink, target)}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, &UntrustedError{path, "not a directory"}
	}
	if reason := p.refuse(&st); reason != "" {
		return nil, &UntrustedError{path, reason}
	}
	if p.Private && st.Mode&0o777 != 0o700 {
		// The descriptor is the checked directory; its /proc name
		// reaches that inode whatever happens to path meanwhile.
		if err := os.Chmod("/proc/self/fd/"+strconv.Itoa(pfd), 0o700); err != nil {
			return nil, fmt.Errorf("make %s owner-only: %w", path, err)
		}
	}
	fd, err := unix.Openat(pfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return &Dir{fd: fd, path: path, uid: st.Uid, gid: st.Gid, perm: os.FileMode(st.Mode & 0o777)}, nil
}

// refuse says what is wrong with a directory of status st, or "".
func (p Policy) refuse(st *unix.Stat_t) string {
	euid, egid := uint32(os.Geteuid()), uint32(os.Getegid())
	perm := st.Mode & 0o7777
	if p.Private {
		if st.Uid != euid {
			return fmt.Sprintf("owned by uid %d, not by this process's uid %d", st.Uid, euid)
		}
		return ""
	}
	if st.Uid != euid && st.Uid != 0 && !slices.Contains(p.Owners, st.Uid) {
		return fmt.Sprintf("owned by uid %d, which is neither this process's uid %d nor root", st.Uid, euid)
	}
	if perm&0o002 != 0 {
		return fmt.Sprintf("mode %04o lets every user write it", perm)
	}
	if perm&0o020 != 0 && st.Gid != egid && st.Gid != 0 && !slices.Contains(p.Groups, st.Gid) {
		return fmt.Sprintf("mode %04o lets group %d write it", perm, st.Gid)
	}
	return ""
}

// MkdirAll creates the directory at path and its parents, as os.MkdirAll
// does, and, when it created the last one itself and chown is true, gives
// it to uid:gid through a descriptor opened without following links.
// The caller opens it with OpenDir afterwards, which checks it.
func MkdirAll(path string, perm os.FileMode, chown bool, uid, gid int) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	err := os.Mkdir(path, perm)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil || !chown {
		return err
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return &fs.PathError{Op: "chown", Path: path, Err: err}
	}
	return nil
}

// Path is the directory's path as opened.
func (d *Dir) Path() string { return d.path }

// Owner returns the directory's owner as it was when opened.
func (d *Dir) Owner() (uid, gid int) { return int(d.uid), int(d.gid) }

// FileOwner returns the uid that owns the file fi describes (as Open and
// ReadFile return it); false when fi holds no status of this system's.
func FileOwner(fi fs.FileInfo) (uid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

// Perm returns the directory's permission bits as they were when opened,
// before a Private directory was made owner-only.
func (d *Dir) Perm() os.FileMode { return d.perm }

// Close closes the directory.
func (d *Dir) Close() error { return unix.Close(d.fd) }

// Flock takes an flock on the directory itself (how with
// unix.LOCK_EX|unix.LOCK_NB and the like); it lasts until Close.
func (d *Dir) Flock(how int) error {
	if err := unix.Flock(d.fd, how); err != nil {
		return &fs.PathError{Op: "flock", Path: d.path, Err: err}
	}
	return nil
}

// name checks that name is one component of a path.
func (d *Dir) name(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return &fs.PathError{Op: "open", Path: filepath.Join(d.path, name), Err: fs.ErrInvalid}
	}
	return nil
}

func (d *Dir) join(name string) string { return filepath.Join(d.path, name) }

// OpenFile opens name with flag (os.O_RDONLY, os.O_RDWR|os.O_CREATE, ...)
// and returns it only if it is a regular file: never through a symbolic
// link, never blocking on a FIFO, never as a controlling terminal.
func (d *Dir) OpenFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	if err := d.name(name); err != nil {
		return nil, err
	}
	path := d.join(name)
	fd, err := unix.Openat(d.fd, name, flag|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, uint32(perm.Perm()))
	if errors.Is(err, unix.ELOOP) {
		return nil, &fs.PathError{Op: "open", Path: path, Err: ErrSymlink}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w (%s)", ErrNotRegular, kind(st.Mode))}
	}
	// Blocking again, so that os.File reads a regular file as usual.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// kind names the file type in mode.
func kind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFDIR:
		return "a directory"
	}
	return "mode " + strconv.FormatUint(uint64(mode), 8)
}

// Open opens the regular file name for reading and returns it with its
// status; a file larger than maxSize bytes is refused with ErrTooLarge.
func (d *Dir) Open(name string, maxSize int64) (*os.File, fs.FileInfo, error) {
	f, err := d.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if fi.Size() > maxSize {
		f.Close()
		return nil, nil, &fs.PathError{Op: "open", Path: f.Name(), Err: fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, fi.Size(), maxSize)}
	}
	return f, fi, nil
}

// ReadFile reads the regular file name whole, if it holds at most
// maxSize bytes, and returns its contents with its status.
func (d *Dir) ReadFile(name string, maxSize int64) ([]byte, fs.FileInfo, error) {
	f, fi, err := d.Open(name, maxSize)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return nil, nil, err
	}
	if int64(len(b)) > maxSize {
		return nil, nil, &fs.PathError{Op: "read", Path: f.Name(), Err: fmt.Errorf("%w: grew past %d bytes", ErrTooLarge, maxSize)}
	}
	return b, fi, nil
}

// A NewFile is a file being written under a temporary name in its
// directory; it appears under its own name only when committed.
type NewFile struct {
	*os.File
	dir       *Dir
	tmp, name string
	done      bool
}

// tmpInfix joins a file's name and the random part of its temporary name.
const tmpInfix = ".tmp-"

// IsTemp reports whether name is the temporary name of a NewFile, left by
// a writer that stopped before committing it.
func IsTemp(name string) bool { return strings.Contains(name, tmpInfix) }

// Create starts a new file that will replace name, mode perm whatever
// the umask. It is created under a fresh random name, exclusively and
// never through a link, so nothing already in the directory is written.
func (d *Dir) Create(name string, perm os.FileMode) (*NewFile, error) {
	if err := d.name(name); err != nil {
		return nil, err
	}
	var rnd [8]byte
	for range 8 {
		if _, err := rand.Read(rnd[:]); err != nil {
			return nil, err
		}
		tmp := name + tmpInfix + hex.EncodeToString(rnd[:])
		fd, err := unix.Openat(d.fd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "create", Path: d.join(tmp), Err: err}
		}
		if err := unix.Fchmod(fd, uint32(perm.Perm())); err != nil {
			unix.Close(fd)
			_ = unix.Unlinkat(d.fd, tmp, 0)
			return nil, &fs.PathError{Op: "chmod", Path: d.join(tmp), Err: err}
		}
		return &NewFile{File: os.NewFile(uintptr(fd), d.join(tmp)), dir: d, tmp: tmp, name: name}, nil
	}
	return nil, &fs.PathError{Op: "create", Path: d.join(name), Err: errors.New("no free temporary name")}
}

// Commit syncs the file and renames it to its name, replacing what was
// there, then syncs the directory. The file stays open.
func (f *NewFile) Commit() error {
	if err := f.Sync(); err != nil {
		return err
	}
	if err := unix.Renameat(f.dir.fd, f.tmp, f.dir.fd, f.name); err != nil {
		return &fs.PathError{Op: "rename", Path: f.dir.join(f.tmp), Err: err}
	}
	f.done = true
	return f.dir.Sync()
}

// Abort closes a file that was not committed and removes it. It does
// nothing to a committed one.
func (f *NewFile) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.Close()
	_ = unix.Unlinkat(f.dir.fd, f.tmp, 0)
}

// WriteFile replaces name with data, mode perm, owned by uid:gid (-1
// keeps the creator's), so that a reader sees the old file or the new
// one, never a part.
func (d *Dir) WriteFile(name string, data []byte, perm os.FileMode, uid, gid int) error {
	f, err := d.Create(name, perm)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if uid != -1 || gid != -1 {
		if err := f.Chown(uid, gid); err != nil {
			return err
		}
	}
	if err := f.Commit(); err != nil {
		return err
	}
	return f.Close()
}

// Remove removes name, whatever it is but a directory, without following
// it if it is a link.
func (d *Dir) Remove(name string) error {
	if err := d.name(name); err != nil {
		return err
	}
	if err := unix.Unlinkat(d.fd, name, 0); err != nil {
		return &fs.PathError{Op: "remove", Path: d.join(name), Err: err}
	}
	return nil
}

// RenameNoReplace renames oldname to newname, failing with an error
// matching fs.ErrExist if newname exists.
func (d *Dir) RenameNoReplace(oldname, newname string) error {
	if err := d.name(oldname); err != nil {
		return err
	}
	if err := d.name(newname); err != nil {
		return err
	}
	err := unix.Renameat2(d.fd, oldname, d.fd, newname, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// A file system without RENAME_NOREPLACE: link and unlink
		// fail the same way on an existing name.
		err = unix.Linkat(d.fd, oldname, d.fd, newname, 0)
		if err == nil {
			err = unix.Unlinkat(d.fd, oldname, 0)
		}
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: d.join(oldname), New: d.join(newname), Err: err}
	}
	return nil
}

// Lstat returns the status of name itself, not of what a link points to.
func (d *Dir) Lstat(name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := d.name(name); err != nil {
		return st, err
	}
	if err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return st, &fs.PathError{Op: "lstat", Path: d.join(name), Err: err}
	}
	return st, nil
}

// Names lists the directory's entries.
func (d *Dir) Names() ([]string, error) {
	fd, err := unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: d.path, Err: err}
	}
	f := os.NewFile(uintptr(fd), d.path)
	defer f.Close()
	return f.Readdirnames(-1)
}

// Sync makes the directory's entries durable.
func (d *Dir) Sync() error {
	if err := unix.Fsync(d.fd); err != nil && !errors.Is(err, unix.EINVAL) {
		return &fs.PathError{Op: "sync", Path: d.path, Err: err}
	}
	return nil
}

// staleProbeTimeout bounds the connect that tells a live socket from one
// left by a process that died.
const staleProbeTimeout = 2 * time.Second

// ListenUnix listens on an AF_UNIX stream socket called name in the
// directory, mode perm whatever the umask. A socket file already there is
// replaced only when connecting to it is refused, which means nobody
// listens on it any more; one that answers is left alone and reported
// with ErrInUse, and anything that is not a socket is never removed.
// The socket is unlinked when the listener is closed.
func (d *Dir) ListenUnix(name string, perm os.FileMode) (*net.UnixListener, error) {
	if err := d.name(name); err != nil {
		return nil, err
	}
	path := d.join(name)
	st, err := d.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	case st.Mode&unix.S_IFMT != unix.S_IFSOCK:
		return nil, &fs.PathError{Op: "listen", Path: path, Err: fmt.Errorf("exists and is %s, not a socket; remove it", kind(st.Mode))}
	default:
		c, err := net.DialTimeout("unix", path, staleProbeTimeout)
		switch {
		case err == nil:
			c.Close()
			return nil, &fs.PathError{Op: "listen", Path: path, Err: ErrInUse}
		case errors.Is(err, syscall.ECONNREFUSED):
			if err := d.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
		case errors.Is(err, fs.ErrNotExist):
		default:
			return nil, &fs.PathError{Op: "listen", Path: path, Err: fmt.Errorf("cannot tell whether the socket there is in use, so it is left alone: %w", err)}
		}
	}
	// The path reaches this directory only as long as nobody else may
	// rename its parents, which opening it did not check; the socket's
	// mode is then set through the directory's descriptor.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	if err := unix.Fchmodat(d.fd, name, uint32(perm.Perm()), 0); err != nil {
		ln.Close()
		return nil, &fs.PathError{Op: "chmod", Path: path, Err: err}
	}
	return ln, nil
}

// Chown gives the directory itself to uid:gid.
func (d *Dir) Chown(uid, gid int) error {
	if err := unix.Fchown(d.fd, uid, gid); err != nil {
		return &fs.PathError{Op: "chown", Path: d.path, Err: err}
	}
	return nil
}

// ChownFile gives name to uid:gid if it is a regular file with one link,
// owned by root or by the directory's owner (as it was when opened), and
// reports whether it did. The file is opened without following a link and
// checked and changed through that descriptor, so that whoever else may
// write the directory cannot have another file changed in its place; a
// second link would let them choose it.
func (d *Dir) ChownFile(name string, uid, gid int) (bool, error) {
	if err := d.name(name); err != nil {
		return false, err
	}
	fd, err := unix.Openat(d.fd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, &fs.PathError{Op: "open", Path: d.join(name), Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false, &fs.PathError{Op: "stat", Path: d.join(name), Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 || st.Uid != 0 && st.Uid != d.uid {
		return false, nil
	}
	if err := unix.Fchownat(fd, "", uid, gid, unix.AT_EMPTY_PATH); err != nil {
		return false, &fs.PathError{Op: "chown", Path: d.join(name), Err: err}
	}
	return true, nil
}

// Stat returns the directory's status.
func (d *Dir) Stat() (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return st, &fs.PathError{Op: "stat", Path: d.path, Err: err}
	}
	return st, nil
}

// FlockHolder returns the pid of the process holding an flock on the file
// of status st, as /proc/locks tells (0 and false when it does not, as
// for a holder in another pid namespace).
func FlockHolder(st *unix.Stat_t) (int, bool) {
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		return 0, false
	}
	// 1: FLOCK  ADVISORY  WRITE 4242 00:1a:5678 0 EOF
	id := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[1] != "FLOCK" || f[5] != id {
			continue
		}
		if pid, err := strconv.Atoi(f[4]); err == nil && pid > 0 {
			return pid, true
		}
	}
	return 0, false
}

// ListenUnix is Dir.ListenUnix on the socket at path, in its directory
// opened with the default Policy: only root or this process's user (or
// group) may write it.
func ListenUnix(path string, perm os.FileMode) (*net.UnixListener, error) {
	d, err := OpenDir(filepath.Dir(path), Policy{})
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	defer d.Close()
	return d.ListenUnix(filepath.Base(path), perm)
}
