// Package fleet makes one portmapd part of a fleet: it mirrors the
// host's registry into etcd (go.etcd.io/etcd/client/v3), under
// PREFIX/HOST/ with a lease the daemon keeps alive, and answers lookups
// across every host that does the same (httpmap.Fleet).
//
// The mirror follows the registry's history (registry.Watch and
// ChangesSince): each change is written through, in one transaction
// with the changes that came with it, once it is durable on the host.
// Nothing on the host waits for etcd: the mirror runs on its own, and
// when etcd does not answer it retries, then goes on from the last
// change etcd holds. When the changes since then are no longer in the
// registry's history, or the lease was lost, it compares what etcd holds
// for the host with the registry and writes only the difference (one
// transaction when it fits in etcd's --max-txn-ops). A daemon that
// restarts within the lease's TTL takes its lease over, so a restart
// rewrites nothing that did not change. What is published is what
// another host's viewer may see of the host (httpmap.ExternalService):
// no AF_UNIX sockets, no pids.
package fleet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/portmapd/portmapd/httpmap"
	"github.com/portmapd/portmapd/netid/ifaddrs"
	"github.com/portmapd/portmapd/registry"
)

// Defaults of Config.
const (
	DefaultPrefix  = "/portmap"
	DefaultTTL     = 30 * time.Second
	DefaultTimeout = 5 * time.Second
	// DefaultMaxTxnOps is etcd's own default of --max-txn-ops.
	DefaultMaxTxnOps  = 128
	DefaultMaxListing = 10000
)

// Config configures a Mirror, as the daemon's flags give it.
type Config struct {
	// Endpoints are etcd's client URLs (http:// or https://; a bare
	// host:port is http://).
	Endpoints []string
	// Prefix is where the fleet's keys are, DefaultPrefix when empty.
	Prefix string
	// Host is the name the host publishes under (ValidHost), in lower
	// case; os.Hostname when empty.
	Host string
	// TTL is the lease's: how long a host's entries outlive it, and how
	// long etcd may be unreachable before they are written anew. etcd
	// counts whole seconds; DefaultTTL when 0.
	TTL time.Duration
	// Timeout bounds each request to etcd, DefaultTimeout when 0.
	Timeout time.Duration
	// CAFile verifies etcd's certificate (the system's roots when empty,
	// with https:// endpoints); CertFile and KeyFile are the client's
	// certificate and key, for etcd's --client-cert-auth. They are read
	// once, by LoadTLS or New.
	CAFile, CertFile, KeyFile string
	// TLS, when set, is what LoadTLS made of them, so that a daemon may
	// read them before it gives root up and make the Mirror after.
	TLS *tls.Config
	// Username and PasswordFile log the host in to etcd's own
	// authentication (users with passwords, roles confined to key
	// prefixes). The password is the file's content less a trailing
	// newline; the file may be open to its owner alone, as ssh wants of
	// a key. It is read once, by LoadSecrets or New; the etcd client
	// renews its token itself.
	Username, PasswordFile string
	// Password, when set, is what LoadSecrets read from PasswordFile.
	Password string
	// MaxTxnOps is the most operations one transaction may hold, as
	// etcd's --max-txn-ops allows; DefaultMaxTxnOps when 0.
	MaxTxnOps int
	// MaxListing is the most instances a lookup returns,
	// DefaultMaxListing when 0.
	MaxListing int
	// Interfaces lists the host's addresses, which it publishes;
	// ifaddrs.ReadSource when nil.
	Interfaces ifaddrs.Source
	// Version is the portmapd version the host record names.
	Version string
	// Logger receives the log; nothing is logged when nil.
	Logger *slog.Logger
}

// Errors of New.
var (
	ErrBadHost   = errors.New("bad host name")
	ErrBadConfig = errors.New("bad etcd configuration")
	// ErrBadPasswordFile is ReadPasswordFile's, and wrapped in
	// ErrBadConfig by New.
	ErrBadPasswordFile = errors.New("bad password file")
)

func errBadHost(h, why string) error { return fmt.Errorf("%w %q: %s", ErrBadHost, h, why) }

// errNotConnected answers a lookup before Run has a client.
var errNotConnected = errors.New("not connected to etcd yet")

// A Mirror publishes a registry to etcd (Run) and answers lookups across
// the fleet (Lookup). The zero value is not usable; call New.
type Mirror struct {
	reg  *registry.Registry
	cfg  Config
	keys keys
	tls  *tls.Config
	log  *slog.Logger
	// client is Run's, for Lookup; nil when Run is not running.
	client atomic.Pointer[clientv3.Client]
}

