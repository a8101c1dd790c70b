package main

import (
	"os"
	"runtime/debug"
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
func setGCPercent(percent int, given bool) {
	if given || os.Getenv("GOGC") == "" {
		debug.SetGCPercent(percent)
	}
}
