package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/rpcbind"
	"github.com/portmapd/portmapd/xdr"
)

// benchProg is the first program number the load registers; the range
// above it is reserved for transient use (RFC 5531 0x40000000-0x5fffffff).
const benchProg = 0x40000000

// callTimeout bounds one call; a call that takes longer is an error.
const callTimeout = 2 * time.Second

// A workload makes calls with a caller of its own per client. Its program
// picks which registered program a call asks for, given the registry's
// size.
type workload struct {
	// udp workloads go through a udpCaller, the others through an
	// rpcbind.Client over TCP.
	udp bool
	// getaddr makes a udp workload's calls v3 GETADDR, not v2 GETPORT.
	getaddr bool
	call    func(ctx context.Context, c caller, prog uint32, worker int) error
	// pick chooses the program to ask for: a random registered one, or
	// the last registered.
	pick func(rng *rand.Rand, size int) uint32
}

// caller is what a workload's client holds: one of the two.
type caller struct {
	udp *udpCaller
	tcp *rpcbind.Client
}

func randomProg(rng *rand.Rand, size int) uint32 { return benchProg + uint32(rng.IntN(max(size, 1))) }

// lastProg is the program registered last: fill registers it alone,
// after all the others.
func lastProg(_ *rand.Rand, size int) uint32 { return benchProg + uint32(max(size, 1)-1) }

func workloads() map[string]workload {
	getport := func(_ context.Context, c caller, prog uint32, _ int) error { return c.udp.call(prog) }
	return map[string]workload{
		"getport-udp":      {udp: true, call: getport, pick: randomProg},
		"getport-last-udp": {udp: true, call: getport, pick: lastProg},
		"getaddr-udp":      {udp: true, getaddr: true, call: getport, pick: randomProg},
		"getport-tcp": {call: func(ctx context.Context, c caller, prog uint32, _ int) error {
			_, err := c.tcp.GetPort(ctx, prog, 1, netid.ProtoUDP)
			return err
		}, pick: randomProg},
		"set-unset-tcp": {call: func(ctx context.Context, c caller, _ uint32, worker int) error {
			prog := benchProg + 0x1000000 + uint32(worker)
			ok, err := c.tcp.PmapSet(ctx, xdr.Mapping{Prog: prog, Vers: 1, Prot: netid.ProtoTCP, Port: 999})
			if err == nil && !ok {
				err = errors.New("SET refused")
			}
			if err != nil {
				return err
			}
			_, err = c.tcp.PmapUnset(ctx, prog, 1)
			return err
		}, pick: randomProg},
	}
}

// A udpCaller makes one kind of call over UDP with nothing but a write and
// a read: the call is encoded once, and only its xid and program change.
// The load generator shares the machine with the daemon it measures, so
// every cycle it spends is one the daemon does not get; a lean client
// measures the daemon, and treats every daemon alike.
type udpCaller struct {
	conn *net.UDPConn
	msg  []byte
	buf  []byte
	xid  uint32
}

// progOffset is where the program asked for starts in a GETPORT or
// GETADDR call with AUTH_NONE: after ten words of call header.
const progOffset = 40

func newUDPCaller(server string, getaddr bool) (*udpCaller, error) {
	conn, err := net.Dial("udp", server)
	if err != nil {
		return nil, err
	}
	var e xdr.Encoder
	h := xdr.CallHeader{RPCVers: xdr.RPCVersion, Prog: xdr.PmapProg, Vers: xdr.PmapVers, Proc: xdr.PmapProcGetport}
	if getaddr {
		h.Vers, h.Proc = xdr.RpcbVers, xdr.RpcbProcGetaddr
	}
	h.Encode(&e)
	if getaddr {
		r := xdr.RPCB{Prog: benchProg, Vers: 1, Netid: string(netid.UDP)}
		r.Encode(&e)
	} else {
		m := xdr.Mapping{Prog: benchProg, Vers: 1, Prot: netid.ProtoUDP}
		m.Encode(&e)
	}
	return &udpCaller{conn: conn.(*net.UDPConn), msg: slices.Clone(e.Bytes()), buf: make([]byte, 1500), xid: rand.Uint32()}, nil
}

