package worker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"atomuploads/upload"
	"atomuploads/worker"
)

// fourParts is a file of four parts, the last one short.
const fourParts = 3*5*upload.MiB + 12345

// markIn puts parts in S3 and records them complete, without the worker.
func (e *unitEnv) markIn(u *upload.Upload, file []byte, parts ...int) {
	e.t.Helper()
	for _, n := range parts {
		e.putPart(u, file, n)
		if _, err := e.store.CompletePart(context.Background(), u.AtomID, u.ID, n); err != nil {
			e.t.Fatal(err)
		}
	}
}

// ytCalls records the order of the YouTube calls made from now on.
func (e *unitEnv) ytCalls() func() []string {
	var mu sync.Mutex
	var calls []string
	for _, op := range []string{"StartSession", "PutChunk", "Offset"} {
		e.yt.onCall(op, func(int) {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, op)
		})
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), calls...)
	}
}

func TestUnitRelayPartsOutOfOrderReachYouTubeInOrderOnce(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(fourParts, ytDest())
	file := unitFile(t, u.Size)
	for _, n := range []int{3, 1, 2} {
		e.arrive(u, file, n)
		if ss := e.yt.allSessions(); len(ss) != 1 || ss[0].Committed != 0 {
			t.Fatalf("after part %d: sessions %+v, want one with nothing committed (part 0 is missing)", n, ss)
		}
	}
	e.arrive(u, file, 0)
	s := e.checkVideo(file)
	if len(s.Chunks) != 8 { // 15 MiB in 2 MiB chunks, then the 12345 bytes
		t.Errorf("%d chunks, want 8 of at most %d bytes", len(s.Chunks), e.cfg.MaxChunkBytes)
	}
	if n := e.yt.count("Offset"); n != 0 {
		t.Errorf("%d offset queries, want none: every turn released its lease cleanly", n)
	}
	if n := e.yt.count("StartSession"); n != 1 {
		t.Errorf("%d sessions started, want 1", n)
	}
	e.checkS3Clean()
}

