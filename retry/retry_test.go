package retry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"atomuploads/retry"
)

func TestCeilingDoublesUpToTheCap(t *testing.T) {
	t.Parallel()
	p := retry.Policy{Base: 100 * time.Millisecond, Cap: time.Second}
	for _, c := range []struct {
		n    int
		want time.Duration
	}{
		{0, 100 * time.Millisecond}, {1, 100 * time.Millisecond}, {2, 200 * time.Millisecond},
		{4, 800 * time.Millisecond}, {5, time.Second}, {64, time.Second}, {1 << 20, time.Second},
	} {
		if got := p.Ceiling(c.n); got != c.want {
			t.Errorf("Ceiling(%d) = %s, want %s", c.n, got, c.want)
		}
	}
	if got := (retry.Policy{Base: time.Hour}).Ceiling(200); got <= 0 {
		t.Errorf("uncapped Ceiling(200) = %s, want positive (no overflow)", got)
	}
	if got := (retry.Policy{}).Delay(3); got != 0 {
		t.Errorf("zero policy Delay = %s, want 0", got)
	}
}

func TestDelayIsBetweenHalfAndAllOfTheCeiling(t *testing.T) {
	t.Parallel()
	p := retry.Policy{Base: 10 * time.Millisecond, Cap: 80 * time.Millisecond}
	for n := 1; n <= 6; n++ {
		c := p.Ceiling(n)
		seen := map[bool]bool{}
		for range 200 {
			d := p.Delay(n)
			if d < c/2 || d > c {
				t.Fatalf("Delay(%d) = %s, want within [%s, %s]", n, d, c/2, c)
			}
			seen[d < c*3/4] = true
		}
		if len(seen) != 2 {
			t.Errorf("Delay(%d) over 200 draws stayed in one half of its range: no jitter", n)
		}
	}
}

var errTemporary = errors.New("temporary")

func TestDoRetriesWhatIsRetryableWithinTheBound(t *testing.T) {
	t.Parallel()
	p := retry.Policy{Base: time.Millisecond, Cap: 2 * time.Millisecond, Attempts: 3}
	retryable := func(err error) bool { return errors.Is(err, errTemporary) }

	calls := 0
	err := p.Do(context.Background(), retryable, func(_ context.Context, attempt int) error {
		calls++
		if attempt != calls {
			t.Errorf("attempt = %d on call %d", attempt, calls)
		}
		return errTemporary
	})
	if !errors.Is(err, errTemporary) || calls != 3 {
		t.Errorf("Do = %v after %d calls, want the temporary error after 3", err, calls)
	}

	calls = 0
	permanent := errors.New("permanent")
	if err := p.Do(context.Background(), retryable, func(context.Context, int) error { calls++; return permanent }); !errors.Is(err, permanent) || calls != 1 {
		t.Errorf("Do = %v after %d calls, want the permanent error after 1", err, calls)
	}

	calls = 0
	if err := p.Do(context.Background(), retryable, func(context.Context, int) error {
		calls++
		if calls < 2 {
			return errTemporary
		}
		return nil
	}); err != nil || calls != 2 {
		t.Errorf("Do = %v after %d calls, want nil after 2", err, calls)
	}
}

func TestDoStopsWhenTheContextEnds(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	p := retry.Policy{Base: time.Hour} // unbounded attempts, long pauses
	calls := 0
	done := make(chan error)
	go func() {
		done <- p.Do(ctx, func(error) bool { return true }, func(context.Context, int) error { calls++; return errTemporary })
	}()
	time.AfterFunc(20*time.Millisecond, cancel)
	select {
	case err := <-done:
		if !errors.Is(err, errTemporary) || calls != 1 {
			t.Errorf("Do = %v after %d calls, want the last error after 1 call", err, calls)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Do did not return when its context ended")
	}
}

func TestSleepReturnsTheCause(t *testing.T) {
	t.Parallel()
	if err := retry.Sleep(context.Background(), time.Millisecond); err != nil {
		t.Errorf("Sleep = %v, want nil", err)
	}
	cause := errors.New("lease lost")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	if err := retry.Sleep(ctx, time.Hour); !errors.Is(err, cause) {
		t.Errorf("Sleep = %v, want the context's cause", err)
	}
	if err := retry.Sleep(ctx, 0); !errors.Is(err, cause) {
		t.Errorf("Sleep(0) on a done context = %v, want its cause", err)
	}
}
