package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"atomuploads/upload"
	"atomuploads/worker"
)

// The end of an upload's life over the fakes: the expiry of abandoned
// uploads and the clean-up of the parts of finished ones, two jobs of the
// Sweeper.

const unitAbandonAfter = time.Hour

// lifecycleEnv is a sweepEnv with the expiry (uploads abandoned after an
// hour) and the clean-up (parts deleted an hour after the end) on, and
// neither the reconciler's re-drives nor the dead-letter reader in the way.
func lifecycleEnv(t testing.TB) *sweepEnv {
	t.Helper()
	return newSweepEnv(t, func(c *worker.SweepConfig) {
		c.DeadLetterURL = ""
		c.AbandonAfter, c.DeletePartsAfter = unitAbandonAfter, time.Hour
	})
}

// lastHeardOf makes u an upload started three hours ago whose parts in
// complete completed at lastPart.
func (e *sweepEnv) lastHeardOf(u *upload.Upload, lastPart time.Time, complete ...int) {
	e.t.Helper()
	e.store.modify(e.t, u.AtomID, u.ID, func(u *upload.Upload) {
		u.CreatedAt = time.Now().Add(-3 * time.Hour).UTC()
		for _, n := range complete {
			u.Completed[n] = true
		}
		if len(complete) > 0 {
			u.LastPartAt = lastPart.UTC()
		}
		u.Settle(time.Now())
	})
}

// withSession gives u's YouTube destination a session of the fake.
func (e *sweepEnv) withSession(u *upload.Upload) string {
	e.t.Helper()
	session, err := e.yt.StartSession(context.Background(), upload.YouTubeMetadata{Title: "Unit clip"}, u.Size, "video/mp4")
	if err != nil {
		e.t.Fatal(err)
	}
	e.store.modify(e.t, u.AtomID, u.ID, func(u *upload.Upload) {
		d := u.Destination(upload.YouTube)
		d.Session, d.UploadedBytes = session, 5*upload.MiB
		_ = d.MoveTo(upload.DestUpload)
	})
	return session
}

func (e *sweepEnv) session(id string) fakeSession {
	e.t.Helper()
	for _, s := range e.yt.allSessions() {
		if s.ID == id {
			return s
		}
	}
	e.t.Fatalf("no session %s", id)
	return fakeSession{}
}

// linesAbout returns the log lines with msg about the upload.
func (e *sweepEnv) linesAbout(msg string, u *upload.Upload) []map[string]any {
	var out []map[string]any
	for _, l := range e.logged(msg) {
		if c := l.ContextMap(); c["uploadId"] == u.ID {
			out = append(out, c)
		}
	}
	return out
}

