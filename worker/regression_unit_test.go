package worker_test

// Regression tests from the correctness review: each one failed on the code
// as reviewed and describes the behaviour that fixed it. Run them with
//
//	go test -race -short -run TestRegression ./worker/

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"atomuploads/transcode"
	"atomuploads/upload"
	"atomuploads/worker"
	"atomuploads/youtube"
)

// relayHops is the relay messages sent so far that are hops of parked
// work (a delay of more than the lease's, which a lease-held bounce has).
func (e *unitEnv) relayHops() []sentMessage {
	var out []sentMessage
	for _, m := range e.queue.ofKind(worker.KindRelay) {
		if m.Delay > e.cfg.LeaseTTL+time.Second {
			out = append(out, m)
		}
	}
	return out
}

// TestRegressionParkedRelayHasOneHopChain: while the relay is parked
// (quota), the parts that arrive do not start hop chains of their own:
// only a message flagged as a hop sends the next hop, so an upload parked
// while the browser still sends N parts drives one chain, not N+1.
func TestRegressionParkedRelayHasOneHopChain(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(fourParts, ytDest())
	file := unitFile(t, u.Size)
	e.yt.failAlways("StartSession", quotaError())
	e.arrive(u, file, 0) // parks, and hops once
	if d := e.get(u).Destination(upload.YouTube); d.WaitingFor != upload.WaitYouTubeQuota {
		t.Fatalf("waiting for %q, want the quota", d.WaitingFor)
	}
	chains := len(e.relayHops())
	if chains != 1 {
		t.Fatalf("%d hops after the park, want 1", chains)
	}
	for n := 1; n < u.PartCount(); n++ {
		e.arrive(u, file, n)
	}
	// Each hop message, when it comes, hops again: every one is a chain.
	if got := len(e.relayHops()); got != 1 {
		t.Errorf("%d hop chains of one parked upload after %d more parts, want 1: each part event started a chain of its own", got, u.PartCount()-1)
	}
}

// TestRegressionRerunOfAParkedRelayWaits: a relay flagged while its turn
// parks (a part came in meanwhile) runs its next turn only to find the
// park: YouTube is not called again before resumeAt, and no second hop
// chain starts.
func TestRegressionRerunOfAParkedRelayWaits(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts, ytDest())
	file := unitFile(t, u.Size)
	e.putPart(u, file, 0)
	e.putPart(u, file, 1)
	if _, err := e.store.CompletePart(context.Background(), u.AtomID, u.ID, 1); err != nil {
		t.Fatal(err)
	}
	e.yt.failAlways("StartSession", quotaError())
	e.yt.onCall("StartSession", func(n int) {
		if n == 1 {
			// Another message of the same upload, in the same process,
			// while the turn is calling YouTube: it flags the holder.
			e.mustHandle(ownBody(worker.KindRelay, u, 0))
		}
	})
	e.mustHandle(partBody(u, 0))
	if d := e.get(u).Destination(upload.YouTube); d.WaitingFor != upload.WaitYouTubeQuota {
		t.Fatalf("waiting for %q, want the quota", d.WaitingFor)
	}
	if n := e.yt.count("StartSession"); n != 1 {
		t.Errorf("%d StartSession calls, want 1: the flagged re-run called YouTube although the upload is parked until tomorrow", n)
	}
	if n := len(e.relayHops()); n != 1 {
		t.Errorf("%d hop chains, want 1", n)
	}
}

// TestRegressionParkedProcessingPollWaits: a processing poll refused for
// quota parks the destination until resumeAt in the record, like the
// relay: the hops until then do not call YouTube.
func TestRegressionParkedProcessingPollWaits(t *testing.T) {
	t.Parallel()
	var c clock
	// 10:00 Pacific: the quota resets in 14 hours.
	pacific, _ := time.LoadLocation("America/Los_Angeles")
	now := time.Now().In(pacific)
	ten := time.Date(now.Year(), now.Month(), now.Day(), 10, 0, 0, 0, pacific)
	c.advance(time.Until(ten))
	e := newUnitEnv(t, unitOpts{cfg: func(cfg *worker.Config) { cfg.Now = c.now }})
	u := e.create(threeParts, ytDest())
	e.onYouTube(u, time.Time{})
	e.yt.script(fakeProcessing{err: quotaError()})
	e.mustHandle(ownBody(worker.KindYouTubePoll, u, 0))
	polls := e.queue.ofKind(worker.KindYouTubePoll)
	if len(polls) != 1 || polls[0].Delay != 15*time.Minute {
		t.Fatalf("polls sent %+v, want one hop of 15 minutes", polls)
	}
	for range 4 { // an hour of hops
		c.advance(15 * time.Minute)
		e.mustHandle(polls[len(polls)-1].Body)
		polls = e.queue.ofKind(worker.KindYouTubePoll)
	}
	if n := e.yt.count("Processing"); n != 1 {
		t.Errorf("%d processing polls within an hour of a quota refusal 14 hours before the reset, want 1", n)
	}
}

