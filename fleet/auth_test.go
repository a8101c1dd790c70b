package fleet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/portmapd/portmapd/httpmap"
	"github.com/portmapd/portmapd/internal/etcdtest"
)

// TestReadPasswordFile reads a password as an operator writes one (echo
// adds a newline) and refuses what ssh refuses of a key file.
func TestReadPasswordFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		want    string
		wantErr bool
	}{
		{"with a newline", "s3cret\n", 0o600, "s3cret", false},
		{"with CRLF", "s3cret\r\n", 0o400, "s3cret", false},
		{"without a newline", "s3cret", 0o600, "s3cret", false},
		{"only the last newline goes", "s3cret\n\n", 0o600, "s3cret\n", false},
		{"spaces are the password's", " s3cret ", 0o600, " s3cret ", false},
		{"empty", "", 0o600, "", true},
		{"only a newline", "\n", 0o600, "", true},
		{"readable by the group", "s3cret\n", 0o640, "", true},
		{"readable by others", "s3cret\n", 0o604, "", true},
		{"writable by the group", "s3cret\n", 0o620, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			got, err := ReadPasswordFile(path)
			if tt.wantErr {
				if !errors.Is(err, ErrBadPasswordFile) {
					t.Fatalf("read %q: %q, %v; want %v", tt.content, got, err, ErrBadPasswordFile)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("read %q: %q, %v; want %q", tt.content, got, err, tt.want)
			}
		})
	}
	t.Run("a directory", func(t *testing.T) {
		if _, err := ReadPasswordFile(dir); !errors.Is(err, ErrBadPasswordFile) {
			t.Fatalf("read a directory: %v", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := ReadPasswordFile(filepath.Join(dir, "none")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("read a missing file: %v", err)
		}
	})
	t.Run("another user's", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("giving a file to another user needs root")
		}
		path := filepath.Join(dir, "other")
		if err := os.WriteFile(path, []byte("s3cret"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(path, 4242, 4242); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadPasswordFile(path); !errors.Is(err, ErrBadPasswordFile) {
			t.Fatalf("read another user's file: %v", err)
		}
	})
}

// authEtcd starts etcd, with args, and turns its authentication on.
func authEtcd(t *testing.T, args ...string) *etcdtest.Server {
	srv := etcdtest.Start(t, etcdtest.Options{Args: args})
	srv.EnableAuth()
	return srv
}

// withUser logs a host's mirror in as user with password.
func withUser(t *testing.T, user, password string) func(*Config) {
	path := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(path, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return func(c *Config) { c.Username, c.PasswordFile = user, path }
}

// loggedIn starts the host alpha, logged in as the user alpha, whose role
// holds the least the README grants a host, once it has published
// first.example.com; it returns the host and its lease.
func loggedIn(t *testing.T, srv *etcdtest.Server) (*host, int64) {
	t.Helper()
	srv.AddUser("alpha", "alpha-secret", etcdtest.HostGrants(DefaultPrefix, "alpha")...)
	a := newHost(t, srv, "alpha", nil, withUser(t, "alpha", "alpha-secret"))
	a.register("first.example.com", 9000, 41)
	a.start()
	waitWhere(t, a.m, "first.example.com", "alpha:9000")
	return a, keysOf(t, srv.Client(), "/portmap/alpha/")["/portmap/alpha/_host"]
}

// unbroken fails t unless the host a still publishes under lease, and
// never failed to.
func unbroken(t *testing.T, srv *etcdtest.Server, a *host, lease int64) {
	t.Helper()
	if got := keysOf(t, srv.Client(), "/portmap/alpha/")["/portmap/alpha/_host"]; got != lease {
		t.Errorf("lease changed: %x, then %x", lease, got)
	}
	for _, bad := range []string{"cannot publish", "lease lost", "lease expired"} {
		if strings.Contains(a.log.String(), bad) {
			t.Errorf("the mirror logged %q:\n%s", bad, a.log.String())
		}
	}
}

// TestAuthTokenExpiry publishes as a user whose role holds the least the
// README grants a host, and lets etcd's token expire (--auth-token-ttl)
// between writes: the client logs in again within the write, and
// neither the writes nor the lease's keep-alive fail; nor does a
// restart of etcd, which forgets every token.
func TestAuthTokenExpiry(t *testing.T) {
	// Tokens that expire after a second unused, so that the test sees
	// them expire.
	srv := authEtcd(t, "--auth-token-ttl", "1")
	a, lease := loggedIn(t, srv)

	// A token that etcd handed out after the mirror's last request, and
	// that no one uses: once it is refused, the mirror's has expired
	// too (a use renews a token, so each try waits anew).
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	tok, err := srv.Client().Authenticate(ctx, "alpha", "alpha-secret")
	if err != nil {
		t.Fatal(err)
	}
	probe, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint}, Token: tok.Token, DialTimeout: waitTimeout, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	for {
		time.Sleep(3 * time.Second)
		_, err := probe.Get(ctx, "/portmap/alpha/_host")
		if errors.Is(err, rpctypes.ErrInvalidAuthToken) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("etcd's token did not expire: %v", err)
		}
	}

	a.register("second.example.com", 9001, 42)
	waitWhere(t, a.m, "second.example.com", "alpha:9001")
	unbroken(t, srv, a, lease)

	// etcd forgets its tokens when it restarts: the mirror logs in
	// again, and catches up.
	srv.Stop()
	a.register("third.example.com", 9002, 43)
	srv.Restart()
	waitWhere(t, a.m, "third.example.com", "alpha:9002")
}

