package worker_test

import (
	"context"
	"errors"
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
	res := e.handle(ownBody(worker.KindRelay, u, 0))
	if !errors.Is(res.Err, errStore) || res.DeadLetter {
		t.Fatalf("Handle = %+v, want the store's error", res)
	}
	if n := e.yt.count("StartSession"); n != 0 {
		t.Errorf("%d sessions started without a record, want none", n)
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

// TestUnitDispatchLastTryFailsTheUpload: a message that fails on the try
// the redrive policy allows last fails its upload with a readable reason
// instead of leaving it to look busy; earlier tries do not.
func TestUnitDispatchLastTryFailsTheUpload(t *testing.T) {
	t.Parallel()
	errS3 := errors.New("AccessDenied: the task role may not read the parts")
	tests := []struct {
		name         string
		receiveCount int
		body         func(u *upload.Upload) string
		setup        func(e *unitEnv, u *upload.Upload)
		wantFailed   bool
		wantErr      string
	}{
		{
			name: "part event, before the last try", receiveCount: 4,
			body:  func(u *upload.Upload) string { return partBody(u, 0) },
			setup: func(e *unitEnv, u *upload.Upload) { e.s3.failNext("HeadObject", errS3) },
		},
		{
			name: "part event, last try", receiveCount: 5,
			body:       func(u *upload.Upload) string { return partBody(u, 0) },
			setup:      func(e *unitEnv, u *upload.Upload) { e.s3.failNext("HeadObject", errS3) },
			wantFailed: true,
			wantErr:    "the service gave up after 5 attempts (head part 0 of ",
		},
		{
			name: "reassembly, past the last try", receiveCount: 7,
			body: func(u *upload.Upload) string { return ownBody(worker.KindReassemble, u, 0) },
			setup: func(e *unitEnv, u *upload.Upload) {
				e.allIn(u, unitFile(e.t, u.Size))
				e.s3.failNext("UploadPartCopy", errS3)
			},
			wantFailed: true,
			wantErr:    "the service gave up after 7 attempts (",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newUnitEnv(t)
			u := e.create(threeParts)
			e.putPart(u, unitFile(t, 5*upload.MiB), 0)
			tt.setup(e, u)
			if res := e.handleOn(e.d, tt.body(u), tt.receiveCount); !errors.Is(res.Err, errS3) {
				t.Fatalf("Handle = %+v, want the error (the redrive policy moves the message)", res)
			}
			got := e.get(u)
			if !tt.wantFailed {
				if got.Status.Terminal() {
					t.Errorf("upload %s (%q) before the last try, want it running", got.Status, got.Error)
				}
				return
			}
			if got.Status != upload.StatusFailed || !strings.HasPrefix(got.Error, tt.wantErr) ||
				!strings.Contains(got.Error, "AccessDenied") || !strings.HasSuffix(got.Error, "; its message is in the dead-letter queue") {
				t.Errorf("upload %s, error %q; want failed, saying the service gave up and why", got.Status, got.Error)
			}
			if n := e.logged("upload failed"); n != 1 {
				t.Errorf("%d upload-failed lines, want 1", n)
			}
		})
	}
}

func TestUnitDispatchGiveUpReasonIsBounded(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts)
	e.putPart(u, unitFile(t, 5*upload.MiB), 0)
	e.s3.failNext("HeadObject", errors.New(strings.Repeat("x", 1000)))
	if res := e.handleOn(e.d, partBody(u, 0), e.cfg.MaxReceiveCount); res.Err == nil {
		t.Fatal("Handle succeeded, want the error")
	}
	got := e.get(u)
	if got.Status != upload.StatusFailed || len(got.Error) > 500 || !strings.Contains(got.Error, "x…") {
		t.Errorf("upload %s, error of %d bytes %q; want failed with the cause cut short", got.Status, len(got.Error), got.Error)
	}
}

func TestUnitDispatchShutdownOnTheLastTryDoesNotFailTheUpload(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts)
	e.putPart(u, unitFile(t, 5*upload.MiB), 0)
	ctx, cancel := context.WithCancel(context.Background())
	e.s3.onCall("HeadObject", func(int) { cancel() }) // the grace ends during the call
	res := e.d.Handle(ctx, worker.Message{ID: "m-shutdown", Body: partBody(u, 0), ReceiveCount: e.cfg.MaxReceiveCount})
	if res.Err == nil {
		t.Fatal("Handle succeeded, want the cancelled call's error")
	}
	if got := e.get(u); got.Status.Terminal() {
		t.Errorf("upload %s (%q), want it running: the message goes back, not to the DLQ", got.Status, got.Error)
	}
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
	for _, k := range []worker.Kind{worker.KindRelay, worker.KindReassemble, worker.KindTranscodePoll, worker.KindYouTubePoll, worker.KindAsset} {
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

// TestUnitFollowUpThatCannotBeSentFailsTheMessage: steps send their
// follow-up before they record what they did, so a failed send fails the
// message, and its retry sends the follow-up.
func TestUnitFollowUpThatCannotBeSentFailsTheMessage(t *testing.T) {
	t.Parallel()
	errSQS := errors.New("sqs: ServiceUnavailable")
	tests := []struct {
		name  string
		setup func(e *unitEnv, u *upload.Upload) string // returns the body
		check func(e *unitEnv, u *upload.Upload)        // after the failed try
		kind  worker.Kind                               // sent by the retry
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
			kind: worker.KindTranscodePoll,
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
			kind: worker.KindYouTubePoll,
		},
		{
			name: "asset after a failed call",
			setup: func(e *unitEnv, u *upload.Upload) string {
				e.assetDue(u)
				e.atom.failAlways("AddAsset", errors.New("atom API answered 503"))
				e.store.onCall("Acquire", func(int) { e.store.clock.Advance(time.Hour) }) // the kept lease is over by the retry
				return ownBody(worker.KindAsset, u, 0)
			},
			check: func(*unitEnv, *upload.Upload) {},
			kind:  worker.KindAsset,
		},
		{
			name: "relay after the holder's lease",
			setup: func(e *unitEnv, u *upload.Upload) string {
				e.store.setLease(e.t, u.AtomID, u.ID, upload.LeaseYouTube, "unit-dead#1", e.store.clock.Now().Add(time.Hour))
				return ownBody(worker.KindRelay, u, 0)
			},
			check:        func(*unitEnv, *upload.Upload) {},
			kind:         worker.KindRelay,
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
			if res := e.handleOn(e.d, body, rc); !errors.Is(res.Err, errSQS) {
				t.Fatalf("Handle = %+v, want the send's error", res)
			}
			tt.check(e, u)
			if n := len(e.queue.sent()); n != 0 {
				t.Fatalf("%d messages sent, want none", n)
			}
			if res := e.handleOn(e.d, body, rc+1); res.Err != nil || res.DeadLetter {
				t.Fatalf("retried Handle = %+v, want success", res)
			}
			if m := e.queue.ofKind(tt.kind); len(m) != 1 {
				t.Errorf("%s messages %+v after the retry, want 1", tt.kind, m)
			}
		})
	}
}
