package httpmap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/peer"
	"github.com/portmapd/portmapd/tcpmux/handoff"
)

// A MuxListener is a name registered for portmapd's TCPMUX listener with a
// hand-off socket: a net.Listener whose Accept returns the connections
// that clients of the TCPMUX port opened by asking for the name, handed
// over by portmapd itself (package tcpmux/handoff). Each has already been
// answered "+", so the service's protocol starts with its first byte.
type MuxListener struct {
	*handoff.Listener
	client *Client
	spec   ServiceSpec
	// daemon is the pid of portmapd, the only process whose hand-overs
	// are taken.
	daemon atomic.Int32
}

// Listen registers name for TCPMUX, for as long as this process runs or
// until Close, and returns the listener of the connections that ask for
// it. The client must be a local one (NewLocalClient).
func (c *Client) Listen(ctx context.Context, name string) (*MuxListener, error) {
	return c.ListenService(ctx, ServiceSpec{Service: name})
}

// ListenService is Listen with the registration's flags taken from spec
// (Exclusive, Public, MuxHelp to be listed by HELP); its Port, Protocol
// and TCPMux are the hand-off socket's.
func (c *Client) ListenService(ctx context.Context, spec ServiceSpec) (*MuxListener, error) {
	if c.host != "" {
		return nil, fmt.Errorf("portmapd: %s: only the local socket takes registrations", c.where)
	}
	pid, err := c.daemonPID(ctx)
	if err != nil {
		return nil, err
	}
	l := &MuxListener{client: c}
	l.daemon.Store(pid)
	hl, err := handoff.Listen("", l.fromDaemon)
	if err != nil {
		return nil, err
	}
	spec.Port, spec.Protocol, spec.TCPMux = Port(hl.Path()), string(netid.Unix), true
	if _, err := c.Register(ctx, Registration{Services: []ServiceSpec{spec}}); err != nil {
		hl.Close()
		return nil, err
	}
	l.Listener, l.spec = hl, spec
	return l, nil
}

// Service returns the registration as it was made: the name, and the
// hand-off socket as its port.
func (l *MuxListener) Service() ServiceSpec { return l.spec }

// Close stops listening and removes the registration.
func (l *MuxListener) Close() error {
	err := l.Listener.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, derr := l.client.Deregister(ctx, Registration{Services: []ServiceSpec{l.spec}})
	return errors.Join(err, derr)
}

// fromDaemon accepts a hand-over from portmapd's process alone, asking
// its local socket again when the pid has changed (a restarted daemon
// brings the registration back).
func (l *MuxListener) fromDaemon(cred peer.Cred) error {
	if cred.PID == l.daemon.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pid, err := l.client.daemonPID(ctx)
	if err != nil {
		return err
	}
	l.daemon.Store(pid)
	if cred.PID != pid {
		return fmt.Errorf("not portmapd's process (pid %d)", pid)
	}
	return nil
}

// daemonPID returns the pid of the process listening on the local socket,
// as the kernel tells it.
func (c *Client) daemonPID(ctx context.Context) (int32, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.where)
	if err != nil {
		return 0, &UnreachableError{Where: c.where, Local: true, Err: err}
	}
	defer conn.Close()
	cred, err := peer.Credentials(conn)
	if err != nil {
		return 0, fmt.Errorf("portmapd: %s: %w", c.where, err)
	}
	return cred.PID, nil
}
