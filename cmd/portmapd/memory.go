package main

import (
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/portmapd/portmapd/internal/residency"
)

// defaultGCPercent is --gc-percent's default. The registry is the live
// heap, 13 MB at 100,000 registrations, and Go's default of 100 lets the
// heap reach twice that before collecting: 280 bytes of RSS a
// registration. At 25, 170-200. Lookups allocate nothing, so the
// collections this costs come with changes and listings only.
const defaultGCPercent = 25

// setGCPercent applies --gc-percent: when given, or when GOGC is not set
// in the environment. It is applied once the daemon serves: restoring a
// large journal at start allocates much and keeps little, and collecting
// four times as often made it a third slower (a 256 MiB journal:
// TestStopWhileRestoringAHugeJournal).
func setGCPercent(o options) {
	if o.gcPercentSet || os.Getenv("GOGC") == "" {
		debug.SetGCPercent(o.gcPercent)
	}
}

// dropStartupPages gives back, once the daemon serves, the pages of its
// executable that start-up touched (see package residency).
func dropStartupPages(log *slog.Logger) {
	n, err := residency.DropExecutablePages()
	if err != nil {
		log.Debug("start-up pages kept", "err", err)
		return
	}
	log.Debug("start-up pages given back", "mapped_bytes", n)
}
