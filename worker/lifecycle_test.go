package worker_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap"

	"atomuploads/upload"
	"atomuploads/worker"
	"atomuploads/youtube/youtubetest"
)

// lifecycleOpts configure an instance's sweeps of the end of uploads.
type lifecycleOpts struct {
	abandonAfter, deletePartsAfter time.Duration
	s3                             worker.SweepS3          // the stack's unless set
	yt                             worker.SessionCanceller // none unless set
}

// startLifecycleSweeper runs the sweeps of one instance named owner, with
// the expiry and the clean-up as o says, until the test ends or the
// returned Sweeper is stopped.
func (e *env) startLifecycleSweeper(t testing.TB, owner string, o lifecycleOpts) *worker.Sweeper {
	t.Helper()
	if o.s3 == nil {
		o.s3 = e.st.S3
	}
	s := worker.NewSweeper(worker.SweepConfig{
		Owner: owner, Interval: 500 * time.Millisecond, LeaseTTL: 3 * time.Second,
		QueueURL: e.st.QueueURL, StrandedAfter: time.Minute,
		MaxChunkBytes: 8 * upload.MiB, YouTube: true, Transcode: true, AtomAPI: true,
		Bucket: e.st.Bucket, AbandonAfter: o.abandonAfter, DeletePartsAfter: o.deletePartsAfter,
	}, e.store, e.st.SQS, o.s3, o.yt, e.log.With(zap.String("owner", owner)))
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return s
}

// partsIn is how many objects are under u's parts prefix.
func (e *env) partsIn(t testing.TB, u *upload.Upload) int {
	t.Helper()
	out, err := e.st.S3.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{
		Bucket: aws.String(e.st.Bucket), Prefix: aws.String(upload.PartsPrefix(u.AtomID, u.ID)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Contents)
}

// multipartUploads is how many multipart uploads are in progress under u's
// prefix (listed without one: MinIO lists by a whole key only).
func (e *env) multipartUploads(t testing.TB, u *upload.Upload) int {
	t.Helper()
	out, err := e.st.S3.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(e.st.Bucket)})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range out.Uploads {
		if strings.HasPrefix(aws.ToString(m.Key), upload.Prefix(u.AtomID, u.ID)) {
			n++
		}
	}
	return n
}

// linesOf returns the log lines with msg about the upload.
func (e *env) linesOf(t testing.TB, msg string, u *upload.Upload) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range e.logs.With(t, msg) {
		if l["uploadId"] == u.ID {
			out = append(out, l)
		}
	}
	return out
}

