package worker_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest/observer"

	"atomuploads/upload"
	"atomuploads/worker"
)

// The Sweeper's jobs over the fakes: the reconciler, which re-drives quiet
// uploads nobody drives, and the dead-letter reader. The fake SQS here is
// the dead-letter queue; what the sweeps send to the service's queue is
// recorded as sent elsewhere.

// sweepEnv is a Sweeper over a fake store and a fake dead-letter queue.
type sweepEnv struct {
	t     testing.TB
	cfg   worker.SweepConfig
	store *fakeStore
	dlq   *fakeSQS
	s3    *fakeS3      // the clean-up's
	yt    *fakeYouTube // the expiry's
	logs  *observer.ObservedLogs
	s     *worker.Sweeper
}

// newSweepEnv makes the fakes and a Sweeper that runs a round of each job
// about every 20 ms once started; uploads are stranded after an hour
// without progress.
func newSweepEnv(t testing.TB, cfg ...func(*worker.SweepConfig)) *sweepEnv {
	t.Helper()
	e := &sweepEnv{t: t, store: newFakeStore(), dlq: newFakeSQS(unitDLQURL), s3: newFakeS3(), yt: newFakeYouTube()}
	e.cfg = worker.SweepConfig{
		Owner: "sweeper-a", Interval: 20 * time.Millisecond, LeaseTTL: time.Second,
		QueueURL: unitQueueURL, DeadLetterURL: unitDLQURL, StrandedAfter: time.Hour,
		MaxChunkBytes: 2 * upload.MiB, YouTube: true, Transcode: true, AtomAPI: true, Bucket: unitBucket,
	}
	for _, fn := range cfg {
		fn(&e.cfg)
	}
	log, logs := unitLogger(t)
	e.logs = logs
	e.s = worker.NewSweeper(e.cfg, e.store, e.dlq, e.s3, e.yt, log)
	return e
}

// start starts the Sweeper until the test ends.
func (e *sweepEnv) start() {
	e.t.Helper()
	if err := e.s.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	if err := e.s.Start(context.Background()); err == nil {
		e.t.Error("a second Start succeeded, want an error")
	}
	e.t.Cleanup(func() { e.stop() })
}

func (e *sweepEnv) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.s.Stop(ctx); err != nil {
		e.t.Errorf("Stop: %v", err)
	}
}

// rounds waits until the reconciler has started n more rounds.
func (e *sweepEnv) rounds(n int) {
	e.t.Helper()
	from := e.store.count("Quiet")
	waitUntil(e.t, "the reconciler's rounds", func() bool { return e.store.count("Quiet") >= from+n })
}

// create stores an upload, quiet for two hours unless it is busy.
func (e *sweepEnv) create(busy bool, dests ...upload.DestinationRequest) *upload.Upload {
	e.t.Helper()
	u := newUnitUpload(e.t, threeParts, dests...)
	e.store.create(e.t, u)
	if !busy {
		e.store.quietSince(e.t, u.AtomID, u.ID, time.Now().Add(-2*time.Hour))
	}
	return e.store.record(e.t, u.AtomID, u.ID)
}

// complete records parts of u complete.
func (e *sweepEnv) complete(u *upload.Upload, parts ...int) {
	e.t.Helper()
	e.store.modify(e.t, u.AtomID, u.ID, func(u *upload.Upload) {
		for _, n := range parts {
			u.Completed[n] = true
			u.Advances++
		}
		u.Settle(time.Now())
	})
}

// redriven returns the messages the sweeps sent to the service's queue.
func (e *sweepEnv) redriven() []sentMessage {
	_, _, elsewhere, _ := e.dlq.snapshot()
	var out []sentMessage
	for _, m := range elsewhere {
		if m.QueueURL == unitQueueURL {
			out = append(out, m)
		}
	}
	return out
}

func (e *sweepEnv) logged(msg string) []observer.LoggedEntry { return e.logs.FilterMessage(msg).All() }

func kindsOf(ms []sentMessage) []worker.Kind {
	var out []worker.Kind
	for _, m := range ms {
		out = append(out, m.Kind)
	}
	slices.Sort(out)
	return out
}

