package worker_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"atomuploads/devstack"
	"atomuploads/upload"
	"atomuploads/worker"
)

// sendEvent puts an S3 ObjectCreated event for key straight on the queue,
// as anyone who can send to it could.
func (e *env) sendEvent(t testing.TB, key string, size int64) {
	t.Helper()
	body := fmt.Sprintf(`{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":%q,"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":%q},"object":{"key":%q,"size":%d}}}]}`,
		e.st.AWS.Region, e.st.Bucket, devstack.EncodeKey(key), size)
	if _, err := e.st.SQS.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(e.st.QueueURL), MessageBody: aws.String(body)}); err != nil {
		t.Fatal(err)
	}
}

// TestForgedEventsChangeNothing: an event is a hint, not a fact. A forged
// event of the original of an upload that is still uploading starts no
// transcode; a forged event of a part far outside the plan, with no
// object behind it, and a stray object outside the plan that does exist,
// are logged and ignored: the live upload goes on and completes.
func TestForgedEventsChangeNothing(t *testing.T) {
	e := newEnv(t)
	ff := e.startFFmpeg(t)
	e.startWorker(t, workerOpts{tc: ff})
	video := testVideo(t)
	h := sha256.Sum256(video)
	sum := hex.EncodeToString(h[:])
	u := e.newUpload(t, int64(len(video)))
	e.sendEvent(t, u.FullKey(), u.Size)
	e.sendEvent(t, u.PartKey(99999), 5*upload.MiB)
	e.putObject(t, u.PartKey(u.PartCount()+3), []byte("not in the plan"))
	waitFor(t, 30*time.Second, "the forged events to be handled", func() bool {
		return len(e.logs.With(t, "ignored an original the record does not know as assembled")) == 1 &&
			len(e.logs.With(t, "ignored an event of a part that is not in S3")) == 1 &&
			len(e.logs.With(t, "ignored an object outside the plan")) == 1
	})
	got := e.get(t, u)
	if got.Status != upload.StatusUploading || got.Destination(upload.S3Bucket).JobID != "" || got.Error != "" {
		t.Fatalf("upload %s, job %q, error %q after forged events; want it untouched", got.Status, got.Destination(upload.S3Bucket).JobID, got.Error)
	}
	for n := range u.PartCount() {
		e.putPart(t, u, video, n)
	}
	e.reassembledOnce(t, u, sum)
	waitFor(t, 120*time.Second, "the upload to complete", func() bool { return e.get(t, u).Status.Terminal() })
	if got := e.get(t, u); got.Status != upload.StatusComplete {
		t.Errorf("upload %s %q, want complete", got.Status, got.Error)
	}
}

// panicOnce is a store whose first Get of one upload panics, as a bug in a
// step would.
type panicOnce struct {
	worker.Store
	id     string
	panics atomic.Int32
}

func (s *panicOnce) Get(ctx context.Context, atomID, id string) (*upload.Upload, error) {
	if id == s.id && s.panics.CompareAndSwap(0, 1) {
		panic("a bug in a step")
	}
	return s.Store.Get(ctx, atomID, id)
}

// TestAPanickingStepIsRetried: a panic while a message is handled is
// recovered and logged once with the message's id; the process goes on
// handling other messages, and the message is retried and completes.
func TestAPanickingStepIsRetried(t *testing.T) {
	e := newEnv(t)
	other := e.newUpload(t, 3*upload.MiB)
	u := e.newUpload(t, 3*upload.MiB)
	st := &panicOnce{Store: e.store, id: u.ID}
	e.runSteps(t, worker.New(e.config("worker-a"), e.deps(st, nil, nil)), 5*time.Second)
	file, sum := randomFile(t, u.Size)
	e.putPart(t, u, file, 0)
	e.putPart(t, other, file, 0)
	e.reassembledOnce(t, other, sum)
	e.reassembledOnce(t, u, sum)
	lines := e.logs.With(t, "recovered from a panic")
	if len(lines) != 1 || lines[0]["messageId"] == nil || lines[0]["stack"] == nil {
		t.Errorf("panic log lines %v, want one with the message id and the stack", lines)
	}
}
