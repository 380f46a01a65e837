package worker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"atomuploads/upload"
	"atomuploads/worker"
)

func TestUnitDispatchUnknownOwnKindIsDeadLettered(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts)
	res := e.handle(ownBody("fromTheFuture", u, 0))
	if res != (worker.Result{DeadLetter: true}) {
		t.Fatalf("Handle = %+v, want dead-lettered", res)
	}
	lines := e.logs.FilterMessage("dead-lettered a message of an unknown kind").All()
	if len(lines) != 1 || !strings.Contains(lines[0].ContextMap()["reason"].(string), `"fromTheFuture"`) {
		t.Errorf("dead-letter lines %v, want one naming the kind", lines)
	}
	if n := e.store.count("Get"); n != 0 {
		t.Errorf("%d record reads, want none", n)
	}
}

func TestUnitDispatchMessagesThatAreNotEventsAreDeleted(t *testing.T) {
	t.Parallel()
	id := "01J0000000000000000000000Z"
	tests := []struct {
		name       string
		body       string
		wantReason string
	}{
		{name: "not JSON", body: "hello", wantReason: "not a JSON object"},
		{name: "a JSON array", body: `[{"Records":[]}]`, wantReason: "not a JSON object"},
		{name: "unknown shape", body: `{"Type":"Notification","Message":"…"}`, wantReason: "neither an S3 event nor an atomUploads message (keys Message, Type)"},
		{name: "no records", body: `{"Records":[]}`, wantReason: "neither an S3 event nor an atomUploads message"},
		{name: "malformed S3 event", body: `{"Records":"many"}`, wantReason: "malformed S3 event"},
		{name: "own message without a task", body: `{"atomUploads":null}`, wantReason: "atomUploads message without a task"},
		{name: "malformed own message", body: `{"atomUploads":"relay"}`, wantReason: "malformed atomUploads message"},
		{name: "bad atom id", body: `{"atomUploads":{"kind":"relay","atomId":"../x","uploadId":"` + id + `"}}`, wantReason: `atomId "../x"`},
		{name: "bad upload id", body: `{"atomUploads":{"kind":"relay","atomId":"a","uploadId":"x"}}`, wantReason: `uploadId "x"`},
		{name: "negative failures", body: `{"atomUploads":{"kind":"relay","atomId":"a","uploadId":"` + id + `","failures":-1}}`, wantReason: "with -1 failures"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newUnitEnv(t)
			if res := e.handle(tt.body); res != (worker.Result{}) {
				t.Fatalf("Handle = %+v, want the message deleted", res)
			}
			lines := e.logs.FilterMessage("ignored a message that is not an event").All()
			if len(lines) != 1 {
				t.Fatalf("%d ignored lines, want 1", len(lines))
			}
			if reason, _ := lines[0].ContextMap()["reason"].(string); !strings.Contains(reason, tt.wantReason) {
				t.Errorf("reason %q, want it to say %q", reason, tt.wantReason)
			}
			if n := e.store.count("Get"); n != 0 {
				t.Errorf("%d record reads, want none", n)
			}
		})
	}
}

func TestUnitDispatchS3TestEventIsIgnored(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	body := `{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-01-01T00:00:00.000Z","Bucket":"unit-uploads","RequestId":"R","HostId":"H"}`
	if res := e.handle(body); res != (worker.Result{}) {
		t.Fatalf("Handle = %+v, want the message deleted", res)
	}
	if n := e.logged("ignored s3:TestEvent"); n != 1 {
		t.Errorf("%d test-event lines, want 1", n)
	}
}

