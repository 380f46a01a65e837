package worker_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"atomuploads/atomapi"
	"atomuploads/atomapi/atomapitest"
	"atomuploads/upload"
	"atomuploads/worker"
	"atomuploads/youtube"
	"atomuploads/youtube/youtubetest"
)

// standIns are the YouTube and atom API stand-ins on loopback, with real
// clients for them.
type standIns struct {
	yt       *youtubetest.Server
	baseURL  string // of the YouTube stand-in
	ytClient *youtube.Client
	atom     *atomapitest.Server
	atomCl   *atomapi.Client
}

func newStandIns(t testing.TB, opts youtubetest.Options) *standIns {
	t.Helper()
	opts.ClientID, opts.ClientSecret, opts.RefreshToken = "client", "client-secret", "refresh-token"
	if opts.ProcessingSteps == 0 {
		opts.ProcessingSteps = 2
	}
	yt := youtubetest.New(opts)
	ytSrv := httptest.NewServer(yt)
	t.Cleanup(ytSrv.Close)
	client, err := youtube.New(youtube.Config{
		APIBaseURL: ytSrv.URL + "/", TokenURL: ytSrv.URL + "/token",
		ClientID: "client", ClientSecret: "client-secret", RefreshToken: "refresh-token",
		RequestTimeout: 10 * time.Second, BaseDelay: 10 * time.Millisecond,
	}, &http.Client{})
	if err != nil {
		t.Fatal(err)
	}
	atom := atomapitest.New(atomapitest.Options{HMACSecret: "hmac-secret"})
	atomSrv := httptest.NewServer(atom)
	t.Cleanup(atomSrv.Close)
	return &standIns{
		yt: yt, baseURL: ytSrv.URL, ytClient: client, atom: atom,
		atomCl: atomapi.New(atomapi.Config{BaseURL: atomSrv.URL, HMACSecret: "hmac-secret", BaseDelay: 10 * time.Millisecond}, &http.Client{}),
	}
}

func youTubeDest(title string) upload.DestinationRequest {
	return upload.DestinationRequest{Type: upload.YouTube, YouTube: upload.YouTubeMetadata{Title: title, Tags: []string{"news"}, CategoryID: "25"}}
}

// videoOf waits for the upload's YouTube destination to finish and returns
// the stand-in's video.
func (s *standIns) videoOf(t testing.TB, e *env, u *upload.Upload, timeout time.Duration) (*upload.Upload, youtubetest.Video) {
	t.Helper()
	var got *upload.Upload
	waitFor(t, timeout, "the YouTube destination to finish", func() bool {
		got = e.get(t, u)
		return got.Destination(upload.YouTube).Status.Terminal()
	})
	d := got.Destination(upload.YouTube)
	if d.Status != upload.DestComplete {
		t.Fatalf("youtube destination %s: %s", d.Status, d.Error)
	}
	v, ok := s.yt.Video(d.VideoID)
	if !ok {
		t.Fatalf("the stand-in has no video %s", d.VideoID)
	}
	return got, v
}

// checkVideo asserts the invariant: YouTube got every byte once, in order,
// in one session, with no protocol violation.
func (s *standIns) checkVideo(t testing.TB, v youtubetest.Video, size int64, sum string) {
	t.Helper()
	if v.SHA256 != sum || v.Size != size {
		t.Errorf("video %s: %d bytes sha256 %s, want %d bytes %s", v.ID, v.Size, v.SHA256, size, sum)
	}
	if viol := s.yt.Violations(); len(viol) > 0 {
		t.Errorf("protocol violations: %v", viol)
	}
	var next int64
	for _, c := range v.Chunks {
		if c.Start != next {
			t.Errorf("chunk at %d, want %d: bytes out of order or twice", c.Start, next)
		}
		next = c.Start + c.Length
	}
}

