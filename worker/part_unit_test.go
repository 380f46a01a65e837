package worker_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"atomuploads/upload"
	"atomuploads/worker"
)

// threeParts is a file of three parts, the last one short.
const threeParts = 2*5*upload.MiB + 1000

func TestUnitPartCompletesAndChainsRelayAndReassembly(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts, ytDest(), s3BucketDest())
	file := unitFile(t, u.Size)

	e.arrive(u, file, 0)
	got := e.get(u)
	if !got.Completed[0] || len(got.Completed) != 1 {
		t.Fatalf("completed parts = %v, want [0]", got.CompletedParts())
	}
	ss := e.yt.allSessions()
	if len(ss) != 1 || ss[0].Committed != 5*upload.MiB {
		t.Fatalf("YouTube sessions %+v; want one session with part 0 in the same Handle", ss)
	}
	checkChunks(t, ss[0])
	checkReceived(t, ss[0], file)
	d := got.Destination(upload.YouTube)
	if d.Status != upload.DestUpload || d.UploadedBytes != 5*upload.MiB || d.Progress <= 0 {
		t.Errorf("youtube destination %s, %d bytes, progress %.1f; want upload with part 0's bytes", d.Status, d.UploadedBytes, d.Progress)
	}
	if _, held := e.store.lease(u.AtomID, u.ID, upload.LeaseYouTube); held {
		t.Error("the youtube lease is still held after the relay waits for part 1")
	}
	if got.Assembled || got.Status != upload.StatusUploading {
		t.Errorf("assembled %t, status %s after one part; want not assembled, uploading", got.Assembled, got.Status)
	}

	e.arrive(u, file, 2) // out of order: nothing new for YouTube
	if ss := e.yt.allSessions(); ss[0].Committed != 5*upload.MiB {
		t.Errorf("committed %d after part 2, want %d: part 1 is missing", ss[0].Committed, 5*upload.MiB)
	}
	if e.s3.count("CreateMultipartUpload") != 0 {
		t.Error("reassembly started before every part was in")
	}

	e.arrive(u, file, 1) // the last part: relay the rest and reassemble, side by side
	full, ok := e.s3.object(unitBucket, u.FullKey())
	if !ok || !bytes.Equal(full, file) {
		t.Fatalf("full object: present %t, %d bytes; want the %d bytes of the file", ok, len(full), len(file))
	}
	s := e.checkVideo(file)
	got = e.get(u)
	d = got.Destination(upload.YouTube)
	if !got.Assembled || got.Status != upload.StatusProcessing {
		t.Errorf("assembled %t, status %s; want assembled, processing", got.Assembled, got.Status)
	}
	if d.Status != upload.DestTranscoding || d.VideoID != s.VideoID || d.UploadedBytes != u.Size || d.Session != "" {
		t.Errorf("youtube destination %s, video %q, %d bytes, session %q; want transcoding, %q, %d, none",
			d.Status, d.VideoID, d.UploadedBytes, d.Session, s.VideoID, u.Size)
	}
	if polls := e.queue.ofKind(worker.KindYouTubePoll); len(polls) != 1 || polls[0].Delay != e.cfg.PollInterval || polls[0].UploadID != u.ID {
		t.Errorf("youtubePoll messages = %+v, want one after %s", polls, e.cfg.PollInterval)
	}
	if assets := e.atom.assetsOf(u.AtomID); len(assets) != 1 || assets[0] != "https://www.youtube.com/watch?v="+s.VideoID || !d.AssetAdded {
		t.Errorf("assets %q, recorded %t; want the video added once", assets, d.AssetAdded)
	}
	// The reassembly names the transcode as due itself, once it has
	// recorded the original: S3's event of it is not waited for.
	if sd := got.Destination(upload.S3Bucket); sd.Status != upload.DestTranscoding || sd.JobID != "job-1" || e.tc.count("Start") != 1 {
		t.Errorf("s3Bucket destination %s, job %q after %d starts; want transcoding job-1, started once by the reassembly", sd.Status, sd.JobID, e.tc.count("Start"))
	}
	if polls := e.queue.ofKind(worker.KindTranscodePoll); len(polls) != 1 {
		t.Errorf("transcodePoll messages %+v, want 1", polls)
	}
	if n := e.logged("part complete"); n != 3 {
		t.Errorf("%d part-complete lines, want 3", n)
	}
	if n := e.logged("reassembled"); n != 1 {
		t.Errorf("%d reassembled lines, want 1", n)
	}
	for _, l := range e.logs.FilterMessage("part complete").All() {
		for _, f := range []string{"atomId", "uploadId", "part", "bytes", "key"} {
			if _, ok := l.ContextMap()[f]; !ok {
				t.Errorf("log line %q lacks %s: %v", l.Message, f, l.ContextMap())
			}
		}
	}
	e.checkS3Clean()
}

