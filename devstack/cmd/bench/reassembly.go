package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"golang.org/x/sync/errgroup"

	"atomuploads/devstack"
	"atomuploads/store"
	"atomuploads/upload"
)

// (r) reassembly of an upload of many parts by the service's worker
// (multipart copy, 8 UploadPartCopy at once as configured by default)
// against a bare loop of the same calls at the same parallelism
// (CreateMultipartUpload, UploadPartCopy, CompleteMultipartUpload), on
// the same parts, in the same run.

// reassemblyFixture is an upload whose parts are all in S3 and marked
// complete, shared by the runs.
type reassemblyFixture struct {
	r  devstack.Resources
	c  devstack.Created
	db *store.Store
	u  *upload.Upload
}

// reassemblySetup makes the parts by server-side copies of one seed part,
// with the bucket's event notification off (the parts are not the
// measurement; their events would be), and marks them complete.
func (b *bench) reassemblySetup(ctx context.Context) (*reassemblyFixture, error) {
	r, c, err := b.resources(ctx, "bench-r")
	if err != nil {
		return nil, err
	}
	fx := &reassemblyFixture{r: r, c: c, db: store.New(b.clients.DynamoDB, r.Table, 0)}
	if _, err := b.clients.S3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(r.Bucket), NotificationConfiguration: &s3types.NotificationConfiguration{},
	}); err != nil {
		return fx, err
	}
	size := int64(b.f.reassemblyParts) * b.f.reassemblyPartSize
	fx.u, err = b.newUploadOf(ctx, fx.db, r.Bucket, size, b.f.reassemblyPartSize, upload.DestinationRequest{Type: upload.S3Bucket})
	if err != nil {
		return fx, err
	}
	if fx.u.PartCount() != b.f.reassemblyParts {
		return fx, fmt.Errorf("the plan has %d parts, want %d", fx.u.PartCount(), b.f.reassemblyParts)
	}
	seed := make([]byte, b.f.reassemblyPartSize)
	_, _ = rand.Read(seed)
	if _, err := b.clients.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(r.Bucket), Key: aws.String("seed/part"), Body: bytes.NewReader(seed)}); err != nil {
		return fx, err
	}
	keys := make([]string, fx.u.PartCount())
	for n := range keys {
		keys[n] = fx.u.PartKey(n)
	}
	if err := b.copyParts(ctx, r.Bucket, "seed/part", keys); err != nil {
		return fx, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for n := range fx.u.PartCount() {
		g.Go(func() error {
			_, err := fx.db.CompletePart(gctx, fx.u.AtomID, fx.u.ID, n)
			return err
		})
	}
	return fx, g.Wait()
}

// reassembly is one run of (r): the service's reassembly and the bare
// loop, in an order that alternates from run to run.
func (b *bench) reassembly(ctx context.Context, fx *reassemblyFixture, run int) (obs, error) {
	o := obs{}
	order := []bool{true, false}
	if run%2 == 1 {
		order = []bool{false, true}
	}
	for _, service := range order {
		cpu := startCPU()
		var (
			d   time.Duration
			err error
		)
		if service {
			d, err = b.reassembleService(ctx, fx, run)
		} else {
			d, err = b.reassembleBare(ctx, fx)
		}
		if err != nil {
			return nil, err
		}
		prefix := "bare"
		if service {
			prefix = "service"
		}
		o[prefix] = d.Seconds()
		for k, v := range cpu.stop(nil) {
			o[prefix+"."+k] = v
		}
		if err := b.deleteFull(ctx, fx); err != nil {
			return nil, err
		}
	}
	o["ratio"] = o["bare"] / o["service"]
	return o, nil
}

// reassembleService sends the worker a reassembly of the upload (marked
// not assembled again) and returns the time it logs for it.
func (b *bench) reassembleService(ctx context.Context, fx *reassemblyFixture, run int) (time.Duration, error) {
	if _, err := fx.db.Update(ctx, fx.u.AtomID, fx.u.ID, func(u *upload.Upload) error {
		u.Assembled, u.Assembly = false, upload.Assembly{}
		return nil
	}); err != nil {
		return 0, err
	}
	w := b.startWorker(fx.r, fx.c, nil)
	defer w.stop()
	stopProfile, err := b.profile(fmt.Sprintf("reassembly-service-run%d", run+1))
	if err != nil {
		return 0, err
	}
	defer stopProfile()
	body := fmt.Sprintf(`{"atomUploads":{"kind":"reassemble","atomId":%q,"uploadId":%q}}`, fx.u.AtomID, fx.u.ID)
	if _, err := b.clients.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(fx.c.QueueURL), MessageBody: aws.String(body)}); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(30 * time.Minute)
	for time.Now().Before(deadline) {
		if done := w.logs.fields("reassembled"); len(done) > 0 {
			ms, ok := done[0]["durationMs"].(int64)
			if !ok {
				return 0, fmt.Errorf("the reassembled line has no durationMs: %v", done[0])
			}
			return time.Duration(ms) * time.Millisecond, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0, fmt.Errorf("no reassembly in 30 minutes")
}

// reassembleBare is the bare loop of the same calls at the same
// parallelism, into another key.
func (b *bench) reassembleBare(ctx context.Context, fx *reassemblyFixture) (time.Duration, error) {
	bucket, key := aws.String(fx.r.Bucket), aws.String("bare/full")
	start := time.Now()
	out, err := b.clients.S3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: bucket, Key: key, ContentType: aws.String("video/mp4")})
	if err != nil {
		return 0, err
	}
	var (
		mu   sync.Mutex
		done []s3types.CompletedPart
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for n := range fx.u.PartCount() {
		g.Go(func() error {
			res, err := b.clients.S3.UploadPartCopy(gctx, &s3.UploadPartCopyInput{
				Bucket: bucket, Key: key, UploadId: out.UploadId, PartNumber: aws.Int32(int32(n + 1)),
				CopySource: aws.String(fx.r.Bucket + "/" + fx.u.PartKey(n)),
			})
			if err != nil {
				return err
			}
			mu.Lock()
			done = append(done, s3types.CompletedPart{PartNumber: aws.Int32(int32(n + 1)), ETag: res.CopyPartResult.ETag})
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	sort.Slice(done, func(i, j int) bool { return *done[i].PartNumber < *done[j].PartNumber })
	if _, err := b.clients.S3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: bucket, Key: key, UploadId: out.UploadId, MultipartUpload: &s3types.CompletedMultipartUpload{Parts: done},
	}); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// deleteFull deletes both originals, so that runs do not fill the disk.
func (b *bench) deleteFull(ctx context.Context, fx *reassemblyFixture) error {
	for _, k := range []string{fx.u.FullKey(), "bare/full"} {
		if _, err := b.clients.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(fx.r.Bucket), Key: aws.String(k)}); err != nil {
			return err
		}
	}
	return nil
}
