// Package warmstart reads and writes rpcbind's warm-start files, so that a
// host can move from rpcbind to portmapd and back without restarting its
// RPC services. rpcbind -w writes them when it is stopped and reads (then
// removes) them when it starts:
//
//	rpcbind.xdr   xdr_rpcblist_ptr: the v3/v4 list, each rpcb
//	              {prog, vers, netid, addr, owner} behind a TRUE, then FALSE
//	portmap.xdr   xdr_pmaplist_ptr: the v2 list, each pmap
//	              {prog, vers, prot, port} behind a TRUE, then FALSE
//
// in $statedir, /run/rpcbind on current systems, mode 0600.
package warmstart

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/portmapd/portmapd/internal/safefile"
	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/xdr"
)

// File names in the state directory.
const (
	RpcbindFile = "rpcbind.xdr"
	PortmapFile = "portmap.xdr"
)

// DefaultDir is rpcbind's state directory.
const DefaultDir = "/run/rpcbind"

// rpcbind's limits on the strings of an rpcb (RPC_MAXDATASIZE bounds the
// whole anyway); generous, only to keep a damaged file from allocating
// without bound.
const maxString = 1024

// maxFileSize bounds a warm-start file: rpcbind's lists hold tens of
// entries, each under 3 KiB, so this is far above any real host.
const maxFileSize = 16 << 20

// Saved is what the warm-start files held.
type Saved struct {
	// Entries are the registrations in rpcbind's list order, the v3/v4
	// list first and then the v2 mappings it did not already hold (as
	// wildcard tcp or udp entries). The portmapper's own entries
	// (program 100000) are left out: the daemon registers its own.
	Entries []registry.Entry
	// Written is when the newer file was last modified, zero when there
	// was none. rpcbind records no time inside them, so the files'
	// modification time is all there is.
	Written time.Time
}

// Read reads the warm-start files in dir. A missing file or directory is
// no error. A damaged file gives the entries before the damage and an
// error saying what was wrong. A file is read only if it is a regular
// file owned by root, this process's user or the directory's owner, in a
// directory dirPolicy accepts, and never through a link.
func Read(dir string) (Saved, error) {
	d, err := safefile.OpenDir(dir, dirPolicy())
	if errors.Is(err, fs.ErrNotExist) {
		return Saved{}, nil
	}
	if err != nil {
		return Saved{}, fmt.Errorf("warmstart: %w", err)
	}
	defer d.Close()
	var sv Saved
	var errs []error
	read := func(name string) []byte {
		b, fi, err := d.ReadFile(name, maxFileSize)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err == nil {
			err = foreignOwner(d, fi)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("warmstart: %w", err))
			return nil
		}
		if fi.ModTime().After(sv.Written) {
			sv.Written = fi.ModTime()
		}
		return b
	}
	seen := map[[3]string]bool{}
	if b := read(RpcbindFile); b != nil {
		rs, err := decodeRpcbList(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", filepath.Join(dir, RpcbindFile), err))
		}
		for _, r := range rs {
			id := netid.ID(r.Netid)
			seen[[3]string{strconv.FormatUint(uint64(r.Prog), 10), strconv.FormatUint(uint64(r.Vers), 10), string(id.Lower())}] = true
			if r.Prog == xdr.PmapProg {
				continue
			}
			sv.Entries = append(sv.Entries, registry.Entry{Prog: r.Prog, Vers: r.Vers, Netid: id, Addr: r.Addr, Owner: r.Owner})
		}
	}
	if b := read(PortmapFile); b != nil {
		ms, err := decodePmapList(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", filepath.Join(dir, PortmapFile), err))
		}
		for _, m := range ms {
			id, ok := netid.FromProto(m.Prot)
			if !ok {
				continue
			}
			k := [3]string{strconv.FormatUint(uint64(m.Prog), 10), strconv.FormatUint(uint64(m.Vers), 10), string(id)}
			if m.Prog == xdr.PmapProg || seen[k] || m.Port > 0xffff {
				continue
			}
			seen[k] = true
			addr := netid.WildcardUaddr(id, uint16(m.Port))
			sv.Entries = append(sv.Entries, registry.Entry{Prog: m.Prog, Vers: m.Vers, Netid: id, Addr: addr, Owner: registry.OwnerUnknown})
		}
	}
	return sv, errors.Join(errs...)
}

// foreignOwner refuses a file that neither root, this process's user nor
// the directory's owner (rpcbind's user) wrote: in rpcbind's group-
// writable directory, another member of its group could have put it
// there.
func foreignOwner(d *safefile.Dir, fi fs.FileInfo) error {
	uid, ok := safefile.FileOwner(fi)
	if !ok {
		return nil
	}
	dirUID, _ := d.Owner()
	if uid == 0 || uid == os.Geteuid() || uid == dirUID {
		return nil
	}
	return fmt.Errorf("%s: owned by uid %d, neither root, this process's user nor the directory's owner (uid %d); not read", filepath.Join(d.Path(), fi.Name()), uid, dirUID)
}

