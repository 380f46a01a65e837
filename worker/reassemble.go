package worker

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"atomuploads/upload"
)

// copier is what reassembly needs of S3.
type copier interface {
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPartCopy(ctx context.Context, in *s3.UploadPartCopyInput, optFns ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
}

// reassembleStep joins the parts into uploads/<atom>/<upload>/full with a
// multipart copy, once: the assembly lease makes one instance do it, and
// the record's assembled flag makes it happen once. A holder that dies
// leaves its message on the queue; the message comes back after the
// lease has expired and the copy starts again. A failed copy is aborted.
type reassembleStep struct {
	store       holdingStore
	s3          copier
	leases      *leases
	now         func() time.Time
	bucket      string
	parallelism int
}

func (s *reassembleStep) run(ctx context.Context, j job) outcome {
	err := s.leases.hold(ctx, j.task.AtomID, j.task.UploadID, upload.LeaseAssembly, func(ctx context.Context, h *held) (ending, error) {
		return release, s.reassemble(ctx, j.log, h)
	})
	if errors.Is(err, upload.ErrLeaseHeld) {
		j.log.Info("reassembly is under way elsewhere")
		return outcome{}
	}
	return outcome{err: err}
}

func (s *reassembleStep) reassemble(ctx context.Context, log *zap.Logger, h *held) error {
	u := h.upload
	if u.Assembled || u.Status.Terminal() || !u.AllPartsComplete() {
		return nil
	}
	start := time.Now()
	// Settle moves the upload to processing now that every part is in.
	if _, err := s.store.UpdateHolding(ctx, h.lease, upload.Settled(s.now, func(*upload.Upload) error { return nil })); err != nil {
		return err
	}
	full := u.FullKey()
	mpu, err := s.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:      aws.String(s.bucket),
		Key:         aws.String(full),
		ContentType: aws.String(u.ContentType),
	})
	if err != nil {
		return fmt.Errorf("start multipart copy of %s: %w", u.ID, err)
	}
	completed, err := s.copyParts(ctx, log, u, mpu.UploadId)
	if err == nil {
		_, err = s.s3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket:          aws.String(s.bucket),
			Key:             aws.String(full),
			UploadId:        mpu.UploadId,
			MultipartUpload: &s3types.CompletedMultipartUpload{Parts: completed},
		})
		if err != nil {
			err = fmt.Errorf("complete multipart copy of %s: %w", u.ID, err)
		}
	}
	if err != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*bookkeepingTimeout)
		defer cancel()
		if _, aerr := s.s3.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(s.bucket), Key: aws.String(full), UploadId: mpu.UploadId,
		}); aerr != nil {
			err = errors.Join(err, fmt.Errorf("abort multipart copy: %w", aerr))
		}
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			err = errors.Join(err, cause)
		}
		return err
	}
	if _, err := s.store.UpdateHolding(ctx, h.lease, upload.Settled(s.now, func(u *upload.Upload) error {
		u.Assembled = true
		return nil
	})); err != nil {
		return err
	}
	log.Info("reassembled", zap.String("key", full), zap.Int64("bytes", u.Size), zap.Int("parts", u.PartCount()),
		zap.Int64("durationMs", time.Since(start).Milliseconds()))
	return nil
}

// copyParts copies every part into the multipart upload, a bounded number
// at a time, and returns the completed parts in order.
func (s *reassembleStep) copyParts(ctx context.Context, log *zap.Logger, u *upload.Upload, uploadID *string) ([]s3types.CompletedPart, error) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.parallelism)
	var mu sync.Mutex
	var done []s3types.CompletedPart
	for _, p := range u.Parts() {
		g.Go(func() (err error) {
			defer recoverInto(&err, log, "part copy", zap.Int("part", p.Number))
			out, err := s.s3.UploadPartCopy(gctx, &s3.UploadPartCopyInput{
				Bucket:     aws.String(s.bucket),
				Key:        aws.String(u.FullKey()),
				UploadId:   uploadID,
				PartNumber: aws.Int32(int32(p.Number + 1)),
				CopySource: aws.String(url.PathEscape(s.bucket) + "/" + escapeKey(u.PartKey(p.Number))),
			})
			if err != nil {
				return fmt.Errorf("copy part %d of %s: %w", p.Number, u.ID, err)
			}
			mu.Lock()
			defer mu.Unlock()
			done = append(done, s3types.CompletedPart{PartNumber: aws.Int32(int32(p.Number + 1)), ETag: out.CopyPartResult.ETag})
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	sort.Slice(done, func(i, j int) bool { return *done[i].PartNumber < *done[j].PartNumber })
	return done, nil
}

// escapeKey URL-encodes a key for x-amz-copy-source, keeping '/'.
func escapeKey(key string) string {
	u := url.URL{Path: key}
	return u.EscapedPath()
}
