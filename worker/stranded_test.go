package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"atomuploads/upload"
	"atomuploads/worker"
	"atomuploads/youtube/youtubetest"
)

// startSweeper runs the reconciler and the dead-letter reader of one
// instance until the test ends.
func (e *env) startSweeper(t testing.TB, owner string, strandedAfter time.Duration) {
	t.Helper()
	s := worker.NewSweeper(worker.SweepConfig{
		Owner: owner, Interval: 500 * time.Millisecond, LeaseTTL: 3 * time.Second,
		QueueURL: e.st.QueueURL, DeadLetterURL: e.st.DLQURL, StrandedAfter: strandedAfter,
		MaxChunkBytes: 8 * upload.MiB, YouTube: true, Transcode: true, AtomAPI: true,
	}, e.store, e.st.SQS, nil, nil, e.log)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
}

// TestPoisonedRelayFailsReadablyThroughTheDLQ: YouTube refuses every call
// with a temporary error, so no relay attempt makes progress. After
// maxAttempts of them the work is given up: the YouTube destination fails
// with a readable reason, the work goes to the dead-letter queue, and the
// dead-letter reader removes it there, having nothing more to fail. The
// s3Bucket destination goes on.
func TestPoisonedRelayFailsReadablyThroughTheDLQ(t *testing.T) {
	e := newEnv(t)
	si := newStandIns(t, youtubetest.Options{})
	si.yt.FailNext(1 << 20)
	// Each relay turn holds its lease through the step retries' pauses
	// (about 10 s): a lease of 15 s keeps a stall of the loaded local
	// DynamoDB (a renewal that does not answer for 2/3 of a 5 s TTL ends
	// the turn, rightly) from turning the cause into a lost lease.
	e.startWorker(t, workerOpts{yt: si.ytClient, atom: si.atomCl, cfg: func(c *worker.Config) { c.MaxAttempts, c.LeaseTTL = 2, 15*time.Second }})
	const size = 6 * upload.MiB
	u := e.newUpload(t, size, youTubeDest("Poisoned"), upload.DestinationRequest{Type: upload.S3Bucket})
	file, sum := randomFile(t, size)
	for n := range u.PartCount() {
		e.putPart(t, u, file, n)
	}
	waitFor(t, 90*time.Second, "the YouTube destination to fail", func() bool {
		return e.get(t, u).Destination(upload.YouTube).Status == upload.DestFailed
	})
	d := e.get(t, u).Destination(upload.YouTube)
	if !strings.Contains(d.Error, "gave up after 2 attempts without progress") || !strings.Contains(d.Error, "YouTube answered backendError") {
		t.Errorf("error = %q, want it to say it gave up and why, in words", d.Error)
	}
	waitFor(t, 30*time.Second, "the given-up work in the DLQ", func() bool { return e.queueDepth(t, e.st.DLQURL) >= 1 })
	e.reassembledOnce(t, u, sum)
	if s := e.get(t, u).Destination(upload.S3Bucket).Status; s == upload.DestFailed {
		t.Errorf("s3Bucket destination %s: YouTube's failure must not fail it", s)
	}

	e.startSweeper(t, "sweeper-a", time.Minute)
	waitFor(t, 30*time.Second, "the dead-letter reader to remove it", func() bool { return e.queueDepth(t, e.st.DLQURL) == 0 })
	if n := len(e.logs.With(t, "removed a dead letter of work already given up")); n < 1 {
		t.Errorf("%d removal log lines, want at least 1", n)
	}
}

