// Package retry is the one retry policy of atom-uploads: jittered
// exponential backoff with a cap, and one way to wait for a pause that a
// context can cut short. The components that retry (the queue pool, the
// YouTube relay, the YouTube and atom API clients, the progress table's
// conflict loop) differ only in the parameters of a Policy, which each names
// where it is declared.
//
// The jitter is "equal jitter": the pause before retry n is a random
// duration between half and all of min(Base·2^(n-1), Cap), so that many
// instances retrying the same thing spread out, while no pause is shorter
// than half its ceiling.
package retry

import (
	"context"
	"math"
	"math/rand/v2"
	"time"
)

// Policy is a backoff curve and, for Do, a bound on the attempts.
type Policy struct {
	// Base is the ceiling of the first pause; it doubles with each retry.
	Base time.Duration
	// Cap is the largest ceiling; 0 means no cap beyond Base·2^30.
	Cap time.Duration
	// Attempts bounds Do: the attempts made in all, the first included.
	// 0 or less means Do tries until ctx ends.
	Attempts int
}

// Ceiling is the longest pause before retry n (1-based): Base·2^(n-1), at
// most Cap.
func (p Policy) Ceiling(n int) time.Duration {
	if p.Base <= 0 {
		return 0
	}
	c := p.Base
	for range min(max(n-1, 0), 30) {
		if p.Cap > 0 && c >= p.Cap || c > math.MaxInt64/2 {
			break
		}
		c *= 2
	}
	if p.Cap > 0 && c > p.Cap {
		c = p.Cap
	}
	return c
}

// Delay is the pause before retry n (1-based): a random duration between
// half and all of Ceiling(n).
func (p Policy) Delay(n int) time.Duration {
	c := p.Ceiling(n)
	if c <= 0 {
		return 0
	}
	return c/2 + rand.N(c/2+1)
}

// Sleep waits for d, or until ctx is done; then it returns ctx's cause.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return context.Cause(ctx)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// Do calls fn until it returns nil, an error for which retryable is false,
// p.Attempts attempts are spent, or ctx ends, pausing Delay(n) before retry
// n. attempt is 1 for the first call. It returns fn's last error; when ctx
// ends during a pause, the last error joined with nothing else is returned
// (the caller sees why the work failed, not that the wait was cut).
func (p Policy) Do(ctx context.Context, retryable func(error) bool, fn func(ctx context.Context, attempt int) error) error {
	for attempt := 1; ; attempt++ {
		err := fn(ctx, attempt)
		if err == nil || !retryable(err) || ctx.Err() != nil {
			return err
		}
		if p.Attempts > 0 && attempt >= p.Attempts {
			return err
		}
		if Sleep(ctx, p.Delay(attempt)) != nil {
			return err
		}
	}
}