// TestUnitExpiryEndsAbandonedUploads: an upload whose last part (or, with
// none, whose start) is older than abandonAfter expires: its unfinished
// destinations fail with the reason, its YouTube session is cancelled, and
// it says so once. It goes by the record's own time of the last part: the
// reconciler touching it meanwhile changes nothing. Uploads heard of
// lately, with every part in, or busy are left alone.
func TestUnitExpiryEndsAbandonedUploads(t *testing.T) {
	t.Parallel()
	e := lifecycleEnv(t)
	now := time.Now()
	abandoned := e.create(false, ytDest(), s3BucketDest())
	e.lastHeardOf(abandoned, now.Add(-2*time.Hour), 0)
	session := e.withSession(abandoned)
	// The reconciler looked at it a moment ago: progressAt is now.
	if err := e.store.Touch(context.Background(), abandoned.AtomID, abandoned.ID); err != nil {
		t.Fatal(err)
	}
	neverSent := e.create(false, ytDest())
	e.lastHeardOf(neverSent, time.Time{})
	e.store.modify(t, neverSent.AtomID, neverSent.ID, func(u *upload.Upload) {
		u.Destination(upload.YouTube).Park(upload.WaitYouTubeCredentials, now.Add(time.Hour), now)
	})
	recent := e.create(false, ytDest())
	e.lastHeardOf(recent, now.Add(-10*time.Minute), 0)
	allIn := e.create(false, ytDest())
	e.lastHeardOf(allIn, now.Add(-2*time.Hour), 0, 1, 2)
	fresh := e.create(true, ytDest())

	e.start()
	waitUntil(t, "the expiries", func() bool { return len(e.logged("upload expired")) == 2 })
	e.rounds(3)

	const reason = "upload abandoned: no part arrived for 1h"
	for _, u := range []*upload.Upload{abandoned, neverSent} {
		got := e.store.record(t, u.AtomID, u.ID)
		if got.Error != reason {
			t.Errorf("%s: error %q, want %q", u.ID, got.Error, reason)
		}
		for _, d := range got.Destinations {
			if d.Status != upload.DestFailed || d.Error != reason || d.WaitingFor != "" {
				t.Errorf("%s: %s destination %s %q (waiting for %q), want failed with the reason", u.ID, d.Type, d.Status, d.Error, d.WaitingFor)
			}
		}
		if lines := e.linesAbout("upload expired", u); len(lines) != 1 || lines[0]["error"] != reason || lines[0]["atomId"] != u.AtomID {
			t.Errorf("%s: expiry lines %v, want one with the ids and the reason", u.ID, lines)
		}
	}
	if s := e.session(session); !s.Cancelled {
		t.Error("the abandoned upload's YouTube session was not cancelled")
	}
	if n := e.yt.count("Cancel"); n != 1 {
		t.Errorf("%d session cancels, want 1 (the upload that never had a session has none to cancel)", n)
	}
	for _, u := range []*upload.Upload{recent, allIn, fresh} {
		if got := e.store.record(t, u.AtomID, u.ID); got.Status.Terminal() || got.Error != "" {
			t.Errorf("%s: %s %q, want it left alone", u.ID, got.Status, got.Error)
		}
	}
	if n := e.store.count("UpdateIfNoPart"); n != 2 {
		t.Errorf("%d expiry writes, want 2: one per abandoned upload", n)
	}
}

// TestUnitExpiryYieldsToAPartThatArrives: a part that completes while the
// upload is being expired keeps it alive (the write is conditional on no
// part since the read); the session cancelled meanwhile is the relay's to
// start again.
func TestUnitExpiryYieldsToAPartThatArrives(t *testing.T) {
	t.Parallel()
	e := lifecycleEnv(t)
	u := e.create(false, ytDest())
	e.lastHeardOf(u, time.Now().Add(-2*time.Hour), 0)
	e.withSession(u)
	e.yt.onCall("Cancel", func(int) {
		if _, err := e.store.CompletePart(context.Background(), u.AtomID, u.ID, 1); err != nil {
			t.Error(err)
		}
	})
	e.start()
	waitUntil(t, "the expiry's try", func() bool { return len(e.logged("not expired: the upload moved on while it was being expired")) == 1 })
	e.rounds(2)
	got := e.store.record(t, u.AtomID, u.ID)
	if got.Status != upload.StatusUploading || !got.Completed[1] || got.Error != "" {
		t.Errorf("upload %s %q with parts %v, want uploading with part 1", got.Status, got.Error, got.CompletedParts())
	}
	if n := len(e.logged("upload expired")); n != 0 {
		t.Errorf("%d expiry lines, want none", n)
	}
}

// TestUnitExpiryCutShortIsDoneAgain: a pass cut short after the session
// was cancelled but before the record was written (a crash, a table that
// refuses) is done again by the next: the upload expires, once.
func TestUnitExpiryCutShortIsDoneAgain(t *testing.T) {
	t.Parallel()
	e := lifecycleEnv(t)
	u := e.create(false, ytDest())
	e.lastHeardOf(u, time.Now().Add(-2*time.Hour), 0)
	session := e.withSession(u)
	e.store.failNext("UpdateIfNoPart", storeBusy())
	e.start()
	waitUntil(t, "the expiry", func() bool { return len(e.linesAbout("upload expired", u)) == 1 })
	e.rounds(2)
	if n := len(e.logged("sweep failed; the next round tries again")); n != 1 {
		t.Errorf("%d failed rounds, want 1", n)
	}
	if n := len(e.linesAbout("upload expired", u)); n != 1 {
		t.Errorf("%d expiry lines, want 1", n)
	}
	if n := e.yt.count("Cancel"); n != 2 || !e.session(session).Cancelled {
		t.Errorf("%d cancels, session cancelled %v; want the session cancelled again by the second pass", n, e.session(session).Cancelled)
	}
}