// TestUnitReconcilerRedrivesWhatNobodyDrives: an upload quiet for longer
// than strandedAfter, with work due that no lease covers, gets a fresh
// message for each piece of work (marked with its progress, failures 0)
// and is touched, so that it is looked at again only after another
// strandedAfter. Busy uploads are not looked at; a quiet one that waits on
// the browser gets nothing, but is touched too.
func TestUnitReconcilerRedrivesWhatNobodyDrives(t *testing.T) {
	t.Parallel()
	e := newSweepEnv(t, func(c *worker.SweepConfig) { c.DeadLetterURL = "" })
	stranded := e.create(false, ytDest(), s3BucketDest())
	e.complete(stranded, 0, 1, 2)
	e.store.quietSince(t, stranded.AtomID, stranded.ID, time.Now().Add(-2*time.Hour))
	busy := e.create(true, ytDest())
	e.complete(busy, 0, 1, 2) // changed just now
	waiting := e.create(false, ytDest())
	e.start()
	waitUntil(t, "the re-drives", func() bool {
		return len(e.redriven()) >= 2 && e.store.touches(waiting.AtomID, waiting.ID) >= 1
	})
	e.rounds(3) // nothing more: both quiet uploads were touched
	sent := e.redriven()
	if k := kindsOf(sent); !slices.Equal(k, []worker.Kind{worker.KindReassemble, worker.KindRelay}) {
		t.Fatalf("re-driven %v, want reassemble and relay once each", k)
	}
	for _, m := range sent {
		want := int64(3) // the parts completed: the reassembly's progress
		if m.Kind == worker.KindRelay {
			want = 0 // the YouTube destination's
		}
		if m.UploadID != stranded.ID || m.Failures != 0 || m.Delay != 0 || !m.Marked || m.Mark != want || m.Cause != "" {
			t.Errorf("re-driven %+v, want work of %s at once, failures 0, marked %d", m, stranded.ID, want)
		}
	}
	if n := e.store.touches(stranded.AtomID, stranded.ID); n != 1 {
		t.Errorf("stranded upload touched %d times, want once", n)
	}
	if n := e.store.touches(busy.AtomID, busy.ID); n != 0 {
		t.Errorf("busy upload touched %d times, want never: it is not quiet", n)
	}
	lines := e.logged("re-driven")
	if len(lines) != 2 {
		t.Fatalf("%d re-driven lines, want 2", len(lines))
	}
	for _, l := range lines {
		c := l.ContextMap()
		wantDest := ""
		if c["kind"] == string(worker.KindRelay) {
			wantDest = string(upload.YouTube)
		}
		if c["atomId"] != stranded.AtomID || c["uploadId"] != stranded.ID || c["destination"] != wantDest ||
			c["reason"] != "no progress and no worker for 1h0m0s" || l.Level.String() != "warn" {
			t.Errorf("re-driven line %s %v, want a warning with the ids, the destination and the reason", l.Level, c)
		}
	}
}

// TestUnitReconcilerLeavesWhatALeaseCovers: work whose lease some worker
// holds is not due; once that lease has expired, it is.
func TestUnitReconcilerLeavesWhatALeaseCovers(t *testing.T) {
	t.Parallel()
	e := newSweepEnv(t)
	u := e.create(false, ytDest())
	e.complete(u, 0, 1, 2)
	e.store.setLease(t, u.AtomID, u.ID, upload.LeaseYouTube, "unit-b#1", time.Now().Add(time.Hour))
	e.store.setLease(t, u.AtomID, u.ID, upload.LeaseAssembly, "unit-b#2", time.Now().Add(time.Hour))
	e.store.quietSince(t, u.AtomID, u.ID, time.Now().Add(-2*time.Hour))
	e.start()
	waitUntil(t, "a look at the upload", func() bool { return e.store.touches(u.AtomID, u.ID) == 1 })
	if m := e.redriven(); len(m) != 0 {
		t.Errorf("re-driven %+v while the leases are held, want nothing", m)
	}
	// The holder died: its leases expire.
	e.store.setLease(t, u.AtomID, u.ID, upload.LeaseYouTube, "unit-b#1", time.Now().Add(-time.Second))
	e.store.setLease(t, u.AtomID, u.ID, upload.LeaseAssembly, "unit-b#2", time.Now().Add(-time.Second))
	e.store.quietSince(t, u.AtomID, u.ID, time.Now().Add(-2*time.Hour))
	waitUntil(t, "the re-drives", func() bool { return len(e.redriven()) == 2 })
	if k := kindsOf(e.redriven()); !slices.Equal(k, []worker.Kind{worker.KindReassemble, worker.KindRelay}) {
		t.Errorf("re-driven %v, want reassemble and relay", k)
	}
}