// TestUnitRelayConcurrentInstancesDeliverEveryByteOnce: the events of every
// part, twice and shuffled, handled at once by two instances of the
// service: one session, every byte once and in order, one reassembly.
func TestUnitRelayConcurrentInstancesDeliverEveryByteOnce(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(5*5*upload.MiB+777, ytDest(), s3BucketDest())
	file := unitFile(t, u.Size)
	instances := []*worker.Dispatcher{e.d, e.instance("unit-b")}
	var events []int
	for n := range u.PartCount() {
		e.putPart(u, file, n)
		events = append(events, n, n)
	}
	rand.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
	var wg sync.WaitGroup
	errs := make(chan error, len(events))
	for i, n := range events {
		wg.Go(func() {
			if res := e.handleOn(instances[i%2], partBody(u, n), 1); res.Err != nil {
				errs <- res.Err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Handle: %v", err)
	}
	e.checkVideo(file)
	if n := e.yt.count("StartSession"); n != 1 {
		t.Errorf("%d sessions started, want 1", n)
	}
	if full, _ := e.s3.object(unitBucket, u.FullKey()); !bytes.Equal(full, file) || e.s3.count("CreateMultipartUpload") != 1 {
		t.Errorf("full object equal %t after %d multipart copies; want the file, once", bytes.Equal(full, file), e.s3.count("CreateMultipartUpload"))
	}
	if n := e.atom.count("AddAsset"); n != 1 {
		t.Errorf("%d asset calls, want 1", n)
	}
	e.checkS3Clean()
}

// TestUnitRelayLeaseHeldElsewhere: only a part's first S3 event may drop
// the relay when another instance holds the lease (the holder sees the
// part); the service's own messages may be the only driver left (the
// holder may have died holding it), so they come back once the lease has
// expired; and an event that comes again is first re-homed.
func TestUnitRelayLeaseHeldElsewhere(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		body         func(u *upload.Upload) string
		receiveCount int
		// wantRelay is the failures of the relay message sent for later;
		// -1 for none.
		wantRelay int
		wantPart  bool // the part is recorded complete
		wantMsgs  int
	}{
		{
			name: "a part's first event is dropped: the holder sees the part",
			body: func(u *upload.Upload) string { return partBody(u, 1) }, receiveCount: 1,
			wantRelay: -1, wantPart: true,
		},
		{
			name: "an own relay message comes back once the lease has expired",
			body: func(u *upload.Upload) string { return ownBody(worker.KindRelay, u, 2) }, receiveCount: 1,
			wantRelay: 2, wantMsgs: 1,
		},
		{
			name: "the part's own message comes back too",
			body: func(u *upload.Upload) string { return partTaskBody(u, 1, 0) }, receiveCount: 1,
			wantRelay: 0, wantPart: true, wantMsgs: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newUnitEnv(t)
			u := e.create(threeParts, ytDest())
			file := unitFile(t, u.Size)
			e.markIn(u, file, 0)
			e.putPart(u, file, 1)
			e.store.setLease(t, u.AtomID, u.ID, upload.LeaseYouTube, "unit-z#9", e.store.clock.Now().Add(e.cfg.LeaseTTL))
			if res := e.handleOn(e.d, tt.body(u), tt.receiveCount); res != (worker.Result{}) {
				t.Fatalf("Handle = %+v, want the message deleted", res)
			}
			if n := e.yt.count("StartSession") + e.yt.count("PutChunk") + e.yt.count("Offset"); n != 0 {
				t.Errorf("%d YouTube calls while another instance holds the lease, want none", n)
			}
			if l, _ := e.store.lease(u.AtomID, u.ID, upload.LeaseYouTube); l.Owner != "unit-z#9" {
				t.Errorf("lease owner %q, want the holder's", l.Owner)
			}
			if got := e.get(u).Completed[1]; got != tt.wantPart {
				t.Errorf("part 1 complete: %t, want %t", got, tt.wantPart)
			}
			if n := len(e.queue.sent()); n != tt.wantMsgs {
				t.Errorf("%d messages sent, want %d", n, tt.wantMsgs)
			}
			relays := e.queue.ofKind(worker.KindRelay)
			if tt.wantRelay < 0 {
				if len(relays) != 0 {
					t.Errorf("relay messages %+v, want none", relays)
				}
				return
			}
			if len(relays) != 1 || relays[0].Delay != e.cfg.LeaseTTL+time.Second || relays[0].Failures != tt.wantRelay || relays[0].QueueURL != unitQueueURL {
				t.Errorf("relay messages %+v, want one after the lease TTL + 1s, failures kept at %d", relays, tt.wantRelay)
			}
			if n := e.store.touches(u.AtomID, u.ID); n != 0 {
				t.Errorf("%d touches, want none: waiting for a lease is not a failure", n)
			}
		})
	}
	t.Run("an event that comes again is re-homed, not worked on", func(t *testing.T) {
		t.Parallel()
		e := newUnitEnv(t)
		u := e.create(threeParts, ytDest())
		file := unitFile(t, u.Size)
		e.putPart(u, file, 1)
		if res := e.handleOn(e.d, partBody(u, 1), 2); res != (worker.Result{}) {
			t.Fatalf("Handle = %+v, want the message deleted", res)
		}
		if n := e.s3.count("HeadObject") + e.store.count("CompletePart") + e.store.count("Acquire"); n != 0 {
			t.Errorf("%d calls of the part's work, want none", n)
		}
		sent := e.queue.sent()
		if len(sent) != 1 || sent[0].Kind != worker.KindPart || sent[0].Part != 1 || sent[0].Failures != 1 || sent[0].Delay != 0 {
			t.Errorf("messages %+v, want the part's own message, failures 1, at once", sent)
		}
		if n := e.logged("continuing on a fresh message"); n != 1 {
			t.Errorf("%d re-home lines, want 1", n)
		}
	})
}

func TestUnitRelayTemporaryErrorIsRetriedWithinTheTurn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		inject func(e *unitEnv)
	}{
		{name: "YouTube answers 503", inject: func(e *unitEnv) { e.yt.failNext("PutChunk", temporaryYouTubeError()) }},
		{name: "the answer of a committed chunk is lost", inject: func(e *unitEnv) {
			var once sync.Once
			e.yt.afterCommit = func(context.Context, int64, int64) error {
				var err error
				once.Do(func() { err = temporaryYouTubeError() })
				return err
			}
		}},
		{name: "reading the part from S3 fails", inject: func(e *unitEnv) {
			e.s3.failNext("GetObject", errors.New("InternalError: we encountered an internal error"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newUnitEnv(t)
			u := e.create(5*upload.MiB+1, ytDest())
			file := unitFile(t, u.Size)
			e.markIn(u, file, 0, 1)
			tt.inject(e)
			e.mustHandle(ownBody(worker.KindRelay, u, 0))
			e.checkVideo(file)
			if n := e.yt.count("Offset"); n < 1 {
				t.Errorf("%d offset queries, want YouTube asked where it stands before sending again", n)
			}
			if n := e.logged("relay step failed; retrying"); n != 1 {
				t.Errorf("%d retry lines, want 1", n)
			}
			if m := e.queue.ofKind(worker.KindRelay); len(m) != 0 {
				t.Errorf("relay messages %+v, want none: the turn recovered", m)
			}
			e.checkS3Clean()
		})
	}
}

// TestUnitRelayThatKeepsFailingIsTriedAgainLater: a turn whose YouTube
// calls keep failing gives up after its own retries, abandons the lease
// and is retried later on a message of its own; an attempt that made
// progress (it started the session) does not count, one that made none
// does; the retry that finds YouTube back takes over and asks it first.
func TestUnitRelayThatKeepsFailingIsTriedAgainLater(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts, ytDest(), s3BucketDest())
	file := unitFile(t, u.Size)
	e.markIn(u, file, 0)
	e.yt.failAlways("PutChunk", temporaryYouTubeError())
	e.yt.failAlways("Offset", temporaryYouTubeError())
	if res := e.handle(ownBody(worker.KindRelay, u, 1)); res != (worker.Result{}) {
		t.Fatalf("Handle = %+v, want the message deleted (a later relay message follows)", res)
	}
	// Six tries in the turn: the chunk, then five offset queries.
	if put, off := e.yt.count("PutChunk"), e.yt.count("Offset"); put != 1 || off != 5 {
		t.Errorf("%d chunk PUTs and %d offset queries, want 1 and 5", put, off)
	}
	relays := e.queue.ofKind(worker.KindRelay)
	if len(relays) != 1 {
		t.Fatalf("relay messages %+v, want one", relays)
	}
	// The session started: progress, so the failures start again at 0.
	e.checkRetry(relays[0], worker.KindRelay, 0, "YouTube answered backendError")
	if d := e.get(u).Destination(upload.YouTube); d.Status.Terminal() || relays[0].Mark != d.Advances || d.Advances == 0 {
		t.Errorf("youtube destination %s (%s), %d advances, retry marked %d; want running, marked with its progress", d.Status, d.Error, d.Advances, relays[0].Mark)
	}
	l, ok := e.store.lease(u.AtomID, u.ID, upload.LeaseYouTube)
	if !ok || l.Expiry != 0 {
		t.Errorf("lease %+v (present %t), want abandoned: free, but the next holder takes over", l, ok)
	}
	if n := e.store.touches(u.AtomID, u.ID); n != 1 {
		t.Errorf("%d touches, want 1", n)
	}

	// Still failing: the retry takes over, asks YouTube (six times), makes
	// no progress, and counts one failure.
	e.mustHandle(relays[0].Body)
	if put, off := e.yt.count("PutChunk"), e.yt.count("Offset"); put != 1 || off != 11 {
		t.Errorf("%d chunk PUTs and %d offset queries, want 1 and 11", put, off)
	}
	relays = e.queue.ofKind(worker.KindRelay)
	if len(relays) != 2 {
		t.Fatalf("relay messages %+v, want a second one", relays)
	}
	e.checkRetry(relays[1], worker.KindRelay, 1, "YouTube answered backendError")

	// YouTube recovers; the later message's turn takes over and asks first.
	e.yt.failAlways("PutChunk", nil)
	e.yt.failAlways("Offset", nil)
	calls := e.ytCalls()
	e.mustHandle(relays[1].Body)
	if c := calls(); len(c) == 0 || c[0] != "Offset" {
		t.Errorf("YouTube calls %q, want the offset query first", c)
	}
	if got := e.get(u).Destination(upload.YouTube).UploadedBytes; got != 5*upload.MiB {
		t.Errorf("%d bytes relayed, want part 0's %d", got, 5*upload.MiB)
	}
	checkChunks(t, e.yt.allSessions()[0])
}

