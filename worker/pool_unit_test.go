package worker_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"atomuploads/transcode"
	"atomuploads/upload"
	"atomuploads/worker"
)

const (
	poolQueueURL = "https://sqs.eu-west-1.amazonaws.com/000000000000/pool"
	poolDLQURL   = "https://sqs.eu-west-1.amazonaws.com/000000000000/pool-dlq"
)

// handlerFunc is a worker.Handler.
type handlerFunc func(ctx context.Context, m worker.Message) worker.Result

func (f handlerFunc) Handle(ctx context.Context, m worker.Message) worker.Result { return f(ctx, m) }

// startUnitPool runs a pool over q and h until the test ends or stop is
// called with the shutdown grace.
func startUnitPool(t testing.TB, q *fakeSQS, cfg worker.PoolConfig, h worker.Handler) (stop func(grace time.Duration)) {
	t.Helper()
	if cfg.QueueURL == "" {
		cfg.QueueURL = poolQueueURL
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 4
	}
	if cfg.Visibility == 0 {
		cfg.Visibility = 30 * time.Second
	}
	cfg.WaitTime = time.Second
	log, _ := unitLogger(t)
	pool := worker.NewPool(q, cfg, h, log)
	if err := pool.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := pool.Start(context.Background()); err == nil {
		t.Error("a second Start succeeded, want an error")
	}
	var once sync.Once
	stop = func(grace time.Duration) {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), grace)
			defer cancel()
			if err := pool.Stop(ctx); err != nil {
				t.Errorf("Stop: %v", err)
			}
		})
	}
	t.Cleanup(func() { stop(10 * time.Second) })
	return stop
}

// visibilityOf returns the visibility changes of one message.
func visibilityOf(q *fakeSQS, id string) []time.Duration {
	_, vis, _, _ := q.snapshot()
	var out []time.Duration
	for _, v := range vis {
		if v.ID == id {
			out = append(out, v.Timeout)
		}
	}
	return out
}

func deletedIDs(q *fakeSQS) []string {
	d, _, _, _ := q.snapshot()
	return d
}

func TestUnitPoolDeletesAHandledMessage(t *testing.T) {
	t.Parallel()
	q := newFakeSQS(poolQueueURL)
	got := make(chan worker.Message, 1)
	startUnitPool(t, q, worker.PoolConfig{}, handlerFunc(func(_ context.Context, m worker.Message) worker.Result {
		got <- m
		return worker.Result{}
	}))
	id := q.enqueue(`{"hello":1}`)
	m := <-got
	if m.ID != id || m.Body != `{"hello":1}` || m.ReceiveCount != 1 {
		t.Errorf("handler got %+v, want %s with its body, received once", m, id)
	}
	waitUntil(t, "the delete", func() bool { return slices.Contains(deletedIDs(q), id) })
	if v := visibilityOf(q, id); len(v) != 0 {
		t.Errorf("visibility changes %v of a handled message, want none", v)
	}
}

func TestUnitPoolHandsBackAFailedMessageWithABackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler func(n int32) worker.Result
	}{
		{name: "error", handler: func(int32) worker.Result { return worker.Result{Err: errors.New("store unreachable")} }},
		// A panicking handler is recovered and its message retried like
		// any failure (the recovery used to recover nothing).
		{name: "panic", handler: func(int32) worker.Result { panic("a bug in a step") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := newFakeSQS(poolQueueURL)
			var calls atomic.Int32
			handled := make(chan string, 2)
			startUnitPool(t, q, worker.PoolConfig{}, handlerFunc(func(_ context.Context, m worker.Message) worker.Result {
				defer func() { handled <- m.ID }()
				if m.Body == "next" {
					return worker.Result{}
				}
				return tt.handler(calls.Add(1))
			}))
			id := q.enqueue("poison")
			<-handled
			waitUntil(t, "the visibility change", func() bool { return len(visibilityOf(q, id)) == 1 })
			// messageRetry.Delay(1): between half and all of 2 s.
			if v := visibilityOf(q, id); v[0] < time.Second || v[0] > 2*time.Second {
				t.Errorf("visibility %s, want a backoff of 1–2 s", v[0])
			}
			// The pool goes on: the next message is handled and deleted.
			next := q.enqueue("next")
			waitUntil(t, "the next message's delete", func() bool { return slices.Contains(deletedIDs(q), next) })
			if slices.Contains(deletedIDs(q), id) {
				t.Error("the failed message was deleted")
			}
		})
	}
}