// dirPolicy accepts the directories rpcbind makes (0770, owned by its
// user and that user's group) and root's or this process's own.
func dirPolicy() safefile.Policy {
	var p safefile.Policy
	if uid, gid, ok := rpcUser(); ok {
		p.Owners = []uint32{uint32(uid)}
		p.Groups = []uint32{uint32(gid)}
	}
	return p
}

// Remove deletes the warm-start files, as rpcbind does once it has read
// them, so that a later start does not restore them again. A missing file
// is no error.
func Remove(dir string) error {
	d, err := safefile.OpenDir(dir, dirPolicy())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("warmstart: %w", err)
	}
	defer d.Close()
	var errs []error
	for _, name := range []string{RpcbindFile, PortmapFile} {
		if err := d.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("warmstart: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Write writes entries (in DUMP order, the portmapper's own included, as
// rpcbind writes its whole list) and their v2 view to the warm-start files
// in dir, mode 0600. Each file is written under a fresh random name and
// renamed (see package safefile), so a reader never sees half of one and
// nothing already in dir is written through.
//
// rpcbind reads its files after it has become its unprivileged user (_rpc
// on Debian), and silently ignores files it cannot open. So the files are
// given to dir's owner, and a dir that Write creates is made as rpcbind
// makes it: mode 0770, owned by the rpc user when there is one.
func Write(dir string, entries []registry.Entry) error {
	uid, gid, ok := rpcUser()
	if err := safefile.MkdirAll(dir, 0o770, ok && os.Geteuid() == 0, uid, gid); err != nil {
		return fmt.Errorf("warmstart: %w", err)
	}
	d, err := safefile.OpenDir(dir, dirPolicy())
	if err != nil {
		return fmt.Errorf("warmstart: %w", err)
	}
	defer d.Close()
	fileUID, fileGID := -1, -1
	if dirUID, dirGID := d.Owner(); dirUID != os.Geteuid() && os.Geteuid() == 0 {
		fileUID, fileGID = dirUID, dirGID
	}
	var e xdr.Encoder
	for _, en := range entries {
		e.Bool(true)
		r := xdr.RPCB{Prog: en.Prog, Vers: en.Vers, Netid: string(en.Netid), Addr: en.Addr, Owner: en.Owner}
		r.Encode(&e)
	}
	e.Bool(false)
	if err := d.WriteFile(RpcbindFile, e.Bytes(), 0o600, fileUID, fileGID); err != nil {
		return fmt.Errorf("warmstart: %w", err)
	}
	var p xdr.Encoder
	for _, en := range entries {
		m, ok := mapping(en)
		if !ok {
			continue
		}
		p.Bool(true)
		m.Encode(&p)
	}
	p.Bool(false)
	if err := d.WriteFile(PortmapFile, p.Bytes(), 0o600, fileUID, fileGID); err != nil {
		return fmt.Errorf("warmstart: %w", err)
	}
	return nil
}

// RPCUser returns the user rpcbind runs as on this host, who owns its
// state directory: _rpc (Debian) or rpc (Fedora, SUSE); ok is false when
// there is neither.
func RPCUser() (name string, uid, gid int, ok bool) {
	for _, name := range []string{"_rpc", "rpc"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 == nil && err2 == nil {
			return name, uid, gid, true
		}
	}
	return "", 0, 0, false
}

// rpcUser returns the ids of RPCUser.
func rpcUser() (uid, gid int, ok bool) {
	_, uid, gid, ok = RPCUser()
	return uid, gid, ok
}

// mapping is the v2 view of a tcp or udp entry.
func mapping(e registry.Entry) (xdr.Mapping, bool) {
	prot, ok := e.Netid.Proto()
	if !ok {
		return xdr.Mapping{}, false
	}
	port, ok := netid.UaddrPort(e.Addr)
	if !ok {
		return xdr.Mapping{}, false
	}
	return xdr.Mapping{Prog: e.Prog, Vers: e.Vers, Prot: prot, Port: uint32(port)}, true
}

// decodeRpcbList decodes an rpcblist_ptr, keeping the entries before any
// damage.
func decodeRpcbList(b []byte) ([]xdr.RPCB, error) {
	return decodeList(b, "entries", func(r *xdr.RPCB, d *xdr.Decoder) {
		r.Prog = d.Uint32()
		r.Vers = d.Uint32()
		r.Netid = d.String("netid", maxString)
		r.Addr = d.String("addr", maxString)
		r.Owner = d.String("owner", maxString)
	})
}

// decodePmapList decodes a pmaplist_ptr, keeping the mappings before any
// damage.
func decodePmapList(b []byte) ([]xdr.Mapping, error) {
	return decodeList(b, "mappings", (*xdr.Mapping).Decode)
}

// decodeList decodes an XDR optional-data list of what, keeping the items
// before any damage, where xdr.DecodeList, for messages, keeps none: a
// file rpcbind left half written still says most of what it held.
func decodeList[T any](b []byte, what string, decode func(*T, *xdr.Decoder)) ([]T, error) {
	d := xdr.NewDecoder(b)
	var out []T
	for d.Bool() {
		var item T
		decode(&item, d)
		if d.Err() != nil {
			break
		}
		out = append(out, item)
	}
	if err := d.Err(); err != nil {
		return out, fmt.Errorf("damaged after %d %s: %w", len(out), what, err)
	}
	return out, nil
}
