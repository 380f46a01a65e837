package worker_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/smithy-go"

	"atomuploads/transcode"
	"atomuploads/upload"
	"atomuploads/worker"
)

// assembled records every part of u in and the original assembled, as the
// reassembly leaves it, and returns the record.
func (e *unitEnv) assembled(u *upload.Upload) *upload.Upload {
	e.t.Helper()
	e.store.modify(e.t, u.AtomID, u.ID, func(u *upload.Upload) {
		for n := range u.PartCount() {
			u.Completed[n] = true
		}
		u.Assembled = true
		u.Settle(time.Now())
	})
	return e.get(u)
}

// transcoding records the s3Bucket destination's transcode as started
// (job-1, its first attempt) and when it was last polled.
func (e *unitEnv) transcoding(u *upload.Upload, polledAt time.Time) {
	e.t.Helper()
	if _, err := e.tc.Start(e.t.Context(), transcode.Spec{AtomID: u.AtomID, UploadID: u.ID, SourceBucket: unitBucket,
		SourceKey: u.FullKey(), Token: u.ID + "-1"}); err != nil {
		e.t.Fatal(err)
	}
	e.store.modify(e.t, u.AtomID, u.ID, func(u *upload.Upload) {
		d := u.Destination(upload.S3Bucket)
		d.Status, d.JobID, d.Attempt, d.PolledAt = upload.DestTranscoding, "job-1", 1, polledAt
	})
}

func TestUnitTranscodeFullStartsOneJobAndPolls(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.assembled(e.create(threeParts))
	e.mustHandle(fullBody(u))
	specs := e.tc.started()
	want := transcode.Spec{AtomID: u.AtomID, UploadID: u.ID, SourceBucket: unitBucket, SourceKey: u.FullKey(), Token: u.ID + "-1"}
	if len(specs) != 1 || specs[0] != want {
		t.Fatalf("jobs started %+v, want one %+v", specs, want)
	}
	d := e.get(u).Destination(upload.S3Bucket)
	if d.Status != upload.DestTranscoding || d.JobID != "job-1" || d.Attempt != 1 || d.Progress != 0 {
		t.Errorf("s3Bucket destination %s, job %q, attempt %d, progress %.0f; want transcoding job-1, attempt 1, 0",
			d.Status, d.JobID, d.Attempt, d.Progress)
	}
	polls := e.queue.ofKind(worker.KindTranscodePoll)
	if len(polls) != 1 || polls[0].Delay != e.cfg.PollInterval || polls[0].UploadID != u.ID || polls[0].Failures != 0 {
		t.Errorf("transcodePoll messages %+v, want one after %s", polls, e.cfg.PollInterval)
	}
	if n := e.logged("transcode started"); n != 1 {
		t.Errorf("%d transcode-started lines, want 1", n)
	}

	// The event again: the job is there, only a poll is sent.
	e.mustHandle(fullBody(u))
	if n := e.tc.count("Start"); n != 1 {
		t.Errorf("%d Start calls after a repeated event, want 1", n)
	}
	if polls := e.queue.ofKind(worker.KindTranscodePoll); len(polls) != 2 {
		t.Errorf("%d transcodePoll messages, want 2", len(polls))
	}
	if d := e.get(u).Destination(upload.S3Bucket); d.JobID != "job-1" || d.Attempt != 1 {
		t.Errorf("job %q attempt %d after a repeated event, want job-1, 1", d.JobID, d.Attempt)
	}
}