// sessionOf returns the stand-in's session of the upload's title.
func sessionOf(t testing.TB, si *standIns, title string) youtubetest.SessionInfo {
	t.Helper()
	var found []youtubetest.SessionInfo
	for _, s := range si.yt.Sessions() {
		if s.Title == title {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d YouTube sessions titled %q, want 1", len(found), title)
	}
	return found[0]
}

// TestAbandonedUploadExpiresAndALatePartIsIgnored: an upload left after 2
// of its 4 parts expires once abandonAfter has passed since its last part:
// every destination fails with the reason, its YouTube session (which had
// the first two parts) is cancelled, and no asset is added. A part that
// arrives afterwards is ignored, and logged.
func TestAbandonedUploadExpiresAndALatePartIsIgnored(t *testing.T) {
	e := newEnv(t)
	si := newStandIns(t, youtubetest.Options{})
	const size = 3*5*upload.MiB + 4321 // 4 parts
	u := e.newUpload(t, size, youTubeDest("Abandoned"), upload.DestinationRequest{Type: upload.S3Bucket})
	file, _ := randomFile(t, size)
	e.startWorker(t, workerOpts{yt: si.ytClient, atom: si.atomCl})
	e.putPart(t, u, file, 0)
	e.putPart(t, u, file, 1)
	waitFor(t, 30*time.Second, "the first two parts on YouTube", func() bool {
		ss := si.yt.Sessions()
		return len(ss) == 1 && ss[0].Committed == 10*upload.MiB
	})
	e.startLifecycleSweeper(t, "sweeper-a", lifecycleOpts{abandonAfter: 3 * time.Second, yt: si.ytClient})
	waitFor(t, 60*time.Second, "the upload to expire", func() bool { return e.get(t, u).Status == upload.StatusExpired })

	got := e.get(t, u)
	const reason = "upload abandoned: no part arrived for 3s"
	if got.Error != reason {
		t.Errorf("upload error %q, want %q", got.Error, reason)
	}
	for _, d := range got.Destinations {
		if d.Status != upload.DestFailed || d.Error != reason {
			t.Errorf("%s destination %s %q, want failed, %q", d.Type, d.Status, d.Error, reason)
		}
	}
	waitFor(t, 10*time.Second, "the expiry's log line", func() bool { return len(e.linesOf(t, "upload expired", u)) == 1 })
	if s := sessionOf(t, si, "Abandoned"); s.State != youtubetest.SessionCancelled || s.Committed != 10*upload.MiB {
		t.Errorf("YouTube session %s with %d bytes, want cancelled with the two parts", s.State, s.Committed)
	}
	if v := si.yt.Videos(); len(v) != 0 {
		t.Errorf("YouTube has %d videos, want none", len(v))
	}
	if calls := si.atom.Calls(u.AtomID); len(calls) != 0 {
		t.Errorf("atom API calls %+v, want none", calls)
	}

	// A late part: ignored, and logged.
	e.putPart(t, u, file, 2)
	waitFor(t, 30*time.Second, "the late part's event", func() bool {
		for _, l := range e.linesOf(t, "ignored an event of a finished upload", u) {
			if l["part"] == float64(2) && l["status"] == "expired" {
				return true
			}
		}
		return false
	})
	if got := e.get(t, u); got.Completed[2] || got.Status != upload.StatusExpired {
		t.Errorf("upload %s with parts %v after the late part, want expired without part 2", got.Status, got.CompletedParts())
	}
	if n := len(si.yt.Sessions()); n != 1 {
		t.Errorf("%d YouTube sessions, want the one cancelled", n)
	}
}

// TestCompletedUploadsPartsAreDeletedAndItsOriginalStays: deletePartsAfter
// after an upload completed, its parts are gone, its original is intact,
// and the record says so.
func TestCompletedUploadsPartsAreDeletedAndItsOriginalStays(t *testing.T) {
	e := newEnv(t)
	si := newStandIns(t, youtubetest.Options{ProcessingSteps: 1})
	const size = 5*upload.MiB + 777 // 2 parts
	u := e.newUpload(t, size, youTubeDest("Completed"))
	file, sum := randomFile(t, size)
	e.startWorker(t, workerOpts{yt: si.ytClient, atom: si.atomCl})
	e.startLifecycleSweeper(t, "sweeper-a", lifecycleOpts{deletePartsAfter: 2 * time.Second})
	for n := range u.PartCount() {
		e.putPart(t, u, file, n)
	}
	waitFor(t, 60*time.Second, "the upload to complete", func() bool { return e.get(t, u).Status == upload.StatusComplete })
	if n := e.partsIn(t, u); n != 2 {
		t.Fatalf("%d parts in S3 once complete, want both, until deletePartsAfter", n)
	}
	waitFor(t, 60*time.Second, "the parts to be deleted", func() bool { return len(e.linesOf(t, "parts deleted", u)) == 1 })
	if n := e.partsIn(t, u); n != 0 {
		t.Errorf("%d parts left, want none", n)
	}
	if got, n := e.objectSHA256(t, e.st.Bucket, u.FullKey()); got != sum || n != size {
		t.Errorf("the original: %d bytes, sha256 %s; want it intact", n, got)
	}
	got := e.get(t, u)
	if !got.PartsDeleted || got.Status != upload.StatusComplete {
		t.Errorf("record %s, partsDeleted %v; want complete, deleted", got.Status, got.PartsDeleted)
	}
	if l := e.linesOf(t, "parts deleted", u)[0]; l["parts"] != float64(2) || l["atomId"] != u.AtomID {
		t.Errorf("clean-up line %v, want the ids and 2 parts", l)
	}
}

// TestCancelledUploadsPartsGo: a cancelled upload's parts are deleted the
// same way, and a multipart upload of its original that a reassembly left
// behind is aborted.
func TestCancelledUploadsPartsGo(t *testing.T) {
	e := newEnv(t)
	const size = 3*5*upload.MiB + 1 // 4 parts
	u := e.newUpload(t, size)
	file, _ := randomFile(t, size)
	e.putPart(t, u, file, 0)
	e.putPart(t, u, file, 1)
	ctx := testCtx(t, 2*time.Minute)
	if _, err := e.st.S3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(e.st.Bucket), Key: aws.String(u.FullKey())}); err != nil {
		t.Fatal(err)
	}
	if n := e.multipartUploads(t, u); n != 1 {
		t.Fatalf("set-up: %d multipart uploads, want 1", n)
	}
	if _, err := e.store.Update(ctx, u.AtomID, u.ID, func(u *upload.Upload) error { return u.Cancel(time.Now()) }); err != nil {
		t.Fatal(err)
	}
	e.startLifecycleSweeper(t, "sweeper-a", lifecycleOpts{deletePartsAfter: 2 * time.Second})
	waitFor(t, 60*time.Second, "the parts to be deleted", func() bool { return len(e.linesOf(t, "parts deleted", u)) == 1 })
	if n := e.partsIn(t, u); n != 0 {
		t.Errorf("%d parts left, want none", n)
	}
	if n := e.multipartUploads(t, u); n != 0 {
		t.Errorf("%d multipart uploads left, want none", n)
	}
	if l := e.linesOf(t, "parts deleted", u)[0]; l["parts"] != float64(2) || l["multipartUploads"] != float64(1) || l["status"] != "cancelled" {
		t.Errorf("clean-up line %v, want 2 parts and 1 multipart upload of a cancelled upload", l)
	}
}

