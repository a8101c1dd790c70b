// Package lifetimetest runs a lifetime.Keeper for the tests of the
// packages that register through one.
package lifetimetest

import (
	"context"
	"testing"

	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/registry/lifetime"
)

// Run returns a Keeper of reg that watches processes, and prunes nothing,
// until the test ends; then it checks that Run ended well and closes it.
func Run(t testing.TB, reg *registry.Registry) *lifetime.Keeper {
	t.Helper()
	life, err := lifetime.New(reg, lifetime.Config{NoPrune: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- life.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("lifetime: %v", err)
		}
		if err := life.Close(); err != nil {
			t.Errorf("lifetime: %v", err)
		}
	})
	return life
}