// TestUnitExpiryWithoutYouTubeOrWhenItRefuses: an upload expires whether
// or not its session can be cancelled.
func TestUnitExpiryWithoutYouTubeOrWhenItRefuses(t *testing.T) {
	t.Parallel()
	e := lifecycleEnv(t)
	u := e.create(false, ytDest())
	e.lastHeardOf(u, time.Now().Add(-2*time.Hour), 0)
	e.withSession(u)
	e.yt.failAlways("Cancel", refusedError())
	e.start()
	waitUntil(t, "the expiry", func() bool { return len(e.linesAbout("upload expired", u)) == 1 })
	if lines := e.linesAbout("could not cancel the YouTube session of an abandoned upload; YouTube drops it in time", u); len(lines) != 1 {
		t.Errorf("%d warnings about the session, want 1", len(lines))
	}
	if lines := e.linesAbout("upload expired", u); len(lines) != 1 || lines[0]["youtubeSessionCancelled"] != false {
		t.Errorf("expiry lines %v, want one saying the session was not cancelled", lines)
	}
}

// finished makes u an upload that is over, its parts (and a stray object
// beside them) and its original in S3, ended at ended.
func (e *sweepEnv) finished(u *upload.Upload, ended time.Time, end func(u *upload.Upload)) {
	e.t.Helper()
	for n := range u.PartCount() {
		e.s3.put(unitBucket, u.PartKey(n), []byte(fmt.Sprintf("part %d", n)))
	}
	e.s3.put(unitBucket, upload.PartsPrefix(u.AtomID, u.ID)+"stray", []byte("not in the plan"))
	e.store.modify(e.t, u.AtomID, u.ID, end)
	if u := e.store.record(e.t, u.AtomID, u.ID); u.PartsDeletable() {
		e.store.endedAt(e.t, u.AtomID, u.ID, ended)
	}
}

func completeAll(u *upload.Upload) {
	for n := range u.PartCount() {
		u.Completed[n] = true
	}
	u.Assembled = true
	for i := range u.Destinations {
		u.Destinations[i].Status = upload.DestComplete
	}
	u.Settle(time.Now())
}

// partsLeft is how many objects are under u's parts prefix.
func (e *sweepEnv) partsLeft(u *upload.Upload) int {
	e.t.Helper()
	out, err := e.s3.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(unitBucket), Prefix: aws.String(upload.PartsPrefix(u.AtomID, u.ID))})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(out.Contents)
}