// TestUnitRelayChunksFailingWhileTheOffsetAnswersDoNotSpin: YouTube
// answers the offset query but refuses every chunk. An answered query is
// not a step forward, so the turn's retries run out as for any failure
// (it used to start them again at every answer and never end).
func TestUnitRelayChunksFailingWhileTheOffsetAnswersDoNotSpin(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts, ytDest())
	e.markIn(u, unitFile(t, u.Size), 0)
	e.yt.failAlways("PutChunk", temporaryYouTubeError())
	if res := e.handle(ownBody(worker.KindRelay, u, 0)); res != (worker.Result{}) {
		t.Fatalf("Handle = %+v, want the message deleted (a later relay message follows)", res)
	}
	if put, off := e.yt.count("PutChunk"), e.yt.count("Offset"); put != 6 || off != 5 {
		t.Errorf("%d chunk PUTs and %d offset queries, want 6 and 5: six tries, each chunk after an answered query", put, off)
	}
	relays := e.queue.ofKind(worker.KindRelay)
	if len(relays) != 1 {
		t.Fatalf("relay messages %+v, want one", relays)
	}
	e.checkRetry(relays[0], worker.KindRelay, 0, "YouTube answered backendError") // the session started

	// The next attempt starts no session: no progress, one failure.
	e.mustHandle(relays[0].Body)
	if put := e.yt.count("PutChunk"); put != 12 {
		t.Errorf("%d chunk PUTs, want 12", put)
	}
	relays = e.queue.ofKind(worker.KindRelay)
	if len(relays) != 2 {
		t.Fatalf("relay messages %+v, want a second one", relays)
	}
	e.checkRetry(relays[1], worker.KindRelay, 1, "YouTube answered backendError")
}