func TestUnitDispatchStoreErrorIsRetried(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts, ytDest())
	errStore := errors.New("dynamodb: RequestLimitExceeded")
	e.store.failNext("Get", errStore)
	// Without the record the step cannot run: a failed attempt, retried
	// on a message of its own after a pause, not left to SQS's receives.
	if res := e.handle(ownBody(worker.KindRelay, u, 0)); res != (worker.Result{}) {
		t.Fatalf("Handle = %+v, want the message replaced by its retry", res)
	}
	if n := e.yt.count("StartSession"); n != 0 {
		t.Errorf("%d sessions started without a record, want none", n)
	}
	sent := e.queue.ofKind(worker.KindRelay)
	if len(sent) != 1 || sent[0].Failures != 1 || sent[0].Delay <= 0 {
		t.Fatalf("relay messages %+v, want one retry with failures 1, later", sent)
	}
	e.mustHandle(sent[0].Body)
	if n := e.yt.count("StartSession"); n != 1 {
		t.Errorf("%d sessions started by the retry, want 1", n)
	}
}

func TestUnitDispatchEveryRecordOfAnEvent(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts)
	file := unitFile(t, u.Size)
	e.putPart(u, file, 0)
	e.putPart(u, file, 2)
	a, b := partBody(u, 0), partBody(u, 2)
	body := a[:strings.LastIndex(a, "]")] + "," + b[strings.Index(b, "[")+1:]
	e.mustHandle(body)
	if got := e.get(u).CompletedParts(); len(got) != 2 || got[0] != 0 || got[1] != 2 {
		t.Errorf("completed parts %v, want [0 2] from one message of two records", got)
	}
}

func TestUnitDispatchFullEventOfAFinishedUploadIsIgnored(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.assembled(e.create(threeParts))
	e.store.modify(t, u.AtomID, u.ID, func(u *upload.Upload) { _ = u.Cancel(time.Now()) })
	e.mustHandle(fullBody(u))
	if n := e.tc.count("Start"); n != 0 {
		t.Errorf("%d transcodes started for a cancelled upload, want none", n)
	}
	if n := e.logged("ignored an event of a finished upload"); n != 1 {
		t.Errorf("%d finished-upload lines, want 1", n)
	}
}

// TestUnitDispatchLastTryFailsTheUpload: a message that fails on the
// receive the redrive policy allows last fails its upload with a readable
// reason instead of leaving it to look busy, when no dead-letter reader
// will; earlier receives do not. A step's own failures never fail the
// message any more (they are retried on messages of their own): what
// fails it is what keeps the work from going on at all: the fresh message
// that cannot be sent. (A record that cannot be read is a failed attempt,
// retried on a message of its own: TestUnitDispatchStoreErrorIsRetried.)
func TestUnitDispatchLastTryFailsTheUpload(t *testing.T) {
	t.Parallel()
	errSQS := sqsError("AWS.SimpleQueueService.NonExistentQueue")
	tests := []struct {
		name         string
		receiveCount int
		deadLetters  bool // a dead-letter reader will fail it instead
		body         func(u *upload.Upload) string
		setup        func(e *unitEnv, u *upload.Upload)
		wantErr      error
		wantFailed   string // the upload's error; "" for running
	}{
		{
			name: "part event, before the last receive", receiveCount: 4,
			body:    func(u *upload.Upload) string { return partBody(u, 0) },
			setup:   func(e *unitEnv, _ *upload.Upload) { e.queue.failNext("SendMessage", errSQS) },
			wantErr: errSQS,
		},
		{
			name: "part event, last receive", receiveCount: 5,
			body:       func(u *upload.Upload) string { return partBody(u, 0) },
			setup:      func(e *unitEnv, _ *upload.Upload) { e.queue.failNext("SendMessage", errSQS) },
			wantErr:    errSQS,
			wantFailed: "gave up after 5 attempts without progress: the queue refused: AWS.SimpleQueueService.NonExistentQueue",
		},
		{
			name: "last receive, with a dead-letter reader", receiveCount: 5, deadLetters: true,
			body:    func(u *upload.Upload) string { return partBody(u, 0) },
			setup:   func(e *unitEnv, _ *upload.Upload) { e.queue.failNext("SendMessage", errSQS) },
			wantErr: errSQS,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newUnitEnv(t, unitOpts{cfg: func(c *worker.Config) {
				c.MaxAttempts = 20 // the re-homed message itself would not give up
				if tt.deadLetters {
					c.DeadLetterURL = unitDLQURL
				}
			}})
			u := e.create(threeParts)
			e.putPart(u, unitFile(t, 5*upload.MiB), 0)
			tt.setup(e, u)
			if res := e.handleOn(e.d, tt.body(u), tt.receiveCount); !errors.Is(res.Err, tt.wantErr) {
				t.Fatalf("Handle = %+v, want the error %v (the redrive policy moves the message)", res, tt.wantErr)
			}
			got := e.get(u)
			if tt.wantFailed == "" {
				if got.Status.Terminal() {
					t.Errorf("upload %s (%q), want it running", got.Status, got.Error)
				}
				if n := e.logged("gave up"); n != 0 {
					t.Errorf("%d gave-up lines, want none", n)
				}
				return
			}
			if got.Status != upload.StatusFailed || got.Error != tt.wantFailed {
				t.Errorf("upload %s, error %q; want failed, %q", got.Status, got.Error, tt.wantFailed)
			}
			for _, d := range got.Destinations {
				if d.Status != upload.DestFailed || d.Error != tt.wantFailed {
					t.Errorf("%s destination %s (%q), want failed with the upload", d.Type, d.Status, d.Error)
				}
			}
			if n := e.logged("gave up"); n != 1 {
				t.Errorf("%d gave-up lines, want 1", n)
			}
		})
	}
}