func TestUnitTranscodePoll(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		answer     fakeJob
		wantStatus upload.DestinationStatus
		wantProg   float64
		wantPoll   bool
		wantUpload upload.Status
		wantErr    string
	}{
		{
			name:       "progressing",
			answer:     fakeJob{job: transcode.Job{State: transcode.StateProgressing, Percent: 40}},
			wantStatus: upload.DestTranscoding, wantProg: 40, wantPoll: true, wantUpload: upload.StatusProcessing,
		},
		{
			name:       "submitted",
			answer:     fakeJob{job: transcode.Job{State: transcode.StateSubmitted}},
			wantStatus: upload.DestTranscoding, wantPoll: true, wantUpload: upload.StatusProcessing,
		},
		{
			name: "complete",
			answer: fakeJob{job: transcode.Job{State: transcode.StateComplete, Percent: 100, Playback: "a/hls/master.m3u8", Outputs: []transcode.Output{
				{Key: "a/hls/master.m3u8", Kind: transcode.KindHLS},
				{Key: "a/video.mp4", Kind: transcode.KindMP4, Width: 1280, Height: 720, Bitrate: 3_000_000},
			}}},
			wantStatus: upload.DestComplete, wantProg: 100, wantUpload: upload.StatusComplete,
		},
		{
			name:       "failed for good",
			answer:     fakeJob{job: transcode.Job{State: transcode.StateError, Error: "the input has no video stream"}},
			wantStatus: upload.DestFailed, wantUpload: upload.StatusFailed, wantErr: "transcode failed: the input has no video stream",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newUnitEnv(t)
			u := e.assembled(e.create(threeParts))
			e.transcoding(u, time.Time{})
			e.tc.script(tt.answer)
			e.mustHandle(ownBody(worker.KindTranscodePoll, u, 0))
			got := e.get(u)
			d := got.Destination(upload.S3Bucket)
			if d.Status != tt.wantStatus || d.Progress != tt.wantProg || d.Error != tt.wantErr {
				t.Errorf("s3Bucket destination %s, progress %.0f, error %q; want %s, %.0f, %q", d.Status, d.Progress, d.Error, tt.wantStatus, tt.wantProg, tt.wantErr)
			}
			if got.Status != tt.wantUpload {
				t.Errorf("upload status %s (%s), want %s", got.Status, got.Error, tt.wantUpload)
			}
			if want := []string{"a/hls/master.m3u8", "a/video.mp4"}; tt.wantStatus == upload.DestComplete && (!slices.Equal(d.Outputs, want) || d.Playback != want[0] || len(d.Files) != 2 || d.Files[1].Width != 1280) {
				t.Errorf("outputs %q, playback %q, files %+v; want %q, the first the playback", d.Outputs, d.Playback, d.Files, want)
			}
			if tt.wantStatus != upload.DestFailed && time.Since(d.PolledAt) > time.Minute {
				t.Errorf("polledAt %s, want the poll recorded", d.PolledAt)
			}
			if polls := e.queue.ofKind(worker.KindTranscodePoll); (len(polls) == 1) != tt.wantPoll || len(polls) > 1 {
				t.Errorf("transcodePoll messages %+v, want a next poll: %t", polls, tt.wantPoll)
			}
		})
	}
}

func TestUnitTranscodeLostJobIsRestartedThenFails(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.assembled(e.create(threeParts))
	e.mustHandle(fullBody(u))
	lost := fakeJob{job: transcode.Job{State: transcode.StateError, Error: "the ffmpeg worker stopped", Retryable: true}}
	for attempt := 2; attempt <= e.cfg.MaxTranscodeAttempts; attempt++ {
		e.tc.script(lost)
		e.mustHandle(ownBody(worker.KindTranscodePoll, u, 0))
		d := e.get(u).Destination(upload.S3Bucket)
		if d.Status != upload.DestTranscoding || d.Attempt != attempt || d.JobID != fmt.Sprintf("job-%d", attempt) {
			t.Fatalf("after a lost job: %s, attempt %d, job %q; want transcoding attempt %d", d.Status, d.Attempt, d.JobID, attempt)
		}
	}
	if specs := e.tc.started(); len(specs) != 3 || specs[2].Token != u.ID+"-3" {
		t.Errorf("jobs started %+v, want three with tokens -1, -2, -3", specs)
	}
	e.tc.script(lost)
	e.mustHandle(ownBody(worker.KindTranscodePoll, u, 0))
	got := e.get(u)
	d := got.Destination(upload.S3Bucket)
	if d.Status != upload.DestFailed || d.Error != "transcode failed: the ffmpeg worker stopped" {
		t.Errorf("s3Bucket destination %s, error %q; want failed after %d jobs", d.Status, d.Error, e.cfg.MaxTranscodeAttempts)
	}
	if got.Status != upload.StatusFailed || !strings.Contains(got.Error, "s3Bucket: transcode failed") {
		t.Errorf("upload %s, error %q; want failed, naming the destination", got.Status, got.Error)
	}
	if n := e.tc.count("Start"); n != 3 {
		t.Errorf("%d Start calls, want 3", n)
	}
}