// New returns a Mirror of reg. It reads the TLS files and the password
// file (LoadSecrets) unless they were read, so call it or LoadSecrets
// before the daemon gives root up; it starts nothing: Run does.
func New(reg *registry.Registry, cfg Config) (*Mirror, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("%w: no endpoints", ErrBadConfig)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if !strings.HasPrefix(cfg.Prefix, "/") {
		return nil, fmt.Errorf("%w: prefix %q does not begin with /", ErrBadConfig, cfg.Prefix)
	}
	cfg.Prefix = strings.TrimRight(cfg.Prefix, "/")
	if cfg.Host == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadHost, err)
		}
		cfg.Host = h
	}
	if err := ValidHost(cfg.Host); err != nil {
		return nil, err
	}
	cfg.Host = strings.ToLower(cfg.Host)
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.TTL < time.Second {
		return nil, fmt.Errorf("%w: lease TTL %v is under etcd's second", ErrBadConfig, cfg.TTL)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxTxnOps <= 0 {
		cfg.MaxTxnOps = DefaultMaxTxnOps
	}
	if cfg.MaxTxnOps < 3 {
		// A change is two keys, and a resync compares a third.
		return nil, fmt.Errorf("%w: a transaction of %d operations holds no change", ErrBadConfig, cfg.MaxTxnOps)
	}
	if cfg.MaxListing <= 0 {
		cfg.MaxListing = DefaultMaxListing
	}
	if cfg.Interfaces == nil {
		cfg.Interfaces = ifaddrs.ReadSource
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := LoadSecrets(&cfg); err != nil {
		return nil, err
	}
	return &Mirror{reg: reg, cfg: cfg, keys: keys{cfg.Prefix, cfg.Host}, tls: cfg.TLS, log: log}, nil
}

// LoadSecrets reads the files of cfg that may be root's alone, unless
// they were read: the TLS files into cfg.TLS (LoadTLS) and the password
// file into cfg.Password (ReadPasswordFile).
func LoadSecrets(cfg *Config) error {
	if (cfg.Username == "") != (cfg.PasswordFile == "" && cfg.Password == "") {
		return fmt.Errorf("%w: an etcd user needs its password file, and a password file its user", ErrBadConfig)
	}
	if cfg.Username != "" && cfg.Password == "" {
		pw, err := ReadPasswordFile(cfg.PasswordFile)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrBadConfig, cfg.PasswordFile, err)
		}
		cfg.Password = pw
	}
	if cfg.TLS == nil {
		tc, err := LoadTLS(*cfg)
		if err != nil {
			return err
		}
		cfg.TLS = tc
	}
	return nil
}

// ReadPasswordFile reads an etcd password from the file at path: its
// content less one trailing newline. Like ssh with a private key, it
// refuses a file that its owner's group or others may read or write, or
// whose owner is neither root nor this process's user.
func ReadPasswordFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	// The descriptor's, so that what is checked is what is read.
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%w: not a regular file", ErrBadPasswordFile)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("%w: mode %#o lets group or others at it (chmod 600 it, as ssh wants of a key)", ErrBadPasswordFile, perm)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return "", fmt.Errorf("%w: owned by uid %d, neither root nor this process's user", ErrBadPasswordFile, st.Uid)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return "", err
	}
	pw := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if pw == "" {
		return "", fmt.Errorf("%w: empty", ErrBadPasswordFile)
	}
	return pw, nil
}

// LoadTLS reads the TLS files of cfg and checks that they go with its
// endpoints: nil for plain http:// endpoints.
func LoadTLS(cfg Config) (*tls.Config, error) {
	secure := 0
	for _, ep := range cfg.Endpoints {
		u, err := url.Parse(ep)
		if err != nil || !strings.Contains(ep, "://") {
			// host:port: http.
			continue
		}
		switch u.Scheme {
		case "https", "unixs":
			secure++
		case "http", "unix":
		default:
			return nil, fmt.Errorf("%w: endpoint %q: scheme is not http or https", ErrBadConfig, ep)
		}
	}
	files := cfg.CAFile != "" || cfg.CertFile != "" || cfg.KeyFile != ""
	switch {
	case secure == 0 && !files:
		return nil, nil
	case secure != len(cfg.Endpoints):
		return nil, fmt.Errorf("%w: with TLS, every endpoint is https://", ErrBadConfig)
	case (cfg.CertFile == "") != (cfg.KeyFile == ""):
		return nil, fmt.Errorf("%w: a client certificate needs its key, and a key its certificate", ErrBadConfig)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: CA: %v", ErrBadConfig, err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: CA %s: no PEM certificate", ErrBadConfig, cfg.CAFile)
		}
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: client certificate: %v", ErrBadConfig, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Host is the name the host publishes under.
func (m *Mirror) Host() string { return m.cfg.Host }

// Run publishes the registry until ctx is done. etcd that does not
// answer, or refuses the login or the keys, is retried for as long as it
// takes; Run fails only when it cannot make a client at all.
func (m *Mirror) Run(ctx context.Context) error {
	m.log.Info("publishing to etcd", "host", m.cfg.Host, "prefix", m.cfg.Prefix, "endpoints", m.cfg.Endpoints, "ttl", m.cfg.TTL, "user", m.cfg.Username)
	p := &publisher{Mirror: m}
	if err := p.connect(ctx); p.cli == nil {
		return err
	}
	m.client.Store(p.cli)
	defer func() {
		m.client.Store(nil)
		p.cli.Close()
	}()
	p.publish(ctx)
	return nil
}

