package netlimit

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// DefaultReserve is how many descriptors DescriptorBudget keeps back from
// network connections by default.
const DefaultReserve = 512

// DescriptorBudget returns a Budget of the process's soft RLIMIT_NOFILE
// less reserve, but at least half of the limit, and the limit itself.
// Call it after raising the limit.
func DescriptorBudget(reserve int) (*Budget, uint64, error) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return nil, 0, fmt.Errorf("netlimit: RLIMIT_NOFILE: %w", err)
	}
	return NewBudget(budgetOf(rl.Cur, reserve)), rl.Cur, nil
}

// budgetOf is limit less reserve, at least half of limit, and no more
// than an int holds.
func budgetOf(limit uint64, reserve int) int {
	limit = min(limit, 1<<30)
	half := limit / 2
	if reserve < 0 || uint64(reserve) > half {
		return int(limit - half)
	}
	return int(limit - uint64(reserve))
}

// RaiseDescriptorLimit raises the soft RLIMIT_NOFILE to the hard limit and
// returns the new soft limit, so that the budget is as large as the host
// allows.
func RaiseDescriptorLimit() (uint64, error) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("netlimit: RLIMIT_NOFILE: %w", err)
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
			return 0, fmt.Errorf("netlimit: raise RLIMIT_NOFILE to %d: %w", rl.Max, err)
		}
	}
	return rl.Cur, nil
}