// TestUnitRelayGivesUpAfterMaxAttempts: the attempt that makes
// MaxAttempts in a row without progress gives the work up: the YouTube
// destination fails with the reason in words; the rest of the upload goes
// on.
func TestUnitRelayGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts, ytDest(), s3BucketDest())
	e.markIn(u, unitFile(t, u.Size), 0)
	e.yt.failAlways("StartSession", temporaryYouTubeError())
	e.mustHandle(ownBody(worker.KindRelay, u, e.cfg.MaxAttempts-1))
	got := e.get(u)
	d := got.Destination(upload.YouTube)
	want := "gave up after 3 attempts without progress: YouTube answered backendError"
	if d.Status != upload.DestFailed || d.Error != want {
		t.Errorf("youtube destination %s, error %q; want failed, %q", d.Status, d.Error, want)
	}
	if s := got.Destination(upload.S3Bucket); s.Status != upload.DestWaiting || got.Status.Terminal() {
		t.Errorf("s3Bucket destination %s, upload %s; want waiting and running", s.Status, got.Status)
	}
	if m := e.queue.sent(); len(m) != 0 {
		t.Errorf("messages %+v, want none after giving up (no dead-letter queue configured)", m)
	}
	lines := e.logs.FilterMessage("gave up").All()
	if len(lines) != 1 || lines[0].ContextMap()["kind"] != "relay" || lines[0].ContextMap()["error"] != want {
		t.Errorf("gave-up lines %v, want one of the relay with the reason", lines)
	}
	if n := e.store.touches(u.AtomID, u.ID); n != 0 {
		t.Errorf("%d touches, want none: nothing drives it any more", n)
	}
}