// TestUnitDispatchGiveUpReasonIsBounded: the reason a record gives is in
// domain words: an error's own text, however long, never reaches it.
func TestUnitDispatchGiveUpReasonIsBounded(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts)
	e.putPart(u, unitFile(t, 5*upload.MiB), 0)
	e.store.failNext("Get", errors.New(strings.Repeat("x", 1000)))
	if res := e.handle(ownBody(worker.KindReassemble, u, e.cfg.MaxAttempts-1)); res.Err != nil {
		t.Fatalf("Handle = %+v, want the work given up", res)
	}
	got := e.get(u)
	want := fmt.Sprintf("gave up after %d attempts without progress: a dependency could not be reached (see the service's logs)", e.cfg.MaxAttempts)
	if got.Status != upload.StatusFailed || got.Error != want {
		t.Errorf("upload %s, error of %d bytes %q; want failed, %q", got.Status, len(got.Error), got.Error, want)
	}
}

// TestUnitDispatchShutdownIsNotAFailure: work stopped by the end of the
// shutdown grace is handed over, not counted, even at its last attempt;
// and a message on its last receive does not fail its upload when the
// grace is what stopped it.
func TestUnitDispatchShutdownIsNotAFailure(t *testing.T) {
	t.Parallel()
	t.Run("hand-back at the last attempt", func(t *testing.T) {
		t.Parallel()
		e := newUnitEnv(t)
		u := e.create(threeParts)
		e.putPart(u, unitFile(t, 5*upload.MiB), 0)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		e.s3.onCall("HeadObject", func(int) { cancel() }) // the grace ends during the call
		last := e.cfg.MaxAttempts - 1                     // one more failure gives up
		body := ownTask{kind: worker.KindPart, failures: last, cause: "S3 refused: SlowDown"}.body(u)
		if res := e.d.Handle(ctx, worker.Message{ID: "m-shutdown", Body: body, ReceiveCount: 1}); res != (worker.Result{}) {
			t.Fatalf("Handle = %+v, want the message deleted: a fresh one carries the work", res)
		}
		sent := e.queue.sent()
		if len(sent) != 1 || sent[0].Kind != worker.KindPart || sent[0].Part != 0 || sent[0].Failures != last ||
			sent[0].Delay != 0 || sent[0].Cause != "S3 refused: SlowDown" || !sent[0].Marked {
			t.Fatalf("messages %+v, want the part handed back at once, failures %d and cause kept", sent, last)
		}
		if got := e.get(u); got.Status.Terminal() {
			t.Errorf("upload %s (%q), want it running", got.Status, got.Error)
		}
		if n := e.logged("handed back"); n != 1 {
			t.Errorf("%d hand-back lines, want 1", n)
		}
		if n := e.logged("gave up") + e.logged("attempt failed; it is retried later"); n != 0 {
			t.Errorf("%d give-up or retry lines, want none", n)
		}
		if n := e.store.touches(u.AtomID, u.ID); n != 0 {
			t.Errorf("%d touches, want none: the hand-back is due at once", n)
		}
	})
	t.Run("last receive", func(t *testing.T) {
		t.Parallel()
		e := newUnitEnv(t)
		u := e.create(threeParts)
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // the grace is over before the record is read
		res := e.d.Handle(ctx, worker.Message{ID: "m-shutdown", Body: partBody(u, 0), ReceiveCount: e.cfg.MaxReceiveCount})
		if res.Err == nil {
			t.Fatal("Handle succeeded, want the cancelled read's error: the message goes back")
		}
		if got := e.get(u); got.Status.Terminal() {
			t.Errorf("upload %s (%q), want it running: the message goes back, not to the DLQ", got.Status, got.Error)
		}
	})
}

