package worker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"atomuploads/upload"
	"atomuploads/worker"
)

// The Dispatcher's retry model: a failed attempt is retried on a message
// of its own (retryLater), a message that comes again is moved onto a
// fresh one without being worked on (rehome), work stopped by the shutdown
// is handed over (handBack), and work that made no progress for
// MaxAttempts attempts in a row is given up (giveUp).

// failingPoll is an upload whose video is on YouTube, with every
// processing query failing: each youtubePoll attempt fails without
// progress.
func (e *unitEnv) failingPoll() *upload.Upload {
	e.t.Helper()
	u := e.create(threeParts, ytDest())
	e.onYouTube(u, time.Time{})
	e.yt.failAlways("Processing", temporaryYouTubeError())
	return u
}

// TestUnitRetryLaterDelaysAndTouches: the pause before a retry doubles
// with each failure in a row, jittered between half and all of its
// ceiling, up to MaxRetryDelay; scheduling the retry touches the upload,
// so the reconciler leaves it alone until the retry is due.
func TestUnitRetryLaterDelaysAndTouches(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t, unitOpts{cfg: func(c *worker.Config) {
		c.MaxAttempts = 10
		c.RetryBackoff, c.MaxRetryDelay = 10*time.Second, 40*time.Second
	}})
	u := e.failingPoll()
	wantCeilings := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 40 * time.Second, 40 * time.Second}
	for i, ceiling := range wantCeilings {
		failures := i + 1
		if c := e.retryCeiling(failures); c != ceiling {
			t.Fatalf("the test's ceiling of %d failures is %s, want %s", failures, c, ceiling)
		}
		before := e.store.lastChange(u.AtomID, u.ID)
		e.mustHandle(ownBody(worker.KindYouTubePoll, u, i))
		polls := e.queue.ofKind(worker.KindYouTubePoll)
		if len(polls) != failures {
			t.Fatalf("youtubePoll messages %+v, want %d", polls, failures)
		}
		e.checkRetry(polls[i], worker.KindYouTubePoll, failures, "YouTube answered backendError")
		if n := e.store.touches(u.AtomID, u.ID); n != failures {
			t.Errorf("%d touches after %d failed attempts, want one each", n, failures)
		}
		if after := e.store.lastChange(u.AtomID, u.ID); !after.After(before) {
			t.Errorf("last change %s after the retry was scheduled, want later than %s", after, before)
		}
	}
	if n := e.logged("attempt failed; it is retried later"); n != len(wantCeilings) {
		t.Errorf("%d retry lines, want %d", n, len(wantCeilings))
	}
}

// TestUnitRetryLaterDelayIsSQSBounded: no retry waits longer than SQS can
// delay a message (15 minutes), whatever MaxRetryDelay says.
func TestUnitRetryLaterDelayIsSQSBounded(t *testing.T) {
	t.Parallel()
	for _, maxDelay := range []time.Duration{0, time.Hour} {
		t.Run(fmt.Sprintf("maxRetryDelay %s", maxDelay), func(t *testing.T) {
			t.Parallel()
			e := newUnitEnv(t, unitOpts{cfg: func(c *worker.Config) {
				c.MaxAttempts = 10
				c.RetryBackoff, c.MaxRetryDelay = 10*time.Minute, maxDelay
			}})
			u := e.failingPoll()
			e.mustHandle(ownBody(worker.KindYouTubePoll, u, 3)) // a ceiling of 160 minutes, uncapped
			polls := e.queue.ofKind(worker.KindYouTubePoll)
			if len(polls) != 1 || polls[0].Delay < 7*time.Minute+30*time.Second || polls[0].Delay > 15*time.Minute {
				t.Errorf("youtubePoll messages %+v, want one after 7.5–15 minutes", polls)
			}
		})
	}
}