// TestUnitCleanupDeletesThePartsOfFinishedUploads: deletePartsAfter after
// an upload ended, its parts go (all objects under parts/), its dangling
// multipart uploads of the original are aborted (the one the record names
// and any other), its original stays, the record says so and leaves
// the index, and one line counts what went. Uploads that ended lately, or
// failed before their original was made, keep their parts.
func TestUnitCleanupDeletesThePartsOfFinishedUploads(t *testing.T) {
	t.Parallel()
	e := lifecycleEnv(t)
	long := time.Now().Add(-2 * time.Hour)
	complete := e.create(true, ytDest())
	e.finished(complete, long, completeAll)
	e.s3.put(unitBucket, complete.FullKey(), []byte("the original"))
	cancelled := e.create(true, ytDest())
	recorded, err := e.s3.CreateMultipartUpload(context.Background(), &s3.CreateMultipartUploadInput{Bucket: aws.String(unitBucket), Key: aws.String(cancelled.FullKey())})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s3.CreateMultipartUpload(context.Background(), &s3.CreateMultipartUploadInput{Bucket: aws.String(unitBucket), Key: aws.String(cancelled.FullKey())}); err != nil {
		t.Fatal(err)
	}
	e.finished(cancelled, long, func(u *upload.Upload) {
		u.Assembly = upload.Assembly{UploadID: aws.ToString(recorded.UploadId), Copied: 1}
		_ = u.Cancel(time.Now())
	})
	lately := e.create(true, ytDest())
	e.finished(lately, time.Now(), completeAll)
	unmade := e.create(true, ytDest())
	e.finished(unmade, long, func(u *upload.Upload) { u.Fail("part 1 is the wrong size", time.Now()) })
	other := e.create(true, ytDest()) // an object of another upload's
	e.s3.put(unitBucket, other.PartKey(0), []byte("part 0"))

	e.start()
	waitUntil(t, "the clean-ups", func() bool { return len(e.logged("parts deleted")) == 2 })
	e.rounds(3)

	for _, tt := range []struct {
		u    *upload.Upload
		mpus int
	}{{complete, 0}, {cancelled, 2}} {
		got := e.store.record(t, tt.u.AtomID, tt.u.ID)
		if !got.PartsDeleted || e.store.dueForCleanup(tt.u.AtomID, tt.u.ID) {
			t.Errorf("%s: partsDeleted %v, still due %v; want deleted and out of the index", got.Status, got.PartsDeleted, e.store.dueForCleanup(tt.u.AtomID, tt.u.ID))
		}
		if n := e.partsLeft(tt.u); n != 0 {
			t.Errorf("%s: %d objects left under parts/, want none", got.Status, n)
		}
		lines := e.linesAbout("parts deleted", tt.u)
		if len(lines) != 1 || lines[0]["parts"] != int64(4) || lines[0]["multipartUploads"] != int64(tt.mpus) || lines[0]["status"] != string(got.Status) {
			t.Errorf("%s: lines %v, want one counting 4 objects and %d multipart uploads", got.Status, lines, tt.mpus)
		}
	}
	if _, ok := e.s3.object(unitBucket, complete.FullKey()); !ok {
		t.Error("the original was deleted, want it kept")
	}
	if mpus, _, _ := e.s3.state(); mpus != 0 {
		t.Errorf("%d multipart uploads left, want none", mpus)
	}
	for _, u := range []*upload.Upload{lately, unmade, other} {
		if got := e.store.record(t, u.AtomID, u.ID); got.PartsDeleted || e.partsLeft(u) == 0 {
			t.Errorf("%s upload: partsDeleted %v, %d parts left; want them kept", got.Status, got.PartsDeleted, e.partsLeft(u))
		}
	}
	if d := e.s3.deletedKeys(); len(d) != 8 {
		t.Errorf("deleted %v, want the 8 objects of the two uploads", d)
	}
}

// TestUnitCleanupCutShortIsFinishedByTheNextRound: a round cut short after
// partsDeleted was recorded (a crash, S3 refusing) leaves the upload in
// the index, and the next round finishes it without deciding again.
func TestUnitCleanupCutShortIsFinishedByTheNextRound(t *testing.T) {
	t.Parallel()
	e := lifecycleEnv(t)
	u := e.create(true, ytDest())
	e.finished(u, time.Now().Add(-2*time.Hour), completeAll)
	e.s3.failNext("DeleteObjects", apiError("InternalError"))
	e.start()
	waitUntil(t, "the clean-up", func() bool { return len(e.logged("parts deleted")) == 1 })
	if n := len(e.logged("sweep failed; the next round tries again")); n != 1 {
		t.Errorf("%d failed rounds, want 1", n)
	}
	if n := e.store.count("Update"); n != 1 {
		t.Errorf("%d record writes, want 1: partsDeleted, recorded once", n)
	}
	if n := e.partsLeft(u); n != 0 || e.store.dueForCleanup(u.AtomID, u.ID) {
		t.Errorf("%d parts left, still due %v; want none, out of the index", n, e.store.dueForCleanup(u.AtomID, u.ID))
	}
}

