package worker_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"

	"atomuploads/devstack/stacktest"
	"atomuploads/upload"
	"atomuploads/worker"
	"atomuploads/youtube/youtubetest"
)

// runSteps runs a pool over the given steps until the test ends.
func (e *env) runSteps(t testing.TB, d *worker.Dispatcher, grace time.Duration) (stop func()) {
	t.Helper()
	return e.startPool(t, worker.PoolConfig{QueueURL: e.st.QueueURL, DeadLetterURL: e.st.DLQURL, Concurrency: 8, Visibility: 10 * time.Second, WaitTime: time.Second}, d, e.log, grace)
}

// releaseHook runs once right after the holder's first conditional release
// of the youtube lease succeeded.
type releaseHook struct {
	worker.Store
	once  sync.Once
	after func()
}

func (s *releaseHook) ReleaseIfMissing(ctx context.Context, l upload.Lease, n int) (bool, error) {
	released, err := s.Store.ReleaseIfMissing(ctx, l, n)
	if err == nil && released && l.Name == upload.LeaseYouTube {
		s.once.Do(s.after)
	}
	return released, err
}

// TestPartCompletedAfterTheReleaseIsRelayed: the holder has released the
// lease (part 1 was missing) but still holds this process's lock when part
// 1 arrives and is handled by another goroutine, which drops its message.
// The holder must see the flag and relay part 1.
func TestPartCompletedAfterTheReleaseIsRelayed(t *testing.T) {
	e := newEnv(t)
	si := newStandIns(t, youtubetest.Options{})
	const size = 5*upload.MiB + 1000
	u := e.newUpload(t, size, youTubeDest("Lock gap"))
	file, sum := randomFile(t, size)
	hook := &releaseHook{Store: e.store}
	hook.after = func() {
		e.putPart(t, u, file, 1)
		waitFor(t, 30*time.Second, "part 1 to be handled and its message dropped", func() bool {
			visible, inFlight, delayed := e.queueCounts(t, e.st.QueueURL)
			return e.get(t, u).Completed[1] && visible+delayed == 0 && inFlight == 1
		})
	}
	e.runSteps(t, worker.New(e.config("worker-a"), e.deps(hook, si.ytClient, si.atomCl)), 5*time.Second)
	e.putPart(t, u, file, 0)
	_, v := si.videoOf(t, e, u, 60*time.Second)
	si.checkVideo(t, v, size, sum)
}

// deadStore is a store whose instance has lost DynamoDB once it is stopping:
// it can neither abandon nor release its leases.
type deadStore struct {
	worker.Store
	dead atomic.Bool
}

var errUnreachable = errors.New("dynamodb unreachable")

func (s *deadStore) Release(ctx context.Context, l upload.Lease) error {
	if s.dead.Load() {
		return errUnreachable
	}
	return s.Store.Release(ctx, l)
}

func (s *deadStore) ReleaseIfMissing(ctx context.Context, l upload.Lease, n int) (bool, error) {
	if s.dead.Load() {
		return false, errUnreachable
	}
	return s.Store.ReleaseIfMissing(ctx, l, n)
}

func (s *deadStore) Abandon(ctx context.Context, l upload.Lease) error {
	if s.dead.Load() {
		return errUnreachable
	}
	return s.Store.Abandon(ctx, l)
}

// TestRedeliveredMessageOutlivesADeadHoldersLease: an instance stops in the
// middle of a chunk and cannot let go of its lease; its message comes back
// at once, to an instance that finds the lease still held. That message
// must not be dropped (nothing else would ever relay the upload): it
// returns once the lease has expired.
func TestRedeliveredMessageOutlivesADeadHoldersLease(t *testing.T) {
	e := newEnv(t)
	si := newStandIns(t, youtubetest.Options{Slow: 3 * time.Second})
	const size = 3 * upload.MiB
	u := e.newUpload(t, size, youTubeDest("Dead holder"))
	file, sum := randomFile(t, size)
	dead := &deadStore{Store: e.store}
	stop := e.runSteps(t, worker.New(e.config("worker-a"), e.deps(dead, si.ytClient, si.atomCl)), 500*time.Millisecond)
	e.putPart(t, u, file, 0)
	waitFor(t, 30*time.Second, "the chunk in flight", func() bool {
		ss := si.yt.Sessions()
		return len(ss) == 1 && ss[0].Committed == size // committed; the answer waits in Slow
	})
	dead.dead.Store(true)
	stop() // the handler is cancelled mid-chunk and hands its message back
	if len(e.logs.With(t, "could not let go of the lease; it expires by itself")) == 0 {
		t.Fatal("the stopping instance let go of its lease; the test needs it held")
	}
	si.yt.SetSlow(0)
	e.startWorker(t, workerOpts{owner: "worker-b", yt: si.ytClient, atom: si.atomCl})
	_, v := si.videoOf(t, e, u, 60*time.Second)
	si.checkVideo(t, v, size, sum)
}

