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
	"syscall"

	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/xdr"
	"golang.org/x/sys/unix"
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

// Read reads the warm-start files in dir and returns their registrations
// as entries in rpcbind's list order, the v3/v4 list first and then the
// v2 mappings it did not already hold (as wildcard tcp or udp entries).
// The portmapper's own entries (program 100000) are left out: the daemon
// registers its own. A missing file is no error. A damaged file gives the
// entries before the damage and an error saying what was wrong.
func Read(dir string) ([]registry.Entry, error) {
	var out []registry.Entry
	var errs []error
	seen := map[[3]string]bool{}
	b, err := os.ReadFile(filepath.Join(dir, RpcbindFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	if err == nil {
		rs, err := decodeRpcbList(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", filepath.Join(dir, RpcbindFile), err))
		}
		for _, r := range rs {
			seen[[3]string{strconv.FormatUint(uint64(r.Prog), 10), strconv.FormatUint(uint64(r.Vers), 10), lower(r.Netid)}] = true
			if r.Prog == xdr.PmapProg {
				continue
			}
			out = append(out, registry.Entry{Prog: r.Prog, Vers: r.Vers, Netid: r.Netid, Addr: r.Addr, Owner: r.Owner})
		}
	}
	b, err = os.ReadFile(filepath.Join(dir, PortmapFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	if err == nil {
		ms, err := decodePmapList(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", filepath.Join(dir, PortmapFile), err))
		}
		for _, m := range ms {
			var netid string
			switch m.Prot {
			case xdr.ProtoTCP:
				netid = registry.NetidTCP
			case xdr.ProtoUDP:
				netid = registry.NetidUDP
			default:
				continue
			}
			k := [3]string{strconv.FormatUint(uint64(m.Prog), 10), strconv.FormatUint(uint64(m.Vers), 10), netid}
			if m.Prog == xdr.PmapProg || seen[k] || m.Port > 0xffff {
				continue
			}
			seen[k] = true
			addr := "0.0.0.0." + strconv.Itoa(int(m.Port>>8)) + "." + strconv.Itoa(int(m.Port&0xff))
			out = append(out, registry.Entry{Prog: m.Prog, Vers: m.Vers, Netid: netid, Addr: addr, Owner: registry.OwnerUnknown})
		}
	}
	return out, errors.Join(errs...)
}

// Remove deletes the warm-start files, as rpcbind does once it has read
// them, so that a later start does not restore them again. A missing file
// is no error.
func Remove(dir string) error {
	var errs []error
	for _, name := range []string{RpcbindFile, PortmapFile} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Write writes entries (in DUMP order, the portmapper's own included, as
// rpcbind writes its whole list) and their v2 view to the warm-start files
// in dir, mode 0600. Each file is written to a temporary name and renamed,
// so a reader never sees half of one.
//
// rpcbind reads its files after it has become its unprivileged user (_rpc
// on Debian), and silently ignores files it cannot open. So the files are
// given to dir's owner, and a dir that Write creates is made as rpcbind
// makes it: mode 0770, owned by the rpc user when there is one.
func Write(dir string, entries []registry.Entry) error {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o770); err != nil {
			return fmt.Errorf("warmstart: %w", err)
		}
		if uid, gid, ok := rpcUser(); ok && os.Geteuid() == 0 {
			if err := os.Chown(dir, uid, gid); err != nil {
				return fmt.Errorf("warmstart: %w", err)
			}
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("warmstart: %w", err)
	}
	owner := func(path string) error { return nil }
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() && os.Geteuid() == 0 {
		owner = func(path string) error { return os.Chown(path, int(st.Uid), int(st.Gid)) }
	}
	var e xdr.Encoder
	for _, en := range entries {
		e.Bool(true)
		r := xdr.RPCB{Prog: en.Prog, Vers: en.Vers, Netid: en.Netid, Addr: en.Addr, Owner: en.Owner}
		r.Encode(&e)
	}
	e.Bool(false)
	if err := writeFile(filepath.Join(dir, RpcbindFile), e.Bytes(), owner); err != nil {
		return err
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
	return writeFile(filepath.Join(dir, PortmapFile), p.Bytes(), owner)
}

// rpcUser returns the user rpcbind runs as: _rpc (Debian) or rpc.
func rpcUser() (uid, gid int, ok bool) {
	for _, name := range []string{"_rpc", "rpc"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 == nil && err2 == nil {
			return uid, gid, true
		}
	}
	return 0, 0, false
}

// mapping is the v2 view of a tcp or udp entry.
func mapping(e registry.Entry) (xdr.Mapping, bool) {
	var prot uint32
	switch lower(e.Netid) {
	case registry.NetidTCP:
		prot = xdr.ProtoTCP
	case registry.NetidUDP:
		prot = xdr.ProtoUDP
	default:
		return xdr.Mapping{}, false
	}
	port, ok := registry.UaddrPort(e.Addr)
	if !ok {
		return xdr.Mapping{}, false
	}
	return xdr.Mapping{Prog: e.Prog, Vers: e.Vers, Prot: prot, Port: uint32(port)}, true
}

func writeFile(path string, b []byte, owner func(string) error) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("warmstart: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = owner(tmp)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("warmstart: %w", err)
	}
	return nil
}

// decodeRpcbList decodes an rpcblist_ptr, keeping the entries before any
// damage.
func decodeRpcbList(b []byte) ([]xdr.RPCB, error) {
	d := xdr.NewDecoder(b)
	var out []xdr.RPCB
	for d.Bool() {
		var r xdr.RPCB
		r.Prog = d.Uint32()
		r.Vers = d.Uint32()
		r.Netid = d.String("netid", maxString)
		r.Addr = d.String("addr", maxString)
		r.Owner = d.String("owner", maxString)
		if d.Err() != nil {
			break
		}
		out = append(out, r)
	}
	if err := d.Err(); err != nil {
		return out, fmt.Errorf("damaged after %d entries: %w", len(out), err)
	}
	return out, nil
}

// decodePmapList decodes a pmaplist_ptr, keeping the mappings before any
// damage.
func decodePmapList(b []byte) ([]xdr.Mapping, error) {
	d := xdr.NewDecoder(b)
	var out []xdr.Mapping
	for d.Bool() {
		var m xdr.Mapping
		m.Decode(d)
		if d.Err() != nil {
			break
		}
		out = append(out, m)
	}
	if err := d.Err(); err != nil {
		return out, fmt.Errorf("damaged after %d mappings: %w", len(out), err)
	}
	return out, nil
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