// TestDeadLettersFailTheirWorkReadably: messages the queue's redrive policy
// moved to the DLQ (their handlers kept dying) fail the work they carry,
// with a readable error, once; a message of no upload stays for ops.
func TestDeadLettersFailTheirWorkReadably(t *testing.T) {
	e := newEnv(t)
	u := e.newUpload(t, 6*upload.MiB, youTubeDest("Dead letter"), upload.DestinationRequest{Type: upload.S3Bucket})
	ctx := testCtx(t, 2*time.Minute)
	for _, body := range []string{
		`{"atomUploads":{"kind":"relay","atomId":"` + u.AtomID + `","uploadId":"` + u.ID + `","failures":1,"cause":"YouTube answered backendError"}}`,
		`{"hello":"ops"}`,
	} {
		if _, err := e.st.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(e.st.DLQURL), MessageBody: aws.String(body)}); err != nil {
			t.Fatal(err)
		}
	}
	e.startSweeper(t, "sweeper-a", time.Minute)
	waitFor(t, 30*time.Second, "the YouTube destination to fail", func() bool {
		return e.get(t, u).Destination(upload.YouTube).Status == upload.DestFailed
	})
	got := e.get(t, u)
	if d := got.Destination(upload.YouTube); !strings.Contains(d.Error, "gave up after") || !strings.Contains(d.Error, "YouTube answered backendError") {
		t.Errorf("youtube error = %q, want the readable reason", d.Error)
	}
	if s := got.Destination(upload.S3Bucket).Status; s != upload.DestWaiting {
		t.Errorf("s3Bucket destination %s, want it untouched (waiting)", s)
	}
	waitFor(t, 30*time.Second, "the reader to leave the foreign message for ops", func() bool {
		return len(e.logs.With(t, "left a dead letter of no upload for ops")) == 1
	})
	if n := len(e.logs.With(t, "failed work from the dead-letter queue")); n != 1 {
		t.Errorf("%d failure log lines, want 1", n)
	}
	if visible, inFlight, _ := e.queueCounts(t, e.st.DLQURL); visible != 0 || inFlight != 1 {
		t.Errorf("DLQ visible %d, in flight %d; want only the foreign message, out of sight", visible, inFlight)
	}
}

// TestReconcilerRedrivesAnUploadNobodyDrives: every part of an upload is
// in and recorded, but the messages that would drive its relay and its
// reassembly are gone. The reconciler finds it after strandedAfter and
// re-drives it to completion.
func TestReconcilerRedrivesAnUploadNobodyDrives(t *testing.T) {
	e := newEnv(t)
	si := newStandIns(t, youtubetest.Options{ProcessingSteps: 1})
	const size = 11 * upload.MiB
	u := e.newUpload(t, size, youTubeDest("Stranded"), upload.DestinationRequest{Type: upload.S3Bucket})
	file, sum := randomFile(t, size)
	ctx := testCtx(t, 2*time.Minute)
	for n := range u.PartCount() {
		e.putPart(t, u, file, n)
		if _, err := e.store.CompletePart(ctx, u.AtomID, u.ID, n); err != nil {
			t.Fatal(err)
		}
	}
	// The driving messages are lost: take every event off the queue.
	waitFor(t, 30*time.Second, "the part events", func() bool { return e.queueDepth(t, e.st.QueueURL) >= u.PartCount() })
	for e.queueDepth(t, e.st.QueueURL) > 0 {
		out, err := e.st.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(e.st.QueueURL), MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			if _, err := e.st.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(e.st.QueueURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.startWorker(t, workerOpts{yt: si.ytClient, atom: si.atomCl})
	e.startSweeper(t, "sweeper-a", 3*time.Second)
	_, v := si.videoOf(t, e, u, 60*time.Second)
	si.checkVideo(t, v, size, sum)
	e.reassembledOnce(t, u, sum)
	lines := e.logs.With(t, "re-driven")
	kinds := map[any]bool{}
	for _, l := range lines {
		kinds[l["kind"]] = true
		if l["atomId"] != u.AtomID || l["uploadId"] != u.ID || l["reason"] == nil {
			t.Errorf("re-driven line without the ids and reason: %v", l)
		}
	}
	if !kinds["relay"] || !kinds["reassemble"] {
		t.Errorf("re-driven kinds %v, want relay and reassemble", kinds)
	}
}
