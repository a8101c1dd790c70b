package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

func newTableCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "table [FILE...]",
		Short: "Print the results of several runs as one table, with ratios and goals",
		Long: `table reads the JSON lines that portmapbench prints (from FILEs, or standard
input), for the daemons rpcbind, portmapd and floor (the trivial responder)
over one or more rounds, and prints one table: each measurement for each
daemon (a range when the rounds differ), the ratios portmapd/rpcbind and
portmapd/floor (a range of the rounds' own ratios), then the goals of
issue 14 and whether the median round meets them.`,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			var records []record
			read := func(r io.Reader) error {
				s := bufio.NewScanner(r)
				s.Buffer(make([]byte, 64<<10), 1<<20)
				for s.Scan() {
					line := strings.TrimSpace(s.Text())
					if !strings.HasPrefix(line, "{") {
						continue
					}
					var rec record
					if err := json.Unmarshal([]byte(line), &rec); err != nil {
						return err
					}
					records = append(records, rec)
				}
				return s.Err()
			}
			if len(args) == 0 {
				if err := read(cmd.InOrStdin()); err != nil {
					return err
				}
			}
			for _, a := range args {
				f, err := os.Open(a)
				if err != nil {
					return err
				}
				err = read(f)
				f.Close()
				if err != nil {
					return err
				}
			}
			printTable(cmd.OutOrStdout(), records)
			return nil
		},
	}
}

// The daemons a table compares, in its columns' order.
const (
	rpcbindLabel  = "rpcbind"
	portmapdLabel = "portmapd"
	floorLabel    = "floor"
)

// results indexes records by daemon, round and key.
type results struct {
	byKey  map[string]map[string]map[int]record // key, daemon, round
	rounds []int
	keys   []string // in the order first seen
}

func key(measure string, size, clients int) string {
	return fmt.Sprintf("%s/%d/%d", measure, size, clients)
}

func index(records []record) *results {
	r := &results{byKey: map[string]map[string]map[int]record{}}
	for _, rec := range records {
		k := key(rec.Measure, rec.Size, rec.Clients)
		if r.byKey[k] == nil {
			r.byKey[k] = map[string]map[int]record{}
			r.keys = append(r.keys, k)
		}
		if r.byKey[k][rec.Daemon] == nil {
			r.byKey[k][rec.Daemon] = map[int]record{}
		}
		r.byKey[k][rec.Daemon][rec.Round] = rec
		if !slices.Contains(r.rounds, rec.Round) {
			r.rounds = append(r.rounds, rec.Round)
		}
	}
	slices.Sort(r.rounds)
	return r
}

// values returns f of the daemon's record of key in each round that has
// one, by round.
func (r *results) values(k, daemon string, f func(record) (float64, bool)) map[int]float64 {
	out := map[int]float64{}
	for round, rec := range r.byKey[k][daemon] {
		if v, ok := f(rec); ok {
			out[round] = v
		}
	}
	return out
}

// A row is one line of the table: a label and how to read its value from
// the records of one daemon and round.
type row struct {
	label string
	value func(r *results, daemon string, round int) (float64, bool)
	// format prints a value.
	format func(float64) string
}

func field(k string, f func(record) float64) func(*results, string, int) (float64, bool) {
	return func(r *results, daemon string, round int) (float64, bool) {
		rec, ok := r.byKey[k][daemon][round]
		if !ok {
			return 0, false
		}
		v := f(rec)
		return v, v != 0
	}
}

func rate(v float64) string  { return fmt.Sprintf("%.1fk/s", v/1000) }
func micro(v float64) string { return fmt.Sprintf("%.0f µs", v) }
func mb(v float64) string    { return fmt.Sprintf("%.1f MB", v/1024) }
func ms(v float64) string    { return fmt.Sprintf("%.1f ms", v) }
func bytesPer(v float64) string {
	return fmt.Sprintf("%.0f B", v)
}

var workloadLabels = map[string]string{
	"getport-udp":      "GETPORT udp",
	"getport-last-udp": "GETPORT udp, last registered",
	"getaddr-udp":      "GETADDR udp",
	"getport-tcp":      "GETPORT tcp",
	"set-unset-tcp":    "SET+UNSET tcp",
}

