package rpcbind

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/xdr"
)

// DefaultMaxStatEntries bounds each version's per-program statistics
// lists. rpcbind lets them grow with every program a caller asks about,
// which a stream of lookups for random programs turns into unbounded
// memory; past the bound new keys are not recorded.
const DefaultMaxStatEntries = 256

// Stats counts what rpcbind's GETSTAT reports, for versions 2, 3 and 4.
// The procedure, SET and UNSET counters are atomic; the per-program lists
// take a lock only on GETADDR, GETPORT and remote calls. The zero value is
// ready to use.
type Stats struct {
	// MaxEntries bounds each version's address and remote-call lists;
	// DefaultMaxStatEntries when 0.
	MaxEntries int

	vers [xdr.StatVersions]versionCounters
}

type versionCounters struct {
	info       [xdr.StatHighProc]atomic.Int32
	set, unset atomic.Int32

	mu   sync.Mutex
	addr []xdr.AddrStat // oldest first; rpcbind lists newest first
	// addrAt finds a key's place in addr, which keys never leave, so
	// that counting a lookup costs the same at 256 keys as at one.
	addrAt map[addrKey]int
	rmt    []xdr.RmtCallStat
}

// addrKey is what one row of the address lookup statistics counts.
type addrKey struct {
	prog, vers uint32
	netid      netid.ID
}

// statIndex maps a portmapper version to its slot, or -1.
func statIndex(vers uint32) int {
	if vers >= xdr.PmapVers && vers <= xdr.RpcbVers4 {
		return int(vers - xdr.PmapVers)
	}
	return -1
}

func highProc(vers uint32) uint32 {
	switch vers {
	case xdr.PmapVers:
		return xdr.PmapHighProc
	case xdr.RpcbVers:
		return xdr.RpcbHighProc3
	}
	return xdr.RpcbHighProc4
}

func (s *Stats) version(vers uint32) *versionCounters {
	i := statIndex(vers)
	if i < 0 {
		return nil
	}
	return &s.vers[i]
}

func (s *Stats) maxEntries() int {
	if s.MaxEntries > 0 {
		return s.MaxEntries
	}
	return DefaultMaxStatEntries
}

// Call counts a dispatched call of a portmapper procedure.
func (s *Stats) Call(vers, proc uint32) {
	if v := s.version(vers); v != nil && proc <= highProc(vers) {
		v.info[proc].Add(1)
	}
}

// Set counts a successful SET.
func (s *Stats) Set(vers uint32) {
	if v := s.version(vers); v != nil {
		v.set.Add(1)
	}
}

// Unset counts a successful UNSET.
func (s *Stats) Unset(vers uint32) {
	if v := s.version(vers); v != nil {
		v.unset.Add(1)
	}
}

// Addr counts an address lookup of prog, vers on a served netid; an
// empty answer is a failure.
func (s *Stats) Addr(statVers, prog, vers uint32, id netid.ID, answer string) {
	v := s.version(statVers)
	if v == nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	k := addrKey{prog, vers, id}
	i, ok := v.addrAt[k]
	if !ok {
		if len(v.addr) >= s.maxEntries() {
			return
		}
		if v.addrAt == nil {
			v.addrAt = make(map[addrKey]int)
		}
		v.addr = append(v.addr, xdr.AddrStat{Prog: prog, Vers: vers, Netid: string(id)})
		i = len(v.addr) - 1
		v.addrAt[k] = i
	}
	if answer == "" {
		v.addr[i].Failure++
	} else {
		v.addr[i].Success++
	}
}

// RmtCall counts a remote call to prog, vers, proc on a served netid; ok
// says the exact version was registered. As rpcbind's rpcbs_rmtcall
// does, the first call of a key counts as indirect whatever its
// procedure (the row starts at one), and later ones only for INDIRECT:
// rpcinfo -m shows that count for version 4.
func (s *Stats) RmtCall(statVers uint32, indirect bool, prog, vers, proc uint32, id netid.ID, ok bool) {
	v := s.version(statVers)
	if v == nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	i := slices.IndexFunc(v.rmt, func(r xdr.RmtCallStat) bool {
		return r.Prog == prog && r.Vers == vers && r.Proc == proc && r.Netid == string(id)
	})
	if i < 0 {
		if len(v.rmt) >= s.maxEntries() {
			return
		}
		v.rmt = append(v.rmt, xdr.RmtCallStat{Prog: prog, Vers: vers, Proc: proc, Netid: string(id), Indirect: 1})
		i = len(v.rmt) - 1
	} else if indirect {
		v.rmt[i].Indirect++
	}
	if ok {
		v.rmt[i].Success++
	} else {
		v.rmt[i].Failure++
	}
}

// Snapshot returns rpcb_stat_byvers: the counters of versions 2, 3 and 4,
// lists newest first as rpcbind keeps them.
func (s *Stats) Snapshot() [xdr.StatVersions]xdr.VersionStat {
	var out [xdr.StatVersions]xdr.VersionStat
	for i := range s.vers {
		v := &s.vers[i]
		for p := range v.info {
			out[i].Info[p] = v.info[p].Load()
		}
		out[i].SetInfo = v.set.Load()
		out[i].UnsetInfo = v.unset.Load()
		v.mu.Lock()
		out[i].AddrInfo = slices.Clone(v.addr)
		out[i].RmtInfo = slices.Clone(v.rmt)
		v.mu.Unlock()
		slices.Reverse(out[i].AddrInfo)
		slices.Reverse(out[i].RmtInfo)
	}
	return out
}