// TestAuthFailures logs in as etcd refuses, or as a user etcd does not
// let write the host's keys: the mirror logs one error that says what
// mends it, however often it retries, lookups answer that the store is
// unavailable (503 on the HTTP face), and once an operator mends it in
// etcd the mirror publishes without a restart.
func TestAuthFailures(t *testing.T) {
	srv := authEtcd(t)
	tests := []struct {
		name, host     string
		user, password string
		setup          func(host string)
		wantLog        string
		lookupAnswers  bool
		mend           func(t *testing.T, ctx context.Context, host string)
	}{
		{
			name: "wrong password", host: "wrongpw", user: "wrongpw", password: "guess",
			setup:   func(h string) { srv.AddUser(h, "right", etcdtest.HostGrants(DefaultPrefix, h)...) },
			wantLog: "refuses the user's login",
			mend: func(t *testing.T, ctx context.Context, h string) {
				if _, err := srv.Client().UserChangePassword(ctx, h, "guess"); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "unknown user", host: "nouser", user: "nouser", password: "pw",
			wantLog: "refuses the user's login",
			mend: func(t *testing.T, _ context.Context, h string) {
				srv.AddUser(h, "pw", etcdtest.HostGrants(DefaultPrefix, h)...)
			},
		},
		{
			name: "a role without the keys", host: "noperm", user: "noperm", password: "pw",
			setup:   func(h string) { srv.AddUser(h, "pw") },
			wantLog: "denies the user the fleet's keys",
			mend:    grantHost(srv),
		},
		{
			name: "a role that may only read", host: "readonly", user: "readonly", password: "pw",
			setup:         func(h string) { srv.AddUser(h, "pw", etcdtest.Grant{Prefix: DefaultPrefix + "/", Perm: etcdtest.Read}) },
			wantLog:       "denies the user the fleet's keys",
			lookupAnswers: true,
			mend:          grantHost(srv),
		},
		{
			name: "no user", host: "anonymous",
			wantLog: "no user is configured",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup(tt.host)
			}
			var opts []func(*Config)
			if tt.user != "" {
				opts = append(opts, withUser(t, tt.user, tt.password))
			}
			h := newHost(t, srv, tt.host, nil, opts...)
			h.register("svc.example.com", 9000, 41)
			h.start()
			eventuallyLogs(t, h.log, tt.wantLog)
			// Retried, and said once.
			deadline := time.Now().Add(waitTimeout)
			for strings.Count(h.log.String(), "level=DEBUG msg=\"cannot publish to etcd\"") < 3 {
				if time.Now().After(deadline) {
					t.Fatalf("the mirror does not retry:\n%s", h.log.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
			if n := strings.Count(h.log.String(), "level=ERROR"); n != 1 {
				t.Errorf("%d errors logged, want 1:\n%s", n, h.log.String())
			}
			if !strings.Contains(h.log.String(), "fix=") {
				t.Errorf("the error does not say what mends it:\n%s", h.log.String())
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			_, err := h.m.Lookup(ctx, []string{"svc.example.com"})
			if tt.lookupAnswers != (err == nil) {
				t.Errorf("lookup: %v, want an answer: %v", err, tt.lookupAnswers)
			}
			if err != nil && !errors.Is(err, httpmap.ErrFleetUnavailable) {
				t.Errorf("lookup: %v, want %v", err, httpmap.ErrFleetUnavailable)
			}
			if len(keysOf(t, srv.Client(), "/portmap/"+tt.host+"/")) != 0 {
				t.Errorf("keys written while etcd refused them")
			}
			if tt.mend == nil {
				return
			}
			tt.mend(t, ctx, tt.host)
			waitWhere(t, h.m, "svc.example.com", tt.host+":9000")
			eventuallyLogs(t, h.log, "publishing to etcd again")
		})
	}
}

// grantHost mends a role that lacks the host's keys: it grants them.
func grantHost(srv *etcdtest.Server) func(*testing.T, context.Context, string) {
	return func(t *testing.T, ctx context.Context, h string) {
		root := srv.Client()
		for _, g := range etcdtest.HostGrants(DefaultPrefix, h) {
			if _, err := root.RoleGrantPermission(ctx, h, g.Prefix, clientv3.GetPrefixRangeEnd(g.Prefix), g.Perm); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestAuthChangesMeanwhile changes etcd's users while a mirror runs, as
// an operator adding the next host does: each change makes the tokens
// handed out before it old, and the mirror logs in again without a
// word, keeping its lease.
func TestAuthChangesMeanwhile(t *testing.T) {
	srv := authEtcd(t)
	a, lease := loggedIn(t, srv)
	for i := 1; i <= 3; i++ {
		host := fmt.Sprintf("other%d", i)
		srv.AddUser(host, "pw", etcdtest.HostGrants(DefaultPrefix, host)...)
		name := fmt.Sprintf("s%d.example.com", i)
		a.register(name, uint16(9000+i), int32(50+i))
		waitWhere(t, a.m, name, fmt.Sprintf("alpha:%d", 9000+i))
	}
	unbroken(t, srv, a, lease)
}