// TestUnitDispatchPanicInAChainedStepIsAnError: the step after a relay
// (adding the asset) panics; the message fails like any error and what
// was done stays done.
func TestUnitDispatchPanicInAChainedStepIsAnError(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(5*upload.MiB, ytDest())
	file := unitFile(t, u.Size)
	e.atom.onCall("AddAsset", func(int) { panic("atom client: nil pointer") })
	e.putPart(u, file, 0)
	res := e.handle(partBody(u, 0))
	if res.Err == nil || !strings.Contains(res.Err.Error(), "panic in step asset: atom client: nil pointer") {
		t.Fatalf("Handle = %+v, want the panic as an error", res)
	}
	e.checkVideo(file)
	if d := e.get(u).Destination(upload.YouTube); d.VideoID == "" || d.AssetAdded {
		t.Errorf("video %q, asset %t; want the video recorded and no asset", d.VideoID, d.AssetAdded)
	}
	if n := e.logged("recovered from a panic"); n != 1 {
		t.Errorf("%d panic lines, want 1", n)
	}
	if polls := e.queue.ofKind(worker.KindYouTubePoll); len(polls) != 1 {
		t.Errorf("%d youtubePoll messages, want the follow-up sent before the asset", len(polls))
	}
}

func TestUnitDispatchKindsHaveTheirSteps(t *testing.T) {
	t.Parallel()
	// Every kind can be one of the service's own messages (a retry, a
	// hand-back, a re-homed event), parts and the transcode included.
	for _, k := range []worker.Kind{worker.KindPart, worker.KindFull, worker.KindRelay, worker.KindReassemble, worker.KindTranscodePoll, worker.KindYouTubePoll, worker.KindAsset} {
		t.Run(string(k), func(t *testing.T) {
			t.Parallel()
			e := newUnitEnv(t)
			u := e.create(threeParts, ytDest(), s3BucketDest())
			if res := e.handle(ownBody(k, u, 0)); res.Err != nil || res.DeadLetter {
				t.Errorf("Handle(%s) = %+v, want success", k, res)
			}
			if n := e.store.count("Get"); n != 1 {
				t.Errorf("%d record reads, want 1", n)
			}
			if n := e.logged("recovered from a panic") + e.logged("ignored a message that is not an event"); n != 0 {
				t.Errorf("%s was not handled by a step", k)
			}
		})
	}
}

