package daemon_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portmapd/portmapd/httpmap"
	"github.com/portmapd/portmapd/netid"
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

// Few keys keep the snapshot small (a few KiB), so that the journal
// outgrows it, and is compacted, every few dozen changes.
const (
	crashProgs   = 12
	crashNamed   = 5
	crashClients = 3
	// crashRound is the longest the clients run before the kill: long
	// enough for several compactions.
	crashRound = 250 * time.Millisecond
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
				done, err := rc.PmapSet(ctx, xdr.Mapping{Prog: p, Vers: 1, Prot: netid.ProtoTCP, Port: port})
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
		got, gotOK := rpc[[2]uint32{p, netid.ProtoTCP}]
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
//
// A tiny --state-compact-bytes has the journal rewritten as a snapshot
// whenever it outgrows the last one, several times a round, and the
// kills are aimed by turns at a random moment, at a random moment after
// the round's k-th compaction began, and at the first compaction found
// under way, so that they land before, during and after compactions.
func TestCrash(t *testing.T) {
	rounds := 25
	if testing.Short() {
		rounds = 5
	}
	// -d logs each compaction. A short history keeps snapshots small,
	// so that compactions come often.
	d := newDaemon(t, "--no-prune", "--state-compact-bytes", "512", "--watch-history", "8", "-d")
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	clients := make([]*crashClient, crashClients)
	for i := range clients {
		clients[i] = &crashClient{id: i, rng: rand.New(rand.NewPCG(seed, uint64(i))), rpc: map[uint32]uint32{}, named: map[int]bool{}}
	}
	rng := rand.New(rand.NewPCG(seed, 99))
	total, interrupted := 0, 0
	for round := range rounds {
		d.start()
		gen, _ := stateFiles(t, d.state)
		var wg sync.WaitGroup
		for _, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.run(d)
			}()
		}
		switch round % 3 {
		case 0:
			time.Sleep(time.Duration(rng.Int64N(int64(crashRound))))
		case 1:
			k := 2 + rng.Uint64N(5)
			deadline := time.Now().Add(10 * time.Second)
			for g, _ := stateFiles(t, d.state); g < gen+k; g, _ = stateFiles(t, d.state) {
				if time.Now().After(deadline) {
					d.kill()
					wg.Wait()
					t.Fatalf("round %d: %d of %d compactions in 10s", round, g-gen, k)
				}
				time.Sleep(time.Millisecond)
			}
			time.Sleep(time.Duration(rng.Int64N(int64(5 * time.Millisecond))))
		case 2:
			deadline := time.Now().Add(crashRound)
			for _, mid := stateFiles(t, d.state); !mid && time.Now().Before(deadline); _, mid = stateFiles(t, d.state) {
			}
		}
		// What was published before the kill was durable: the index
		// never goes back.
		published := d.index()
		d.kill()
		wg.Wait()
		if _, mid := stateFiles(t, d.state); mid {
			interrupted++
		}
		d.start()
		if now := d.index(); now < published {
			t.Errorf("round %d: index %d after the restart, %d before", round, now, published)
		}
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
	// Each start compacts once, and takes the next generation; the
	// other generations are compactions begun while clients ran, the
	// "compacted state" lines of -d those that ended.
	starts := 2 * rounds
	gen, _ := stateFiles(t, d.state)
	begun := int(gen) - starts
	ended := strings.Count(d.log.String(), `msg="compacted state"`) - starts
	t.Logf("%d rounds, %d acknowledged changes, %d compactions begun besides those at start, %d ended, %d kills in the middle of one", rounds, total, begun, ended, interrupted)
	if total < rounds {
		t.Errorf("only %d changes acknowledged in %d rounds: the clients barely ran", total, rounds)
	}
	if begun < 2*rounds {
		t.Errorf("only %d compactions besides those at start in %d rounds: kills seldom come near one", begun, rounds)
	}
}

// stateFiles returns the highest journal generation in the state
// directory and whether a compaction is under way there (or was cut
// short): a temporary snapshot, or the journal it replaces, is there.
func stateFiles(t *testing.T, dir string) (gen uint64, mid bool) {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	journals := 0
	for _, de := range des {
		name := de.Name()
		if strings.HasSuffix(name, ".tmp") {
			mid = true
		}
		if g, err := strconv.ParseUint(strings.TrimPrefix(name, "journal."), 10, 64); err == nil && strings.HasPrefix(name, "journal.") {
			journals++
			gen = max(gen, g)
		}
	}
	return gen, mid || journals > 1
}