// TestUnitReconcilerTrustsTheRecordNotTheIndex: the index is eventually
// consistent: an upload it lists that is terminal by now, or gone, is
// skipped, and the round goes on to the next.
func TestUnitReconcilerTrustsTheRecordNotTheIndex(t *testing.T) {
	t.Parallel()
	e := newSweepEnv(t)
	e.store.laggingIndex = true
	e.store.ghosts = [][2]string{{unitAtom, "01J0000000000000000000000Z"}}
	done := e.create(false, ytDest())
	e.complete(done, 0, 1, 2)
	e.store.modify(t, done.AtomID, done.ID, func(u *upload.Upload) { _ = u.Cancel(time.Now()) })
	e.store.quietSince(t, done.AtomID, done.ID, time.Now().Add(-3*time.Hour))
	live := e.create(false, ytDest())
	e.complete(live, 0)
	e.store.quietSince(t, live.AtomID, live.ID, time.Now().Add(-2*time.Hour))
	e.start()
	waitUntil(t, "the live upload's re-drive", func() bool { return len(e.redriven()) == 1 })
	if m := e.redriven(); m[0].UploadID != live.ID || m[0].Kind != worker.KindRelay {
		t.Errorf("re-driven %+v, want the live upload's relay only", m)
	}
	if n := e.store.touches(done.AtomID, done.ID); n != 0 {
		t.Errorf("the cancelled upload was touched %d times, want never", n)
	}
	if n := len(e.logged("sweep failed; the next round tries again")); n != 0 {
		t.Errorf("%d failed rounds, want none", n)
	}
}

// TestUnitReconcilerRoundThatFailsIsDoneAgain: a round cut short by the
// table is logged, and the next round does the work.
func TestUnitReconcilerRoundThatFailsIsDoneAgain(t *testing.T) {
	t.Parallel()
	e := newSweepEnv(t)
	u := e.create(false, ytDest())
	e.complete(u, 0)
	e.store.quietSince(t, u.AtomID, u.ID, time.Now().Add(-2*time.Hour))
	e.store.failNext("Quiet", storeBusy())
	e.store.failNext("Get", storeBusy())
	e.start()
	waitUntil(t, "the re-drive", func() bool { return len(e.redriven()) == 1 })
	if n := len(e.logged("sweep failed; the next round tries again")); n != 2 {
		t.Errorf("%d failed rounds logged, want 2 (the query, then the read)", n)
	}
	if m := e.redriven(); m[0].Kind != worker.KindRelay {
		t.Errorf("re-driven %+v, want the relay", m)
	}
}

// TestUnitSweepLeases: one instance at a time runs each job: a job whose
// lease another instance holds is not run until that lease expires; the
// instance that runs a round keeps the lease until its next round; Stop
// ends the rounds.
func TestUnitSweepLeases(t *testing.T) {
	t.Parallel()
	t.Run("held by another instance", func(t *testing.T) {
		t.Parallel()
		e := newSweepEnv(t)
		e.store.setSweepLease("reconciler", "sweeper-b", e.store.clock.Now().Add(time.Hour))
		e.store.setSweepLease("deadLetters", "sweeper-b", e.store.clock.Now().Add(time.Hour))
		e.start()
		waitUntil(t, "tries of the leases", func() bool { return e.store.count("AcquireSweep") >= 6 })
		if n, r := e.store.count("Quiet"), e.dlq.count("ReceiveMessage"); n != 0 || r != 0 {
			t.Errorf("%d reconciler rounds and %d dead-letter reads while another instance holds the leases, want none", n, r)
		}
		e.store.clock.Advance(2 * time.Hour) // sweeper-b died
		e.rounds(1)
		waitUntil(t, "a dead-letter read", func() bool { return e.dlq.count("ReceiveMessage") >= 1 })
		if l, _ := e.store.sweepLease("reconciler"); l.Owner != "sweeper-a" {
			t.Errorf("reconciler lease %+v, want taken over by sweeper-a", l)
		}
	})
	t.Run("kept between rounds", func(t *testing.T) {
		t.Parallel()
		e := newSweepEnv(t, func(c *worker.SweepConfig) { c.Interval = 200 * time.Millisecond })
		e.start()
		e.rounds(1)
		waitUntil(t, "the lease kept", func() bool {
			l, ok := e.store.sweepLease("reconciler")
			return ok && l.Owner == "sweeper-a" && e.store.count("Renew") >= 1
		})
		err := e.store.AcquireSweep(t.Context(), upload.SweepLease("reconciler", "sweeper-b", time.Second))
		if !errors.Is(err, upload.ErrLeaseHeld) {
			t.Errorf("AcquireSweep by another instance between rounds = %v, want upload.ErrLeaseHeld", err)
		}
	})
	t.Run("stop", func(t *testing.T) {
		t.Parallel()
		e := newSweepEnv(t)
		e.start()
		e.rounds(1)
		e.stop()
		n := e.store.count("Quiet")
		time.Sleep(60 * time.Millisecond) // three intervals
		if m := e.store.count("Quiet"); m != n {
			t.Errorf("%d rounds after Stop, want none", m-n)
		}
	})
}