func TestUnitRelayRefusalsFailOrParkOnlyTheYouTubeDestination(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		inject  func(e *unitEnv)
		wantErr string // "" when the destination parks for the quota
	}{
		{name: "quota exceeded starting the session", inject: func(e *unitEnv) { e.yt.failNext("StartSession", quotaError()) }},
		{name: "quota exceeded sending a chunk", inject: func(e *unitEnv) { e.yt.failNext("PutChunk", quotaError()) }},
		{name: "refused starting the session", inject: func(e *unitEnv) { e.yt.failNext("StartSession", refusedError()) },
			wantErr: "YouTube refused the upload (somethingElse)"},
		{name: "refused sending a chunk", inject: func(e *unitEnv) { e.yt.failNext("PutChunk", refusedError()) },
			wantErr: "YouTube refused the upload (somethingElse)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newUnitEnv(t)
			u := e.create(threeParts, ytDest(), s3BucketDest())
			file := unitFile(t, u.Size)
			tt.inject(e)
			e.arrive(u, file, 0)
			d := e.get(u).Destination(upload.YouTube)
			switch {
			case tt.wantErr != "" && (d.Status != upload.DestFailed || d.Error != tt.wantErr):
				t.Errorf("youtube destination %s, error %q; want failed, %q", d.Status, d.Error, tt.wantErr)
			case tt.wantErr == "" && (d.Status.Terminal() || d.Error != "" || d.WaitingFor != upload.WaitYouTubeQuota || !d.ResumeAt.After(time.Now())):
				t.Errorf("youtube destination %s %q waiting for %q until %s; want it parked for the quota", d.Status, d.Error, d.WaitingFor, d.ResumeAt)
			}
			if l, held := e.store.lease(u.AtomID, u.ID, upload.LeaseYouTube); held && l.Expiry > time.Now().UnixMilli() {
				t.Error("the youtube lease is still held after the relay stopped")
			}
			calls := e.yt.count("StartSession") + e.yt.count("PutChunk")
			e.arrive(u, file, 1)
			e.arrive(u, file, 2)
			if n := e.yt.count("StartSession") + e.yt.count("PutChunk"); n != calls {
				t.Errorf("%d more YouTube calls after the refusal, want none", n-calls)
			}
			got := e.get(u)
			// The reassembly starts the transcode itself.
			if !got.Assembled || got.Status != upload.StatusProcessing || got.Destination(upload.S3Bucket).Status != upload.DestTranscoding {
				t.Errorf("assembled %t, upload %s, s3Bucket %s; want the s3Bucket path unaffected (assembled, transcoding)",
					got.Assembled, got.Status, got.Destination(upload.S3Bucket).Status)
			}
			if got.Error != "" {
				t.Errorf("upload error %q, want none while s3Bucket runs", got.Error)
			}
		})
	}
}

func TestUnitRelaySessionGoneStartsAgainFromByteZero(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts, ytDest())
	file := unitFile(t, u.Size)
	e.arrive(u, file, 0)
	e.yt.expire()
	e.arrive(u, file, 1)
	e.arrive(u, file, 2)
	ss := e.yt.allSessions()
	if len(ss) != 2 || ss[0].Committed != 5*upload.MiB || ss[1].Chunks[0].Start != 0 {
		t.Fatalf("sessions %+v, want a second one from byte 0", ss)
	}
	e.checkVideo(file)
	if n := e.logged("YouTube session gone; starting a new one from byte 0"); n != 1 {
		t.Errorf("%d session-gone lines, want 1", n)
	}
}