func TestUnitTranscodeStartFailures(t *testing.T) {
	t.Parallel()
	t.Run("refused input fails the destination", func(t *testing.T) {
		t.Parallel()
		e := newUnitEnv(t)
		u := e.assembled(e.create(threeParts))
		e.tc.failNext("Start", upload.Errorf(upload.EINVALID, "the original is not a video file"))
		e.mustHandle(fullBody(u))
		d := e.get(u).Destination(upload.S3Bucket)
		if d.Status != upload.DestFailed || d.Error != "transcode refused: the original is not a video file" {
			t.Errorf("s3Bucket destination %s, error %q; want failed, refused", d.Status, d.Error)
		}
		if polls := e.queue.ofKind(worker.KindTranscodePoll); len(polls) != 0 {
			t.Errorf("transcodePoll messages %+v, want none", polls)
		}
	})
	t.Run("unavailable backend is retried", func(t *testing.T) {
		t.Parallel()
		e := newUnitEnv(t)
		u := e.assembled(e.create(threeParts))
		e.tc.failNext("Start", &smithy.OperationError{ServiceID: "MediaConvert", OperationName: "CreateJob", Err: apiError("TooManyRequestsException")})
		if res := e.handle(fullBody(u)); res != (worker.Result{}) {
			t.Fatalf("Handle = %+v, want the event deleted: the start is retried on a message of its own", res)
		}
		if d := e.get(u).Destination(upload.S3Bucket); d.JobID != "" || d.Status != upload.DestWaiting {
			t.Errorf("s3Bucket destination %s with job %q, want waiting without a job", d.Status, d.JobID)
		}
		retries := e.queue.ofKind(worker.KindFull)
		if len(retries) != 1 {
			t.Fatalf("transcode messages %+v, want one retry", retries)
		}
		e.checkRetry(retries[0], worker.KindFull, 1, "MediaConvert refused: TooManyRequestsException")
		e.mustHandle(retries[0].Body)
		if d := e.get(u).Destination(upload.S3Bucket); d.JobID != "job-1" {
			t.Errorf("job %q after the retry, want job-1", d.JobID)
		}
	})
}

// TestUnitTranscodeFailedPollsAreRetriedThenGivenUp: a poll the
// transcoder does not answer is retried on a message of its own, with one
// more failure each time and a longer pause; the MaxAttempts-th failure in
// a row gives the destination up, readably.
func TestUnitTranscodeFailedPollsAreRetriedThenGivenUp(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.assembled(e.create(threeParts))
	e.transcoding(u, time.Time{})
	e.tc.failAlways("Job", upload.Errorf(upload.EUNAVAILABLE, "MediaConvert did not answer"))
	body := ownBody(worker.KindTranscodePoll, u, 0)
	for failures := 1; failures < e.cfg.MaxAttempts; failures++ {
		e.mustHandle(body)
		polls := e.queue.ofKind(worker.KindTranscodePoll)
		if len(polls) != failures {
			t.Fatalf("transcodePoll messages %+v, want %d", polls, failures)
		}
		e.checkRetry(polls[failures-1], worker.KindTranscodePoll, failures, "MediaConvert did not answer")
		body = polls[failures-1].Body
	}
	e.mustHandle(body)
	d := e.get(u).Destination(upload.S3Bucket)
	want := "gave up after 3 attempts without progress: MediaConvert did not answer"
	if d.Status != upload.DestFailed || d.Error != want {
		t.Errorf("s3Bucket destination %s, error %q; want failed, %q", d.Status, d.Error, want)
	}
	if n := len(e.queue.ofKind(worker.KindTranscodePoll)); n != e.cfg.MaxAttempts-1 {
		t.Errorf("%d transcodePoll messages, want no more after giving up", n)
	}
	if n := e.tc.count("Job"); n != e.cfg.MaxAttempts {
		t.Errorf("%d Job calls, want %d", n, e.cfg.MaxAttempts)
	}
}

func TestUnitTranscodePollsThatDoNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		opts  unitOpts
		setup func(e *unitEnv, u *upload.Upload)
		body  func(u *upload.Upload) string
	}{
		{
			name:  "polled recently: a duplicate chain is cut",
			setup: func(e *unitEnv, u *upload.Upload) { e.transcoding(u, time.Now()) },
			body:  func(u *upload.Upload) string { return ownBody(worker.KindTranscodePoll, u, 0) },
		},
		{
			name:  "no job yet",
			setup: func(*unitEnv, *upload.Upload) {},
			body:  func(u *upload.Upload) string { return ownBody(worker.KindTranscodePoll, u, 0) },
		},
		{
			name:  "no transcoder",
			opts:  unitOpts{noTranscoder: true},
			setup: func(*unitEnv, *upload.Upload) {},
			body:  fullBody,
		},
		{
			name: "destination complete",
			setup: func(e *unitEnv, u *upload.Upload) {
				e.store.modify(e.t, u.AtomID, u.ID, func(u *upload.Upload) {
					d := u.Destination(upload.S3Bucket)
					d.Status, d.JobID = upload.DestComplete, "job-1"
				})
			},
			body: func(u *upload.Upload) string { return ownBody(worker.KindTranscodePoll, u, 0) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newUnitEnv(t, tt.opts)
			u := e.assembled(e.create(threeParts))
			tt.setup(e, u)
			before := e.get(u)
			calls := func() int {
				if e.tc == nil {
					return 0
				}
				return e.tc.count("Job") + e.tc.count("Start")
			}
			setupCalls := calls()
			e.mustHandle(tt.body(u))
			if n := calls() - setupCalls; n != 0 {
				t.Errorf("%d transcoder calls, want none", n)
			}
			if n := len(e.queue.sent()); n != 0 {
				t.Errorf("%d messages sent, want none", n)
			}
			if got := e.get(u); got.Version != before.Version {
				t.Errorf("record version %d → %d, want unchanged", before.Version, got.Version)
			}
		})
	}
}

func TestUnitTranscodeOfAYouTubeOnlyUploadDoesNothing(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.assembled(e.create(threeParts, ytDest()))
	e.mustHandle(fullBody(u))
	if n := e.tc.count("Start"); n != 0 {
		t.Errorf("%d transcodes started, want none without an s3Bucket destination", n)
	}
}

// TestUnitTranscodeFullEventBeforeTheAssemblyIsIgnored: an event of the
// original is a hint: until the record says the reassembly wrote it (a
// forged event, or S3's coming first), it starts nothing; the reassembly
// starts the transcode itself.
func TestUnitTranscodeFullEventBeforeTheAssemblyIsIgnored(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts)
	file := unitFile(t, u.Size)
	e.s3.put(unitBucket, u.FullKey(), []byte("not the upload's file"))
	e.mustHandle(fullBody(u))
	if n := e.tc.count("Start"); n != 0 {
		t.Errorf("%d transcodes started, want none", n)
	}
	if n := e.logged("ignored an original the record does not know as assembled"); n != 1 {
		t.Errorf("%d ignored lines, want 1", n)
	}
	if got := e.get(u); got.Status != upload.StatusUploading || got.Error != "" || len(e.queue.sent()) != 0 {
		t.Errorf("upload %s (%q), %d messages; want it untouched", got.Status, got.Error, len(e.queue.sent()))
	}
	e.allIn(u, file)
	e.mustHandle(ownBody(worker.KindReassemble, u, 0))
	if d := e.get(u).Destination(upload.S3Bucket); d.JobID != "job-1" || e.tc.count("Start") != 1 {
		t.Errorf("job %q after %d starts, want job-1 started by the reassembly", d.JobID, e.tc.count("Start"))
	}
	if specs := e.tc.started(); len(specs) != 1 || specs[0].SourceKey != u.FullKey() {
		t.Errorf("jobs %+v, want one of the original", specs)
	}
}