func TestUnitPoolDeadLetter(t *testing.T) {
	t.Parallel()
	t.Run("to the dead-letter queue", func(t *testing.T) {
		t.Parallel()
		q := newFakeSQS(poolQueueURL)
		startUnitPool(t, q, worker.PoolConfig{DeadLetterURL: poolDLQURL}, handlerFunc(func(context.Context, worker.Message) worker.Result {
			return worker.Result{DeadLetter: true}
		}))
		id := q.enqueue(`{"atomUploads":{"kind":"fromTheFuture"}}`)
		waitUntil(t, "the delete", func() bool { return slices.Contains(deletedIDs(q), id) })
		if _, _, dlq, _ := q.snapshot(); len(dlq) != 1 || dlq[0].QueueURL != poolDLQURL || dlq[0].Body != `{"atomUploads":{"kind":"fromTheFuture"}}` {
			t.Errorf("sent elsewhere %+v, want the body on the dead-letter queue", dlq)
		}
	})
	t.Run("left to the redrive policy", func(t *testing.T) {
		t.Parallel()
		q := newFakeSQS(poolQueueURL)
		startUnitPool(t, q, worker.PoolConfig{}, handlerFunc(func(context.Context, worker.Message) worker.Result {
			return worker.Result{DeadLetter: true}
		}))
		id := q.enqueue("from the future")
		waitUntil(t, "the visibility change", func() bool { return len(visibilityOf(q, id)) == 1 })
		if v := visibilityOf(q, id); v[0] != 12*time.Hour {
			t.Errorf("visibility %s, want 12h: as slowly as SQS allows", v[0])
		}
		if slices.Contains(deletedIDs(q), id) {
			t.Error("the message was deleted")
		}
	})
}

func TestUnitPoolStopHandsBackWorkInFlight(t *testing.T) {
	t.Parallel()
	q := newFakeSQS(poolQueueURL)
	started := make(chan struct{})
	var cause atomic.Value
	stop := startUnitPool(t, q, worker.PoolConfig{}, handlerFunc(func(ctx context.Context, _ worker.Message) worker.Result {
		close(started)
		<-ctx.Done() // slower than the grace
		cause.Store(ctx.Err())
		return worker.Result{Err: ctx.Err()}
	}))
	id := q.enqueue("slow")
	<-started
	stop(50 * time.Millisecond)
	if err, _ := cause.Load().(error); !errors.Is(err, context.Canceled) {
		t.Errorf("handler's context ended with %v, want cancelled at the end of the grace", err)
	}
	if v := visibilityOf(q, id); !slices.Equal(v, []time.Duration{0}) {
		t.Errorf("visibility changes %v, want the message handed back (0)", v)
	}
	if _, _, _, depth := q.snapshot(); depth != 1 || slices.Contains(deletedIDs(q), id) {
		t.Errorf("queue depth %d, deleted %v; want the message back on the queue", depth, deletedIDs(q))
	}
}

func TestUnitPoolStopLetsWorkFinishWithinTheGrace(t *testing.T) {
	t.Parallel()
	q := newFakeSQS(poolQueueURL)
	started, finish := make(chan struct{}), make(chan struct{})
	stop := startUnitPool(t, q, worker.PoolConfig{}, handlerFunc(func(ctx context.Context, _ worker.Message) worker.Result {
		close(started)
		select {
		case <-finish:
			return worker.Result{}
		case <-ctx.Done():
			return worker.Result{Err: ctx.Err()}
		}
	}))
	id := q.enqueue("work")
	<-started
	stopped := make(chan struct{})
	go func() {
		stop(10 * time.Second)
		close(stopped)
	}()
	close(finish)
	<-stopped
	if !slices.Contains(deletedIDs(q), id) {
		t.Errorf("deleted %v, want the finished message deleted", deletedIDs(q))
	}
	if n := q.count("ReceiveMessage"); n == 0 {
		t.Error("no receive calls")
	}
	before := q.count("ReceiveMessage")
	q.enqueue("after the stop")
	time.Sleep(30 * time.Millisecond) // a receive would be seen in this time
	if n := q.count("ReceiveMessage"); n != before {
		t.Errorf("%d receive calls after Stop, want none", n-before)
	}
}