// TestRegressionFailedSessionStartsGiveTheirSlotBack: with
// youtube.dailyUploadLimit, a session start is counted before YouTube is
// asked, and given back (store.Refund) when YouTube answers with an error:
// temporary failures of one session start do not use up the day's
// sessions.
func TestRegressionFailedSessionStartsGiveTheirSlotBack(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t, unitOpts{cfg: func(cfg *worker.Config) { cfg.Park.DailyUploadLimit = 3 }})
	u := e.create(threeParts, ytDest())
	file := unitFile(t, u.Size)
	e.yt.failNext("StartSession", temporaryYouTubeError(), temporaryYouTubeError(), temporaryYouTubeError())
	e.arrive(u, file, 0)
	d := e.get(u).Destination(upload.YouTube)
	if len(e.yt.allSessions()) == 0 && d.WaitingFor == upload.WaitYouTubeQuota {
		t.Errorf("parked for the daily limit of 3 with no session ever started (%d StartSession calls, all failed)", e.yt.count("StartSession"))
	}
}

// TestRegressionRetriedVideoIsAddedToTheAtom: YouTube rejects a video after
// its asset was added; the retry uploads the file again as a new video and
// resets AssetAdded with the video, so the new video reaches the atom.
func TestRegressionRetriedVideoIsAddedToTheAtom(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts, ytDest())
	file := unitFile(t, u.Size)
	e.allIn(u, file)
	e.mustHandle(ownBody(worker.KindRelay, u, 0))
	first := e.get(u).Destination(upload.YouTube)
	if first.VideoID == "" || !first.AssetAdded {
		t.Fatalf("video %q, asset added %t; want both", first.VideoID, first.AssetAdded)
	}
	e.yt.script(fakeProcessing{p: upload.YouTubeProcessing{UploadStatus: "rejected", ProcessingStatus: "terminated", RejectionReason: "duplicate"}})
	e.mustHandle(ownBody(worker.KindYouTubePoll, u, 0))
	if d := e.get(u).Destination(upload.YouTube); d.Status != upload.DestFailed {
		t.Fatalf("youtube %s, want failed", d.Status)
	}
	e.store.modify(t, u.AtomID, u.ID, func(u *upload.Upload) {
		if err := u.Retry(time.Now()); err != nil {
			t.Fatal(err)
		}
	})
	e.mustHandle(ownBody(worker.KindRelay, u, 0))
	second := e.get(u).Destination(upload.YouTube)
	if second.VideoID == "" || second.VideoID == first.VideoID {
		t.Fatalf("video %q after the retry, want a new one", second.VideoID)
	}
	assets := e.atom.assetsOf(u.AtomID)
	found := false
	for _, a := range assets {
		found = found || a == second.URL()
	}
	if !found {
		t.Errorf("atom assets %q after the retry, want the new video %s among them", assets, second.URL())
	}
}