// TestUnitRetryLaterFailures: what a retry's message says, and what a
// retry costs when it cannot be scheduled or the upload cannot be touched.
func TestUnitRetryLaterFailures(t *testing.T) {
	t.Parallel()
	t.Run("the retry cannot be sent: the message fails", func(t *testing.T) {
		t.Parallel()
		e := newUnitEnv(t)
		u := e.failingPoll()
		errSQS := sqsError("ServiceUnavailable")
		e.queue.failNext("SendMessage", errSQS)
		res := e.handle(ownBody(worker.KindYouTubePoll, u, 0))
		if !errors.Is(res.Err, errSQS) {
			t.Fatalf("Handle = %+v, want the send's error: the message is tried again", res)
		}
		if n := e.store.touches(u.AtomID, u.ID); n != 0 {
			t.Errorf("%d touches, want none: nothing is scheduled", n)
		}
	})
	t.Run("the upload cannot be touched: the retry stands", func(t *testing.T) {
		t.Parallel()
		e := newUnitEnv(t)
		u := e.failingPoll()
		e.store.failNext("Touch", storeBusy())
		if res := e.handle(ownBody(worker.KindYouTubePoll, u, 0)); res != (worker.Result{}) {
			t.Fatalf("Handle = %+v, want the message deleted", res)
		}
		if polls := e.queue.ofKind(worker.KindYouTubePoll); len(polls) != 1 {
			t.Errorf("youtubePoll messages %+v, want the retry", polls)
		}
		if n := e.logged("touch upload"); n != 1 {
			t.Errorf("%d touch warnings, want 1", n)
		}
	})
	t.Run("the record cannot be read again: no progress is assumed", func(t *testing.T) {
		t.Parallel()
		e := newUnitEnv(t)
		u := e.failingPoll()
		e.store.onCall("Get", func(n int) {
			if n == 1 { // (a hook runs after its call's fault is chosen) the next read, after the failed attempt, fails
				e.store.failNext("Get", storeBusy())
			}
		})
		e.mustHandle(ownBody(worker.KindYouTubePoll, u, 1))
		polls := e.queue.ofKind(worker.KindYouTubePoll)
		if len(polls) != 1 {
			t.Fatalf("youtubePoll messages %+v, want the retry", polls)
		}
		e.checkRetry(polls[0], worker.KindYouTubePoll, 2, "YouTube answered backendError")
	})
}

// TestUnitRehome: a message that comes again (its handler died, or its
// visibility ran out) is not worked on: it is moved onto a fresh message
// at once, its failures grown by the lost receives, unless the work
// progressed since the message was sent; the fresh message's receive count
// starts again. At MaxAttempts failures the work is given up instead.
func TestUnitRehome(t *testing.T) {
	t.Parallel()
	progress := int64(4) // the YouTube destination's advances in the record
	tests := []struct {
		name         string
		msg          ownTask
		receiveCount int
		wantFailures int
		wantGiveUp   string // the destination's error; "" when re-homed
	}{
		{
			name:         "no progress since the mark: each lost receive counts",
			msg:          ownTask{kind: worker.KindRelay, failures: 1, mark: &progress, cause: "YouTube answered backendError"},
			receiveCount: 3, wantFailures: 3,
		},
		{
			name:         "progress since the mark: failures start again",
			msg:          ownTask{kind: worker.KindRelay, failures: 3, mark: new(int64), cause: "YouTube answered backendError"},
			receiveCount: 4, wantFailures: 0,
		},
		{
			name:         "no mark: progress cannot be told, the receives count",
			msg:          ownTask{kind: worker.KindRelay, failures: 1},
			receiveCount: 2, wantFailures: 2,
		},
		{
			name:         "MaxAttempts reached: given up with the message's cause",
			msg:          ownTask{kind: worker.KindRelay, failures: 3, mark: &progress, cause: "YouTube answered backendError"},
			receiveCount: 3,
			wantGiveUp:   "gave up after 5 attempts without progress: YouTube answered backendError",
		},
		{
			name:         "MaxAttempts reached without a cause: the lost handlers are the cause",
			msg:          ownTask{kind: worker.KindRelay},
			receiveCount: 6,
			wantGiveUp:   "gave up after 5 attempts without progress: the worker handling it stopped before it finished (killed, or out of memory)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newUnitEnv(t, unitOpts{cfg: func(c *worker.Config) { c.MaxAttempts = 5 }})
			u := e.create(threeParts, ytDest())
			e.markIn(u, unitFile(t, u.Size), 0)
			e.store.modify(t, u.AtomID, u.ID, func(u *upload.Upload) { u.Destination(upload.YouTube).Advances = progress })
			if res := e.handleOn(e.d, tt.msg.body(u), tt.receiveCount); res != (worker.Result{}) {
				t.Fatalf("Handle = %+v, want the message deleted", res)
			}
			if n := e.yt.count("StartSession") + e.yt.count("PutChunk") + e.yt.count("Offset") + e.store.count("Acquire"); n != 0 {
				t.Errorf("%d calls of the relay's work, want none: a message that came again is not worked on", n)
			}
			d := e.get(u).Destination(upload.YouTube)
			sent := e.queue.sent()
			if tt.wantGiveUp != "" {
				if d.Status != upload.DestFailed || d.Error != tt.wantGiveUp {
					t.Errorf("youtube destination %s, error %q; want failed, %q", d.Status, d.Error, tt.wantGiveUp)
				}
				if len(sent) != 0 {
					t.Errorf("messages %+v, want none (no dead-letter queue configured)", sent)
				}
				return
			}
			if d.Status.Terminal() {
				t.Errorf("youtube destination %s (%q), want running", d.Status, d.Error)
			}
			if len(sent) != 1 {
				t.Fatalf("messages %+v, want the fresh one", sent)
			}
			m := sent[0]
			if m.Kind != worker.KindRelay || m.Failures != tt.wantFailures || m.Delay != 0 || !m.Marked || m.Mark != progress || m.Cause != tt.msg.cause {
				t.Errorf("fresh message %+v, want a relay at once, failures %d, marked %d, cause kept", m, tt.wantFailures, progress)
			}
			if n := e.logged("continuing on a fresh message"); n != 1 {
				t.Errorf("%d re-home lines, want 1", n)
			}
			if n := e.store.touches(u.AtomID, u.ID); n != 0 {
				t.Errorf("%d touches, want none", n)
			}
		})
	}
}