// failingSender fails the first send of a kind of follow-up message.
type failingSender struct {
	worker.Sender
	kind string
	done atomic.Bool
}

func (s *failingSender) SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	if strings.Contains(*in.MessageBody, `"kind":"`+s.kind+`"`) && s.done.CompareAndSwap(false, true) {
		return nil, errors.New("sqs unreachable")
	}
	return s.Sender.SendMessage(ctx, in, optFns...)
}

// TestPollsSurviveAFailedFollowUp: a poll that cannot send its successor
// fails and is retried; the chain of polls must not end there.
func TestPollsSurviveAFailedFollowUp(t *testing.T) {
	e := newEnv(t)
	si := newStandIns(t, youtubetest.Options{ProcessingSteps: 3})
	const size = 2 * upload.MiB
	u := e.newUpload(t, size, youTubeDest("Poll chain"))
	file, sum := randomFile(t, size)
	sender := &failingSender{Sender: e.st.SQS, kind: "youtubePoll"}
	deps := e.deps(e.store, si.ytClient, si.atomCl)
	deps.Queue = sender
	e.runSteps(t, worker.New(e.config("worker-a"), deps), 5*time.Second)
	e.putPart(t, u, file, 0)
	_, v := si.videoOf(t, e, u, 60*time.Second)
	si.checkVideo(t, v, size, sum)
	if !sender.done.Load() {
		t.Error("no follow-up send failed: the test did not test anything")
	}
}

// TestAssetIsAddedOnceTheAtomAPIRecovers: the atom API is down when YouTube
// has the video; the asset call is tried again until it lands, once.
func TestAssetIsAddedOnceTheAtomAPIRecovers(t *testing.T) {
	e := newEnv(t)
	si := newStandIns(t, youtubetest.Options{ProcessingSteps: 1})
	si.atom.FailNext(12) // more than two calls' worth of attempts
	const size = 2 * upload.MiB
	u := e.newUpload(t, size, youTubeDest("Asset later"))
	file, _ := randomFile(t, size)
	e.startWorker(t, workerOpts{yt: si.ytClient, atom: si.atomCl})
	e.putPart(t, u, file, 0)
	waitFor(t, 60*time.Second, "the asset", func() bool { return e.get(t, u).Destination(upload.YouTube).AssetAdded })
	if n := len(si.atom.Calls(u.AtomID)); n != 1 {
		t.Errorf("%d accepted asset calls, want 1", n)
	}
	if got := e.get(t, u); got.Status != upload.StatusComplete || got.Destination(upload.YouTube).Error != "" {
		t.Errorf("upload %s, youtube error %q; want complete without error", got.Status, got.Destination(upload.YouTube).Error)
	}
}

// copyRefused refuses every UploadPartCopy, as S3 does without permission
// (the SDK's error shape: an operation error around S3's API error).
type copyRefused struct{ worker.S3API }

func (copyRefused) UploadPartCopy(context.Context, *s3.UploadPartCopyInput, ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error) {
	return nil, &smithy.OperationError{ServiceID: "S3", OperationName: "UploadPartCopy",
		Err: &smithy.GenericAPIError{Code: "AccessDenied", Message: "the task role may not read the parts"}}
}