// TestUnitSweeperWithoutADeadLetterQueueRunsOnlyTheReconciler: without a
// dead-letter queue there is nothing to read.
func TestUnitSweeperWithoutADeadLetterQueueRunsOnlyTheReconciler(t *testing.T) {
	t.Parallel()
	e := newSweepEnv(t, func(c *worker.SweepConfig) { c.DeadLetterURL = "" })
	e.start()
	e.rounds(3)
	if n := e.dlq.count("ReceiveMessage"); n != 0 {
		t.Errorf("%d dead-letter reads, want none", n)
	}
}

// TestUnitDeadLetters: the dead-letter reader fails the work of each
// upload's dead letter readably (unless it is failed already), logs it
// once and deletes the message; a message of no upload is left for ops,
// out of sight for 12 hours.
func TestUnitDeadLetters(t *testing.T) {
	t.Parallel()
	const kept = "the workers handling it kept stopping before they finished (killed, out of memory, or a dependency unreachable)"
	tests := []struct {
		name string
		// setup returns the dead letter's body and how often it was
		// received before it got there.
		setup   func(e *sweepEnv, u *upload.Upload) (string, int)
		wantLog string
		// wantFailed is the YouTube destination's error afterwards; "" for
		// unchanged.
		wantFailed string
		wantUpload upload.Status // the upload's status afterwards
		wantS3     upload.DestinationStatus
		forOps     bool // left on the queue, out of sight
	}{
		{
			name: "work the service gave up itself, recorded already",
			setup: func(_ *sweepEnv, u *upload.Upload) (string, int) {
				// Applied again it would undo whatever happened since, such
				// as a retry (TestRegressionDeadLetterDoesNotUndoARetry).
				return ownTask{kind: worker.KindRelay, failures: 20, cause: "YouTube answered backendError", gaveUp: true}.body(u), 0
			},
			wantLog:    "removed a dead letter of work already given up",
			wantUpload: upload.StatusUploading, wantS3: upload.DestWaiting,
		},
		{
			name: "a part event of a part completed since",
			setup: func(e *sweepEnv, u *upload.Upload) (string, int) {
				e.store.modify(e.t, u.AtomID, u.ID, func(u *upload.Upload) { u.Completed[1] = true })
				return partBody(u, 1), 5
			},
			wantLog:    "dropped a dead letter the upload has outlived",
			wantUpload: upload.StatusUploading, wantS3: upload.DestWaiting,
		},
		{
			name: "a part event, though another destination was retried since",
			setup: func(e *sweepEnv, u *upload.Upload) (string, int) {
				// Nothing but the event drives a part: the letter counts.
				e.store.modify(e.t, u.AtomID, u.ID, func(u *upload.Upload) { u.RetriedAt = time.Now().Add(time.Hour) })
				return partBody(u, 1), 5
			},
			wantLog:    "failed work from the dead-letter queue",
			wantFailed: "gave up after 5 attempts without progress: " + kept,
			wantUpload: upload.StatusFailed, wantS3: upload.DestFailed,
		},
		{
			name: "a relay letter once YouTube has the video",
			setup: func(e *sweepEnv, u *upload.Upload) (string, int) {
				e.store.modify(e.t, u.AtomID, u.ID, func(u *upload.Upload) {
					d := u.Destination(upload.YouTube)
					d.Status, d.VideoID = upload.DestTranscoding, "vid"
				})
				return ownTask{kind: worker.KindRelay, failures: 2}.body(u), 5
			},
			wantLog:    "dropped a dead letter the upload has outlived",
			wantUpload: upload.StatusUploading, wantS3: upload.DestWaiting,
		},
		{
			name: "an own message of work that progressed since",
			setup: func(e *sweepEnv, u *upload.Upload) (string, int) {
				mark := int64(0)
				e.store.modify(e.t, u.AtomID, u.ID, func(u *upload.Upload) { u.Destination(upload.YouTube).Advance() })
				return ownTask{kind: worker.KindRelay, failures: 3, mark: &mark}.body(u), 5
			},
			wantLog:    "dropped a dead letter the upload has outlived",
			wantUpload: upload.StatusUploading, wantS3: upload.DestWaiting,
		},
		{
			name: "given-up work of an earlier version, with its cause",
			setup: func(_ *sweepEnv, u *upload.Upload) (string, int) {
				return ownTask{kind: worker.KindRelay, failures: 4, cause: "YouTube answered backendError"}.body(u), 0
			},
			wantLog:    "failed work from the dead-letter queue",
			wantFailed: "gave up after 4 attempts without progress: YouTube answered backendError",
			wantUpload: upload.StatusUploading, wantS3: upload.DestWaiting,
		},
		{
			name: "an S3 event the redrive policy moved",
			setup: func(_ *sweepEnv, u *upload.Upload) (string, int) {
				return partBody(u, 1), 5
			},
			wantLog:    "failed work from the dead-letter queue",
			wantFailed: "gave up after 5 attempts without progress: " + kept,
			wantUpload: upload.StatusFailed, wantS3: upload.DestFailed,
		},
		{
			name: "an own message the redrive policy moved",
			setup: func(_ *sweepEnv, u *upload.Upload) (string, int) {
				return ownTask{kind: worker.KindYouTubePoll, failures: 2}.body(u), 5
			},
			wantLog:    "failed work from the dead-letter queue",
			wantFailed: "gave up after 7 attempts without progress: " + kept, // its 2, the 4 lost receives and this one
			wantUpload: upload.StatusUploading, wantS3: upload.DestWaiting,
		},
		{
			name: "work given up already",
			setup: func(e *sweepEnv, u *upload.Upload) (string, int) {
				e.store.modify(e.t, u.AtomID, u.ID, func(u *upload.Upload) {
					u.Destination(upload.YouTube).Fail("gave up after 20 attempts without progress: YouTube answered backendError")
				})
				return ownTask{kind: worker.KindRelay, failures: 20, cause: "YouTube answered backendError"}.body(u), 0
			},
			wantLog:    "removed a dead letter of work already given up",
			wantFailed: "gave up after 20 attempts without progress: YouTube answered backendError",
			wantUpload: upload.StatusUploading, wantS3: upload.DestWaiting,
		},
		{
			name: "an unknown upload",
			setup: func(_ *sweepEnv, _ *upload.Upload) (string, int) {
				return ownTask{kind: worker.KindRelay}.body(newUnitUpload(t, threeParts)), 0
			},
			wantLog:    "dropped a dead letter of an unknown upload",
			wantUpload: upload.StatusUploading, wantS3: upload.DestWaiting,
		},
		{
			name:       "no upload's",
			setup:      func(*sweepEnv, *upload.Upload) (string, int) { return `{"hello":"ops"}`, 1 },
			wantLog:    "left a dead letter of no upload for ops",
			wantUpload: upload.StatusUploading, wantS3: upload.DestWaiting, forOps: true,
		},
		{
			name: "an own message of a kind this version does not know",
			setup: func(_ *sweepEnv, u *upload.Upload) (string, int) {
				return ownTask{kind: "fromTheFuture"}.body(u), 0
			},
			wantLog:    "left a dead letter of no upload for ops",
			wantUpload: upload.StatusUploading, wantS3: upload.DestWaiting, forOps: true,
		},
		{
			name: "an S3 event outside the upload layout",
			setup: func(*sweepEnv, *upload.Upload) (string, int) {
				return s3EventBody("ObjectCreated:Put", unitBucket, "elsewhere/clip.mp4"), 5
			},
			wantLog:    "left a dead letter of no upload for ops",
			wantUpload: upload.StatusUploading, wantS3: upload.DestWaiting, forOps: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newSweepEnv(t)
			u := e.create(true, ytDest(), s3BucketDest())
			body, receives := tt.setup(e, u)
			id := e.dlq.enqueueReceived(body, 0, receives)
			e.start()
			waitUntil(t, "the dead letter's handling", func() bool { return len(e.logged(tt.wantLog)) >= 1 })
			waitUntil(t, "more reads", func() bool { return e.dlq.count("ReceiveMessage") >= 4 })
			lines := e.logged(tt.wantLog)
			if len(lines) != 1 {
				t.Errorf("%d lines %q, want 1: handled once", len(lines), tt.wantLog)
			}
			deleted, vis, _, depth := e.dlq.snapshot()
			if tt.forOps {
				if len(deleted) != 0 || depth != 1 || len(vis) != 1 || vis[0].ID != id || vis[0].Timeout != 12*time.Hour {
					t.Errorf("deleted %v, visibility %v, depth %d; want the message kept, out of sight for 12h", deleted, vis, depth)
				}
				want := body
				if len(want) > 200 {
					want = want[:200] + "…"
				}
				if b, _ := lines[0].ContextMap()["body"].(string); b != want {
					t.Errorf("logged body %q, want %q", b, want)
				}
			} else if !slices.Equal(deleted, []string{id}) || depth != 0 {
				t.Errorf("deleted %v, depth %d; want the dead letter deleted", deleted, depth)
			}
			got := e.store.record(t, u.AtomID, u.ID)
			d := got.Destination(upload.YouTube)
			switch {
			case tt.wantFailed == "" && d.Status.Terminal():
				t.Errorf("youtube destination %s (%q), want it untouched", d.Status, d.Error)
			case tt.wantFailed != "" && (d.Status != upload.DestFailed || d.Error != tt.wantFailed):
				t.Errorf("youtube destination %s, error %q; want failed, %q", d.Status, d.Error, tt.wantFailed)
			}
			if got.Status != tt.wantUpload || got.Destination(upload.S3Bucket).Status != tt.wantS3 {
				t.Errorf("upload %s, s3Bucket %s; want %s, %s", got.Status, got.Destination(upload.S3Bucket).Status, tt.wantUpload, tt.wantS3)
			}
			if tt.wantLog == "failed work from the dead-letter queue" {
				if c := lines[0].ContextMap(); c["error"] != tt.wantFailed || c["uploadId"] != u.ID || lines[0].Level.String() != "error" {
					t.Errorf("line %s %v, want an error with the reason and the ids", lines[0].Level, c)
				}
			}
		})
	}
}

