package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"atomuploads/metrics"
	"atomuploads/upload"
)

// leaseStore is what a lease needs of the table.
type leaseStore interface {
	Acquire(ctx context.Context, l upload.Lease) (u *upload.Upload, takenOver bool, err error)
	Renew(ctx context.Context, l upload.Lease) error
	Release(ctx context.Context, l upload.Lease) error
	Abandon(ctx context.Context, l upload.Lease) error
}

// ending says how a turn at a lease ends.
type ending int

const (
	// release: the holder vouches for the record; the next holder is not
	// a takeover.
	release ending = iota
	// abandon: free at once, but the next holder counts as a takeover and
	// checks what the record cannot know (what YouTube committed).
	abandon
	// keep: held until it expires, so that nobody takes over before then
	// (a call the holder gave up on may still be landing).
	keep
)

func (e ending) String() string {
	switch e {
	case release:
		return "release"
	case abandon:
		return "abandon"
	case keep:
		return "keep"
	}
	return fmt.Sprintf("ending(%d)", int(e))
}

// leases runs turns at the leases of uploads: acquire, keep renewing at a
// third of the TTL while the turn's function runs, and end the turn in one
// of its three ways. Every use of a lease in the worker goes through it.
type leases struct {
	store   leaseStore
	owner   string // this instance
	ttl     time.Duration
	turns   atomic.Int64
	log     *zap.Logger
	metrics *metrics.Metrics
}

// held is one turn at a lease.
type held struct {
	lease upload.Lease
	// upload is the record as it was when the lease was acquired.
	upload *upload.Upload
	// takenOver: the lease was taken from a holder that did not release
	// it (it expired, or was abandoned), so what that holder recorded may
	// lag behind what it did.
	takenOver bool
	// ended is set when the turn's function let go of the lease itself
	// (a conditional release that succeeded).
	ended bool
}

// hold acquires the lease name of the upload and runs fn while renewing
// it. fn's context is cancelled with upload.ErrLeaseLost as its cause when
// the lease is lost, or could not be renewed for two thirds of its TTL (a
// holder must stop before another may take over). fn says how the turn
// ends; the ending is written even when ctx is over, within
// bookkeepingTimeout. A lease held by another is upload.ErrLeaseHeld, and
// fn does not run. hold returns fn's error.
func (l *leases) hold(ctx context.Context, atomID, id string, name upload.LeaseName, fn func(ctx context.Context, h *held) (ending, error)) error {
	lease := upload.Lease{AtomID: atomID, UploadID: id, Name: name, Owner: l.holder(), TTL: l.ttl}
	u, takenOver, err := l.store.Acquire(ctx, lease)
	if errors.Is(err, upload.ErrLeaseHeld) {
		l.metrics.Lease(string(name), metrics.LeaseBusy)
	}
	if err != nil {
		return err
	}
	l.metrics.Lease(string(name), metrics.LeaseAcquired)
	if takenOver {
		l.metrics.Lease(string(name), metrics.LeaseTakenOver)
	}
	h := &held{lease: lease, upload: u, takenOver: takenOver}
	turnCtx, lose := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var err error
		defer func() {
			if err != nil { // a panic: nothing renews the lease any more, so the turn ends
				lose(upload.ErrLeaseLost)
			}
		}()
		defer recoverInto(&err, l.log, "lease renewer", zap.String("atomId", atomID), zap.String("uploadId", id))
		renewLease(turnCtx, lose, l.store, lease, l.log)
	}()
	stopRenewing := func() { lose(nil); wg.Wait() }
	defer func() {
		// A panic in fn (recovered further up, and retried like any
		// failure) stops the renewer and abandons the lease: the retry
		// may take it at once, as a takeover that checks what the record
		// cannot know.
		if p := recover(); p != nil {
			stopRenewing()
			if !h.ended {
				l.end(ctx, lease, abandon)
			}
			panic(p)
		}
	}()
	end, err := fn(turnCtx, h)
	if errors.Is(context.Cause(turnCtx), upload.ErrLeaseLost) || errors.Is(err, upload.ErrLeaseLost) {
		l.metrics.Lease(string(name), metrics.LeaseLost)
	}
	stopRenewing()
	if !h.ended {
		l.end(ctx, lease, end)
	}
	return err
}