// TestRegressionGivenUpAssetErrorOutlivesProcessing: an asset call given up
// while YouTube still processes the video is recorded as the destination's
// assetError, which the end of processing does not clear: the record says
// the video is not on the atom, and the retry route can retry it.
func TestRegressionGivenUpAssetErrorOutlivesProcessing(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts, ytDest())
	e.onYouTube(u, time.Time{})
	e.store.modify(t, u.AtomID, u.ID, func(u *upload.Upload) { u.Destination(upload.YouTube).AssetAdded = false })
	e.atom.failAlways("AddAsset", errors.New("atom API down"))
	e.mustHandle(ownBody(worker.KindAsset, u, e.cfg.MaxAttempts-1)) // the last attempt
	d := e.get(u).Destination(upload.YouTube)
	if d.AssetError == "" || d.AssetAdded {
		t.Fatalf("after the asset was given up: error %q, added %t", d.AssetError, d.AssetAdded)
	}
	e.yt.script(fakeProcessing{p: upload.YouTubeProcessing{UploadStatus: "processed", ProcessingStatus: "succeeded"}})
	e.mustHandle(ownBody(worker.KindYouTubePoll, u, 0))
	got := e.get(u)
	d = got.Destination(upload.YouTube)
	if got.Status == upload.StatusComplete && d.AssetError == "" && !d.AssetAdded {
		err := cloneUpload(got).Retry(time.Now())
		t.Errorf("upload complete, youtube error %q, asset added %t (retry: %v): the failed asset call is forgotten", d.AssetError, d.AssetAdded, err)
	}
}

// zeroCommitYouTube answers every chunk with 308 and the offset it started
// at: YouTube took none of it (no error).
type zeroCommitYouTube struct {
	*fakeYouTube
	puts atomic.Int64
}

func (y *zeroCommitYouTube) PutChunk(ctx context.Context, _ string, body io.Reader, start, n, _ int64) (youtube.Progress, error) {
	y.puts.Add(1)
	if _, err := io.CopyN(io.Discard, body, n); err != nil {
		return youtube.Progress{}, err
	}
	return youtube.Progress{Committed: start}, ctx.Err()
}

// TestRegressionRelayWithNothingCommittedIsAFailedStep: a 308 that commits
// none of the chunk is a failed step (counted, paused, given up in the
// end), not a success that sends the same chunk again at once for ever.
func TestRegressionRelayWithNothingCommittedIsAFailedStep(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	yt := &zeroCommitYouTube{fakeYouTube: e.yt}
	d := worker.New(e.cfg, worker.Deps{Store: e.store, Queue: e.queue, S3: e.s3, YouTube: yt, Log: e.log})
	u := e.create(threeParts, ytDest())
	e.allIn(u, unitFile(t, u.Size))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	d.Handle(ctx, worker.Message{ID: "m-spin", Body: ownBody(worker.KindRelay, u, 0), ReceiveCount: 1})
	if n := yt.puts.Load(); n > 10 {
		t.Errorf("%d PUTs of the same chunk in 2 s, none committed: the relay spins", n)
	}
}

// TestRegressionReadBackFailureOnlyReadsAgain: the multipart copy is
// completed, then the read-back of the original (sha256 given) fails once.
// The completed copy's ETag is recorded before the read-back, so the retry
// only reads the original again: one multipart upload, one copy a part.
func TestRegressionReadBackFailureOnlyReadsAgain(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := newUnitUpload(t, threeParts, s3BucketDest())
	file := unitFile(t, u.Size)
	u.SHA256 = sha256Hex(file)
	e.store.create(t, u)
	e.allIn(u, file)
	e.s3.failNext("GetObject", errors.New("connection reset while reading the original back"))
	e.mustHandle(ownBody(worker.KindReassemble, u, 0))
	if e.get(u).Assembled {
		t.Fatal("assembled despite the failed read-back")
	}
	e.mustHandle(ownBody(worker.KindReassemble, u, 0))
	if !e.get(u).Assembled {
		t.Fatal("not assembled on the retry")
	}
	if n, c := e.s3.count("CreateMultipartUpload"), e.s3.count("UploadPartCopy"); n != 1 || c != u.PartCount() {
		t.Errorf("%d multipart uploads and %d part copies for %d parts, want 1 and %d: a failed read-back redoes the copy", n, c, u.PartCount(), u.PartCount())
	}
}