// TestUnitFollowUpThatCannotBeSentIsNotLost: steps send their follow-up
// before they record what they did. When that send fails, the step fails,
// and its work goes on on a message of its own (the continuation), which
// sends the follow-up; only when that message cannot be sent either does
// the message in hand fail, and its next receive carries the work on.
func TestUnitFollowUpThatCannotBeSentIsNotLost(t *testing.T) {
	t.Parallel()
	errSQS := sqsError("ServiceUnavailable")
	tests := []struct {
		name  string
		setup func(e *unitEnv, u *upload.Upload) string // returns the body
		check func(e *unitEnv, u *upload.Upload)        // after the failed try
		// continuation is the kind of the message that carries the work on
		// after the failed send, with failures; "" when none could be
		// sent and the message fails.
		continuation worker.Kind
		failures     int
		// followUp is sent by the continuation, or by the retried message.
		followUp worker.Kind
		// receiveCount of the message; 1 unless set
		receiveCount int
	}{
		{
			name: "transcode poll after the start",
			setup: func(e *unitEnv, u *upload.Upload) string {
				e.assembled(u)
				return fullBody(u)
			},
			check: func(e *unitEnv, u *upload.Upload) {
				if d := e.get(u).Destination(upload.S3Bucket); d.JobID != "job-1" {
					e.t.Errorf("job %q, want the started job recorded", d.JobID)
				}
			},
			continuation: worker.KindFull, failures: 0, // the job started: progress
			followUp: worker.KindTranscodePoll,
		},
		{
			name: "next YouTube poll",
			setup: func(e *unitEnv, u *upload.Upload) string {
				e.onYouTube(u, time.Time{})
				return ownBody(worker.KindYouTubePoll, u, 0)
			},
			check: func(e *unitEnv, u *upload.Upload) {
				if d := e.get(u).Destination(upload.YouTube); !d.PolledAt.IsZero() {
					e.t.Errorf("polledAt %s, want the poll not recorded before its successor is sent", d.PolledAt)
				}
			},
			continuation: worker.KindYouTubePoll, failures: 1,
			followUp: worker.KindYouTubePoll,
		},
		{
			name: "asset after a failed call",
			setup: func(e *unitEnv, u *upload.Upload) string {
				e.assetDue(u)
				e.atom.failAlways("AddAsset", errors.New("atom API answered 503"))
				e.store.onCall("Acquire", func(int) { e.store.clock.Advance(time.Hour) }) // the kept lease is over by the retry
				return ownBody(worker.KindAsset, u, 0)
			},
			check:    func(*unitEnv, *upload.Upload) {},
			followUp: worker.KindAsset,
		},
		{
			name: "relay after the holder's lease",
			setup: func(e *unitEnv, u *upload.Upload) string {
				e.store.setLease(e.t, u.AtomID, u.ID, upload.LeaseYouTube, "unit-dead#1", e.store.clock.Now().Add(time.Hour))
				return ownBody(worker.KindRelay, u, 0)
			},
			check:        func(*unitEnv, *upload.Upload) {},
			followUp:     worker.KindRelay,
			receiveCount: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newUnitEnv(t)
			u := e.create(threeParts, ytDest(), s3BucketDest())
			body := tt.setup(e, u)
			rc := max(tt.receiveCount, 1)
			e.queue.failNext("SendMessage", errSQS)
			res := e.handleOn(e.d, body, rc)
			tt.check(e, u)
			if tt.continuation == "" {
				if !errors.Is(res.Err, errSQS) {
					t.Fatalf("Handle = %+v, want the send's error", res)
				}
				if n := len(e.queue.sent()); n != 0 {
					t.Fatalf("%d messages sent, want none", n)
				}
				if res := e.handleOn(e.d, body, rc+1); res.Err != nil || res.DeadLetter {
					t.Fatalf("retried Handle = %+v, want success", res)
				}
				if m := e.queue.ofKind(tt.followUp); len(m) != 1 {
					t.Errorf("%s messages %+v after the retry, want 1", tt.followUp, m)
				}
				return
			}
			if res != (worker.Result{}) {
				t.Fatalf("Handle = %+v, want the message deleted: a continuation carries the work", res)
			}
			sent := e.queue.sent()
			if len(sent) != 1 {
				t.Fatalf("messages %+v, want the continuation only", sent)
			}
			e.checkRetry(sent[0], tt.continuation, tt.failures, "the queue refused: ServiceUnavailable")
			e.mustHandle(sent[0].Body)
			if m := e.queue.ofKind(tt.followUp); len(m) < 1 || m[len(m)-1].Failures != 0 || m[len(m)-1].Delay != e.cfg.PollInterval {
				t.Errorf("%s messages %+v after the continuation, want the follow-up after %s", tt.followUp, m, e.cfg.PollInterval)
			}
		})
	}
}