// end ends a turn at a lease, even when ctx is over, within
// bookkeepingTimeout. Ending a lease that was lost meanwhile is harmless:
// every ending is conditional on the owner.
func (l *leases) end(ctx context.Context, lease upload.Lease, end ending) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	var eerr error
	switch end {
	case release:
		eerr = l.store.Release(bctx, lease)
	case abandon:
		eerr = l.store.Abandon(bctx, lease)
	case keep:
	}
	if eerr != nil {
		l.log.Warn("could not let go of the lease; it expires by itself", zap.String("atomId", lease.AtomID), zap.String("uploadId", lease.UploadID),
			zap.String("lease", string(lease.Name)), zap.Stringer("ending", end), zap.Error(eerr))
	}
}

// holder names one turn of this instance at a lease: two goroutines of one
// process must not both hold a lease, so the owner is unique per turn.
func (l *leases) holder() string {
	return fmt.Sprintf("%s#%d", l.owner, l.turns.Add(1))
}

// renewLease renews the lease every sixth of its TTL until ctx ends, so
// that a slow or failed renewal leaves room for another before the turn
// must stop.
// Losing it, or failing to renew it for two thirds of its TTL, cancels the
// turn with upload.ErrLeaseLost: the table's expiry is at most a TTL after
// the start of the last renewal that succeeded (or of this turn), so the
// holder stops a third of a TTL before another may take over, whether the
// renewals fail or hang (each is bounded by the time left); the ticks a
// slow renewal spans are dropped.
func renewLease(ctx context.Context, lose context.CancelCauseFunc, st interface {
	Renew(ctx context.Context, l upload.Lease) error
}, lease upload.Lease, log *zap.Logger) {
	tick := time.NewTicker(lease.TTL / 6)
	defer tick.Stop()
	valid := time.Now().Add(lease.TTL * 2 / 3) // stop by then unless renewed
	stop := time.NewTimer(time.Until(valid))
	defer stop.Stop()
	lost := func(cause error) {
		lose(fmt.Errorf("%w: could not renew it for %s: %w", upload.ErrLeaseLost, (lease.TTL * 2 / 3).Round(time.Millisecond), cause))
	}
	last := errors.New("no renewal answered in time")
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop.C:
			lost(last)
			return
		case <-tick.C:
			// A slow renewal may take all the time left: the turn must stop
			// by valid anyway, and one that answers by then counts.
			start := time.Now()
			rctx, cancel := context.WithDeadline(ctx, valid)
			err := st.Renew(rctx, lease)
			cancel()
			switch {
			case err == nil:
				valid = start.Add(lease.TTL * 2 / 3)
				stop.Reset(time.Until(valid))
			case errors.Is(err, upload.ErrLeaseLost):
				lose(upload.ErrLeaseLost)
				return
			case ctx.Err() != nil:
				return
			case !time.Now().Before(valid):
				lost(err)
				return
			default:
				last = err
				log.Warn("renew lease", zap.String("atomId", lease.AtomID), zap.String("uploadId", lease.UploadID),
					zap.String("lease", string(lease.Name)), zap.Error(err))
			}
		}
	}
}

// partReleaser releases a lease on condition that a part is missing.
type partReleaser interface {
	ReleaseIfMissing(ctx context.Context, l upload.Lease, n int) (bool, error)
}

// releaseIfMissing lets go of the lease only while part n is still
// missing, and reports whether it did; the turn then ends released.
func (h *held) releaseIfMissing(ctx context.Context, st partReleaser, n int) (bool, error) {
	released, err := st.ReleaseIfMissing(ctx, h.lease, n)
	if released {
		h.ended = true
	}
	return released, err
}
