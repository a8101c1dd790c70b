// Package residency gives back the memory a daemon's start-up touched and
// serving does not need.
//
// A Go binary's text and read-only data are mapped from its file. Start-up
// (every package's initialisation, flag parsing, templates) touches pages
// all over them, and the kernel maps each fault's neighbours too (fault-
// around, 64 KiB), so that portmapd, 22 MB on disk, had some 14 MB of its
// file resident before it served a call, against 2.5 MB of heap and
// stacks. Those pages are clean copies of the file, in the page cache
// whatever this process does; DropExecutablePages takes them out of its
// page tables, and the ones serving uses come back, from the page cache,
// on their first use.
package residency
