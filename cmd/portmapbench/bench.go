package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/portmapd/portmapd/rpcbind"
	"github.com/portmapd/portmapd/xdr"
)

type benchOptions struct {
	server      string
	label       string
	round       int
	pid         int
	sizes       []int
	duration    time.Duration
	workloads   []string
	http        string
	listingRuns int
	cleanup     bool
	wait        time.Duration
}

func newRootCmd() *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "portmapbench",
		Short: "Measure a portmapper under a fixed load",
		Long: `portmapbench measures one portmapper. For each registry size of --sizes, in
turn, it fills the registry up to that size (v2 SETs over UDP, from a
reserved port when root, the last program alone after the others), then
runs each workload for --duration and, with --http, fetches the HTTP
listing; with --pid it reads the daemon's resident memory before and
after each step. It prints one JSON object a line per measurement, which
"portmapbench table" turns into a table.

A workload is NAME@CLIENTS: getport-udp (a random registered program),
getport-last-udp (the last registered), getaddr-udp (v3 GETADDR),
getport-tcp, set-unset-tcp, with CLIENTS clients calling at once.`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.server, "server", "127.0.0.1:111", "portmapper address")
	f.StringVar(&o.label, "label", "portmapper", "name of the daemon measured, in each result")
	f.IntVar(&o.round, "round", 1, "round number, in each result")
	f.IntVar(&o.pid, "pid", 0, "process whose resident memory to read (0: none)")
	f.IntSliceVar(&o.sizes, "sizes", []int{0}, "registry sizes to measure at, ascending")
	f.DurationVar(&o.duration, "duration", 2*time.Second, "how long each workload runs")
	f.StringSliceVar(&o.workloads, "workload", []string{"getport-udp@1", "getport-udp@8"}, "workloads to run, NAME@CLIENTS")
	f.StringVar(&o.http, "http", "", "base URL of the HTTP face whose /portmap listing to fetch at each size (empty: none)")
	f.IntVar(&o.listingRuns, "listing-runs", 5, "fetches of each listing")
	f.BoolVar(&o.cleanup, "cleanup", true, "remove the registrations made at the end")
	f.DurationVar(&o.wait, "wait", 10*time.Second, "how long to wait for the portmapper to answer first")
	cmd.AddCommand(newTableCmd())
	return cmd
}

// A record is one measurement, as portmapbench prints it.
type record struct {
	Round   int    `json:"round"`
	Daemon  string `json:"daemon"`
	Measure string `json:"measure"`
	Size    int    `json:"size"`
	Clients int    `json:"clients,omitempty"`
	// Rate is calls (or registrations) per second; P50 and P99 the
	// latency percentiles in microseconds.
	Rate   float64 `json:"rate,omitempty"`
	P50    float64 `json:"p50_us,omitempty"`
	P99    float64 `json:"p99_us,omitempty"`
	Errors int     `json:"errors,omitempty"`
	// RSS is the daemon's resident memory, in kB, and Anon the part of
	// it that is the daemon's own (heap, stacks: RssAnon); the rest is
	// pages of its executable and libraries, shared with the page cache.
	RSS  int64 `json:"rss_kb,omitempty"`
	Anon int64 `json:"anon_kb,omitempty"`
	// A listing's median and fastest time in milliseconds, its length,
	// and the daemon's resident memory before the first fetch and after
	// the last.
	MS        float64 `json:"ms,omitempty"`
	MinMS     float64 `json:"min_ms,omitempty"`
	Bytes     int64   `json:"bytes,omitempty"`
	RSSBefore int64   `json:"rss_before_kb,omitempty"`
	RSSAfter  int64   `json:"rss_after_kb,omitempty"`
}

// workloadSpec is a parsed NAME@CLIENTS.
type workloadSpec struct {
	name    string
	clients int
	w       workload
}

