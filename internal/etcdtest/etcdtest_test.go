package etcdtest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/portmapd/portmapd/internal/etcdtest"
)

// TestClientSpeaksToServer checks that the client portmapd links
// (go.etcd.io/etcd/client/v3) works with the etcd that tests start
// (Debian's, an older release): every call the fleet mirror makes, and
// that a lease's keys outlive a restart of etcd and go when the lease
// is revoked.
func TestClientSpeaksToServer(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	c := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lease, err := c.Grant(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	ka, err := c.KeepAlive(ctx, lease.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := <-ka; !ok {
		t.Fatal("keepalive channel closed at once")
	}
	txn, err := c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision("/t/a"), "=", 0)).
		Then(clientv3.OpPut("/t/a", "1", clientv3.WithLease(lease.ID)), clientv3.OpPut("/t/b", "2", clientv3.WithLease(lease.ID))).Commit()
	if err != nil || !txn.Succeeded {
		t.Fatalf("txn: %v, succeeded %v", err, txn != nil && txn.Succeeded)
	}
	srv.Stop()
	srv.Restart()
	got, err := c.Get(ctx, "/t/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Kvs) != 2 || got.Kvs[0].Lease != int64(lease.ID) {
		t.Fatalf("after a restart of etcd: %v", got.Kvs)
	}
	ttl, err := c.TimeToLive(ctx, lease.ID)
	if err != nil || ttl.TTL <= 0 {
		t.Fatalf("lease after a restart: %v, %+v", err, ttl)
	}
	st, err := c.Status(ctx, srv.Endpoint)
	if err != nil || st.DbSize <= 0 {
		t.Fatalf("status: %v, %+v", err, st)
	}
	if _, err := c.Revoke(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	got, err = c.Get(ctx, "/t/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || got.Count != 0 {
		t.Fatalf("after the lease was revoked: %v, %d keys", err, got.Count)
	}
}

// TestAuth turns etcd's authentication on and checks what a user whose
// role is confined to a prefix may do, and that a wrong password or an
// unknown user is refused, with the errors the fleet mirror tells apart.
func TestAuth(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	srv.AddUser("alpha", "alpha-secret", etcdtest.Grant{Prefix: "/t/alpha/", Perm: etcdtest.ReadWrite})
	srv.EnableAuth()
	login := func(user, password string) (*clientv3.Client, error) {
		return clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint}, Username: user, Password: password, DialTimeout: time.Minute, Logger: zap.NewNop()})
	}
	t.Run("refused logins", func(t *testing.T) {
		for _, tt := range []struct{ user, password string }{
			{"alpha", "wrong"},
			{"nobody", "alpha-secret"},
		} {
			if c, err := login(tt.user, tt.password); !errors.Is(err, rpctypes.ErrAuthFailed) {
				if c != nil {
					c.Close()
				}
				t.Errorf("login as %s with %q: %v, want %v", tt.user, tt.password, err, rpctypes.ErrAuthFailed)
			}
		}
	})
	c, err := login("alpha", "alpha-secret")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tt := range []struct {
		key  string
		want error
	}{
		{"/t/alpha/x", nil},
		{"/t/beta/x", rpctypes.ErrPermissionDenied},
		{"/t/alphax", rpctypes.ErrPermissionDenied},
	} {
		t.Run(tt.key, func(t *testing.T) {
			if _, err := c.Put(ctx, tt.key, "1"); !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Errorf("put: %v, want %v", err, tt.want)
			}
		})
	}
	// Root, as the Server's clients log in once auth is on, reads it all.
	got, err := srv.Client().Get(ctx, "/t/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || got.Count != 1 {
		t.Fatalf("root's view: %v, %v keys", err, got)
	}
}