func TestUnitPartAgainstThePlanFailsTheUpload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		part    int
		size    int64 // of the object put
		wantErr string
	}{
		{name: "shorter than planned", part: 0, size: 5*upload.MiB - 1, wantErr: "part 0 is 5242879 bytes but the plan expects 5242880 (bytes 0–5242880 of the file); start a new upload"},
		{name: "longer than planned", part: 2, size: 1001, wantErr: "part 2 is 1001 bytes but the plan expects 1000"},
		// A part outside the plan no longer fails the upload: see
		// TestUnitPartEventsThatAreIgnored.
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newUnitEnv(t)
			u := e.create(threeParts, ytDest(), s3BucketDest())
			e.s3.put(unitBucket, u.PartKey(tt.part), make([]byte, tt.size))
			if res := e.handle(partBody(u, tt.part)); res != (worker.Result{}) {
				t.Fatalf("Handle = %+v, want the message deleted", res)
			}
			got := e.get(u)
			if got.Status != upload.StatusFailed || !strings.Contains(got.Error, tt.wantErr) {
				t.Errorf("status %s, error %q; want failed with %q", got.Status, got.Error, tt.wantErr)
			}
			for _, d := range got.Destinations {
				if d.Status != upload.DestFailed {
					t.Errorf("%s destination %s, want failed with the upload", d.Type, d.Status)
				}
			}
			if n := e.yt.count("StartSession") + e.yt.count("PutChunk"); n != 0 {
				t.Errorf("%d YouTube calls, want none for a bad part", n)
			}
			if len(got.Completed) != 0 {
				t.Errorf("completed parts %v, want none", got.CompletedParts())
			}
			if n := e.s3.count("HeadObject"); n != 1 {
				t.Errorf("HeadObject called %d times, want once: the object's size is S3's answer, not the event's", n)
			}
			lines := e.logs.FilterMessage("upload failed").All()
			if len(lines) != 1 || !strings.Contains(lines[0].ContextMap()["error"].(string), tt.wantErr) {
				t.Errorf("upload-failed lines = %v, want one with the reason", lines)
			}
		})
	}
}

