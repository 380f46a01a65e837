package worker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"atomuploads/upload"
)

// renewStore's Renew succeeds (taking latency) until failing is set, then
// fails at once (or hangs until its context ends).
type renewStore struct {
	mu      sync.Mutex
	latency time.Duration
	failing bool
	hang    bool
	expiry  time.Time // the lease's expiry as the table has it
	ttl     time.Duration
}

func (s *renewStore) Renew(ctx context.Context, _ upload.Lease) error {
	s.mu.Lock()
	failing, hang := s.failing, s.hang
	s.mu.Unlock()
	if hang && failing {
		<-ctx.Done()
		return ctx.Err()
	}
	if failing {
		return errors.New("DynamoDB unavailable")
	}
	now := time.Now() // the table's clock when the write is applied
	time.Sleep(s.latency)
	s.mu.Lock()
	s.expiry = now.Add(s.ttl)
	s.mu.Unlock()
	return nil
}

// TestRegressionRenewLeaseStopsTheTurnBeforeTheLeaseExpires: a holder that
// cannot renew stops at two thirds of the TTL from the start of its last
// successful renewal, before another may take over, and each renewal has a
// deadline of its own, so a renewal that hangs stops the turn too.
func TestRegressionRenewLeaseStopsTheTurnBeforeTheLeaseExpires(t *testing.T) {
	for _, hang := range []bool{false, true} {
		name := "failing renewals"
		if hang {
			name = "a hanging renewal"
		}
		t.Run(name, func(t *testing.T) {
			const ttl = 600 * time.Millisecond
			st := &renewStore{latency: 15 * time.Millisecond, ttl: ttl, hang: hang}
			ctx, lose := context.WithCancelCause(context.Background())
			defer lose(nil)
			lease := upload.Lease{AtomID: "a", UploadID: "u", Name: upload.LeaseYouTube, Owner: "me", TTL: ttl}
			done := make(chan struct{})
			go func() { defer close(done); renewLease(ctx, lose, st, lease, zap.NewNop()) }()
			// Let one renewal succeed, then fail every one after it.
			time.Sleep(ttl/3 + ttl/10)
			st.mu.Lock()
			st.failing = true
			expiry := st.expiry
			st.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(3 * ttl):
			}
			stopped := time.Now()
			if ctx.Err() == nil {
				t.Errorf("the turn was never cancelled (%s after the lease expired in the table)", stopped.Sub(expiry).Round(time.Millisecond))
				lose(nil)
			} else if margin := expiry.Sub(stopped); margin < ttl/6 {
				t.Errorf("the turn was cancelled %s before the lease's expiry in the table, want at least %s (it stops at 2/3 of the TTL)", margin.Round(time.Millisecond), ttl/6)
			}
			<-done
		})
	}
}

// TestRegressionCatchUpHashKeepsOneState: re-hashing from byte 0 up to
// YouTube's offset (a record without a hash state) keeps only the state it
// needs, not one per 256 KiB boundary: memory does not grow with the file.
func TestRegressionCatchUpHashKeepsOneState(t *testing.T) {
	h, err := newRunningHash(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, upload.MiB)
	const total = 64 * upload.MiB
	for range total / upload.MiB {
		_, _ = h.Write(buf)
	}
	if n := len(h.saved); n > 16 {
		t.Errorf("%d states kept after hashing %d MiB (one per 256 KiB): %d bytes of state per GiB", n, total/upload.MiB, int64(n*len(h.saved[0]))*(upload.GiB/total))
	}
}

// panicRenewals is a leaseStore whose renewals panic.
type panicRenewals struct{}

func (panicRenewals) Acquire(context.Context, upload.Lease) (*upload.Upload, bool, error) {
	return &upload.Upload{}, false, nil
}
func (panicRenewals) Renew(context.Context, upload.Lease) error   { panic("renewal blew up") }
func (panicRenewals) Release(context.Context, upload.Lease) error { return nil }
func (panicRenewals) Abandon(context.Context, upload.Lease) error { return nil }

// TestRegressionRenewerPanicEndsTheTurn: a panic in the renewer is
// recovered, and since nothing renews the lease any more the turn's
// context ends with ErrLeaseLost, before another instance may take over.
func TestRegressionRenewerPanicEndsTheTurn(t *testing.T) {
	l := &leases{store: panicRenewals{}, owner: "me", ttl: 300 * time.Millisecond, log: zap.NewNop()}
	err := l.hold(context.Background(), "a", "u", upload.LeaseYouTube, func(ctx context.Context, _ *held) (ending, error) {
		select {
		case <-ctx.Done():
			return abandon, context.Cause(ctx)
		case <-time.After(10 * time.Second):
			return release, errors.New("the turn outlived its lease")
		}
	})
	if !errors.Is(err, upload.ErrLeaseLost) {
		t.Errorf("hold = %v, want the lease lost", err)
	}
}