// call asks for prog and waits for the reply with the same xid, which
// must be an accepted SUCCESS.
func (u *udpCaller) call(prog uint32) error {
	u.xid++
	binary.BigEndian.PutUint32(u.msg[0:], u.xid)
	binary.BigEndian.PutUint32(u.msg[progOffset:], prog)
	if _, err := u.conn.Write(u.msg); err != nil {
		return err
	}
	if err := u.conn.SetReadDeadline(time.Now().Add(callTimeout)); err != nil {
		return err
	}
	for {
		n, err := u.conn.Read(u.buf)
		if err != nil {
			return err
		}
		// xid, REPLY, MSG_ACCEPTED, verifier, SUCCESS: 24 bytes with
		// an empty verifier.
		if n < 24 || binary.BigEndian.Uint32(u.buf) != u.xid {
			continue
		}
		if binary.BigEndian.Uint32(u.buf[8:]) != uint32(xdr.MsgAccepted) || binary.BigEndian.Uint32(u.buf[20:]) != uint32(xdr.Success) {
			return errors.New("call not accepted")
		}
		return nil
	}
}

func (u *udpCaller) Close() error { return u.conn.Close() }

// loadResult is one workload's outcome.
type loadResult struct {
	rate     float64
	p50, p99 time.Duration
	errors   int
}

// runLoad runs w with clients clients for d against server, whose
// registry holds size programs.
func runLoad(ctx context.Context, server string, w workload, size, clients int, d time.Duration) (loadResult, error) {
	callers := make([]caller, clients)
	for i := range callers {
		var err error
		if w.udp {
			callers[i].udp, err = newUDPCaller(server, w.getaddr)
			if err == nil {
				defer callers[i].udp.Close()
			}
		} else {
			callers[i].tcp, err = rpcbind.Dial(ctx, "tcp", server)
			if err == nil {
				defer callers[i].tcp.Close()
			}
		}
		if err != nil {
			return loadResult{}, err
		}
	}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		errs      int
		wg        sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	start := time.Now()
	for i, c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 42))
			local := make([]time.Duration, 0, 1<<16)
			fails := 0
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				cctx, cancel := ctx, context.CancelFunc(func() {})
				if !w.udp {
					cctx, cancel = context.WithTimeout(ctx, callTimeout)
				}
				err := w.call(cctx, c, w.pick(rng, size), i)
				cancel()
				if err != nil {
					fails++
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, local...)
			errs += fails
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(latencies) == 0 {
		return loadResult{errors: errs}, fmt.Errorf("no call succeeded (%d errors)", errs)
	}
	slices.Sort(latencies)
	return loadResult{
		rate:   float64(len(latencies)) / elapsed.Seconds(),
		p50:    latencies[len(latencies)/2],
		p99:    latencies[len(latencies)*99/100],
		errors: errs,
	}, nil
}

// fillClients is how many clients register at once.
const fillClients = 8

// fill registers programs from..to-1 (v2 SET of udp, port from the
// program number), the last of them alone after the others, so that it
// is the last registered; with set false it removes them. It fails when
// the portmapper refuses one. As root it calls from reserved ports, so
// that the portmapper records the superuser as owner, as for the system's
// own services, and no per-user cap applies.
func fill(ctx context.Context, server string, from, to int, set bool) error {
	if to <= from {
		return nil
	}
	one := func(c *rpcbind.Client, i int) error {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		prog := benchProg + uint32(i)
		var ok bool
		var err error
		if set {
			ok, err = c.PmapSet(cctx, xdr.Mapping{Prog: prog, Vers: 1, Prot: netid.ProtoUDP, Port: uint32(1024 + i%60000)})
		} else {
			ok, err = c.PmapUnset(cctx, prog, 1)
		}
		if err == nil && !ok {
			err = fmt.Errorf("program %#x: refused", prog)
		}
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, fillClients)
	for k := range fillClients {
		c, err := rpcbind.DialReservedUDP(ctx, server)
		if err != nil {
			return err
		}
		defer c.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := from + k; i < to-1; i += fillClients {
				if errs[k] = one(c, i); errs[k] != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	c, err := rpcbind.DialReservedUDP(ctx, server)
	if err != nil {
		return err
	}
	defer c.Close()
	return one(c, to-1)
}