// TestUnitRelayTakeoverAsksYouTubeFirst: a holder died after YouTube
// committed bytes it did not record; the next holder asks YouTube for the
// committed offset before it sends, and resumes there.
func TestUnitRelayTakeoverAsksYouTubeFirst(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		dead func(e *unitEnv, u *upload.Upload)
	}{
		{name: "the holder's lease expired", dead: func(e *unitEnv, u *upload.Upload) {
			e.store.setLease(e.t, u.AtomID, u.ID, upload.LeaseYouTube, "unit-dead#3", e.store.clock.Now().Add(e.cfg.LeaseTTL))
			e.store.clock.Advance(e.cfg.LeaseTTL + time.Second)
		}},
		{name: "the holder abandoned the lease", dead: func(e *unitEnv, u *upload.Upload) {
			e.store.setLease(e.t, u.AtomID, u.ID, upload.LeaseYouTube, "unit-dead#3", time.UnixMilli(0))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newUnitEnv(t)
			u := e.create(threeParts, ytDest())
			file := unitFile(t, u.Size)
			e.arrive(u, file, 0)
			// The record lags: the dead holder never wrote its last answer.
			e.store.modify(t, u.AtomID, u.ID, func(u *upload.Upload) {
				d := u.Destination(upload.YouTube)
				d.UploadedBytes, d.Progress = 2*upload.MiB, 10
			})
			tt.dead(e, u)
			calls := e.ytCalls()
			e.arrive(u, file, 1)
			if c := calls(); len(c) < 2 || c[0] != "Offset" || c[1] != "PutChunk" {
				t.Errorf("YouTube calls %q, want the offset query before the first chunk", c)
			}
			if v := e.yt.protocolViolations(); len(v) > 0 {
				t.Errorf("violations %q: bytes sent again", v)
			}
			if got := e.get(u).Destination(upload.YouTube).UploadedBytes; got != 10*upload.MiB {
				t.Errorf("%d bytes recorded, want %d", got, 10*upload.MiB)
			}
			if n := e.logged("resuming at YouTube's committed offset"); n != 1 {
				t.Errorf("%d resume lines, want 1", n)
			}
			e.arrive(u, file, 2)
			e.checkVideo(file)
		})
	}
}

func TestUnitRelayOfAVideoOnYouTubePicksUpTheFollowUps(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		dest      func(d *upload.Destination)
		wantPolls int
		wantCalls int // AddAsset
	}{
		{name: "asset not added yet", dest: func(*upload.Destination) {}, wantPolls: 1, wantCalls: 1},
		{name: "asset added", dest: func(d *upload.Destination) { d.AssetAdded = true }, wantPolls: 1},
		{name: "processing over", dest: func(d *upload.Destination) { d.AssetAdded, d.Status = true, upload.DestComplete }},
		// A video YouTube rejected is no asset for the atom.
		{name: "failed on YouTube: no asset", dest: func(d *upload.Destination) { d.Status = upload.DestFailed }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newUnitEnv(t)
			u := e.create(threeParts, ytDest())
			e.store.modify(t, u.AtomID, u.ID, func(u *upload.Upload) {
				d := u.Destination(upload.YouTube)
				d.Status, d.VideoID, d.UploadedBytes = upload.DestTranscoding, "vidDONE", u.Size
				tt.dest(d)
			})
			e.mustHandle(ownBody(worker.KindRelay, u, 0))
			if n := e.yt.count("StartSession") + e.yt.count("PutChunk") + e.yt.count("Offset"); n != 0 {
				t.Errorf("%d upload calls for a video YouTube has, want none", n)
			}
			if polls := e.queue.ofKind(worker.KindYouTubePoll); len(polls) != tt.wantPolls {
				t.Errorf("youtubePoll messages %+v, want %d", polls, tt.wantPolls)
			}
			if n := e.atom.count("AddAsset"); n != tt.wantCalls {
				t.Errorf("%d asset calls, want %d", n, tt.wantCalls)
			}
		})
	}
}