// TestUnitCleanupCutShortIsFinishedThoughARetryRevivedTheUpload: once
// partsDeleted is recorded, the clean-up finishes even if a retry that
// needs no parts (an asset call) brought the upload back to life meanwhile.
func TestUnitCleanupCutShortIsFinishedThoughARetryRevivedTheUpload(t *testing.T) {
	t.Parallel()
	e := lifecycleEnv(t)
	u := e.create(true, ytDest())
	e.finished(u, time.Now().Add(-2*time.Hour), func(u *upload.Upload) {
		completeAll(u)
		d := u.Destination(upload.YouTube)
		d.VideoID, d.AssetError = "vid", "the atom API did not take the video"
	})
	e.s3.failNext("DeleteObjects", apiError("InternalError"))
	e.s3.onCall("DeleteObjects", func(n int) {
		if n == 1 {
			e.store.modify(t, u.AtomID, u.ID, func(u *upload.Upload) {
				if err := u.Retry(time.Now()); err != nil {
					t.Error(err)
				}
			})
		}
	})
	e.start()
	waitUntil(t, "the clean-up", func() bool { return len(e.logged("parts deleted")) == 1 })
	got := e.store.record(t, u.AtomID, u.ID)
	if got.Status != upload.StatusProcessing || !got.PartsDeleted || e.partsLeft(u) != 0 || e.store.dueForCleanup(u.AtomID, u.ID) {
		t.Errorf("upload %s, partsDeleted %v, %d parts, due %v; want it retried, its parts gone, out of the index",
			got.Status, got.PartsDeleted, e.partsLeft(u), e.store.dueForCleanup(u.AtomID, u.ID))
	}
}

// TestUnitCleanupYieldsToARetry: a retry that lands before the clean-up
// records its decision brings the upload back to life: its parts stay.
// One that comes after is refused (upload.Retry), so a relay never reads
// parts that are gone.
func TestUnitCleanupYieldsToARetry(t *testing.T) {
	t.Parallel()
	e := lifecycleEnv(t)
	u := e.create(true, ytDest())
	e.finished(u, time.Now().Add(-2*time.Hour), func(u *upload.Upload) {
		for n := range u.PartCount() {
			u.Completed[n] = true
		}
		u.Assembled = true
		u.Destination(upload.YouTube).Fail("YouTube refused the upload (somethingElse)")
		u.Settle(time.Now())
	})
	if got := e.store.record(t, u.AtomID, u.ID); got.Status != upload.StatusFailed {
		t.Fatalf("set-up: %s", got.Status)
	}
	e.store.onCall("Update", func(n int) {
		if n == 1 {
			e.store.modify(t, u.AtomID, u.ID, func(u *upload.Upload) {
				if err := u.Retry(time.Now()); err != nil {
					t.Error(err)
				}
			})
		}
	})
	e.start()
	waitUntil(t, "the clean-up's try", func() bool { return e.store.count("Update") >= 1 })
	e.rounds(3)
	got := e.store.record(t, u.AtomID, u.ID)
	if got.Status != upload.StatusProcessing || got.PartsDeleted || e.partsLeft(u) != 4 || e.store.dueForCleanup(u.AtomID, u.ID) {
		t.Errorf("upload %s, partsDeleted %v, %d parts, due %v; want it retried, its parts kept, out of the index",
			got.Status, got.PartsDeleted, e.partsLeft(u), e.store.dueForCleanup(u.AtomID, u.ID))
	}
	if n := len(e.logged("parts deleted")); n != 0 {
		t.Errorf("%d clean-up lines, want none", n)
	}
}

// TestUnitCleanupWaitsForALease: an upload whose lease a worker holds
// (finishing a step as it ended) is cleaned once the lease is gone.
func TestUnitCleanupWaitsForALease(t *testing.T) {
	t.Parallel()
	e := lifecycleEnv(t)
	u := e.create(true, ytDest())
	e.finished(u, time.Now().Add(-2*time.Hour), func(u *upload.Upload) { _ = u.Cancel(time.Now()) })
	e.store.setLease(t, u.AtomID, u.ID, upload.LeaseYouTube, "unit-b#1", time.Now().Add(time.Hour))
	e.start()
	e.rounds(3)
	if n := e.partsLeft(u); n != 4 || e.store.count("Update") != 0 {
		t.Fatalf("%d parts left, %d writes while the lease is held; want all kept, none", n, e.store.count("Update"))
	}
	e.store.setLease(t, u.AtomID, u.ID, upload.LeaseYouTube, "unit-b#1", time.Now().Add(-time.Second))
	waitUntil(t, "the clean-up", func() bool { return len(e.logged("parts deleted")) == 1 })
	if n := e.partsLeft(u); n != 0 {
		t.Errorf("%d parts left, want none", n)
	}
}