// TestLastTryFailsTheUploadReadably: work that fails on every try without
// progress ends in the DLQ, and its upload says why instead of staying
// "processing".
func TestLastTryFailsTheUploadReadably(t *testing.T) {
	e := newEnv(t, stacktest.Options{MaxReceiveCount: 2})
	cfg := e.config("worker-a")
	cfg.MaxAttempts = 2
	deps := e.deps(e.store, nil, nil)
	deps.S3 = copyRefused{e.st.S3}
	e.runSteps(t, worker.New(cfg, deps), 5*time.Second)
	u := e.newUpload(t, 3*upload.MiB)
	file, _ := randomFile(t, u.Size)
	e.putPart(t, u, file, 0)
	waitFor(t, 60*time.Second, "the upload to fail", func() bool { return e.get(t, u).Status == upload.StatusFailed })
	got := e.get(t, u)
	if !strings.Contains(got.Error, "gave up after 2 attempts without progress") || !strings.Contains(got.Error, "S3 refused: AccessDenied") {
		t.Errorf("error = %q, want it to say the service gave up and why", got.Error)
	}
	waitFor(t, 30*time.Second, "the message in the DLQ", func() bool { return e.queueDepth(t, e.st.DLQURL) == 1 })
}

// TestCancelStopsTheRelay: cancelling (as the API does: mark the record,
// abort the session) stops the relay for good; no new session is opened.
func TestCancelStopsTheRelay(t *testing.T) {
	e := newEnv(t)
	si := newStandIns(t, youtubetest.Options{Slow: 300 * time.Millisecond})
	const size = 12 * upload.MiB
	u := e.newUpload(t, size, youTubeDest("Cancelled"))
	file, _ := randomFile(t, size)
	e.startWorker(t, workerOpts{yt: si.ytClient, atom: si.atomCl, cfg: func(c *worker.Config) { c.MaxChunkBytes = upload.MiB }})
	for n := range u.PartCount() {
		e.putPart(t, u, file, n)
	}
	waitFor(t, 30*time.Second, "the relay to start", func() bool {
		ss := si.yt.Sessions()
		return len(ss) == 1 && ss[0].Committed > 0
	})
	var session string
	if _, err := e.store.Update(context.Background(), u.AtomID, u.ID, func(u *upload.Upload) error {
		session = u.Destination(upload.YouTube).Session
		return u.Cancel(time.Now())
	}); err != nil {
		t.Fatal(err)
	}
	if err := si.ytClient.Cancel(context.Background(), session); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the relay to stop", func() bool {
		visible, inFlight, delayed := e.queueCounts(t, e.st.QueueURL)
		return visible+inFlight+delayed == 0
	})
	ss := si.yt.Sessions()
	if len(ss) != 1 || ss[0].State != youtubetest.SessionCancelled || len(si.yt.Videos()) != 0 {
		t.Errorf("sessions %+v, videos %d: want the one session cancelled and no video", ss, len(si.yt.Videos()))
	}
	got := e.get(t, u)
	if d := got.Destination(upload.YouTube); got.Status != upload.StatusCancelled || d.Status != upload.DestFailed || d.Error != "cancelled" {
		t.Errorf("upload %s, youtube %s %q; want cancelled", got.Status, d.Status, d.Error)
	}
}

// TestExpiredSessionRestartsFromByteZero: YouTube forgets the session in
// the middle of the upload; the relay opens a new one and sends the file
// again from byte 0, re-reading the parts from S3.
func TestExpiredSessionRestartsFromByteZero(t *testing.T) {
	e := newEnv(t)
	si := newStandIns(t, youtubetest.Options{})
	const size = 3*5*upload.MiB + 17
	u := e.newUpload(t, size, youTubeDest("Expired session"))
	file, sum := randomFile(t, size)
	e.startWorker(t, workerOpts{yt: si.ytClient, atom: si.atomCl})
	e.putPart(t, u, file, 0)
	waitFor(t, 30*time.Second, "part 0 on YouTube", func() bool {
		ss := si.yt.Sessions()
		return len(ss) == 1 && ss[0].Committed == 5*upload.MiB
	})
	si.yt.ExpireAllSessions()
	for n := 1; n < u.PartCount(); n++ {
		e.putPart(t, u, file, n)
	}
	_, v := si.videoOf(t, e, u, 60*time.Second)
	si.checkVideo(t, v, size, sum)
	if v.Sessions != 2 || v.Chunks[0].Start != 0 {
		t.Errorf("video from %d sessions, first chunk at %d; want a second session from byte 0", v.Sessions, v.Chunks[0].Start)
	}
}