func TestRelayPipelinesPartsOutOfOrderByteExact(t *testing.T) {
	e := newEnv(t)
	si := newStandIns(t, youtubetest.Options{})
	const size = 5*5*upload.MiB + 777 // 6 parts
	u := e.newUpload(t, size, youTubeDest("Pipelined"), upload.DestinationRequest{Type: upload.S3Bucket})
	file, sum := randomFile(t, size)
	e.startWorker(t, workerOpts{yt: si.ytClient, atom: si.atomCl})

	e.putPart(t, u, file, 2) // out of order: nothing can be sent yet
	e.putPart(t, u, file, 0)
	waitFor(t, 30*time.Second, "part 0 to reach YouTube", func() bool {
		ss := si.yt.Sessions()
		return len(ss) == 1 && ss[0].Committed >= 5*upload.MiB
	})
	// Pipelining: YouTube has bytes while the last part is not even in S3.
	if ss := si.yt.Sessions(); ss[0].Committed != 3*5*upload.MiB && ss[0].Committed != 5*upload.MiB {
		t.Errorf("committed %d before part 1, want part 0 (and 1–2 only once part 1 is in)", ss[0].Committed)
	}
	if sess := e.get(t, u).Destination(upload.YouTube).Session; !strings.HasPrefix(sess, "yts1.") || strings.Contains(sess, "upload_id") {
		t.Errorf("the table holds the session as %q, want a sealed handle", sess)
	}
	for _, n := range []int{4, 1, 5, 3} {
		e.putPart(t, u, file, n)
	}
	got, v := si.videoOf(t, e, u, 60*time.Second)
	si.checkVideo(t, v, size, sum)
	if v.Sessions != 1 || v.Title != "Pipelined" || v.CategoryID != "25" || v.PrivacyStatus != "private" {
		t.Errorf("video = %+v, want one session with the requested metadata", v)
	}
	d := got.Destination(upload.YouTube)
	if d.URL() != "https://www.youtube.com/watch?v="+v.ID || d.UploadedBytes != size || d.Session != "" {
		t.Errorf("destination = %+v", d)
	}
	if calls := si.atom.Calls(u.AtomID); len(calls) != 1 || calls[0].URI != d.URL() || calls[0].Auth != "hmac" {
		t.Errorf("atom API calls = %+v, want one signed call with the video URL", calls)
	}
	for _, l := range e.logs.With(t, "chunk relayed") {
		for _, f := range []string{"atomId", "uploadId", "part", "destination", "bytes", "durationMs"} {
			if _, ok := l[f]; !ok {
				t.Errorf("log line %v lacks %s", l, f)
			}
		}
	}
}

func TestThreeInstancesDuplicatedReorderedEventsOneSession(t *testing.T) {
	e := newEnv(t)
	si := newStandIns(t, youtubetest.Options{})
	const size = 9*5*upload.MiB + 4321 // 10 parts
	u := e.newUpload(t, size, youTubeDest("Three instances"))
	file, sum := randomFile(t, size)
	for i := range 3 {
		e.startWorker(t, workerOpts{owner: fmt.Sprintf("worker-%d", i+1), yt: si.ytClient, atom: si.atomCl})
	}
	order := rand.Perm(u.PartCount())
	for i, n := range order {
		e.putPart(t, u, file, n)
		if i%3 == 0 {
			e.putPart(t, u, file, n) // the same part again: a second event
		}
	}
	// And SQS delivering an event twice: copies of a part event straight on the queue.
	ev := fmt.Sprintf(`{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":%q,"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":%q},"object":{"key":%q,"size":%d}}}]}`,
		e.st.AWS.Region, e.st.Bucket, u.PartKey(order[0]), 5*upload.MiB)
	for range 3 {
		if _, err := e.st.SQS.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(e.st.QueueURL), MessageBody: aws.String(ev)}); err != nil {
			t.Fatal(err)
		}
	}
	_, v := si.videoOf(t, e, u, 90*time.Second)
	si.checkVideo(t, v, size, sum)
	if ss := si.yt.Sessions(); len(ss) != 1 || v.Sessions != 1 {
		t.Errorf("%d sessions, want 1", len(ss))
	}
	if got := si.yt.BytesCommitted(); got != size {
		t.Errorf("YouTube committed %d bytes in all, want %d: bytes sent twice", got, size)
	}
	// Every instance has seen the processing end; no poll is left.
	waitFor(t, 30*time.Second, "YouTube processing to end", func() bool { return len(e.logs.With(t, "YouTube processing complete")) > 0 })
	waitFor(t, 30*time.Second, "an empty queue", func() bool { return e.queueDepth(t, e.st.QueueURL) == 0 })
	if n := len(si.atom.Calls(u.AtomID)); n != 1 {
		t.Errorf("%d asset calls, want exactly 1", n)
	}
}