// TestRegressionTransientTableFailureIsRetried: when the record cannot be
// read before a step, the attempt is retried on a message of its own after
// the retry policy's pause, like any failed attempt; a DynamoDB blip on the
// last SQS receive of an event does not fail the upload.
func TestRegressionTransientTableFailureIsRetried(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts, ytDest())
	file := unitFile(t, u.Size)
	e.arrive(u, file, 0) // part 0 is complete; its event is delivered again
	e.store.failNext("Get", storeBusy())
	res := e.handleOn(e.d, partBody(u, 0), e.cfg.MaxReceiveCount)
	got := e.get(u)
	if got.Status == upload.StatusFailed {
		t.Errorf("upload failed (%q) after one failed read of the record, on the 5th receive of an event of a part that is complete (result %v)", got.Error, res.Err)
	}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TestRegressionDeadLetterDoesNotUndoARetry: work is given up, and a person
// presses Retry before the dead-letter reader's next round. The reader
// leaves the retried destination alone: it drops letters SQS took before
// the upload's retriedAt (and letters of work done or progressed since,
// and the service's own gaveUp letters, which are recorded already).
func TestRegressionDeadLetterDoesNotUndoARetry(t *testing.T) {
	t.Parallel()
	e := newSweepEnv(t)
	u := e.create(true, ytDest(), s3BucketDest())
	const reason = "gave up after 20 attempts without progress: YouTube answered backendError"
	e.store.modify(t, u.AtomID, u.ID, func(u *upload.Upload) {
		d := u.Destination(upload.YouTube)
		d.Status, d.Session, d.UploadedBytes = upload.DestUpload, "session-1", 5*upload.MiB
		d.Fail(reason)
	})
	// giveUp's dead letter.
	e.dlq.enqueue(ownTask{kind: worker.KindRelay, failures: 20, cause: "YouTube answered backendError"}.body(u))
	// The person's retry (api/retry.go) comes first.
	e.store.modify(t, u.AtomID, u.ID, func(u *upload.Upload) {
		if err := u.Retry(time.Now()); err != nil {
			t.Fatal(err)
		}
	})
	e.start()
	waitUntil(t, "the dead letter's handling", func() bool {
		_, _, _, depth := e.dlq.snapshot()
		return depth == 0 && e.dlq.count("ReceiveMessage") >= 3
	})
	if d := e.store.record(t, u.AtomID, u.ID).Destination(upload.YouTube); d.Status == upload.DestFailed {
		t.Errorf("youtube destination failed again (%q) by the dead letter of the attempt before the retry", d.Error)
	}
}

// TestRegressionRetriedTranscodeIsRecorded: a transcode failed and Retry
// resets the s3Bucket destination, keeping its Attempt; the next transcode
// starts at Attempt+1, with a new token, and is recorded and polled.
func TestRegressionRetriedTranscodeIsRecorded(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts, s3BucketDest())
	e.assembled(u)
	e.mustHandle(fullBody(u)) // job-1, attempt 1
	e.tc.script(fakeJob{job: transcodeFailed()})
	e.mustHandle(ownBody(worker.KindTranscodePoll, u, 0))
	if d := e.get(u).Destination(upload.S3Bucket); d.Status != upload.DestFailed {
		t.Fatalf("s3Bucket %s, want failed", d.Status)
	}
	e.store.modify(t, u.AtomID, u.ID, func(u *upload.Upload) {
		if err := u.Retry(time.Now()); err != nil {
			t.Fatal(err)
		}
	})
	for range 3 { // the API's Drive, then the reconciler's re-drives
		e.mustHandle(ownBody(worker.KindFull, u, 0))
	}
	d := e.get(u).Destination(upload.S3Bucket)
	if d.Status != upload.DestTranscoding || d.JobID == "" {
		t.Errorf("after the retry: s3Bucket %s, job %q, attempt %d, %d Start calls; want a new job recorded and transcoding",
			d.Status, d.JobID, d.Attempt, e.tc.count("Start"))
	}
}

func transcodeFailed() transcode.Job {
	return transcode.Job{State: transcode.StateError, Error: "the input has no video stream"}
}

// TestRegressionPanicInARelayTurnReleasesTheUpload: a panic in a relay turn
// is recovered and retried like any failure, and the in-process lock and
// the lease are let go on the way out: later relays of the upload in this
// process run.
func TestRegressionPanicInARelayTurnReleasesTheUpload(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts, ytDest())
	file := unitFile(t, u.Size)
	e.yt.onCall("StartSession", func(n int) {
		if n == 1 {
			panic("a bug in the turn")
		}
	})
	e.putPart(u, file, 0)
	e.handle(partBody(u, 0)) // the relay (a then-step) panics; recovered
	e.mustHandle(ownBody(worker.KindRelay, u, 1))
	if n := e.yt.count("StartSession"); n < 2 {
		t.Errorf("%d StartSession calls, want the relay tried again after the panic: the in-process lock stayed held", n)
	}
	if got := e.get(u).Destination(upload.YouTube).UploadedBytes; got == 0 {
		t.Errorf("nothing relayed after the panic (%d bytes)", got)
	}
}

