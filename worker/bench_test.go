package worker_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"atomuploads/upload"
	"atomuploads/worker"
)

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
