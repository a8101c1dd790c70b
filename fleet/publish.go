package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/status"

	"github.com/portmapd/portmapd/registry"
)

// Timing of the mirror.
const (
	// retryFirst and retryMax bound the pause between attempts while
	// etcd does not answer: it doubles from the first to the most.
	retryFirst = 250 * time.Millisecond
	retryMax   = 5 * time.Second
	// addrCheckEvery is how often the host's addresses are compared
	// with those it published.
	addrCheckEvery = 5 * time.Second
)

// A publisher is one run of the mirror: the lease it holds, and how far
// etcd follows the registry.
type publisher struct {
	*Mirror
	cli *clientv3.Client
	// lease is the lease every key is written with, 0 when none is
	// held; lost is closed when its keep-alive ends, and stopKeepAlive
	// ends it.
	lease         clientv3.LeaseID
	lost          <-chan struct{}
	stopKeepAlive context.CancelFunc
	// complete is set when etcd holds the whole host under lease, as of
	// synced, the index of the registry's last change that it holds.
	complete bool
	synced   uint64
	// hostValue is the host record published, and hostStale is set when
	// the addresses no longer match it.
	hostValue string
	hostStale bool
	// down is when etcd stopped answering; zero while it answers.
	// downFor is the failure last logged since.
	down    time.Time
	downFor failure
	// retry is the pause before the next attempt, while etcd fails.
	retry time.Duration
}

// connect makes the client, which logs in to etcd when a user is
// configured (clientv3.New asks etcd for a token): a login that etcd
// refuses, or does not answer, is retried as a write is. p.cli is nil
// when ctx ends first, or on an error that no retry mends.
func (p *publisher) connect(ctx context.Context) error {
	for {
		cli, err := clientv3.New(p.clientConfig(ctx))
		switch {
		case err == nil:
			p.cli = cli
			return nil
		case ctx.Err() != nil:
			return nil
		case failureOf(err) == misconfigured:
			return fmt.Errorf("fleet: %w", err)
		}
		p.failed(err)
		if !p.pause(ctx) {
			return nil
		}
	}
}

// publish mirrors the registry to etcd through p.cli until ctx is done.
func (p *publisher) publish(ctx context.Context) {
	defer p.dropLease()
	addrs := time.NewTicker(addrCheckEvery)
	defer addrs.Stop()
	for ctx.Err() == nil {
		var err error
		if !p.complete {
			err = p.resync(ctx)
		} else {
			err = p.catchUp(ctx)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.failed(err)
			p.pause(ctx)
			continue
		}
		p.recovered()
		index, changed := p.reg.Watch()
		if index > p.synced || p.hostStale {
			continue
		}
		select {
		case <-changed:
		case <-p.lost:
			p.log.Warn("etcd lease lost; publishing the host's entries anew", "lease", strconv.FormatInt(int64(p.lease), 16))
			p.dropLease()
		case <-addrs.C:
			p.hostStale = p.hostRecordValue() != p.hostValue
		case <-ctx.Done():
		}
	}
}

// pause waits before the next attempt, twice as long as before while
// etcd fails, from retryFirst to retryMax; a lease lost meanwhile is
// dropped. It is false when ctx ends first.
func (p *publisher) pause(ctx context.Context) bool {
	p.retry = min(max(2*p.retry, retryFirst), retryMax)
	select {
	case <-time.After(p.retry):
	case <-p.lost:
		p.dropLease()
	case <-ctx.Done():
		return false
	}
	return true
}

// A failure is a kind of error etcd gives the mirror: each is logged
// once while it lasts, and the next kind once again.
type failure int

const (
	// unreachable: etcd did not answer.
	unreachable failure = iota + 1
	// loginWanted: etcd's auth is on, and no user is configured.
	loginWanted
	// loginRefused: etcd refused the user's login (unknown user, wrong
	// password).
	loginRefused
	// accessDenied: the user's roles do not grant the keys.
	accessDenied
	// misconfigured: the client could not be made, which no retry
	// mends.
	misconfigured
)

// failureOf classifies err.
func failureOf(err error) failure {
	var etcdErr rpctypes.EtcdError
	switch {
	case errors.Is(err, rpctypes.ErrUserEmpty):
		return loginWanted
	case errors.Is(err, rpctypes.ErrAuthFailed), errors.Is(err, rpctypes.ErrInvalidAuthToken), errors.Is(err, rpctypes.ErrAuthOldRevision):
		return loginRefused
	case errors.Is(err, rpctypes.ErrPermissionDenied):
		return accessDenied
	case errors.As(err, &etcdErr), errors.Is(err, context.DeadlineExceeded):
		return unreachable
	}
	if _, ok := status.FromError(err); ok {
		return unreachable
	}
	return misconfigured
}