func TestFaultsAtTenPercentAllUploadsComplete(t *testing.T) {
	e := newEnv(t)
	si := newStandIns(t, youtubetest.Options{Seed: 7, FailRate: 0.1, ShortCommitRate: 0.1})
	e.startWorker(t, workerOpts{yt: si.ytClient, atom: si.atomCl, cfg: func(c *worker.Config) { c.MaxChunkBytes = 2 * upload.MiB }})
	type job struct {
		u    *upload.Upload
		file []byte
		sum  string
	}
	var jobs []job
	for i, size := range []int64{11*upload.MiB + 5, 16 * upload.MiB, 3*upload.MiB + 1} {
		u := e.newUpload(t, size, youTubeDest(fmt.Sprintf("Faulty %d", i)))
		file, sum := randomFile(t, size)
		jobs = append(jobs, job{u, file, sum})
	}
	for _, j := range jobs {
		for _, n := range rand.Perm(j.u.PartCount()) {
			e.putPart(t, j.u, j.file, n)
		}
	}
	for _, j := range jobs {
		_, v := si.videoOf(t, e, j.u, 120*time.Second)
		si.checkVideo(t, v, j.u.Size, j.sum)
	}
	if r := si.yt.Requests(); r["chunk"] == 0 {
		t.Errorf("requests = %v: no chunks?", r)
	}
	if len(e.logs.With(t, "relay step failed; retrying")) == 0 {
		t.Error("no retry was logged: were faults injected?")
	}
}

// TestQuotaErrorParksOnlyTheYouTubeDestination: a session refused for
// quota parks the YouTube destination (it waits for the reset, readably);
// the s3Bucket destination does not suffer from it.
func TestQuotaErrorParksOnlyTheYouTubeDestination(t *testing.T) {
	e := newEnv(t)
	si := newStandIns(t, youtubetest.Options{QuotaExceeded: true})
	e.startWorker(t, workerOpts{yt: si.ytClient, atom: si.atomCl})
	const size = 7 * upload.MiB
	u := e.newUpload(t, size, youTubeDest("Over quota"), upload.DestinationRequest{Type: upload.S3Bucket})
	file, sum := randomFile(t, size)
	for n := range u.PartCount() {
		e.putPart(t, u, file, n)
	}
	d := e.parkedFor(t, u, upload.WaitYouTubeQuota)
	e.reassembledOnce(t, u, sum)
	got := e.get(t, u)
	if d.Status.Terminal() || d.Error != "" || d.ResumeAt.Before(time.Now()) {
		t.Errorf("youtube %s %q resuming %s; want it waiting, not failed", d.Status, d.Error, d.ResumeAt)
	}
	if s := got.Destination(upload.S3Bucket).Status; s == upload.DestFailed {
		t.Errorf("s3Bucket destination %s: it must not suffer from YouTube's quota", s)
	}
	if n := len(si.yt.Videos()); n != 0 {
		t.Errorf("%d videos on YouTube, want none", n)
	}
}

// pausingStore pauses the youtube lease's first conditional release, so a
// test can complete a part in the window between the holder finding the
// part missing and its release.
type pausingStore struct {
	worker.Store
	once  sync.Once
	pause func()
}

func (s *pausingStore) ReleaseIfMissing(ctx context.Context, l upload.Lease, n int) (bool, error) {
	if l.Name == upload.LeaseYouTube {
		s.once.Do(s.pause)
	}
	return s.Store.ReleaseIfMissing(ctx, l, n)
}

// TestNoLostWakeUp forces the interleaving: the holder has relayed part 0
// and found part 1 missing; before it lets go of the lease, part 1 arrives
// and is handled by another instance, which cannot get the lease and drops
// its message. The holder must still relay part 1.
func TestNoLostWakeUp(t *testing.T) {
	e := newEnv(t)
	si := newStandIns(t, youtubetest.Options{})
	const size = 5*upload.MiB + 1000
	u := e.newUpload(t, size, youTubeDest("Wake-up"))
	file, sum := randomFile(t, size)

	var other func()
	ps := &pausingStore{Store: e.store, pause: func() {
		other = e.startWorker(t, workerOpts{owner: "worker-b", yt: si.ytClient, atom: si.atomCl})
		e.putPart(t, u, file, 1)
		waitFor(t, 30*time.Second, "part 1 to be taken and its message dropped", func() bool {
			// In flight: only the holder's own message (part 0's event).
			visible, inFlight, delayed := e.queueCounts(t, e.st.QueueURL)
			return e.get(t, u).Completed[1] && visible+delayed == 0 && inFlight == 1
		})
		other() // worker-b is gone: only the holder can relay part 1 now
	}}
	d := worker.New(e.config("worker-a"), e.deps(ps, si.ytClient, si.atomCl))
	stop := e.startPool(t, worker.PoolConfig{QueueURL: e.st.QueueURL, Concurrency: 4, Visibility: 30 * time.Second, WaitTime: time.Second}, d, e.log, 5*time.Second)
	defer stop()

	e.putPart(t, u, file, 0)
	_, v := si.videoOf(t, e, u, 60*time.Second)
	si.checkVideo(t, v, size, sum)
}