// countingCopies counts UploadPartCopy calls in flight.
type countingCopies struct {
	worker.S3API
	mu       sync.Mutex
	now, max int
}

func (c *countingCopies) UploadPartCopy(ctx context.Context, in *s3.UploadPartCopyInput, opts ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error) {
	c.mu.Lock()
	c.now++
	c.max = max(c.max, c.now)
	c.mu.Unlock()
	defer func() { c.mu.Lock(); c.now--; c.mu.Unlock() }()
	time.Sleep(50 * time.Millisecond) // long enough for the copies to overlap
	return c.S3API.UploadPartCopy(ctx, in, opts...)
}

// TestReassemblyParallelismIsBounded: the copies run side by side, at most
// reassemblyParallelism at once.
func TestReassemblyParallelismIsBounded(t *testing.T) {
	e := newEnv(t)
	cfg := e.config("worker-a")
	cfg.ReassemblyParallelism = 3
	copies := &countingCopies{S3API: e.st.S3}
	deps := e.deps(e.store, nil, nil)
	deps.S3 = copies
	e.runSteps(t, worker.New(cfg, deps), 5*time.Second)
	const size = 8 * 5 * upload.MiB
	u := e.newUpload(t, size)
	file, sum := randomFile(t, size)
	for n := range u.PartCount() {
		e.putPart(t, u, file, n)
	}
	e.reassembledOnce(t, u, sum)
	if copies.max != 3 {
		t.Errorf("at most %d copies at once, want 3 (parallel, and bounded)", copies.max)
	}
}

// losingStore reports the youtube lease lost on one progress write, as if
// another instance had taken it over, and notes how many chunks YouTube had
// then and when the writer let go.
type losingStore struct {
	worker.Store
	yt              *youtubetest.Server
	lost            atomic.Bool
	atLoss, atLetGo int
	mu              sync.Mutex
}

func (s *losingStore) UpdateHolding(ctx context.Context, l upload.Lease, fn func(*upload.Upload) error) (*upload.Upload, error) {
	u, err := s.Store.UpdateHolding(ctx, l, fn)
	if err == nil && l.Name == upload.LeaseYouTube && u.Destination(upload.YouTube).UploadedBytes > 0 && s.lost.CompareAndSwap(false, true) {
		s.mu.Lock()
		s.atLoss = s.yt.Requests()[youtubetest.KindChunk]
		s.mu.Unlock()
		return nil, upload.ErrLeaseLost
	}
	return u, err
}

func (s *losingStore) Abandon(ctx context.Context, l upload.Lease) error {
	s.mu.Lock()
	if s.lost.Load() && s.atLetGo == 0 {
		s.atLetGo = s.yt.Requests()[youtubetest.KindChunk]
	}
	s.mu.Unlock()
	return s.Store.Abandon(ctx, l)
}

// TestLostLeaseStopsTheWriterAtOnce: a writer that learns it lost the lease
// sends YouTube nothing more.
func TestLostLeaseStopsTheWriterAtOnce(t *testing.T) {
	e := newEnv(t)
	si := newStandIns(t, youtubetest.Options{})
	const size = 3 * upload.MiB
	u := e.newUpload(t, size, youTubeDest("Lost lease"))
	file, sum := randomFile(t, size)
	ls := &losingStore{Store: e.store, yt: si.yt}
	cfg := e.config("worker-a")
	cfg.MaxChunkBytes = upload.MiB
	e.runSteps(t, worker.New(cfg, e.deps(ls, si.ytClient, si.atomCl)), 5*time.Second)
	e.putPart(t, u, file, 0)
	_, v := si.videoOf(t, e, u, 60*time.Second)
	si.checkVideo(t, v, size, sum)
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if !ls.lost.Load() || ls.atLetGo != ls.atLoss {
		t.Errorf("chunks sent: %d when the lease was lost, %d when the writer let go; want no chunk in between", ls.atLoss, ls.atLetGo)
	}
}
