package worker_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"atomuploads/upload"
	"atomuploads/worker"
)

// blockChunk makes the first chunk PUT wait until its context ends, and
// reports the context's cause.
func (e *unitEnv) blockChunk() (cause func() error) {
	var got atomic.Value
	var calls atomic.Int32
	e.yt.beforeCommit = func(ctx context.Context, _, _ int64) error {
		if calls.Add(1) > 1 {
			return nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			return errors.New("the turn's context was never cancelled")
		}
		got.Store(context.Cause(ctx))
		return context.Cause(ctx)
	}
	return func() error {
		err, _ := got.Load().(error)
		return err
	}
}

// TestUnitLeaseLostCancelsTheTurn: another owner takes the lease while a
// chunk is in flight; the renewal finds it lost and cancels the turn with
// upload.ErrLeaseLost as the cause; not one more byte is sent.
func TestUnitLeaseLostCancelsTheTurn(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t, unitOpts{cfg: func(c *worker.Config) { c.LeaseTTL = 300 * time.Millisecond }})
	u := e.create(threeParts, ytDest())
	e.markIn(u, unitFile(t, u.Size), 0)
	cause := e.blockChunk()
	e.yt.onCall("PutChunk", func(n int) {
		if n == 1 {
			e.store.setLease(t, u.AtomID, u.ID, upload.LeaseYouTube, "unit-thief#1", e.store.clock.Now().Add(time.Minute))
		}
	})
	res := e.handle(ownBody(worker.KindRelay, u, 0))
	if !errors.Is(cause(), upload.ErrLeaseLost) {
		t.Errorf("the chunk's context ended with %v, want upload.ErrLeaseLost", cause())
	}
	// The lost turn is retried on a message of its own (the thief may die
	// too): no failure, as the session it started is progress.
	if res != (worker.Result{}) {
		t.Errorf("Handle = %+v, want the message deleted", res)
	}
	if m := e.queue.ofKind(worker.KindRelay); len(m) != 1 {
		t.Errorf("relay messages %+v, want one", m)
	} else {
		e.checkRetry(m[0], worker.KindRelay, 0, "another worker took the work over")
	}
	if n := e.yt.count("PutChunk"); n != 1 {
		t.Errorf("%d chunk PUTs, want 1: nothing after the lease was lost", n)
	}
	if ss := e.yt.allSessions(); ss[0].Committed != 0 {
		t.Errorf("committed %d, want 0", ss[0].Committed)
	}
	if l, _ := e.store.lease(u.AtomID, u.ID, upload.LeaseYouTube); l.Owner != "unit-thief#1" || l.Expiry == 0 {
		t.Errorf("lease %+v, want the new holder's, untouched", l)
	}
}

func TestUnitLeaseThatCannotBeRenewedIsGivenUp(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t, unitOpts{cfg: func(c *worker.Config) { c.LeaseTTL = 300 * time.Millisecond }})
	u := e.create(threeParts, ytDest())
	e.markIn(u, unitFile(t, u.Size), 0)
	cause := e.blockChunk()
	e.store.failAlways("Renew", errors.New("dynamodb unreachable"))
	res := e.handle(ownBody(worker.KindRelay, u, 0))
	if err := cause(); !errors.Is(err, upload.ErrLeaseLost) || !strings.Contains(err.Error(), "could not renew it for") {
		t.Errorf("the chunk's context ended with %v, want upload.ErrLeaseLost: could not renew it", err)
	}
	if res != (worker.Result{}) {
		t.Errorf("Handle = %+v, want the message deleted", res)
	}
	if m := e.queue.ofKind(worker.KindRelay); len(m) != 1 {
		t.Errorf("relay messages %+v, want one", m)
	} else {
		e.checkRetry(m[0], worker.KindRelay, 0, "another worker took the work over")
	}
}