func sizeLabel(n int) string {
	if n == 0 {
		return "empty"
	}
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// rows derives the table's rows from the keys measured.
func (r *results) rows() []row {
	var rows []row
	for _, k := range r.keys {
		var measure string
		var size, clients int
		fmt.Sscanf(strings.ReplaceAll(k, "/", " "), "%s %d %d", &measure, &size, &clients)
		where := sizeLabel(size)
		switch {
		case workloadLabels[measure] != "":
			l := fmt.Sprintf("%s, %s, %d client", workloadLabels[measure], where, clients)
			if clients > 1 {
				l += "s"
			}
			rows = append(rows,
				row{l, field(k, func(rec record) float64 { return rec.Rate }), rate},
				row{"  p50", field(k, func(rec record) float64 { return rec.P50 }), micro},
				row{"  p99", field(k, func(rec record) float64 { return rec.P99 }), micro})
		case measure == "fill":
			rows = append(rows, row{"SET udp, filling to " + where, field(k, func(rec record) float64 { return rec.Rate }), rate})
		case measure == "rss":
			rows = append(rows, row{"RSS, " + where, field(k, func(rec record) float64 { return float64(rec.RSS) }), mb},
				row{"  of it anonymous (RssAnon)", field(k, func(rec record) float64 { return float64(rec.Anon) }), mb})
			if size > 0 {
				rows = append(rows, row{"  per registration", perRegistration(k, key("rss", 0, 0), size), bytesPer})
			}
		case strings.HasPrefix(measure, "listing-"):
			format := strings.ToUpper(strings.TrimPrefix(measure, "listing-"))
			rows = append(rows,
				row{fmt.Sprintf("GET /portmap as %s, %s", format, where), field(k, func(rec record) float64 { return rec.MS }), ms},
				row{"  length", field(k, func(rec record) float64 { return float64(rec.Bytes) / 1024 }), mb},
				row{"  RSS before", field(k, func(rec record) float64 { return float64(rec.RSSBefore) }), mb},
				row{"  RSS growth", growth(k), mb})
		}
	}
	return rows
}

func perRegistration(k, empty string, size int) func(*results, string, int) (float64, bool) {
	return func(r *results, daemon string, round int) (float64, bool) {
		full, ok1 := r.byKey[k][daemon][round]
		base, ok2 := r.byKey[empty][daemon][round]
		if !ok1 || !ok2 || full.RSS == 0 {
			return 0, false
		}
		return float64(full.RSS-base.RSS) * 1024 / float64(size), true
	}
}

func growth(k string) func(*results, string, int) (float64, bool) {
	return func(r *results, daemon string, round int) (float64, bool) {
		rec, ok := r.byKey[k][daemon][round]
		if !ok || rec.RSSAfter == 0 {
			return 0, false
		}
		// Zero growth is a value too.
		return float64(rec.RSSAfter - rec.RSSBefore), true
	}
}

// span prints the values of the rounds as one value or a range.
func span(vs []float64, format func(float64) string) string {
	if len(vs) == 0 {
		return "–"
	}
	lo, hi := slices.Min(vs), slices.Max(vs)
	if format(lo) == format(hi) {
		return format(lo)
	}
	return format(lo) + " – " + strings.TrimSpace(format(hi))
}

func ratio(v float64) string { return fmt.Sprintf("%.2f×", v) }

func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	return s[len(s)/2]
}

// perRound returns the value of row for daemon in each round, and the
// ratio of portmapd's to daemon's in each round that has both.
func (r *results) perRound(rw row, daemon string) (vals, ratios []float64) {
	for _, round := range r.rounds {
		v, ok := rw.value(r, daemon, round)
		if !ok {
			continue
		}
		vals = append(vals, v)
		if p, ok := rw.value(r, portmapdLabel, round); ok && v != 0 {
			ratios = append(ratios, p/v)
		}
	}
	return vals, ratios
}