// TestUnitSweeperRunsTheLifecycleJobsOnlyWhenAsked: 0 switches each off.
func TestUnitSweeperRunsTheLifecycleJobsOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	e := newSweepEnv(t)
	u := e.create(false, ytDest())
	e.lastHeardOf(u, time.Now().Add(-100*time.Hour), 0)
	done := e.create(true, ytDest())
	e.finished(done, time.Now().Add(-100*time.Hour), completeAll)
	e.start()
	e.rounds(3)
	if n, m := e.store.count("UpdateIfNoPart"), e.store.count("DueForCleanup"); n != 0 || m != 0 {
		t.Errorf("%d expiries and %d clean-up queries with both off, want none", n, m)
	}
	if st := e.store.record(t, u.AtomID, u.ID).Status; st != upload.StatusUploading || e.partsLeft(done) != 4 {
		t.Errorf("upload %s, %d parts left; want both untouched", st, e.partsLeft(done))
	}
}

// TestUnitReconcilerDrivesNothingThatNeedsDeletedParts: an upload whose
// parts were deleted gets no relay or reassembly, ever.
func TestUnitReconcilerDrivesNothingThatNeedsDeletedParts(t *testing.T) {
	t.Parallel()
	e := newSweepEnv(t, func(c *worker.SweepConfig) { c.DeadLetterURL = "" })
	u := e.create(false, ytDest())
	e.complete(u, 0, 1, 2)
	e.store.modify(t, u.AtomID, u.ID, func(u *upload.Upload) { u.PartsDeleted = true })
	e.store.quietSince(t, u.AtomID, u.ID, time.Now().Add(-2*time.Hour))
	e.start()
	waitUntil(t, "a look at the upload", func() bool { return e.store.touches(u.AtomID, u.ID) == 1 })
	if m := e.redriven(); len(m) != 0 {
		t.Errorf("re-driven %+v, want nothing: the parts are gone", m)
	}
}

// TestUnitLatePartOfAnExpiredUploadIsIgnored: a part whose event comes
// after its upload expired is not recorded, and the fact is logged.
func TestUnitLatePartOfAnExpiredUploadIsIgnored(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts, ytDest())
	file := unitFile(t, threeParts)
	e.arrive(u, file, 0)
	e.store.modify(t, u.AtomID, u.ID, func(u *upload.Upload) {
		if err := u.Expire(time.Now().Add(2*time.Hour), time.Hour); err != nil {
			t.Fatal(err)
		}
	})
	calls := e.store.count("CompletePart")
	e.putPart(u, file, 1)
	e.mustHandle(partBody(u, 1))
	if n := e.store.count("CompletePart"); n != calls {
		t.Errorf("%d more CompletePart calls, want none", n-calls)
	}
	if got := e.get(u); got.Completed[1] || got.Status != upload.StatusExpired {
		t.Errorf("upload %s with parts %v, want expired without part 1", got.Status, got.CompletedParts())
	}
	lines := e.logs.FilterMessage("ignored an event of a finished upload").All()
	if len(lines) != 1 || lines[0].ContextMap()["status"] != "expired" || lines[0].ContextMap()["part"] != int64(1) {
		t.Errorf("lines %v, want one naming the part and the status", lines)
	}
	// And by the store, when the expiry comes between the read and the write.
	if _, err := e.store.CompletePart(context.Background(), u.AtomID, u.ID, 2); upload.ErrorCode(err) != upload.ECONFLICT {
		t.Errorf("CompletePart of an expired upload = %v, want ECONFLICT", err)
	}

}