func TestUnitPartEventsThatAreIgnored(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		body       func(u *upload.Upload) string
		setup      func(e *unitEnv, u *upload.Upload)
		wantLog    string
		wantStatus upload.Status // uploading unless set
	}{
		{
			name:    "part not in S3",
			body:    func(u *upload.Upload) string { return partBody(u, 0) },
			setup:   func(*unitEnv, *upload.Upload) {}, // nothing put
			wantLog: "ignored an event of a part that is not in S3",
		},
		{
			// An event is a hint: a forged one far outside the plan, with
			// no object behind it, changes nothing.
			name:    "forged event of a part outside the plan",
			body:    func(u *upload.Upload) string { return partBody(u, 99999) },
			setup:   func(*unitEnv, *upload.Upload) {},
			wantLog: "ignored an event of a part that is not in S3",
		},
		{
			// The browser's credentials may write any key under parts/:
			// a stray object is its mistake, not the upload's end.
			name: "object outside the plan",
			body: func(u *upload.Upload) string { return partBody(u, 3) },
			setup: func(e *unitEnv, u *upload.Upload) {
				e.s3.put(unitBucket, u.PartKey(3), make([]byte, 1000))
			},
			wantLog: "ignored an object outside the plan",
		},
		{
			name: "cancelled upload",
			body: func(u *upload.Upload) string { return partBody(u, 0) },
			setup: func(e *unitEnv, u *upload.Upload) {
				e.store.modify(e.t, u.AtomID, u.ID, func(u *upload.Upload) { _ = u.Cancel(time.Now()) })
			},
			wantLog:    "ignored an event of a finished upload",
			wantStatus: upload.StatusCancelled,
		},
		{
			name: "failed upload",
			body: func(u *upload.Upload) string { return partBody(u, 0) },
			setup: func(e *unitEnv, u *upload.Upload) {
				e.store.modify(e.t, u.AtomID, u.ID, func(u *upload.Upload) { u.Fail("broken", time.Now()) })
			},
			wantLog:    "ignored an event of a finished upload",
			wantStatus: upload.StatusFailed,
		},
		{
			name: "cancelled between the read and the write",
			body: func(u *upload.Upload) string { return partBody(u, 0) },
			setup: func(e *unitEnv, u *upload.Upload) {
				e.putPart(u, unitFile(e.t, 5*upload.MiB), 0)
				e.store.onCall("CompletePart", func(int) {
					e.store.modify(e.t, u.AtomID, u.ID, func(u *upload.Upload) { _ = u.Cancel(time.Now()) })
				})
			},
			wantLog:    "ignored a part of a finished upload",
			wantStatus: upload.StatusCancelled,
		},
		{
			name: "unknown upload",
			body: func(u *upload.Upload) string {
				return s3EventBody("ObjectCreated:Put", unitBucket, upload.PartKey(u.AtomID, "01J0000000000000000000000Z", 0))
			},
			wantLog: "ignored an event of an unknown upload",
		},
		{
			name:    "another bucket",
			body:    func(u *upload.Upload) string { return s3EventBody("ObjectCreated:Put", "someone-elses", u.PartKey(0)) },
			wantLog: "ignored an event of another bucket",
		},
		{
			name:    "not a creation",
			body:    func(u *upload.Upload) string { return s3EventBody("ObjectRemoved:Delete", unitBucket, u.PartKey(0)) },
			wantLog: "ignored an event that is not an S3 object creation",
		},
		{
			name: "not from S3",
			body: func(u *upload.Upload) string {
				return strings.Replace(partBody(u, 0), `"aws:s3"`, `"aws:sns"`, 1)
			},
			wantLog: "ignored an event that is not an S3 object creation",
		},
		{
			name:    "key outside the layout",
			body:    func(*upload.Upload) string { return s3EventBody("ObjectCreated:Put", unitBucket, "elsewhere/clip.mp4") },
			wantLog: "ignored a key outside the upload layout",
		},
		{
			name: "part that is not a number",
			body: func(u *upload.Upload) string {
				return s3EventBody("ObjectCreated:Put", unitBucket, upload.PartsPrefix(u.AtomID, u.ID)+"01")
			},
			wantLog: "ignored a key outside the upload layout",
		},
		{
			name:    "undecodable key",
			body:    func(u *upload.Upload) string { return s3EventBody("ObjectCreated:Put", unitBucket, u.PartKey(0)+"%zz") },
			wantLog: "ignored an event with an undecodable key",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newUnitEnv(t)
			u := e.create(threeParts, ytDest(), s3BucketDest())
			file := unitFile(t, 5*upload.MiB)
			if tt.setup != nil {
				tt.setup(e, u)
			} else {
				e.putPart(u, file, 0)
			}
			if tt.wantStatus == "" {
				tt.wantStatus = upload.StatusUploading
			}
			if res := e.handle(tt.body(u)); res != (worker.Result{}) {
				t.Fatalf("Handle = %+v, want the message deleted", res)
			}
			if n := e.logged(tt.wantLog); n != 1 {
				t.Errorf("%d lines %q, want 1", n, tt.wantLog)
			}
			got := e.get(u)
			if len(got.Completed) != 0 || got.Status != tt.wantStatus {
				t.Errorf("completed %v, status %s; want no part recorded and status %s", got.CompletedParts(), got.Status, tt.wantStatus)
			}
			if n := e.yt.count("StartSession") + e.yt.count("PutChunk"); n != 0 {
				t.Errorf("%d YouTube calls, want none", n)
			}
			if n := len(e.queue.sent()); n != 0 {
				t.Errorf("%d messages sent, want none", n)
			}
		})
	}
}

func TestUnitPartDuplicateEventIsIdempotent(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts, ytDest())
	file := unitFile(t, u.Size)
	e.arrive(u, file, 0)
	first := e.get(u)
	e.arrive(u, file, 0)
	got := e.get(u)
	if len(got.Completed) != 1 || got.Version != first.Version {
		t.Errorf("completed %v, version %d → %d; want part 0 once and no new state", got.CompletedParts(), first.Version, got.Version)
	}
	if n := e.logged("part complete"); n != 1 {
		t.Errorf("%d part-complete lines, want 1", n)
	}
	ss := e.yt.allSessions()
	if len(ss) != 1 || ss[0].Committed != 5*upload.MiB || len(ss[0].Chunks) != 3 {
		t.Errorf("sessions %+v; want one with part 0 sent once, in 3 chunks", ss)
	}

	// The whole file, then its last part's event again: nothing is sent or
	// copied twice.
	e.arrive(u, file, 1)
	e.arrive(u, file, 2)
	e.arrive(u, file, 2)
	e.checkVideo(file)
	if n := e.s3.count("CreateMultipartUpload"); n != 1 {
		t.Errorf("%d multipart copies, want 1", n)
	}
	if n := len(e.atom.assetsOf(u.AtomID)); n != 1 || e.atom.count("AddAsset") != 1 {
		t.Errorf("%d assets in %d calls, want 1 in 1", n, e.atom.count("AddAsset"))
	}
	if n := e.yt.count("StartSession"); n != 1 {
		t.Errorf("%d sessions started, want 1", n)
	}
}