func printTable(w io.Writer, records []record) {
	r := index(records)
	fmt.Fprintf(w, "rounds: %d\n\n", len(r.rounds))
	fmt.Fprintf(w, "| %-44s | %-18s | %-18s | %-18s | %-14s | %-14s |\n", "measure", rpcbindLabel, portmapdLabel, floorLabel+" (trivial)", "portmapd/rpcbind", "portmapd/floor")
	fmt.Fprintf(w, "|%s|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 46), strings.Repeat("-", 20), strings.Repeat("-", 20), strings.Repeat("-", 20), strings.Repeat("-", 18), strings.Repeat("-", 16))
	for _, rw := range r.rows() {
		rb, rbRatio := r.perRound(rw, rpcbindLabel)
		pm, _ := r.perRound(rw, portmapdLabel)
		fl, flRatio := r.perRound(rw, floorLabel)
		fmt.Fprintf(w, "| %-44s | %-18s | %-18s | %-18s | %-16s | %-14s |\n", rw.label,
			span(rb, rw.format), span(pm, rw.format), span(fl, rw.format), span(rbRatio, ratio), span(flRatio, ratio))
	}
	fmt.Fprintln(w)
	printGoals(w, r)
}

// A goal is one of issue 14's targets, judged on the median round.
type goal struct {
	label string
	// values gives the measured value in each round.
	values func(r *results) []float64
	format func(float64) string
	met    func(float64) bool
}

// roundRatio is portmapd's value of k over daemon's, in each round.
func roundRatio(k, daemon string, f func(record) float64) func(*results) []float64 {
	return func(r *results) []float64 {
		var out []float64
		for _, round := range r.rounds {
			p, ok1 := r.byKey[k][portmapdLabel][round]
			o, ok2 := r.byKey[k][daemon][round]
			if ok1 && ok2 && f(o) != 0 {
				out = append(out, f(p)/f(o))
			}
		}
		return out
	}
}

func ownValue(f func(*results, string, int) (float64, bool)) func(*results) []float64 {
	return func(r *results) []float64 {
		var out []float64
		for _, round := range r.rounds {
			if v, ok := f(r, portmapdLabel, round); ok {
				out = append(out, v)
			}
		}
		return out
	}
}

func printGoals(w io.Writer, r *results) {
	biggest := 0
	for _, k := range r.keys {
		var measure string
		var size, clients int
		fmt.Sscanf(strings.ReplaceAll(k, "/", " "), "%s %d %d", &measure, &size, &clients)
		if measure == "rss" {
			biggest = max(biggest, size)
		}
	}
	rateOf := func(rec record) float64 { return rec.Rate }
	p99Of := func(rec record) float64 { return rec.P99 }
	goals := []goal{
		{"GETPORT udp, 8 clients, ≥ 0.9× the floor", roundRatio(key("getport-udp", 0, 8), floorLabel, rateOf), ratio, func(v float64) bool { return v >= 0.9 }},
		{"p99 ≤ rpcbind's, 1 client", roundRatio(key("getport-udp", 0, 1), rpcbindLabel, p99Of), ratio, func(v float64) bool { return v <= 1 }},
		{"p99 ≤ rpcbind's, 8 clients", roundRatio(key("getport-udp", 0, 8), rpcbindLabel, p99Of), ratio, func(v float64) bool { return v <= 1 }},
		{fmt.Sprintf("flat: GETPORT of the last at %s / empty", sizeLabel(biggest)), func(r *results) []float64 {
			var out []float64
			for _, round := range r.rounds {
				full, ok1 := r.byKey[key("getport-last-udp", biggest, 8)][portmapdLabel][round]
				empty, ok2 := r.byKey[key("getport-udp", 0, 8)][portmapdLabel][round]
				if ok1 && ok2 && empty.Rate != 0 {
					out = append(out, full.Rate/empty.Rate)
				}
			}
			return out
		}, ratio, func(v float64) bool { return v >= 0.9 }},
		{fmt.Sprintf("≤ 200 B RSS per registration at %s", sizeLabel(biggest)), ownValue(perRegistration(key("rss", biggest, 0), key("rss", 0, 0), max(biggest, 1))), bytesPer, func(v float64) bool { return v <= 200 }},
		{"≤ 8 MB RSS, empty", ownValue(field(key("rss", 0, 0), func(rec record) float64 { return float64(rec.RSS) })), mb, func(v float64) bool { return v <= 8*1024 }},
		{"JSON listing of 10,000 in ≤ 15 ms", ownValue(field(key("listing-json", 10000, 0), func(rec record) float64 { return rec.MS })), ms, func(v float64) bool { return v <= 15 }},
		{fmt.Sprintf("JSON listing of %s grows RSS < 8 MB", sizeLabel(biggest)), ownValue(growth(key("listing-json", biggest, 0))), mb, func(v float64) bool { return v < 8*1024 }},
	}
	fmt.Fprintf(w, "| %-48s | %-22s | %-4s |\n", "goal (portmapd)", "measured", "met")
	fmt.Fprintf(w, "|%s|%s|%s|\n", strings.Repeat("-", 50), strings.Repeat("-", 24), strings.Repeat("-", 6))
	for _, g := range goals {
		vs := g.values(r)
		met := "–"
		if len(vs) > 0 {
			met = "no"
			if g.met(median(vs)) {
				met = "yes"
			}
		}
		fmt.Fprintf(w, "| %-48s | %-22s | %-4s |\n", g.label, span(vs, g.format), met)
	}
}