// TestUnitRelayPartCompletedBeforeTheReleaseIsRelayed: the part the holder
// waits for completes just before it lets go of the lease (its message is
// dropped elsewhere, as the lease is held): the holder sends it.
func TestUnitRelayPartCompletedBeforeTheReleaseIsRelayed(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts, ytDest())
	file := unitFile(t, u.Size)
	e.store.onCall("ReleaseIfMissing", func(n int) {
		if n == 1 {
			e.markIn(u, file, 1)
		}
	})
	e.markIn(u, file, 0)
	e.mustHandle(ownBody(worker.KindRelay, u, 0))
	if got := e.get(u).Destination(upload.YouTube).UploadedBytes; got != 10*upload.MiB {
		t.Errorf("%d bytes relayed, want parts 0 and 1 (%d)", got, 10*upload.MiB)
	}
	if n := e.store.count("ReleaseIfMissing"); n != 2 {
		t.Errorf("%d conditional releases, want 2 (refused while part 1 was in, then done)", n)
	}
	if _, held := e.store.lease(u.AtomID, u.ID, upload.LeaseYouTube); held {
		t.Error("the lease is still held")
	}
}

// TestUnitRelayPartCompletedDuringATurnOfThisProcess: a part's relay finds
// this process's writer busy, flags it and returns; the writer runs once
// more when its turn ends.
func TestUnitRelayPartCompletedDuringATurnOfThisProcess(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts, ytDest())
	file := unitFile(t, u.Size)
	inChunk, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	e.yt.beforeCommit = func(context.Context, int64, int64) error {
		once.Do(func() {
			close(inChunk)
			<-resume
		})
		return nil
	}
	e.putPart(u, file, 0)
	done := make(chan worker.Result)
	go func() { done <- e.handleOn(e.d, partBody(u, 0), 1) }()
	<-inChunk
	e.arrive(u, file, 1) // flags the busy writer and returns
	close(resume)
	if res := <-done; res.Err != nil {
		t.Fatalf("Handle of part 0: %v", res.Err)
	}
	if got := e.get(u).Destination(upload.YouTube).UploadedBytes; got != 10*upload.MiB {
		t.Errorf("%d bytes relayed, want parts 0 and 1 (%d)", got, 10*upload.MiB)
	}
	if n := e.store.count("Acquire"); n != 2 {
		t.Errorf("%d lease acquisitions, want 2: the writer's turn and the one more it owed the flag", n)
	}
	if v := e.yt.protocolViolations(); len(v) > 0 {
		t.Errorf("violations %q", v)
	}
}

func TestUnitRelayAbortsTheSessionOfAnUploadCancelledMeanwhile(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts, ytDest())
	e.markIn(u, unitFile(t, u.Size), 0)
	e.yt.onCall("StartSession", func(int) {
		e.store.modify(t, u.AtomID, u.ID, func(u *upload.Upload) { _ = u.Cancel(time.Now()) })
	})
	e.mustHandle(ownBody(worker.KindRelay, u, 0))
	ss := e.yt.allSessions()
	if len(ss) != 1 || !ss[0].Cancelled || e.yt.count("PutChunk") != 0 {
		t.Errorf("sessions %+v, %d chunks; want the one session cancelled and nothing sent", ss, e.yt.count("PutChunk"))
	}
	if got := e.get(u); got.Status != upload.StatusCancelled || got.Destination(upload.YouTube).Session != "" {
		t.Errorf("upload %s with session %q, want cancelled without a session", got.Status, got.Destination(upload.YouTube).Session)
	}
}