// failed says, once for each time etcd stops answering or starts
// refusing otherwise, what it does and what mends it, and forgets a
// lease that etcd no longer has.
func (p *publisher) failed(err error) {
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		p.log.Warn("etcd lease expired; publishing the host's entries anew", "lease", strconv.FormatInt(int64(p.lease), 16))
		p.dropLease()
		return
	}
	kind := failureOf(err)
	if p.down.IsZero() {
		p.down = time.Now()
	} else if kind == p.downFor {
		p.log.Debug("cannot publish to etcd", "err", err)
		return
	}
	p.downFor = kind
	const retrying = "; retrying, while the host is served as before"
	switch kind {
	case loginWanted:
		p.log.Error("cannot publish to etcd: its authentication is on, and no user is configured"+retrying, "err", err,
			"fix", "give --etcd-user and --etcd-password-file")
	case loginRefused:
		p.log.Error("cannot publish to etcd: it refuses the user's login"+retrying, "user", p.cfg.Username, "err", err,
			"fix", "check --etcd-user and the password in --etcd-password-file against etcd's users (etcdctl user get USER)")
	case accessDenied:
		p.log.Error("cannot publish to etcd: it denies the user the fleet's keys"+retrying, "user", p.cfg.Username, "err", err,
			"fix", fmt.Sprintf("grant the user's role readwrite on %s and %s, read on %s/ (see the README's fleet section)", p.keys.hostDir(), namesDir(p.cfg.Prefix), p.cfg.Prefix))
	default:
		p.log.Warn("cannot publish to etcd"+retrying, "err", err)
	}
}

// recovered says that etcd answers again, and how long it did not.
func (p *publisher) recovered() {
	if !p.down.IsZero() {
		p.log.Info("publishing to etcd again", "after", time.Since(p.down).Round(time.Millisecond))
		p.down, p.downFor = time.Time{}, 0
	}
	p.retry = 0
}

func (p *publisher) ttlSeconds() int64 {
	return int64((p.cfg.TTL + time.Second - 1) / time.Second)
}

// takeLease takes the lease of the host record held, when etcd still
// has it with the TTL wanted (a restart of this daemon within the TTL,
// or a keep-alive given up while etcd was away, as etcd keeps leases
// across its own restarts), else a new one, and keeps it alive.
func (p *publisher) takeLease(ctx context.Context, held *mvccpb.KeyValue) (adopted bool, err error) {
	var id clientv3.LeaseID
	if held != nil && held.Lease != 0 {
		ttl, err := p.cli.TimeToLive(ctx, clientv3.LeaseID(held.Lease))
		if err == nil && ttl.TTL > 0 && ttl.GrantedTTL == p.ttlSeconds() {
			id, adopted = clientv3.LeaseID(held.Lease), true
		}
	}
	if id == 0 {
		g, err := p.cli.Grant(ctx, p.ttlSeconds())
		if err != nil {
			return false, err
		}
		id = g.ID
	}
	kctx, cancel := context.WithCancel(p.cli.Ctx())
	ch, err := p.cli.KeepAlive(kctx, id)
	if err != nil {
		cancel()
		return false, err
	}
	lost := make(chan struct{})
	go func() {
		// The answers only say the lease lives; the channel's end says
		// it may not.
		for range ch {
		}
		close(lost)
	}()
	p.lease, p.lost, p.stopKeepAlive, p.complete = id, lost, cancel, false
	return adopted, nil
}

// dropLease stops keeping the lease alive, and forgets it: the next
// round publishes everything anew. The lease is left to expire, not
// revoked, so that a daemon that restarts within the TTL takes it over
// and a lookup meanwhile still finds the host.
func (p *publisher) dropLease() {
	if p.stopKeepAlive != nil {
		p.stopKeepAlive()
	}
	p.lease, p.lost, p.stopKeepAlive, p.complete = 0, nil, nil, false
}

// A write is one key's change: a put of value, or a delete. withNext is
// set on a key whose by-name copy follows, which must be written in the
// same transaction.
type write struct {
	key, value string
	del        bool
	withNext   bool
}

// writes of one item: its own key and its by-name copy.
func (p *publisher) writes(it item, del bool) [2]write {
	return [2]write{
		{key: p.keys.instance(it.name, it.id), value: it.value, del: del, withNext: true},
		{key: p.keys.byName(it.name, it.id), value: it.value, del: del},
	}
}