// TestTwoInstancesSweepWithoutDoubleWork: two instances run the same
// sweeps over the same uploads: each upload expires once, its session is
// cancelled, its parts are deleted once, and neither instance errs.
func TestTwoInstancesSweepWithoutDoubleWork(t *testing.T) {
	e := newEnv(t)
	si := newStandIns(t, youtubetest.Options{})
	e.startWorker(t, workerOpts{yt: si.ytClient, atom: si.atomCl})
	const size = 2*5*upload.MiB + 99 // 3 parts
	file, _ := randomFile(t, size)
	var abandoned, cancelled []*upload.Upload
	for i := range 3 {
		u := e.newUpload(t, size, youTubeDest(fmt.Sprintf("Abandoned %d", i)))
		e.putPart(t, u, file, 0)
		abandoned = append(abandoned, u)
	}
	for i := range 3 {
		u := e.newUpload(t, size, youTubeDest(fmt.Sprintf("Cancelled %d", i)))
		e.putPart(t, u, file, 1)
		cancelled = append(cancelled, u)
	}
	waitFor(t, 30*time.Second, "the first parts on YouTube", func() bool {
		n := 0
		for _, s := range si.yt.Sessions() {
			if s.Committed == 5*upload.MiB {
				n++
			}
		}
		return n == 3
	})
	ctx := testCtx(t, 3*time.Minute)
	for _, u := range cancelled {
		if _, err := e.store.Update(ctx, u.AtomID, u.ID, func(u *upload.Upload) error { return u.Cancel(time.Now()) }); err != nil {
			t.Fatal(err)
		}
	}
	o := lifecycleOpts{abandonAfter: 3 * time.Second, deletePartsAfter: 2 * time.Second, yt: si.ytClient}
	e.startLifecycleSweeper(t, "sweeper-a", o)
	e.startLifecycleSweeper(t, "sweeper-b", o)
	all := append(append([]*upload.Upload{}, abandoned...), cancelled...)
	waitFor(t, 90*time.Second, "every upload's clean-up", func() bool {
		for _, u := range all {
			if len(e.linesOf(t, "parts deleted", u)) == 0 {
				return false
			}
		}
		return true
	})
	// A few more rounds of each, in which nothing must happen twice.
	mark := len(e.logs.With(t, "swept"))
	waitFor(t, 30*time.Second, "more rounds", func() bool { return len(e.logs.With(t, "swept")) >= mark+8 })

	for i, u := range abandoned {
		if n := len(e.linesOf(t, "upload expired", u)); n != 1 {
			t.Errorf("abandoned upload %d expired %d times, want once", i, n)
		}
		if s := sessionOf(t, si, fmt.Sprintf("Abandoned %d", i)); s.State != youtubetest.SessionCancelled {
			t.Errorf("abandoned upload %d: YouTube session %s, want cancelled", i, s.State)
		}
	}
	for _, u := range all {
		if n := len(e.linesOf(t, "parts deleted", u)); n != 1 {
			t.Errorf("upload %s: its parts deleted %d times, want once", u.ID, n)
		}
		if n := e.partsIn(t, u); n != 0 {
			t.Errorf("upload %s: %d parts left", u.ID, n)
		}
	}
	for _, msg := range []string{"sweep failed; the next round tries again", "acquire a sweep lease", "keep a sweep lease",
		"not expired: the upload moved on while it was being expired"} {
		if n := len(e.logs.With(t, msg)); n != 0 {
			t.Errorf("%d lines %q, want none", n, msg)
		}
	}
}

