//go:build !linux

package residency

// DropExecutablePages does nothing where there is no /proc/self/maps.
func DropExecutablePages() (int, error) { return 0, nil }
