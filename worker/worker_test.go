package worker_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"atomuploads/devstack/stacktest"
	"atomuploads/upload"
	"atomuploads/worker"
	"atomuploads/youtube/youtubetest"
)

// reassembledOnce waits for the upload's full object and checks it.
func (e *env) reassembledOnce(t *testing.T, u *upload.Upload, want string) {
	t.Helper()
	waitFor(t, 60*time.Second, "reassembly", func() bool { return e.get(t, u).Assembled })
	got := e.get(t, u)
	if !got.AllPartsComplete() || got.Status != upload.StatusProcessing {
		t.Errorf("record: parts %v of %d, status %s; want all parts and processing", got.CompletedParts(), got.PartCount(), got.Status)
	}
	sum, n := e.objectSHA256(t, e.st.Bucket, u.FullKey())
	if sum != want || n != u.Size {
		t.Errorf("full object: %d bytes sha256 %s, want %d bytes %s", n, sum, u.Size, want)
	}
	mpus, err := e.st.S3.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(e.st.Bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(mpus.Uploads) != 0 {
		t.Errorf("%d multipart uploads left behind", len(mpus.Uploads))
	}
}

func TestPartsOutOfOrderAndTwiceMakeOneFullObject(t *testing.T) {
	e := newEnv(t)
	const size = 4*5*upload.MiB + 123457 // 5 parts, the last one short
	u := e.newUpload(t, size)
	file, sum := randomFile(t, size)
	e.startWorker(t, workerOpts{})
	for _, n := range []int{3, 0, 4, 0, 2, 3} { // part 1 comes last
		e.putPart(t, u, file, n)
	}
	waitFor(t, 30*time.Second, "parts 0, 2, 3 and 4", func() bool { return len(e.get(t, u).Completed) == 4 })
	waitFor(t, 10*time.Second, "the duplicate events", func() bool {
		visible, inFlight, delayed := e.queueCounts(t, e.st.QueueURL)
		return visible+inFlight+delayed == 0
	})
	if got := e.get(t, u); got.Assembled {
		t.Fatal("reassembled before every part was in")
	}
	e.putPart(t, u, file, 1)
	e.reassembledOnce(t, u, sum)
	if n := len(e.logs.With(t, "reassembled")); n != 1 {
		t.Errorf("reassembled %d times, want once", n)
	}
	if n := len(e.logs.With(t, "part complete")); n != 5 {
		t.Errorf("%d part-complete lines, want 5 (duplicates are not new states)", n)
	}
	for _, l := range e.logs.With(t, "part complete") {
		for _, f := range []string{"atomId", "uploadId", "part", "bytes"} {
			if _, ok := l[f]; !ok {
				t.Errorf("log line %v lacks %s", l, f)
			}
		}
	}
}

func TestThreeWorkersOneQueueOneReassembly(t *testing.T) {
	e := newEnv(t)
	const size = 7*5*upload.MiB + 99 // 8 parts
	u := e.newUpload(t, size)
	file, sum := randomFile(t, size)
	for i := range 3 {
		e.startWorker(t, workerOpts{owner: fmt.Sprintf("worker-%d", i+1)})
	}
	order := rand.Perm(u.PartCount())
	order = append(order, order[:3]...) // three duplicates
	for _, n := range order {
		e.putPart(t, u, file, n)
	}
	e.reassembledOnce(t, u, sum)
	if n := len(e.logs.With(t, "reassembled")); n != 1 {
		t.Errorf("reassembled %d times, want once", n)
	}
	for _, msg := range []string{"message failed; it will be retried", "request failed"} {
		if l := e.logs.With(t, msg); len(l) > 0 {
			t.Errorf("errors logged: %v", l)
		}
	}
	waitFor(t, 10*time.Second, "an empty queue", func() bool { return e.queueDepth(t, e.st.QueueURL) == 0 })
}

func TestBadEventsAreLoggedAndDeleted(t *testing.T) {
	e := newEnv(t)
	u := e.newUpload(t, 6*upload.MiB)
	e.startWorker(t, workerOpts{})
	ctx := testCtx(t, time.Minute)
	// A foreign key, an unknown upload and a key outside the layout arrive
	// through S3; malformed bodies and an unknown own kind are sent straight
	// to the queue. The s3:TestEvent of the set-up is already there.
	e.putObject(t, "uploads/atom-1/not-an-upload-id/parts/0", []byte("x"))
	e.putObject(t, "uploads/atom-1/01JZ4Q7V9X8Y6W5T3S2R1P0N9M/parts/0", []byte("x"))
	e.putObject(t, "uploads/atom-1/"+u.ID+"/parts/x", []byte("x"))
	for _, body := range []string{"not json", `{"atomUploads":{"kind":"explode"}}`, `{"hello":"world"}`} {
		if _, err := e.st.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(e.st.QueueURL), MessageBody: aws.String(body)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "every bad event to be handled", func() bool {
		return len(e.logs.With(t, "ignored a key outside the upload layout")) == 2 &&
			len(e.logs.With(t, "ignored an event of an unknown upload")) == 1 &&
			len(e.logs.With(t, "ignored a message that is not an event")) == 2 &&
			len(e.logs.With(t, "dead-lettered a message of an unknown kind")) == 1 &&
			len(e.logs.With(t, "ignored s3:TestEvent")) == 1
	})
	waitFor(t, 10*time.Second, "an empty queue", func() bool { return e.queueDepth(t, e.st.QueueURL) == 0 })
	// An own message of a kind this version does not know (a newer
	// version's, during a deployment) is kept for ops, never looped.
	if n := e.queueDepth(t, e.st.DLQURL); n != 1 {
		t.Errorf("%d messages in the DLQ, want 1 (the unknown kind)", n)
	}
	for _, l := range e.logs.With(t, "ignored an event of an unknown upload") {
		if l["uploadId"] != "01JZ4Q7V9X8Y6W5T3S2R1P0N9M" || l["messageId"] == nil || l["key"] == nil {
			t.Errorf("log line lacks the ids: %v", l)
		}
	}
	if got := e.get(t, u); got.Status != upload.StatusUploading {
		t.Errorf("status %s: a bad event changed the upload", got.Status)
	}
}

func TestWrongSizePartFailsTheUpload(t *testing.T) {
	e := newEnv(t)
	si := newStandIns(t, youtubetest.Options{})
	u := e.newUpload(t, 12*upload.MiB, youTubeDest("Wrong size"), upload.DestinationRequest{Type: upload.S3Bucket})
	e.startWorker(t, workerOpts{yt: si.ytClient, atom: si.atomCl})
	e.putObject(t, u.PartKey(1), make([]byte, 1234)) // part 1 is planned as 5 MiB
	waitFor(t, 30*time.Second, "the upload to fail", func() bool { return e.get(t, u).Status == upload.StatusFailed })
	got := e.get(t, u)
	want := "part 1 is 1234 bytes but the plan expects 5242880 (bytes 5242880–10485760 of the file)"
	if !strings.Contains(got.Error, want) {
		t.Errorf("error = %q, want it to say %q", got.Error, want)
	}
	if d := got.Destination(upload.S3Bucket); d.Status != upload.DestFailed || d.Error == "" {
		t.Errorf("destination = %s %q, want failed with the reason", d.Status, d.Error)
	}
	if got.Completed[1] {
		t.Error("the wrong-size part was marked complete")
	}
	if l := e.logs.With(t, "upload failed"); len(l) != 1 || l[0]["part"] != float64(1) {
		t.Errorf("failure log lines = %v, want one naming part 1", l)
	}
	// Later parts of a failed upload are ignored, not retried, and
	// YouTube never gets a byte of it.
	e.putObject(t, u.PartKey(0), make([]byte, 5*upload.MiB))
	waitFor(t, 30*time.Second, "the late part to be ignored", func() bool {
		return len(e.logs.With(t, "ignored an event of a finished upload")) == 1
	})
	if n, s := si.yt.BytesReceived(), len(si.yt.Sessions()); n != 0 || s != 0 {
		t.Errorf("YouTube got %d bytes in %d sessions, want none", n, s)
	}
}

// failing fails every message, as a poison message would.
type failing struct{ calls atomic.Int32 }

func (f *failing) Handle(context.Context, worker.Message) worker.Result {
	f.calls.Add(1)
	return worker.Result{Err: errors.New("poison")}
}

func TestPoisonMessageEndsInTheDLQ(t *testing.T) {
	e := newEnv(t, stacktest.Options{MaxReceiveCount: 2})
	h := &failing{}
	e.startPool(t, worker.PoolConfig{QueueURL: e.st.QueueURL, Concurrency: 2, Visibility: 10 * time.Second, WaitTime: time.Second}, h, e.log, time.Second)
	// The set-up's s3:TestEvent is the poison here: this handler fails it.
	waitFor(t, 60*time.Second, "the message in the DLQ", func() bool { return e.queueDepth(t, e.st.DLQURL) == 1 })
	if n := h.calls.Load(); n != 2 {
		t.Errorf("handled %d times, want 2 (maxReceiveCount)", n)
	}
	if n := e.queueDepth(t, e.st.QueueURL); n != 0 {
		t.Errorf("%d messages left on the queue", n)
	}
}

// slow delays every message, as a long step does.
type slow struct {
	next    worker.Handler
	started chan struct{}
	once    atomic.Bool
}

func (s *slow) Handle(ctx context.Context, m worker.Message) worker.Result {
	if s.once.CompareAndSwap(false, true) {
		close(s.started)
	}
	select {
	case <-ctx.Done():
		return worker.Result{Err: ctx.Err()}
	case <-time.After(time.Hour):
	}
	return s.next.Handle(ctx, m)
}

func TestShutdownHandsBackWorkInFlight(t *testing.T) {
	e := newEnv(t)
	// Drain the set-up's test event first.
	stop := e.startWorker(t, workerOpts{})
	waitFor(t, 30*time.Second, "the test event", func() bool { return len(e.logs.With(t, "ignored s3:TestEvent")) == 1 })
	stop()

	u := e.newUpload(t, 3*upload.MiB) // one part
	file, sum := randomFile(t, u.Size)
	h := &slow{next: nil, started: make(chan struct{})}
	stopPool := e.startPool(t, worker.PoolConfig{QueueURL: e.st.QueueURL, Concurrency: 2, Visibility: 30 * time.Second, WaitTime: time.Second}, h, e.log, 2*time.Second)
	e.putPart(t, u, file, 0)
	<-h.started
	began := time.Now()
	stopPool() // SIGTERM
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("stopping took %s, far more than the 2s grace", took)
	}
	// The message went back to the queue at once, not after its 30 s
	// visibility: it is visible now, and the next worker (a restarted
	// process) completes the upload.
	out, err := e.st.SQS.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(e.st.QueueURL), MaxNumberOfMessages: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Messages) != 1 {
		t.Fatalf("received %d messages right after the stop, want the one handed back", len(out.Messages))
	}
	// Put it back for the next worker.
	if _, err := e.st.SQS.ChangeMessageVisibility(context.Background(), &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(e.st.QueueURL), ReceiptHandle: out.Messages[0].ReceiptHandle, VisibilityTimeout: 0,
	}); err != nil {
		t.Fatal(err)
	}
	e.startWorker(t, workerOpts{owner: "worker-2"})
	e.reassembledOnce(t, u, sum)
}
