package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/rpcbind"
	"github.com/portmapd/portmapd/xdr"
)

// benchProg is the first program number the load registers; the range
// above it is reserved for transient use (RFC 5531 0x40000000-0x5fffffff).
const benchProg = 0x40000000

type benchOptions struct {
	server      string
	prefill     int
	duration    time.Duration
	concurrency int
	workloads   []string
	label       string
}

func newRootCmd() *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "portmapbench",
		Short: "Measure a portmapper under a fixed load",
		Long: `portmapbench fills a portmapper with --prefill registrations (v2 SET over
UDP from 127.0.0.1, which rpcbind and portmapd both accept), then runs each
workload for --duration with --concurrency clients and prints one line per
workload: label, workload, registry size, calls per second, and latency
percentiles. The registrations are removed afterwards.`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.server, "server", "127.0.0.1:111", "portmapper address")
	f.IntVar(&o.prefill, "prefill", 1000, "registrations to add before measuring")
	f.DurationVar(&o.duration, "duration", 2*time.Second, "how long each workload runs")
	f.IntVar(&o.concurrency, "concurrency", 4, "clients running at once")
	f.StringSliceVar(&o.workloads, "workload", []string{"getport-udp", "getaddr-udp", "set-unset-udp", "dump-tcp"}, "workloads to run")
	f.StringVar(&o.label, "label", "portmapper", "name printed on each result line")
	return cmd
}

// A workload makes one call with a client of its own.
type workload struct {
	network string
	call    func(ctx context.Context, c *rpcbind.Client, rng *rand.Rand, prefill int, worker int) error
}

func workloads() map[string]workload {
	return map[string]workload{
		"getport-udp": {"udp", func(ctx context.Context, c *rpcbind.Client, rng *rand.Rand, n, _ int) error {
			prog := benchProg + uint32(rng.IntN(max(n, 1)))
			_, err := c.GetPort(ctx, prog, 1, netid.ProtoUDP)
			return err
		}},
		"getaddr-udp": {"udp", func(ctx context.Context, c *rpcbind.Client, rng *rand.Rand, n, _ int) error {
			r := xdr.RPCB{Prog: benchProg + uint32(rng.IntN(max(n, 1))), Vers: 1, Netid: string(netid.UDP)}
			return c.Call(ctx, xdr.PmapProg, xdr.RpcbVers, xdr.RpcbProcGetaddr, r.Encode, func(d *xdr.Decoder) {
				d.String("addr", xdr.MaxRPCBString)
			})
		}},
		"set-unset-udp": {"udp", func(ctx context.Context, c *rpcbind.Client, rng *rand.Rand, n, worker int) error {
			prog := benchProg + 0x1000000 + uint32(worker)
			if _, err := c.PmapSet(ctx, xdr.Mapping{Prog: prog, Vers: 1, Prot: netid.ProtoUDP, Port: 999}); err != nil {
				return err
			}
			_, err := c.PmapUnset(ctx, prog, 1)
			return err
		}},
		"dump-tcp": {"tcp", func(ctx context.Context, c *rpcbind.Client, _ *rand.Rand, n, _ int) error {
			// Every entry is decoded, but none is kept: building a
			// 20,000-entry slice per call made the client, not the
			// portmapper, the bottleneck on a small machine.
			entries := 0
			err := c.Call(ctx, xdr.PmapProg, xdr.PmapVers, xdr.PmapProcDump, nil, func(d *xdr.Decoder) {
				var m xdr.Mapping
				for d.Bool() {
					m.Decode(d)
					entries++
				}
			})
			if err == nil && entries < n {
				err = fmt.Errorf("dump returned %d entries, %d registered", entries, n)
			}
			return err
		}},
	}
}

func run(cmd *cobra.Command, o benchOptions) error {
	ctx := cmd.Context()
	all := workloads()
	for _, name := range o.workloads {
		if _, ok := all[name]; !ok {
			return fmt.Errorf("unknown workload %q", name)
		}
	}
	if err := prefill(ctx, o.server, o.prefill, true); err != nil {
		return fmt.Errorf("prefill: %w", err)
	}
	defer func() { _ = prefill(context.Background(), o.server, o.prefill, false) }()
	for _, name := range o.workloads {
		res, err := measure(ctx, o, all[name])
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s %s size=%d calls/s=%.0f p50=%v p99=%v errors=%d\n",
			o.label, name, o.prefill, res.rate, res.p50, res.p99, res.errors)
	}
	return nil
}

// prefill registers (or removes) n programs over one UDP client.
func prefill(ctx context.Context, server string, n int, set bool) error {
	c, err := rpcbind.Dial(ctx, "udp", server)
	if err != nil {
		return err
	}
	defer c.Close()
	for i := range n {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		prog := benchProg + uint32(i)
		if set {
			_, err = c.PmapSet(cctx, xdr.Mapping{Prog: prog, Vers: 1, Prot: netid.ProtoUDP, Port: uint32(1024 + i%60000)})
		} else {
			_, err = c.PmapUnset(cctx, prog, 1)
		}
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

type result struct {
	rate     float64
	p50, p99 time.Duration
	errors   int
}

func measure(ctx context.Context, o benchOptions, w workload) (result, error) {
	clients := make([]*rpcbind.Client, o.concurrency)
	for i := range clients {
		c, err := rpcbind.Dial(ctx, w.network, o.server)
		if err != nil {
			return result{}, err
		}
		defer c.Close()
		clients[i] = c
	}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		errors    int
		wg        sync.WaitGroup
	)
	deadline := time.Now().Add(o.duration)
	start := time.Now()
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 42))
			var local []time.Duration
			fails := 0
			for time.Now().Before(deadline) && ctx.Err() == nil {
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				t0 := time.Now()
				err := w.call(cctx, c, rng, o.prefill, i)
				cancel()
				if err != nil {
					fails++
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, local...)
			errors += fails
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(latencies) == 0 {
		return result{errors: errors}, fmt.Errorf("no call succeeded (%d errors)", errors)
	}
	slices.Sort(latencies)
	return result{
		rate:   float64(len(latencies)) / elapsed.Seconds(),
		p50:    latencies[len(latencies)/2],
		p99:    latencies[len(latencies)*99/100],
		errors: errors,
	}, nil
}