func TestUnitLeaseIsRenewedWhileTheTurnRuns(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t, unitOpts{cfg: func(c *worker.Config) { c.LeaseTTL = 900 * time.Millisecond }})
	u := e.create(threeParts, ytDest())
	file := unitFile(t, u.Size)
	e.markIn(u, file, 0)
	var slow atomic.Bool
	e.yt.beforeCommit = func(ctx context.Context, _, _ int64) error {
		if slow.CompareAndSwap(false, true) {
			// Longer than the lease: only renewals keep it.
			for e.store.count("Renew") < 3 {
				if err := ctx.Err(); err != nil {
					return err
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		return nil
	}
	e.mustHandle(ownBody(worker.KindRelay, u, 0))
	if got := e.get(u).Destination(upload.YouTube).UploadedBytes; got != 5*upload.MiB {
		t.Errorf("%d bytes relayed, want part 0 (%d)", got, 5*upload.MiB)
	}
	if n := e.store.count("Renew"); n < 3 {
		t.Errorf("%d renewals, want at least 3", n)
	}
}

// TestUnitLeaseEndings: how a turn ends shows in the table, and in what the
// next holder does.
func TestUnitLeaseEndings(t *testing.T) {
	t.Parallel()
	t.Run("release: the next holder trusts the record", func(t *testing.T) {
		t.Parallel()
		e := newUnitEnv(t)
		u := e.create(threeParts, ytDest())
		file := unitFile(t, u.Size)
		e.arrive(u, file, 0)
		if l, ok := e.store.lease(u.AtomID, u.ID, upload.LeaseYouTube); ok {
			t.Errorf("lease %+v after a clean turn, want released", l)
		}
		e.arrive(u, file, 1)
		if n := e.yt.count("Offset"); n != 0 {
			t.Errorf("%d offset queries, want none after a release", n)
		}
	})
	t.Run("abandon: the next holder takes over and asks YouTube", func(t *testing.T) {
		t.Parallel()
		e := newUnitEnv(t)
		u := e.create(threeParts, ytDest())
		file := unitFile(t, u.Size)
		errStore := errors.New("dynamodb unreachable")
		e.store.failNext("ReleaseIfMissing", errStore)
		e.putPart(u, file, 0)
		if res := e.handle(partBody(u, 0)); res != (worker.Result{}) {
			t.Fatalf("Handle = %+v, want the message deleted: the relay is retried on a message of its own", res)
		}
		if m := e.queue.ofKind(worker.KindRelay); len(m) != 1 {
			t.Errorf("relay messages %+v, want one", m)
		}
		if l, ok := e.store.lease(u.AtomID, u.ID, upload.LeaseYouTube); !ok || l.Expiry != 0 || !strings.HasPrefix(l.Owner, "unit-a#") {
			t.Errorf("lease %+v (present %t), want abandoned: owner kept, expiry 0", l, ok)
		}
		calls := e.ytCalls()
		e.arrive(u, file, 1)
		if c := calls(); len(c) == 0 || c[0] != "Offset" {
			t.Errorf("YouTube calls %q, want the offset query first", c)
		}
		e.arrive(u, file, 2)
		e.checkVideo(file)
	})
	t.Run("keep: nobody holds it before it expires", func(t *testing.T) {
		t.Parallel()
		e := newUnitEnv(t)
		u := e.create(threeParts, ytDest())
		e.assetDue(u)
		e.atom.failNext("AddAsset", context.DeadlineExceeded)
		e.mustHandle(ownBody(worker.KindAsset, u, 0))
		l, ok := e.store.lease(u.AtomID, u.ID, upload.LeaseAsset)
		if !ok || l.Expiry < e.store.clock.Now().Add(e.cfg.LeaseTTL/2).UnixMilli() {
			t.Fatalf("lease %+v (present %t), want kept for its TTL", l, ok)
		}
		_, _, err := e.store.Acquire(t.Context(), upload.Lease{AtomID: u.AtomID, UploadID: u.ID, Name: upload.LeaseAsset, Owner: "unit-b#1", TTL: time.Minute})
		if !errors.Is(err, upload.ErrLeaseHeld) {
			t.Errorf("Acquire by another owner = %v, want upload.ErrLeaseHeld", err)
		}
		e.store.clock.Advance(e.cfg.LeaseTTL + time.Second)
		_, takenOver, err := e.store.Acquire(t.Context(), upload.Lease{AtomID: u.AtomID, UploadID: u.ID, Name: upload.LeaseAsset, Owner: "unit-b#1", TTL: time.Minute})
		if err != nil || !takenOver {
			t.Errorf("Acquire after the expiry = taken over %t, %v; want taken over", takenOver, err)
		}
	})
}

// TestUnitLeaseEndingIsWrittenAfterTheContextEnds: the shutdown grace ends
// mid-chunk; the turn still abandons its lease, so the next instance need
// not wait for it to expire.
func TestUnitLeaseEndingIsWrittenAfterTheContextEnds(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts, ytDest())
	e.markIn(u, unitFile(t, u.Size), 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.yt.beforeCommit = func(context.Context, int64, int64) error {
		cancel()
		return context.Canceled
	}
	res := e.d.Handle(ctx, worker.Message{ID: "m-grace", Body: ownBody(worker.KindRelay, u, 0), ReceiveCount: 1})
	if res != (worker.Result{}) {
		t.Fatalf("Handle = %+v, want the message deleted: the work is handed over on a fresh one", res)
	}
	if l, ok := e.store.lease(u.AtomID, u.ID, upload.LeaseYouTube); !ok || l.Expiry != 0 {
		t.Errorf("lease %+v (present %t), want abandoned despite the ended context", l, ok)
	}
	if m := e.queue.sent(); len(m) != 1 || m[0].Kind != worker.KindRelay || m[0].Delay != 0 || m[0].Failures != 0 {
		t.Errorf("messages %+v, want the relay handed back at once", m)
	}
}

// TestUnitLeaseStopsRenewingAfterAPanic: a step panics while it holds a
// lease; the renewer stops with it, so the lease expires and another
// instance can take the work over (it used to be renewed for as long as
// the process lived).
func TestUnitLeaseStopsRenewingAfterAPanic(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t, unitOpts{cfg: func(c *worker.Config) { c.LeaseTTL = 150 * time.Millisecond }})
	u := e.create(threeParts, ytDest())
	e.assetDue(u)
	e.atom.onCall("AddAsset", func(int) {
		waitUntil(t, "a renewal", func() bool { return e.store.count("Renew") >= 1 })
		panic("atom client: nil pointer")
	})
	var recovered any
	func() {
		defer func() { recovered = recover() }()
		// A context that outlives the turn, as the pool's does.
		e.d.Handle(t.Context(), worker.Message{ID: "m-panic", Body: ownBody(worker.KindAsset, u, 0), ReceiveCount: 1})
	}()
	if recovered == nil {
		t.Fatal("the step's panic did not reach the caller")
	}
	renewals := e.store.count("Renew")
	time.Sleep(2 * e.cfg.LeaseTTL) // six renewal periods
	if n := e.store.count("Renew"); n != renewals {
		t.Errorf("%d renewals after the panic, want none", n-renewals)
	}
	_, takenOver, err := e.store.Acquire(t.Context(), upload.Lease{AtomID: u.AtomID, UploadID: u.ID, Name: upload.LeaseAsset, Owner: "unit-b#1", TTL: time.Minute})
	if err != nil || !takenOver {
		t.Errorf("Acquire by another instance = taken over %t, %v; want the expired lease taken over", takenOver, err)
	}
}