func TestUnitPoolKeepsAMessageInvisibleWhileItIsHandled(t *testing.T) {
	t.Parallel()
	q := newFakeSQS(poolQueueURL)
	var id atomic.Value
	startUnitPool(t, q, worker.PoolConfig{Visibility: time.Second}, handlerFunc(func(_ context.Context, m worker.Message) worker.Result {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if len(visibilityOf(q, m.ID)) > 0 {
				return worker.Result{} // a heartbeat came while handling
			}
		}
		return worker.Result{Err: errors.New("no heartbeat")}
	}))
	id.Store(q.enqueue("long work"))
	waitUntil(t, "the delete", func() bool { return slices.Contains(deletedIDs(q), id.Load().(string)) })
	if v := visibilityOf(q, id.Load().(string)); len(v) == 0 || v[0] != time.Second {
		t.Errorf("visibility changes %v, want the visibility extended to 1s while handled", v)
	}
}

func TestUnitPoolBoundsTheMessagesInHand(t *testing.T) {
	t.Parallel()
	q := newFakeSQS(poolQueueURL)
	var now, most atomic.Int32
	release := make(chan struct{})
	startUnitPool(t, q, worker.PoolConfig{Concurrency: 2}, handlerFunc(func(ctx context.Context, _ worker.Message) worker.Result {
		n := now.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		defer now.Add(-1)
		select {
		case <-release:
			return worker.Result{}
		case <-ctx.Done():
			return worker.Result{Err: ctx.Err()}
		}
	}))
	for range 6 {
		q.enqueue("work")
	}
	waitUntil(t, "two messages in hand", func() bool { return now.Load() >= 2 })
	// A little time for a third, which a missing bound would let in.
	for deadline := time.Now().Add(20 * time.Millisecond); time.Now().Before(deadline) && most.Load() == 2; {
		time.Sleep(time.Millisecond)
	}
	close(release)
	waitUntil(t, "every delete", func() bool { return len(deletedIDs(q)) == 6 })
	if m := most.Load(); m != 2 {
		t.Errorf("%d messages handled at once, want at most 2 (and 2 reached)", m)
	}
}

// TestUnitPoolLongHandlersLeaveTheirSlots: a handler that detaches (a
// relay's long turn) leaves its slot to other messages, up to
// Concurrency long handlers; one more keeps its slot, and the messages
// after it wait for a slot.
func TestUnitPoolLongHandlersLeaveTheirSlots(t *testing.T) {
	t.Parallel()
	q := newFakeSQS(poolQueueURL)
	release := make(chan struct{})
	var (
		mu       sync.Mutex
		detached = map[string]bool{}
		short    atomic.Int32
	)
	startUnitPool(t, q, worker.PoolConfig{Concurrency: 2}, handlerFunc(func(ctx context.Context, m worker.Message) worker.Result {
		if m.Body != "long" {
			short.Add(1)
			return worker.Result{}
		}
		ok := m.Detach()
		mu.Lock()
		detached[m.ID] = ok
		mu.Unlock()
		select {
		case <-release:
			return worker.Result{}
		case <-ctx.Done():
			return worker.Result{Err: ctx.Err()}
		}
	}))
	longs := func() (in, out int) {
		mu.Lock()
		defer mu.Unlock()
		for _, ok := range detached {
			if ok {
				out++
			} else {
				in++
			}
		}
		return in, out
	}
	for range 2 {
		q.enqueue("long")
	}
	waitUntil(t, "two long handlers detached", func() bool { _, out := longs(); return out == 2 })
	for range 3 {
		q.enqueue("short")
	}
	waitUntil(t, "three short messages handled beside two long ones", func() bool { return short.Load() == 3 })
	// Every place for long handlers is taken: two more long ones keep
	// their slots, and a short message waits for one.
	q.enqueue("long")
	q.enqueue("long")
	waitUntil(t, "two long handlers in their slots", func() bool { in, _ := longs(); return in == 2 })
	q.enqueue("short")
	for deadline := time.Now().Add(50 * time.Millisecond); time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if n := short.Load(); n != 3 {
		t.Errorf("%d short messages handled, want 3: the last one has no slot while two long handlers hold theirs", n)
	}
	close(release)
	waitUntil(t, "every delete", func() bool { return len(deletedIDs(q)) == 8 })
	if n := short.Load(); n != 4 {
		t.Errorf("%d short messages handled, want 4", n)
	}
}