func TestUnitRelayOfAFinishedUploadDoesNothing(t *testing.T) {
	t.Parallel()
	for _, status := range []upload.Status{upload.StatusCancelled, upload.StatusFailed} {
		t.Run(string(status), func(t *testing.T) {
			t.Parallel()
			e := newUnitEnv(t)
			u := e.create(threeParts, ytDest())
			e.markIn(u, unitFile(t, u.Size), 0)
			e.store.modify(t, u.AtomID, u.ID, func(u *upload.Upload) {
				if status == upload.StatusCancelled {
					_ = u.Cancel(time.Now())
				} else {
					u.Fail("broken", time.Now())
				}
			})
			e.mustHandle(ownBody(worker.KindRelay, u, 0))
			if n := e.yt.count("StartSession") + e.store.count("Acquire"); n != 0 {
				t.Errorf("%d session starts and lease acquisitions, want none", n)
			}
		})
	}
}

func TestUnitRelayWithoutYouTubeDoesNothing(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t, unitOpts{noYouTube: true})
	u := e.create(threeParts, ytDest())
	file := unitFile(t, u.Size)
	e.arrive(u, file, 0)
	if got := e.get(u); !got.Completed[0] || got.Destination(upload.YouTube).Status != upload.DestWaiting {
		t.Errorf("completed %v, youtube %s; want the part recorded and the destination waiting", got.CompletedParts(), got.Destination(upload.YouTube).Status)
	}
	if n := e.store.count("Acquire"); n != 0 {
		t.Errorf("%d lease acquisitions, want none without YouTube", n)
	}
	if !strings.Contains(e.get(u).Destination(upload.YouTube).Meta.Title, "Unit") {
		t.Error("the YouTube metadata was lost")
	}
}

func TestUnitRelayChunksStayAlignedWithAnUnalignedLimit(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t, unitOpts{cfg: func(c *worker.Config) { c.MaxChunkBytes = 3*upload.MiB + 1000 }})
	u := e.create(threeParts, ytDest())
	file := unitFile(t, u.Size)
	for n := range u.PartCount() {
		e.putPart(u, file, n)
	}
	for n := range u.PartCount() {
		e.mustHandle(partBody(u, n))
	}
	s := e.checkVideo(file)
	for i, c := range s.Chunks {
		if c.Len > e.cfg.MaxChunkBytes {
			t.Errorf("chunk %d is %d bytes, above the limit %d", i, c.Len, e.cfg.MaxChunkBytes)
		}
	}
}

// TestUnitRelayTurnLeavesItsSlot: a relay's turn, which lasts as long as
// parts keep coming, detaches from the pool's slots once it holds the
// lease, before it sends a byte; a part event of an upload without
// YouTube (short work) keeps its slot.
func TestUnitRelayTurnLeavesItsSlot(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	var (
		mu     sync.Mutex
		detach []string
	)
	handle := func(body string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res := e.d.Handle(ctx, worker.Message{ID: "m", Body: body, ReceiveCount: 1, Detach: func() bool {
			mu.Lock()
			defer mu.Unlock()
			detach = append(detach, fmt.Sprintf("detached with %d chunks sent", e.yt.count("PutChunk")))
			return true
		}})
		if res.Err != nil || res.DeadLetter {
			t.Fatalf("Handle = %+v, want success", res)
		}
	}
	bucketOnly := e.create(fourParts)
	e.putPart(bucketOnly, unitFile(t, bucketOnly.Size), 1)
	handle(partBody(bucketOnly, 1))
	mu.Lock()
	if len(detach) != 0 {
		t.Errorf("a part event of an upload to s3Bucket: %q, want no detach", detach)
	}
	mu.Unlock()

	u := e.create(fourParts, ytDest())
	file := unitFile(t, u.Size)
	e.markIn(u, file, 0, 1, 2, 3)
	handle(ownBody(worker.KindRelay, u, 0))
	e.checkVideo(file)
	mu.Lock()
	defer mu.Unlock()
	if len(detach) != 1 || detach[0] != "detached with 0 chunks sent" {
		t.Errorf("relay turn: %q, want one detach, before any chunk", detach)
	}
}
