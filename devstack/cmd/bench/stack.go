package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap"

	"atomuploads/devstack"
	"atomuploads/store"
	"atomuploads/upload"
	"atomuploads/worker"
	"atomuploads/youtube/youtubetest"
)

// resources makes a fresh bucket, queue and table.
func (b *bench) resources(ctx context.Context, name string) (devstack.Resources, devstack.Created, error) {
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	r := devstack.Resources{Bucket: name + "-" + hex.EncodeToString(suffix), Table: name + "-" + hex.EncodeToString(suffix)}
	c, err := devstack.Setup(ctx, b.clients, r)
	return r, c, err
}

// part returns the bytes of part n of a synthetic file: pseudo-random,
// reproducible from the seed.
func part(seed uint64, u *upload.Upload, n int) []byte {
	p, _ := u.Part(n)
	buf := make([]byte, p.Size())
	rng := mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(n), byte(n >> 8), byte(n >> 16)})
	_, _ = rng.Read(buf)
	return buf
}

// putParts puts every part in order, at most rate MB/s if rate > 0, and
// returns the sha256 of the file and when the last part was in.
func (b *bench) putParts(ctx context.Context, bucket string, u *upload.Upload, seed uint64, rate float64) (string, time.Time, error) {
	h := sha256.New()
	start := time.Now()
	var sent int64
	for n := range u.PartCount() {
		data := part(seed, u, n)
		h.Write(data)
		if _, err := b.clients.S3.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(u.PartKey(n)), Body: bytes.NewReader(data),
		}); err != nil {
			return "", time.Time{}, fmt.Errorf("put part %d: %w", n, err)
		}
		sent += int64(len(data))
		if n == u.PartCount()-1 {
			break // the last part is in: no pacing after it
		}
		if rate > 0 {
			due := start.Add(time.Duration(float64(sent) / (rate * 1e6) * float64(time.Second)))
			time.Sleep(time.Until(due))
		}
	}
	return hex.EncodeToString(h.Sum(nil)), time.Now(), nil
}

func (b *bench) newUpload(ctx context.Context, db *store.Store, bucket string, size int64, title string) (*upload.Upload, error) {
	id, err := upload.NewID(time.Now(), rand.Reader)
	if err != nil {
		return nil, err
	}
	u, err := upload.New(upload.StartRequest{
		Filename: "bench.mp4", Size: size, ContentType: "video/mp4",
		Destinations: []upload.DestinationRequest{{Type: upload.YouTube, YouTube: upload.YouTubeMetadata{Title: title}}},
	}, "bench", id, time.Now(), b.aws.Region, bucket, b.f.partSize)
	if err != nil {
		return nil, err
	}
	return u, db.Create(ctx, u)
}

// worker runs one in-process worker instance until stop is called.
func (b *bench) worker(r devstack.Resources, c devstack.Created, db *store.Store) (stop func()) {
	d := worker.New(worker.Config{
		QueueURL: c.QueueURL, Bucket: r.Bucket, Owner: "bench", LeaseTTL: 20 * time.Second, PollInterval: time.Minute,
		ReassemblyParallelism: 8, MaxChunkBytes: maxChunk, MaxTranscodeAttempts: 3, MaxAttempts: 20, MaxReceiveCount: 5,
	}, worker.Deps{Store: db, Queue: b.clients.SQS, S3: b.clients.S3, YouTube: b.client, Log: benchLog()})
	pool := worker.NewPool(b.clients.SQS, worker.PoolConfig{QueueURL: c.QueueURL, Concurrency: 16, Visibility: time.Minute, WaitTime: time.Second}, d, zap.NewNop())
	if err := pool.Start(context.Background()); err != nil {
		panic(err) // only a second Start fails
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = pool.Stop(ctx)
	}
}

// videoDone waits until the stand-in has a video with the title.
func (b *bench) videoDone(ctx context.Context, title string, timeout time.Duration) (youtubetest.Video, time.Time, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, v := range b.yt.Videos() {
			if v.Title == title {
				return v, time.Now(), nil
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return youtubetest.Video{}, time.Time{}, fmt.Errorf("no video %q after %s", title, timeout)
}

func mb(n int64) string { return strconv.FormatInt(n>>20, 10) + " MiB" }

// sequentialParts reads an upload's parts from S3, one after the other.
type sequentialParts struct {
	ctx    context.Context //nolint:containedctx // an io.Reader has no context of its own: this one bounds the GETs Read starts
	s3     *s3.Client
	bucket string
	u      *upload.Upload
	next   int
	cur    io.ReadCloser
}

func (p *sequentialParts) Read(buf []byte) (int, error) {
	for {
		if p.cur == nil {
			if p.next == p.u.PartCount() {
				return 0, io.EOF
			}
			out, err := p.s3.GetObject(p.ctx, &s3.GetObjectInput{Bucket: aws.String(p.bucket), Key: aws.String(p.u.PartKey(p.next))})
			if err != nil {
				return 0, err
			}
			p.cur, p.next = out.Body, p.next+1
		}
		n, err := p.cur.Read(buf)
		if err == io.EOF {
			p.cur.Close()
			p.cur = nil
			err = nil
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// benchLog is the in-process worker's logger: silent unless BENCH_LOG is set.
func benchLog() *zap.Logger {
	if os.Getenv("BENCH_LOG") == "" {
		return zap.NewNop()
	}
	l, _ := zap.NewProduction()
	return l
}