// TestUnitPartFailuresAreRetried: a part step that fails is retried on a
// message of its own (the part's own task), which completes it.
func TestUnitPartFailuresAreRetried(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		inject    func(e *unitEnv)
		wantCause string
	}{
		{
			name:      "HeadObject fails",
			inject:    func(e *unitEnv) { e.s3.failNext("HeadObject", apiError("SlowDown")) },
			wantCause: "S3 refused: SlowDown",
		},
		{
			name:      "CompletePart fails",
			inject:    func(e *unitEnv) { e.store.failNext("CompletePart", storeBusy()) },
			wantCause: "the progress table is busy; try again",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newUnitEnv(t)
			u := e.create(threeParts, ytDest())
			file := unitFile(t, u.Size)
			e.putPart(u, file, 0)
			tt.inject(e)
			if res := e.handle(partBody(u, 0)); res != (worker.Result{}) {
				t.Fatalf("Handle = %+v, want the event deleted: its work goes on on a message of its own", res)
			}
			if got := e.get(u); len(got.Completed) != 0 || got.Status != upload.StatusUploading {
				t.Errorf("completed %v, status %s after a failed try; want nothing recorded", got.CompletedParts(), got.Status)
			}
			sent := e.queue.sent()
			if len(sent) != 1 {
				t.Fatalf("messages %+v, want one retry", sent)
			}
			e.checkRetry(sent[0], worker.KindPart, 1, tt.wantCause)
			if sent[0].Part != 0 {
				t.Errorf("retry of part %d, want part 0", sent[0].Part)
			}
			if n := e.store.touches(u.AtomID, u.ID); n != 1 {
				t.Errorf("%d touches, want 1: the upload has a driver until the retry is due", n)
			}
			// The retry succeeds.
			e.mustHandle(sent[0].Body)
			if got := e.get(u); !got.Completed[0] || got.Destination(upload.YouTube).UploadedBytes != 5*upload.MiB {
				t.Errorf("after the retry: completed %v, %d bytes relayed; want part 0 complete and relayed",
					got.CompletedParts(), got.Destination(upload.YouTube).UploadedBytes)
			}
		})
	}
	t.Run("Get fails", func(t *testing.T) {
		t.Parallel()
		e := newUnitEnv(t)
		u := e.create(threeParts, ytDest())
		file := unitFile(t, u.Size)
		e.putPart(u, file, 0)
		e.store.failNext("Get", dynamoError("RequestLimitExceeded"))
		// Without the record the step cannot run: a failed attempt like
		// any other, retried on a part message of its own after a pause.
		if res := e.handle(partBody(u, 0)); res != (worker.Result{}) {
			t.Fatalf("Handle = %+v, want the event replaced by its retry", res)
		}
		sent := e.queue.ofKind(worker.KindPart)
		if len(sent) != 1 || sent[0].Part != 0 || sent[0].Failures != 1 || sent[0].Delay <= 0 {
			t.Fatalf("part messages %+v, want one of part 0 with failures 1, later", sent)
		}
		e.mustHandle(sent[0].Body)
		if got := e.get(u); !got.Completed[0] || got.Destination(upload.YouTube).UploadedBytes != 5*upload.MiB {
			t.Errorf("after the retry: completed %v, %d bytes relayed; want part 0 complete and relayed",
				got.CompletedParts(), got.Destination(upload.YouTube).UploadedBytes)
		}
	})
}

func TestUnitPartOfAnS3BucketOnlyUploadIsNotRelayed(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(5*upload.MiB + 1)
	file := unitFile(t, u.Size)
	e.arrive(u, file, 1)
	e.arrive(u, file, 0)
	if n := e.yt.count("StartSession"); n != 0 {
		t.Errorf("%d YouTube sessions, want none without a youtube destination", n)
	}
	if full, _ := e.s3.object(unitBucket, u.FullKey()); !bytes.Equal(full, file) {
		t.Errorf("full object of %d bytes, want the file's %d", len(full), len(file))
	}
	if got := e.get(u); !got.Assembled || got.Status != upload.StatusProcessing {
		t.Errorf("assembled %t, status %s; want assembled and processing", got.Assembled, got.Status)
	}
}
