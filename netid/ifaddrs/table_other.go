//go:build !linux

package ifaddrs

import (
	"context"
	"errors"
	"fmt"
)

// Watch reports that it cannot watch: the kernel announces no changes
// here.
func Watch(context.Context, func()) error {
	return fmt.Errorf("ifaddrs: no announcements of address changes on this system: %w", errors.ErrUnsupported)
}

// Open returns a Table. The kernel announces no changes that it could
// subscribe to here, so it reads the list on every call.
func Open() (*Table, error) {
	return &Table{read: Read, stale: true}, nil
}

// A subscription stands for announcements where there are none: every
// call must read the list.
type subscription struct{}

func (subscription) announced() bool { return true }

func (subscription) close() error { return nil }