// resync makes etcd hold what the registry holds, under the lease: it
// reads the host's keys, takes a lease when it holds none, and writes
// the difference (a key held under another lease is written again),
// guarded by the host record's revision (so that two daemons that
// publish under one name do not interleave unseen).
func (p *publisher) resync(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	resp, err := p.cli.Get(ctx, p.keys.hostDir(), clientv3.WithPrefix())
	if err != nil {
		return err
	}
	held := make(map[string]*mvccpb.KeyValue, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		held[string(kv.Key)] = kv
	}
	record := held[p.keys.hostRecord()]
	adopted := false
	if p.lease == 0 {
		if adopted, err = p.takeLease(ctx, record); err != nil {
			return err
		}
	}
	var saved registry.Saved
	p.reg.Checkpoint(func(s registry.Saved) { saved = s })
	var ws []write
	want := map[string]bool{}
	put := func(w write) {
		want[w.key] = true
		if kv := held[w.key]; kv == nil || string(kv.Value) != w.value || kv.Lease != int64(p.lease) {
			ws = append(ws, w)
		}
	}
	p.hostValue, p.hostStale = p.hostRecordValue(), false
	put(write{key: p.keys.hostRecord(), value: p.hostValue})
	add := func(it item) {
		w := p.writes(it, false)
		// A copy is written with its key, never alone: when the key is
		// as wanted, so is its copy.
		want[w[1].key] = true
		if kv := held[w[0].key]; kv == nil || string(kv.Value) != it.value || kv.Lease != int64(p.lease) {
			ws = append(ws, w[:]...)
		}
		want[w[0].key] = true
	}
	for _, e := range saved.Entries {
		if it, ok := entryItem(e); ok {
			add(it)
		}
	}
	for _, s := range saved.Services {
		if it, ok := serviceItem(s); ok {
			add(it)
		}
	}
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		if want[k] {
			continue
		}
		if name, id, ok := p.keys.splitInstance(k); ok {
			w := p.writes(item{name: name, id: id}, true)
			ws = append(ws, w[:]...)
		} else {
			ws = append(ws, write{key: k, del: true})
		}
	}
	guard := clientv3.Compare(clientv3.ModRevision(p.keys.hostRecord()), "=", 0)
	if record != nil {
		guard = clientv3.Compare(clientv3.ModRevision(p.keys.hostRecord()), "=", record.ModRevision)
	}
	if err := p.commit(ctx, ws, &guard); err != nil {
		return err
	}
	p.log.Info("published the host's entries to etcd", "host", p.cfg.Host, "index", saved.Index,
		"lease", strconv.FormatInt(int64(p.lease), 16), "lease_taken_over", adopted, "keys_written", len(ws), "keys_held", len(want))
	p.synced, p.complete = saved.Index, true
	return nil
}

// catchUp writes the registry's changes since the last that etcd holds,
// and the host record when the host's addresses changed; a registry
// whose history no longer reaches back that far is resynced.
func (p *publisher) catchUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	var ws []write
	value := p.hostValue
	if p.hostStale {
		value = p.hostRecordValue()
		ws = append(ws, write{key: p.keys.hostRecord(), value: value})
	}
	last := p.synced
	if p.reg.Index() > p.synced {
		cs, ok := p.reg.ChangesSince(p.synced)
		if !ok {
			p.log.Info("the registry's history no longer holds the changes etcd lacks; comparing the whole host", "since", p.synced)
			return p.resync(ctx)
		}
		// The last change of a key is the one that counts.
		at := map[string]int{}
		for _, c := range cs {
			it, del, ok := changeItem(c)
			last = c.Index
			if !ok {
				continue
			}
			for _, w := range p.writes(it, del) {
				if i, seen := at[w.key]; seen {
					ws[i] = w
				} else {
					at[w.key] = len(ws)
					ws = append(ws, w)
				}
			}
		}
	}
	if err := p.commit(ctx, ws, nil); err != nil {
		return err
	}
	p.synced = last
	p.hostValue, p.hostStale = value, false
	return nil
}

// commit writes ws in as few transactions as etcd's --max-txn-ops
// allows, keeping each key with its by-name copy, the first guarded by
// guard when given. A put carries the lease.
func (p *publisher) commit(ctx context.Context, ws []write, guard *clientv3.Cmp) error {
	for len(ws) > 0 || guard != nil {
		n := min(len(ws), p.cfg.MaxTxnOps)
		if n > 0 && ws[n-1].withNext {
			// A key and its copy stay in one transaction.
			n--
		}
		ops := make([]clientv3.Op, n)
		for i, w := range ws[:n] {
			if w.del {
				ops[i] = clientv3.OpDelete(w.key)
			} else {
				ops[i] = clientv3.OpPut(w.key, w.value, clientv3.WithLease(p.lease))
			}
		}
		txn := p.cli.Txn(ctx)
		if guard != nil {
			txn = txn.If(*guard)
		}
		resp, err := txn.Then(ops...).Commit()
		if err != nil {
			return err
		}
		if !resp.Succeeded {
			return fmt.Errorf("%s changed while it was compared: does another portmapd publish as %q?", p.keys.hostRecord(), p.cfg.Host)
		}
		ws, guard = ws[n:], nil
	}
	return nil
}

// hostRecordValue is the host record as the host is now.
func (p *publisher) hostRecordValue() string {
	rec := hostRecord{Addresses: []string{}, Version: p.cfg.Version}
	list, err := p.cfg.Interfaces(netip.Addr{})
	if err == nil {
		for _, a := range list {
			ip := a.Prefix.Addr()
			if a.Up && !a.Loopback && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() && ip.IsValid() {
				rec.Addresses = append(rec.Addresses, ip.String())
			}
		}
	}
	slices.Sort(rec.Addresses)
	rec.Addresses = slices.Compact(rec.Addresses)
	b, _ := json.Marshal(rec)
	return string(b)
}
