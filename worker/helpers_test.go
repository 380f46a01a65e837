package worker_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"

	"atomuploads/devstack/stacktest"
	"atomuploads/store"
	"atomuploads/upload"
	"atomuploads/worker"
)

// env is one test's stack, table and workers.
type env struct {
	st    *stacktest.Stack
	store *store.Store
	log   *zap.Logger
	logs  *stacktest.Logs
}

func newEnv(t testing.TB, opts ...stacktest.Options) *env {
	t.Helper()
	st := stacktest.New(t, opts...)
	log, logs := stacktest.NewLogger(t)
	return &env{st: st, store: store.New(st.DynamoDB, st.Table, time.Hour), log: log, logs: logs}
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newUpload creates an upload record planned in 5 MiB parts.
func (e *env) newUpload(t testing.TB, size int64, dests ...upload.DestinationRequest) *upload.Upload {
	t.Helper()
	return e.newUploadWithSum(t, size, "", dests...)
}

// newUploadWithSum creates an upload record planned in 5 MiB parts whose
// start request named the file's SHA-256 (when sum is not empty).
func (e *env) newUploadWithSum(t testing.TB, size int64, sum string, dests ...upload.DestinationRequest) *upload.Upload {
	t.Helper()
	if len(dests) == 0 {
		dests = []upload.DestinationRequest{{Type: upload.S3Bucket}}
	}
	id, err := upload.NewID(time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, err := upload.New(upload.StartRequest{Filename: "clip.mp4", Size: size, ContentType: "video/mp4", Destinations: dests, SHA256: sum},
		"atom-1", id, time.Now(), e.st.AWS.Region, e.st.Bucket, 5*upload.MiB)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.Create(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u
}

// randomFile returns size random bytes and their sha256.
func randomFile(t testing.TB, size int64) ([]byte, string) {
	t.Helper()
	b := make([]byte, size)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

// putPart puts part n of file as the browser would.
func (e *env) putPart(t testing.TB, u *upload.Upload, file []byte, n int) {
	t.Helper()
	p, _ := u.Part(n)
	e.putObject(t, u.PartKey(n), file[p.Start:p.End])
}

func (e *env) putObject(t testing.TB, key string, data []byte) {
	t.Helper()
	_, err := e.st.S3.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(e.st.Bucket), Key: aws.String(key), Body: bytes.NewReader(data),
	})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func (e *env) objectSHA256(t testing.TB, bucket, key string) (string, int64) {
	t.Helper()
	out, err := e.st.S3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

// workerOpts are the collaborators of one worker instance.
type workerOpts struct {
	owner string
	yt    worker.YouTube
	tc    worker.Transcoder
	atom  worker.AtomAPI
	grace time.Duration
	cfg   func(*worker.Config)
	// concurrency of the pool; 8 unless set
	concurrency int
}

// config is the steps' configuration of the tests: short leases and polls.
func (e *env) config(owner string) worker.Config {
	return worker.Config{
		QueueURL:              e.st.QueueURL,
		Bucket:                e.st.Bucket,
		Owner:                 owner,
		LeaseTTL:              5 * time.Second,
		PollInterval:          time.Second,
		ReassemblyParallelism: 4,
		MaxChunkBytes:         8 * upload.MiB,
		MaxTranscodeAttempts:  3,
		MaxAttempts:           20,
		MaxReceiveCount:       5,
		DeadLetterURL:         e.st.DLQURL,
		RetryBackoff:          100 * time.Millisecond,
		MaxRetryDelay:         2 * time.Second,
	}
}

// startWorker runs one worker instance (a pool and its steps, as main
// wires them) until the test ends or stop is called.
func (e *env) startWorker(t testing.TB, o workerOpts) (stop func()) {
	t.Helper()
	if o.owner == "" {
		o.owner = "worker-1"
	}
	if o.grace == 0 {
		o.grace = 10 * time.Second
	}
	cfg := e.config(o.owner)
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	var yt worker.YouTube
	if o.yt != nil {
		yt = o.yt
	}
	log := e.log.With(zap.String("owner", o.owner))
	d := worker.New(cfg, worker.Deps{Store: e.store, Queue: e.st.SQS, S3: e.st.S3, YouTube: yt, Transcoder: o.tc, AtomAPI: o.atom, Log: log})
	return e.startPool(t, worker.PoolConfig{
		QueueURL:      e.st.QueueURL,
		DeadLetterURL: e.st.DLQURL,
		Concurrency:   max(o.concurrency, 8),
		Visibility:    30 * time.Second,
		WaitTime:      time.Second,
	}, d, log, o.grace)
}

// deps are the collaborators of a Dispatcher on the test's stack, with
// the given store (a wrapper of e.store, to inject faults).
func (e *env) deps(st worker.Store, yt worker.YouTube, atom worker.AtomAPI) worker.Deps {
	return worker.Deps{Store: st, Queue: e.st.SQS, S3: e.st.S3, YouTube: yt, AtomAPI: atom, Log: e.log}
}

// startPool runs a pool over h until the test ends or stop is called;
// stop gives the work in flight grace to finish, as a SIGTERM does.
func (e *env) startPool(t testing.TB, cfg worker.PoolConfig, h worker.Handler, log *zap.Logger, grace time.Duration) (stop func()) {
	t.Helper()
	pool := worker.NewPool(e.st.SQS, cfg, h, log)
	if err := pool.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), grace)
			defer cancel()
			if err := pool.Stop(ctx); err != nil {
				t.Errorf("stop pool: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) get(t testing.TB, u *upload.Upload) *upload.Upload {
	t.Helper()
	got, err := e.store.Get(context.Background(), u.AtomID, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// queueDepth is the number of messages on a queue, visible or not.
func (e *env) queueDepth(t testing.TB, url string) int {
	t.Helper()
	visible, inFlight, delayed := e.queueCounts(t, url)
	return visible + inFlight + delayed
}

// queueCounts are a queue's visible, in-flight and delayed messages.
func (e *env) queueCounts(t testing.TB, url string) (visible, inFlight, delayed int) {
	t.Helper()
	out, err := e.st.SQS.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"},
	})
	if err != nil {
		t.Fatal(err)
	}
	n := func(name string) int {
		v, err := strconv.Atoi(out.Attributes[name])
		if err != nil {
			t.Fatalf("queue attribute %s = %q: %v", name, out.Attributes[name], err)
		}
		return v
	}
	return n("ApproximateNumberOfMessages"), n("ApproximateNumberOfMessagesNotVisible"), n("ApproximateNumberOfMessagesDelayed")
}