func parseWorkloads(specs []string) ([]workloadSpec, error) {
	all := workloads()
	var out []workloadSpec
	for _, s := range specs {
		name, n, ok := strings.Cut(s, "@")
		clients, err := strconv.Atoi(n)
		if !ok || err != nil || clients < 1 {
			return nil, fmt.Errorf("workload %q: want NAME@CLIENTS", s)
		}
		w, ok := all[name]
		if !ok {
			return nil, fmt.Errorf("unknown workload %q", name)
		}
		out = append(out, workloadSpec{name, clients, w})
	}
	return out, nil
}

func run(cmd *cobra.Command, o benchOptions) error {
	ctx := cmd.Context()
	specs, err := parseWorkloads(o.workloads)
	if err != nil {
		return err
	}
	if !slices.IsSorted(o.sizes) {
		return errors.New("--sizes must be ascending")
	}
	if err := waitReady(ctx, o.server, o.wait); err != nil {
		return err
	}
	out := json.NewEncoder(cmd.OutOrStdout())
	emit := func(r record) error {
		r.Round, r.Daemon = o.round, o.label
		return out.Encode(r)
	}
	filled := 0
	if o.cleanup {
		defer func() { _ = fill(context.Background(), o.server, 0, filled, false) }()
	}
	for _, size := range o.sizes {
		if size > filled {
			start := time.Now()
			if err := fill(ctx, o.server, filled, size, true); err != nil {
				return fmt.Errorf("fill to %d: %w", size, err)
			}
			rate := float64(size-filled) / time.Since(start).Seconds()
			filled = size
			if err := emit(record{Measure: "fill", Size: size, Rate: rate}); err != nil {
				return err
			}
		}
		if o.pid != 0 {
			// A moment to settle, as a daemon would after a burst of
			// registrations.
			time.Sleep(time.Second)
			if err := emit(record{Measure: "rss", Size: size, RSS: status(o.pid, "VmRSS:"), Anon: status(o.pid, "RssAnon:")}); err != nil {
				return err
			}
		}
		for _, s := range specs {
			res, err := runLoad(ctx, o.server, s.w, size, s.clients, o.duration)
			if err != nil {
				return fmt.Errorf("%s at size %d: %w", s.name, size, err)
			}
			if err := emit(record{Measure: s.name, Size: size, Clients: s.clients, Rate: res.rate, P50: us(res.p50), P99: us(res.p99), Errors: res.errors}); err != nil {
				return err
			}
		}
		if o.http != "" && size > 0 {
			for _, format := range []string{"json", "csv"} {
				r, err := measureListing(ctx, o, format)
				if err != nil {
					return fmt.Errorf("listing as %s at size %d: %w", format, size, err)
				}
				r.Size = size
				if err := emit(r); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// waitReady waits until the portmapper answers a NULL call over UDP.
func waitReady(ctx context.Context, server string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := rpcbind.Dial(ctx, "udp", server)
		if err == nil {
			cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			err = c.Null(cctx, xdr.PmapProg, xdr.PmapVers)
			cancel()
			c.Close()
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer: %w", server, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// measureListing fetches /portmap in format listingRuns times and
// reports the median and fastest, with the daemon's memory around them.
func measureListing(ctx context.Context, o benchOptions, format string) (record, error) {
	r := record{Measure: "listing-" + format}
	if o.pid != 0 {
		r.RSSBefore = rss(o.pid)
	}
	var times []float64
	for range max(o.listingRuns, 1) {
		start := time.Now()
		n, err := fetch(ctx, o.http+"/portmap?format="+format)
		if err != nil {
			return r, err
		}
		times = append(times, float64(time.Since(start))/float64(time.Millisecond))
		r.Bytes = n
	}
	if o.pid != 0 {
		r.RSSAfter = rss(o.pid)
	}
	slices.Sort(times)
	r.MS, r.MinMS = times[len(times)/2], times[0]
	return r, nil
}

// fetch GETs url and returns the length of its body, read to the end.
func fetch(ctx context.Context, url string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", url, resp.Status)
	}
	return n, err
}

// rss returns pid's resident memory in kB, 0 when it cannot be read.
func rss(pid int) int64 { return status(pid, "VmRSS:") }

// status returns the field of pid's /proc status, a count of kB, 0 when
// it cannot be read.
func status(pid int, field string) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb
		}
	}
	return 0
}
