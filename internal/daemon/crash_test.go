package daemon_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/portmapd/portmapd/httpmap"
	"github.com/portmapd/portmapd/xdr"
)

// crashClient streams changes over one key range and keeps the model of
// what portmapd acknowledged. When the daemon dies mid-request, inflight
// names the change whose outcome is unknown.
type crashClient struct {
	id    int
	rng   *rand.Rand
	rpc   map[uint32]uint32 // prog → tcp port; absent when not registered
	named map[int]bool
	// inflight is the key of the unanswered change: a prog, or -1-i for
	// named service i; 0 for none. before/after are its two possible
	// outcomes.
	inflightProg  uint32
	inflightNamed int
	acked         int
}

const (
	crashProgs   = 30
	crashNamed   = 10
	crashClients = 3
)

func (c *crashClient) prog(i int) uint32 { return 0x30000000 + uint32(c.id*1000+i) }

func (c *crashClient) name(i int) string { return fmt.Sprintf("svc%d-%d.crash.test", c.id, i) }

func (c *crashClient) registration(i int) httpmap.Registration {
	return httpmap.Registration{Services: []httpmap.ServiceSpec{
		{Service: c.name(i), Port: httpmap.Port(strconv.Itoa(20000 + c.id*100 + i)), Protocol: "tcp"},
		{Service: c.name(i), Port: httpmap.Port(fmt.Sprintf("/run/crash-%d-%d.sock", c.id, i)), Protocol: "unix"},
	}}
}

// run sends changes until one fails, which it does once the daemon is
// killed.
func (c *crashClient) run(d *daemon) {
	rc, err := dialQuiet(d)
	if err != nil {
		return
	}
	defer rc.Close()
	hc := httpmap.NewLocalClient(d.http)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if c.rng.IntN(4) > 0 {
			i := c.rng.IntN(crashProgs)
			p := c.prog(i)
			c.inflightProg = p
			if port, ok := c.rpc[p]; ok {
				done, err := rc.PmapUnset(ctx, p, 1)
				if err != nil {
					return
				}
				if !done {
					panic(fmt.Sprintf("UNSET %d (port %d) refused", p, port))
				}
				delete(c.rpc, p)
			} else {
				port := uint32(1024 + c.rng.IntN(60000))
				done, err := rc.PmapSet(ctx, xdr.Mapping{Prog: p, Vers: 1, Prot: xdr.ProtoTCP, Port: port})
				if err != nil {
					return
				}
				if !done {
					panic(fmt.Sprintf("SET %d refused", p))
				}
				c.rpc[p] = port
			}
			c.inflightProg = 0
		} else {
			i := c.rng.IntN(crashNamed)
			c.inflightNamed = -1 - i
			var err error
			if c.named[i] {
				_, err = hc.Deregister(ctx, c.registration(i))
			} else {
				_, err = hc.Register(ctx, c.registration(i))
			}
			if err != nil {
				return
			}
			c.named[i] = !c.named[i]
			c.inflightNamed = 0
		}
		c.acked++
	}
}

// check compares what the restarted daemon holds with the model, accepts
// either outcome of the change in flight, and adopts it.
func (c *crashClient) check(t *testing.T, rpc map[[2]uint32]uint32, named map[string][]string) {
	t.Helper()
	for i := range crashProgs {
		p := c.prog(i)
		got, gotOK := rpc[[2]uint32{p, xdr.ProtoTCP}]
		want, wantOK := c.rpc[p]
		if p == c.inflightProg {
			// Either outcome, but whole.
			if gotOK {
				c.rpc[p] = got
			} else {
				delete(c.rpc, p)
			}
			continue
		}
		if got != want || gotOK != wantOK {
			t.Errorf("client %d prog %#x: restarted daemon has port %d (present %v), acknowledged %d (present %v)", c.id, p, got, gotOK, want, wantOK)
		}
	}
	for i := range crashNamed {
		eps := named[c.name(i)]
		slices.Sort(eps)
		present := len(eps) > 0
		if present && len(eps) != 2 {
			t.Errorf("client %d %s: half a registration restored: %v", c.id, c.name(i), eps)
		}
		if c.inflightNamed == -1-i {
			c.named[i] = present
			continue
		}
		if present != c.named[i] {
			t.Errorf("client %d %s: restarted daemon has it %v, acknowledged %v", c.id, c.name(i), present, c.named[i])
		}
	}
	c.inflightProg, c.inflightNamed = 0, 0
}

// TestCrash kills portmapd with SIGKILL at random moments while clients
// stream SET, UNSET and named registrations and deregistrations; after
// each restart every acknowledged change must be there, and the one in
// flight either wholly there or wholly absent.
func TestCrash(t *testing.T) {
	rounds := 25
	if testing.Short() {
		rounds = 5
	}
	d := newDaemon(t, "--no-prune")
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	clients := make([]*crashClient, crashClients)
	for i := range clients {
		clients[i] = &crashClient{id: i, rng: rand.New(rand.NewPCG(seed, uint64(i))), rpc: map[uint32]uint32{}, named: map[int]bool{}}
	}
	rng := rand.New(rand.NewPCG(seed, 99))
	total := 0
	for round := range rounds {
		d.start()
		var wg sync.WaitGroup
		for _, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.run(d)
			}()
		}
		time.Sleep(time.Duration(rng.IntN(80)) * time.Millisecond)
		d.kill()
		wg.Wait()
		d.start()
		rpc, named := d.mappings(), d.named()
		for _, c := range clients {
			c.check(t, rpc, named)
		}
		d.kill()
		if t.Failed() {
			t.Fatalf("round %d failed", round)
		}
	}
	for _, c := range clients {
		total += c.acked
	}
	t.Logf("%d rounds, %d acknowledged changes", rounds, total)
	if total < rounds {
		t.Errorf("only %d changes acknowledged in %d rounds: the clients barely ran", total, rounds)
	}
}
