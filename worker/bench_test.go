package worker_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"atomuploads/upload"
	"atomuploads/worker"
)

// BenchmarkEvents measures S3 events handled per second by one worker
// (16 at once) against the local stack: 500 one-part uploads, whose part
// event marks the part (HeadObject, conditional ADD) and reassembles it
// (multipart copy), then whose full event is looked at and dropped. The
// events are all on the queue before the worker starts.
func BenchmarkEvents(b *testing.B) {
	const uploads = 500
	for range b.N {
		b.StopTimer()
		e := newEnv(b)
		g := new(errgroup.Group)
		g.SetLimit(16)
		for i := range uploads {
			u := e.newUpload(b, 1024)
			g.Go(func() error {
				_, err := e.st.S3.PutObject(context.Background(), &s3.PutObjectInput{
					Bucket: aws.String(e.st.Bucket), Key: aws.String(u.PartKey(0)), Body: bytes.NewReader(make([]byte, 1024)),
				})
				if err != nil {
					return fmt.Errorf("put %d: %w", i, err)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		waitFor(b, time.Minute, "the events on the queue", func() bool {
			visible, _, _ := e.queueCounts(b, e.st.QueueURL)
			return visible >= uploads
		})
		b.StartTimer()
		start := time.Now()
		e.startWorker(b, workerOpts{concurrency: 16})
		waitFor(b, 5*time.Minute, "every upload reassembled", func() bool {
			return len(e.logs.With(b, "reassembled")) == uploads
		})
		events := 2 * uploads // a part event and a full event each
		waitFor(b, time.Minute, "the full events", func() bool { return e.queueDepth(b, e.st.QueueURL) == 0 })
		elapsed := time.Since(start)
		b.ReportMetric(float64(events)/elapsed.Seconds(), "events/s")
	}
}

// BenchmarkReassembly1000Parts measures the multipart copy of a 1,000-part
// upload (5 MiB parts, 5 GiB) on the local stack, as the worker logs it.
func BenchmarkReassembly1000Parts(b *testing.B) {
	const parts = 1000
	for range b.N {
		b.StopTimer()
		e := newEnv(b)
		u := e.newUpload(b, parts*5*upload.MiB)
		src := make([]byte, 5*upload.MiB)
		_, _ = rand.Read(src)
		e.putObject(b, "seed/part", src)
		g := new(errgroup.Group)
		g.SetLimit(16)
		for n := range parts {
			g.Go(func() error {
				_, err := e.st.S3.CopyObject(context.Background(), &s3.CopyObjectInput{
					Bucket: aws.String(e.st.Bucket), Key: aws.String(u.PartKey(n)), CopySource: aws.String(e.st.Bucket + "/seed/part"),
				})
				return err
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		e.startWorker(b, workerOpts{cfg: func(c *worker.Config) { c.ReassemblyParallelism = 8 }})
		waitFor(b, 10*time.Minute, "reassembly", func() bool { return len(e.logs.With(b, "reassembled")) == 1 })
		b.StopTimer()
		ms := e.logs.With(b, "reassembled")[0]["durationMs"].(float64)
		b.ReportMetric(ms/1000, "s/reassembly")
		b.ReportMetric(float64(parts*5*upload.MiB)/(1<<20)/(ms/1000), "MiB/s")
	}
}