// TestUnitGiveUpOfEveryKind: what giving up changes, by the kind of the
// work: the destination it drives fails, or the whole upload for a part or
// the reassembly; a given-up asset call only says so. With a dead-letter
// queue, the given-up work goes there, with its failures and cause.
func TestUnitGiveUpOfEveryKind(t *testing.T) {
	t.Parallel()
	const cause = "the worker handling it stopped before it finished (killed, or out of memory)"
	const reason = "gave up after 1 attempts without progress: " + cause
	tests := []struct {
		kind       worker.Kind
		wantUpload upload.Status
		wantYT     upload.DestinationStatus
		wantS3     upload.DestinationStatus
		wantYTErr  string
	}{
		{kind: worker.KindPart, wantUpload: upload.StatusFailed, wantYT: upload.DestFailed, wantS3: upload.DestFailed, wantYTErr: reason},
		{kind: worker.KindReassemble, wantUpload: upload.StatusFailed, wantYT: upload.DestFailed, wantS3: upload.DestFailed, wantYTErr: reason},
		{kind: worker.KindRelay, wantUpload: upload.StatusProcessing, wantYT: upload.DestFailed, wantS3: upload.DestTranscoding, wantYTErr: reason},
		{kind: worker.KindYouTubePoll, wantUpload: upload.StatusProcessing, wantYT: upload.DestFailed, wantS3: upload.DestTranscoding, wantYTErr: reason},
		{
			kind: worker.KindAsset, wantUpload: upload.StatusProcessing, wantYT: upload.DestTranscoding, wantS3: upload.DestTranscoding,
			wantYTErr: "the video is on YouTube, but the atom API did not take it as an asset: " + reason,
		},
		{kind: worker.KindFull, wantUpload: upload.StatusProcessing, wantYT: upload.DestTranscoding, wantS3: upload.DestFailed},
		{kind: worker.KindTranscodePoll, wantUpload: upload.StatusProcessing, wantYT: upload.DestTranscoding, wantS3: upload.DestFailed},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			t.Parallel()
			e := newUnitEnv(t, unitOpts{cfg: func(c *worker.Config) {
				c.MaxAttempts = 1
				c.DeadLetterURL = unitDLQURL
			}})
			u := e.create(threeParts, ytDest(), s3BucketDest())
			e.assetDue(u) // the video on YouTube, processing; the original assembled
			e.transcoding(u, time.Time{})
			if res := e.handleOn(e.d, ownTask{kind: tt.kind}.body(u), 2); res != (worker.Result{}) {
				t.Fatalf("Handle = %+v, want the message deleted", res)
			}
			got := e.get(u)
			yt, s3 := got.Destination(upload.YouTube), got.Destination(upload.S3Bucket)
			if got.Status != tt.wantUpload || yt.Status != tt.wantYT || s3.Status != tt.wantS3 {
				t.Errorf("upload %s, youtube %s, s3Bucket %s; want %s, %s, %s", got.Status, yt.Status, s3.Status, tt.wantUpload, tt.wantYT, tt.wantS3)
			}
			if got := yt.Error + yt.AssetError; got != tt.wantYTErr {
				t.Errorf("youtube error %q, want %q", got, tt.wantYTErr)
			}
			if tt.wantS3 == upload.DestFailed && s3.Error != reason {
				t.Errorf("s3Bucket error %q, want %q", s3.Error, reason)
			}
			sent := e.queue.sent()
			if len(sent) != 1 || sent[0].QueueURL != unitDLQURL || sent[0].Kind != tt.kind || sent[0].Failures != 1 || sent[0].Cause != cause || !sent[0].Marked || !sent[0].GaveUp {
				t.Errorf("messages %+v, want the work on the dead-letter queue with its failures and cause", sent)
			}
			if n := e.logged("gave up"); n != 1 {
				t.Errorf("%d gave-up lines, want 1", n)
			}
		})
	}
	t.Run("the dead-letter queue refuses: the give-up stands", func(t *testing.T) {
		t.Parallel()
		e := newUnitEnv(t, unitOpts{cfg: func(c *worker.Config) { c.MaxAttempts, c.DeadLetterURL = 1, unitDLQURL }})
		u := e.failingPoll()
		e.queue.failNext("SendMessage", sqsError("ServiceUnavailable"))
		if res := e.handle(ownBody(worker.KindYouTubePoll, u, 0)); res != (worker.Result{}) {
			t.Fatalf("Handle = %+v, want the message deleted", res)
		}
		if d := e.get(u).Destination(upload.YouTube); d.Status != upload.DestFailed {
			t.Errorf("youtube destination %s, want failed", d.Status)
		}
		if n := e.logged("could not put the given-up work in the dead-letter queue"); n != 1 {
			t.Errorf("%d dead-letter warnings, want 1", n)
		}
	})
	t.Run("the record cannot be changed: the message fails", func(t *testing.T) {
		t.Parallel()
		e := newUnitEnv(t, unitOpts{cfg: func(c *worker.Config) { c.MaxAttempts = 1 }})
		u := e.failingPoll()
		e.store.failNext("Update", storeBusy())
		if res := e.handle(ownBody(worker.KindYouTubePoll, u, 0)); res.Err == nil {
			t.Fatalf("Handle = %+v, want the store's error", res)
		}
		if d := e.get(u).Destination(upload.YouTube); d.Status.Terminal() {
			t.Errorf("youtube destination %s, want it running until the give-up is recorded", d.Status)
		}
	})
}