// TestUnitDeadLettersBodyIsCutForTheLog: a long message of no upload is
// logged by its first 200 bytes.
func TestUnitDeadLettersBodyIsCutForTheLog(t *testing.T) {
	t.Parallel()
	e := newSweepEnv(t)
	body := `{"hello":"` + strings.Repeat("o", 1000) + `"}`
	e.dlq.enqueue(body)
	e.start()
	waitUntil(t, "the dead letter's handling", func() bool { return len(e.logged("left a dead letter of no upload for ops")) == 1 })
	if b, _ := e.logged("left a dead letter of no upload for ops")[0].ContextMap()["body"].(string); b != body[:200]+"…" {
		t.Errorf("logged body %q, want the first 200 bytes and an ellipsis", b)
	}
}

// TestUnitDeadLettersThatCannotBeRecordedStay: when the table refuses the
// change, the dead letter is not deleted (its visibility runs out and the
// next round reads it again).
func TestUnitDeadLettersThatCannotBeRecordedStay(t *testing.T) {
	t.Parallel()
	e := newSweepEnv(t)
	u := e.create(true, ytDest())
	e.store.failAlways("Update", storeBusy())
	e.dlq.enqueue(ownTask{kind: worker.KindRelay, failures: 4, cause: "YouTube answered backendError"}.body(u))
	e.start()
	waitUntil(t, "the failed round", func() bool { return len(e.logged("sweep failed; the next round tries again")) >= 1 })
	if deleted, _, _, depth := e.dlq.snapshot(); len(deleted) != 0 || depth != 1 {
		t.Errorf("deleted %v, depth %d; want the dead letter kept", deleted, depth)
	}
	if d := e.store.record(t, u.AtomID, u.ID).Destination(upload.YouTube); d.Status.Terminal() {
		t.Errorf("youtube destination %s, want unchanged", d.Status)
	}
}