// blockingS3 is the stack's S3 whose first DeleteObjects hangs until its
// caller gives up (a process killed in the middle of a clean-up).
type blockingS3 struct {
	worker.SweepS3
	once    sync.Once
	entered chan struct{}
}

func (b *blockingS3) DeleteObjects(ctx context.Context, _ *s3.DeleteObjectsInput, _ ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error) {
	b.once.Do(func() { close(b.entered) })
	<-ctx.Done()
	return nil, ctx.Err()
}

// blockingCanceller is a YouTube whose session cancels hang until their
// caller gives up (a process killed in the middle of an expiry).
type blockingCanceller struct {
	once    sync.Once
	entered chan struct{}
}

func (b *blockingCanceller) Cancel(ctx context.Context, _ string) error {
	b.once.Do(func() { close(b.entered) })
	<-ctx.Done()
	return ctx.Err()
}

// TestRestartInTheMiddleOfASweepLosesNothing: an instance stopped in the
// middle of an expiry (its session cancel under way) and of a clean-up
// (the parts marked deleted, none deleted yet) leaves both for the next:
// a new instance expires the upload, cancels its session and deletes the
// other's parts, once each.
func TestRestartInTheMiddleOfASweepLosesNothing(t *testing.T) {
	e := newEnv(t)
	si := newStandIns(t, youtubetest.Options{})
	e.startWorker(t, workerOpts{yt: si.ytClient, atom: si.atomCl})
	const size = 2*5*upload.MiB + 99 // 3 parts
	file, _ := randomFile(t, size)
	abandoned := e.newUpload(t, size, youTubeDest("Abandoned"))
	e.putPart(t, abandoned, file, 0)
	done := e.newUpload(t, size)
	e.putPart(t, done, file, 0)
	e.putPart(t, done, file, 2)
	waitFor(t, 30*time.Second, "the first part on YouTube", func() bool {
		ss := si.yt.Sessions()
		return len(ss) == 1 && ss[0].Committed == 5*upload.MiB
	})
	ctx := testCtx(t, 3*time.Minute)
	if _, err := e.store.Update(ctx, done.AtomID, done.ID, func(u *upload.Upload) error { return u.Cancel(time.Now()) }); err != nil {
		t.Fatal(err)
	}

	blockS3 := &blockingS3{SweepS3: e.st.S3, entered: make(chan struct{})}
	blockYT := &blockingCanceller{entered: make(chan struct{})}
	o := lifecycleOpts{abandonAfter: 3 * time.Second, deletePartsAfter: 2 * time.Second}
	a := o
	a.s3, a.yt = blockS3, blockYT
	first := e.startLifecycleSweeper(t, "sweeper-a", a)
	for _, c := range []chan struct{}{blockS3.entered, blockYT.entered} {
		select {
		case <-c:
		case <-ctx.Done():
			t.Fatal("the first instance never got to the middle of its sweeps")
		}
	}
	if err := first.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// The middle: the clean-up decided, nothing is deleted; nothing expired.
	if got := e.get(t, done); !got.PartsDeleted || e.partsIn(t, done) != 2 {
		t.Fatalf("after the stop: partsDeleted %v, %d parts; want the decision recorded and both parts there", got.PartsDeleted, e.partsIn(t, done))
	}
	if got := e.get(t, abandoned); got.Status != upload.StatusUploading {
		t.Fatalf("after the stop: the abandoned upload is %s, want still uploading", got.Status)
	}

	o.yt = si.ytClient
	e.startLifecycleSweeper(t, "sweeper-b", o)
	waitFor(t, 60*time.Second, "the second instance's clean-up", func() bool { return len(e.linesOf(t, "parts deleted", done)) == 1 })
	waitFor(t, 60*time.Second, "the second instance's expiry", func() bool { return len(e.linesOf(t, "upload expired", abandoned)) == 1 })
	if n := e.partsIn(t, done); n != 0 {
		t.Errorf("%d parts left, want none", n)
	}
	if s := sessionOf(t, si, "Abandoned"); s.State != youtubetest.SessionCancelled {
		t.Errorf("YouTube session %s, want cancelled", s.State)
	}
	for _, l := range append(e.linesOf(t, "parts deleted", done), e.linesOf(t, "upload expired", abandoned)...) {
		if l["owner"] != "sweeper-b" {
			t.Errorf("%s by %v, want the second instance", l["msg"], l["owner"])
		}
	}
}