// TestUnitPoolRunsAnUploadToTheEnd: the pool, the Dispatcher and every
// step over the fakes, with the follow-up messages on the same queue and
// the S3 events of the parts (shuffled, some twice) and of the reassembled
// original: both destinations complete.
func TestUnitPoolRunsAnUploadToTheEnd(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t, unitOpts{cfg: func(c *worker.Config) {
		c.QueueURL = poolQueueURL
		c.PollInterval = 20 * time.Millisecond
	}})
	q := newFakeSQS(poolQueueURL)
	q.sendDelay = 25 * time.Millisecond // more than half the poll interval: polls are not cut as duplicates
	deps := worker.Deps{Store: e.store, Queue: q, S3: e.s3, YouTube: e.yt, Transcoder: e.tc, AtomAPI: e.atom, Log: e.log}
	d := worker.New(e.cfg, deps)
	u := e.create(threeParts, ytDest(), s3BucketDest())
	file := unitFile(t, u.Size)
	// S3 notifies the queue of the original (a little after the copy
	// completes).
	e.s3.onCall("CompleteMultipartUpload", func(int) {
		q.enqueueAfter(fullBody(u), 10*time.Millisecond)
	})
	e.yt.script(
		fakeProcessing{p: upload.YouTubeProcessing{UploadStatus: "uploaded", ProcessingStatus: "processing", PartsProcessed: 1, PartsTotal: 2}},
		fakeProcessing{p: upload.YouTubeProcessing{UploadStatus: "processed", ProcessingStatus: "succeeded"}},
	)
	e.tc.script(
		fakeJob{job: transcode.Job{State: transcode.StateProgressing, Percent: 50}},
		fakeJob{job: transcode.Job{State: transcode.StateComplete, Percent: 100, Outputs: []transcode.Output{{Key: "out/video.mp4", Kind: transcode.KindMP4}}}},
	)
	startUnitPool(t, q, worker.PoolConfig{Concurrency: 4}, d)
	events := []int{2, 0, 2, 1, 0}
	rand.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
	for _, n := range events {
		e.putPart(u, file, n)
		q.enqueue(partBody(u, n))
	}
	waitUntil(t, "the upload to finish", func() bool { return e.get(u).Status.Terminal() })
	got := e.get(u)
	if got.Status != upload.StatusComplete {
		t.Fatalf("upload %s (%q), want complete", got.Status, got.Error)
	}
	e.checkVideo(file)
	if yd := got.Destination(upload.YouTube); !yd.AssetAdded || yd.Progress != 100 {
		t.Errorf("youtube destination: asset %t, progress %.0f; want the asset added, 100", yd.AssetAdded, yd.Progress)
	}
	if sd := got.Destination(upload.S3Bucket); len(sd.Outputs) == 0 {
		t.Errorf("s3Bucket destination without outputs: %+v", sd)
	}
	if n := len(e.atom.assetsOf(u.AtomID)); n != 1 {
		t.Errorf("%d assets, want 1", n)
	}
	// The reassembly and S3's event of the original may both start it:
	// the start's token makes that one job.
	if jobs := e.tc.started(); len(jobs) != 1 {
		t.Errorf("%d transcode jobs started, want 1", len(jobs))
	}
	waitUntil(t, "an empty queue", func() bool { _, _, _, depth := q.snapshot(); return depth == 0 })
	e.checkS3Clean()
}