// TestUnitHandBack: work the end of the shutdown grace stops is handed
// over at once on a fresh message: failures unchanged, or 0 when the work
// progressed meanwhile. A hand-back is not a failure: no retry pause, no
// touch, no failure logged.
func TestUnitHandBack(t *testing.T) {
	t.Parallel()
	t.Run("without progress", func(t *testing.T) {
		t.Parallel()
		e := newUnitEnv(t)
		u := e.create(threeParts, ytDest())
		e.onYouTube(u, time.Time{})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		e.yt.onCall("Processing", func(int) { cancel() })
		body := ownTask{kind: worker.KindYouTubePoll, failures: 2, cause: "YouTube answered backendError"}.body(u)
		if res := e.d.Handle(ctx, worker.Message{ID: "m-grace", Body: body, ReceiveCount: 1}); res != (worker.Result{}) {
			t.Fatalf("Handle = %+v, want the message deleted", res)
		}
		sent := e.queue.sent()
		if len(sent) != 1 || sent[0].Kind != worker.KindYouTubePoll || sent[0].Failures != 2 || sent[0].Delay != 0 ||
			sent[0].Cause != "YouTube answered backendError" || !sent[0].Marked {
			t.Errorf("messages %+v, want the poll handed back at once, failures and cause kept", sent)
		}
		if n := e.store.touches(u.AtomID, u.ID) + e.logged("attempt failed; it is retried later"); n != 0 {
			t.Errorf("%d touches and retry lines, want none", n)
		}
	})
	t.Run("after progress", func(t *testing.T) {
		t.Parallel()
		e := newUnitEnv(t)
		u := e.create(threeParts, ytDest())
		e.markIn(u, unitFile(t, u.Size), 0)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		e.yt.beforeCommit = func(_ context.Context, start, _ int64) error {
			if start > 0 { // the second chunk: the grace ends
				cancel()
				return context.Canceled
			}
			return nil
		}
		body := ownTask{kind: worker.KindRelay, failures: 2, cause: "YouTube answered backendError"}.body(u)
		if res := e.d.Handle(ctx, worker.Message{ID: "m-grace", Body: body, ReceiveCount: 1}); res != (worker.Result{}) {
			t.Fatalf("Handle = %+v, want the message deleted", res)
		}
		d := e.get(u).Destination(upload.YouTube)
		sent := e.queue.sent()
		if len(sent) != 1 || sent[0].Kind != worker.KindRelay || sent[0].Failures != 0 || sent[0].Delay != 0 || sent[0].Mark != d.Advances {
			t.Errorf("messages %+v, want the relay handed back at once, failures 0, marked %d", sent, d.Advances)
		}
		if d.UploadedBytes != 2*upload.MiB {
			t.Errorf("%d bytes recorded, want the first chunk's", d.UploadedBytes)
		}
	})
	t.Run("the hand-back cannot be sent: the message goes back itself", func(t *testing.T) {
		t.Parallel()
		e := newUnitEnv(t)
		u := e.create(threeParts, ytDest())
		e.onYouTube(u, time.Time{})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		e.yt.onCall("Processing", func(int) { cancel() })
		e.queue.failNext("SendMessage", sqsError("ServiceUnavailable"))
		if res := e.d.Handle(ctx, worker.Message{ID: "m-grace", Body: ownBody(worker.KindYouTubePoll, u, 0), ReceiveCount: 1}); res.Err == nil {
			t.Fatalf("Handle = %+v, want an error: the pool hands the message back", res)
		}
	})
}