// TestRegressionAssetFailuresAreCountedDespitePolls: the progress of asset
// work is the addition itself (markOf(KindAsset)), not the destination's
// advances that processing polls make: an asset call that fails every
// time is given up after its attempts, however long YouTube processes.
func TestRegressionAssetFailuresAreCountedDespitePolls(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts, ytDest())
	e.onYouTube(u, time.Time{})
	e.store.modify(t, u.AtomID, u.ID, func(u *upload.Upload) { u.Destination(upload.YouTube).AssetAdded = false })
	e.atom.failAlways("AddAsset", errors.New("atom API answers 400 to this video"))
	mark := e.get(u).Destination(upload.YouTube).Advances
	e.mustHandle(ownBody(worker.KindYouTubePoll, u, 0)) // YouTube still processing
	e.mustHandle(ownTask{kind: worker.KindAsset, failures: e.cfg.MaxAttempts - 1, mark: &mark, cause: "the atom API answered 400"}.body(u))
	retries := e.queue.ofKind(worker.KindAsset)
	if len(retries) > 0 && retries[len(retries)-1].Failures == 0 {
		t.Errorf("asset work that failed %d times in a row and once more is retried with failures 0 (a poll's advance counted as its progress)", e.cfg.MaxAttempts)
	}
}

// TestRegressionHopRoundsUp: hop delays are whole seconds rounded up, so
// the last hop before resumeAt lands after it, never a second early with
// a delay of 0 that comes back at once and spins.
func TestRegressionHopRoundsUp(t *testing.T) {
	t.Parallel()
	var c clock
	e := newUnitEnv(t, unitOpts{cfg: func(cfg *worker.Config) { cfg.Now = c.now }})
	u := e.create(threeParts, ytDest())
	e.store.modify(t, u.AtomID, u.ID, func(u *upload.Upload) {
		u.Destination(upload.YouTube).Park(upload.WaitYouTubeQuota, c.now().Add(900*time.Millisecond), c.now())
	})
	body := ownTask{kind: worker.KindRelay, hop: true}.body(u)
	for range 5 { // no time passes between deliveries: SQS delivers a 0-delay message at once
		e.mustHandle(body)
		hops := e.queue.ofKind(worker.KindRelay)
		body = hops[len(hops)-1].Body
	}
	hops := e.queue.ofKind(worker.KindRelay)
	if zero := hops[len(hops)-1].Delay; zero == 0 && len(hops) == 5 {
		t.Errorf("%d hops with delay 0 while parked for another %s: the chain spins until resumeAt", len(hops), c.until(e.get(u).Destination(upload.YouTube).ResumeAt).Round(time.Millisecond))
	}
}

// TestRegressionReassembledOriginalThatChangesFailsTheUpload: the original
// S3 completed is not the one read back (its ETag no longer matches):
// something else writes the service's key. The upload fails readably
// instead of copying again for ever, each copy's checkpoints counting as
// progress.
func TestRegressionReassembledOriginalThatChangesFailsTheUpload(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := newUnitUpload(t, threeParts, s3BucketDest())
	file := unitFile(t, u.Size)
	u.SHA256 = sha256Hex(file)
	e.store.create(t, u)
	e.allIn(u, file)
	e.s3.failAlways("GetObject", preconditionFailed("GetObject"))
	e.mustHandle(ownBody(worker.KindReassemble, u, 0))
	got := e.get(u)
	if got.Status != upload.StatusFailed || !strings.Contains(got.Error, "replaced or deleted before it was proven") {
		t.Errorf("upload %s (%q), want failed, saying the original changed", got.Status, got.Error)
	}
	if n := e.s3.count("CreateMultipartUpload"); n != 1 {
		t.Errorf("%d multipart uploads, want 1", n)
	}
}