// clientConfig is the etcd client's configuration.
func (m *Mirror) clientConfig(ctx context.Context) clientv3.Config {
	return clientv3.Config{
		Endpoints: m.cfg.Endpoints,
		TLS:       m.tls,
		// The client logs in, and again when etcd lets its token
		// expire (--auth-token-ttl), within the request that found it
		// expired.
		Username: m.cfg.Username,
		Password: m.cfg.Password,
		// Bounds the login that clientv3.New makes.
		DialTimeout: m.cfg.Timeout,
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(loginAfterStaleToken)},
		// The mirror logs what it finds itself; the client's own log
		// would say each failure again, in another format.
		Logger:  zap.NewNop(),
		Context: ctx,
		// Find a dead connection within the lease's time.
		DialKeepAliveTime:    max(m.cfg.TTL/3, time.Second),
		DialKeepAliveTimeout: m.cfg.Timeout,
		PermitWithoutStream:  true,
	}
}

// loginAfterStaleToken lets the etcd client log in again once etcd
// no longer takes its token (expired after --auth-token-ttl unused, or
// lost in a restart of etcd) when etcd is older than 3.5. Such an etcd
// checks the token that comes with every request, Authenticate's too
// (etcd pull request 12165 stopped that), and the client logs in again
// with the stale token attached: the login is refused for the token,
// and the client retries it from within itself, without end. An
// Authenticate refused for its token is answered here as an etcd without
// auth answers it, on which the client drops the token; the request that
// found the token stale is tried again without one, refused for that,
// and the client then logs in cleanly and tries it once more. This runs
// within the client's own retries, once for each try.
func loginAfterStaleToken(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if method == etcdserverpb.Auth_Authenticate_FullMethodName && errors.Is(rpctypes.Error(err), rpctypes.ErrInvalidAuthToken) {
		return rpctypes.ErrGRPCAuthNotEnabled
	}
	return err
}

// Lookup answers httpmap.Fleet: the instances of names, or every
// instance, that the fleet's hosts published, at most
// Config.MaxListing of them. It reads what any etcd member holds
// (serializable), which may lag the leader by a moment.
func (m *Mirror) Lookup(ctx context.Context, names []string) (httpmap.FleetAnswer, error) {
	var ans httpmap.FleetAnswer
	cli := m.client.Load()
	if cli == nil {
		return ans, &httpmap.FleetError{Err: errNotConnected}
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	var prefixes []string
	if len(names) == 0 {
		prefixes = []string{namesDir(m.cfg.Prefix)}
	}
	seen := map[string]bool{}
	for _, n := range names {
		n = strings.ToLower(n)
		if seen[n] || registry.ValidateName(n) != nil {
			continue
		}
		seen[n] = true
		prefixes = append(prefixes, namesDir(m.cfg.Prefix)+n+"/")
	}
	left := m.cfg.MaxListing
	hosts := map[string]*hostRecord{}
	for _, p := range prefixes {
		if left == 0 {
			ans.Truncated = true
			break
		}
		resp, err := cli.Get(ctx, p, clientv3.WithPrefix(), clientv3.WithSerializable(), clientv3.WithLimit(int64(left)))
		if err != nil {
			return httpmap.FleetAnswer{}, &httpmap.FleetError{Err: err}
		}
		ans.Truncated = ans.Truncated || resp.More
		for _, kv := range resp.Kvs {
			_, host, _, ok := splitByName(m.cfg.Prefix, string(kv.Key))
			var in httpmap.Instance
			if !ok || json.Unmarshal(kv.Value, &in) != nil {
				continue
			}
			hosts[host] = nil
			ans.Instances = append(ans.Instances, httpmap.FleetInstance{Host: host, Instance: in})
			left--
		}
	}
	if err := m.hostRecords(ctx, cli, hosts); err != nil {
		return httpmap.FleetAnswer{}, &httpmap.FleetError{Err: err}
	}
	for i := range ans.Instances {
		if r := hosts[ans.Instances[i].Host]; r != nil {
			ans.Instances[i].Addresses = r.Addresses
		}
	}
	return ans, nil
}

// hostRecords fills in the records of hosts, as many to a transaction as
// etcd takes.
func (m *Mirror) hostRecords(ctx context.Context, cli *clientv3.Client, hosts map[string]*hostRecord) error {
	names := make([]string, 0, len(hosts))
	for h := range hosts {
		names = append(names, h)
	}
	for len(names) > 0 {
		n := min(len(names), m.cfg.MaxTxnOps)
		ops := make([]clientv3.Op, n)
		for i, h := range names[:n] {
			ops[i] = clientv3.OpGet(keys{m.cfg.Prefix, h}.hostRecord(), clientv3.WithSerializable())
		}
		resp, err := cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return err
		}
		for i, r := range resp.Responses {
			rr := r.GetResponseRange()
			if rr == nil || len(rr.Kvs) == 0 {
				continue
			}
			var rec hostRecord
			if json.Unmarshal(rr.Kvs[0].Value, &rec) == nil {
				hosts[names[i]] = &rec
			}
		}
		names = names[n:]
	}
	return nil
}
