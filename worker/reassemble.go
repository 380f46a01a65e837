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
	ListParts(ctx context.Context, in *s3.ListPartsInput, optFns ...func(*s3.Options)) (*s3.ListPartsOutput, error)
}

// checkpointEvery is how often a reassembly records how far it got.
const checkpointEvery = 5 * time.Second

// reassembleStep joins the parts into uploads/<atom>/<upload>/full with a
// multipart copy, once: the assembly lease makes one instance do it, and
// the record's assembled flag makes it happen once. The multipart upload's
// id is recorded as soon as it exists, and how many parts are copied at
// checkpoints: a holder that dies leaves its message on the queue, and
// whoever takes the work over next asks S3 which parts are in (ListParts)
// and copies only the rest. Each checkpoint is progress, so interruptions
// of a long reassembly do not use up its attempts.
type reassembleStep struct {
	store       holdingStore
	s3          copier
	leases      *leases
	now         func() time.Time
	bucket      string
	parallelism int
}

func (s *reassembleStep) run(ctx context.Context, j job) outcome {
	var after *upload.Upload
	err := s.leases.hold(ctx, j.task.AtomID, j.task.UploadID, upload.LeaseAssembly, func(ctx context.Context, h *held) (ending, error) {
		var err error
		after, err = s.reassemble(ctx, j.log, h)
		return release, err
	})
	if errors.Is(err, upload.ErrLeaseHeld) {
		j.log.Info("reassembly is under way elsewhere")
		return outcome{}
	}
	if err != nil || !assembled(after) {
		return outcome{err: err}
	}
	// The transcode starts from here, not from S3's event of the original,
	// which may come before the record says it is assembled.
	return outcome{then: []Kind{KindFull}, record: after}
}

func (s *reassembleStep) reassemble(ctx context.Context, log *zap.Logger, h *held) (*upload.Upload, error) {
	u := h.upload
	if u.Assembled || u.Status.Terminal() || !u.AllPartsComplete() {
		return u, nil
	}
	start := time.Now()
	full := u.FullKey()
	done := map[int32]s3types.CompletedPart{}
	mpu := u.Assembly.UploadID
	if mpu != "" {
		var err error
		if done, err = s.copied(ctx, full, mpu); err != nil {
			return nil, err
		}
		if done == nil {
			mpu = "" // gone (aborted by a lifecycle rule): start again
		} else {
			log.Info("resuming the reassembly", zap.Int("copied", len(done)), zap.Int("parts", u.PartCount()))
		}
	}
	if mpu == "" {
		out, err := s.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
			Bucket:      aws.String(s.bucket),
			Key:         aws.String(full),
			ContentType: aws.String(u.ContentType),
		})
		if err != nil {
			return nil, fmt.Errorf("start multipart copy of %s: %w", u.ID, err)
		}
		mpu = aws.ToString(out.UploadId)
		done = map[int32]s3types.CompletedPart{}
	}
	// Settle moves the upload to processing now that every part is in.
	if err := s.checkpoint(ctx, h, upload.Assembly{UploadID: mpu, Copied: len(done)}); err != nil {
		return nil, err
	}
	if err := s.copyParts(ctx, log, h, mpu, done); err != nil {
		return nil, err
	}
	completed := make([]s3types.CompletedPart, 0, len(done))
	for _, p := range done {
		completed = append(completed, p)
	}
	sort.Slice(completed, func(i, j int) bool { return *completed[i].PartNumber < *completed[j].PartNumber })
	if _, err := s.s3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.bucket),
		Key:             aws.String(full),
		UploadId:        aws.String(mpu),
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: completed},
	}); err != nil {
		return nil, fmt.Errorf("complete multipart copy of %s: %w", u.ID, err)
	}
	after, err := s.store.UpdateHolding(ctx, h.lease, upload.Settled(s.now, func(u *upload.Upload) error {
		u.Assembled, u.Assembly = true, upload.Assembly{}
		u.Advances++
		return nil
	}))
	if err != nil {
		return nil, err
	}
	log.Info("reassembled", zap.String("key", full), zap.Int64("bytes", u.Size), zap.Int("parts", u.PartCount()),
		zap.Int64("durationMs", time.Since(start).Milliseconds()))
	return after, nil
}

// assembled reports whether the job's upload has its original now.
func assembled(u *upload.Upload) bool { return u != nil && u.Assembled }

// checkpoint records the multipart copy and how far it got, which is
// progress of the upload.
func (s *reassembleStep) checkpoint(ctx context.Context, h *held, a upload.Assembly) error {
	_, err := s.store.UpdateHolding(ctx, h.lease, upload.Settled(s.now, func(u *upload.Upload) error {
		if u.Assembly != a {
			u.Assembly = a
			u.Advances++
		}
		return nil
	}))
	return err
}

// copied lists the parts the multipart upload has already, or nil when S3
// no longer knows it.
func (s *reassembleStep) copied(ctx context.Context, key, mpu string) (map[int32]s3types.CompletedPart, error) {
	done := map[int32]s3types.CompletedPart{}
	var marker *string
	for {
		out, err := s.s3.ListParts(ctx, &s3.ListPartsInput{
			Bucket: aws.String(s.bucket), Key: aws.String(key), UploadId: aws.String(mpu), PartNumberMarker: marker,
		})
		var nsu *s3types.NoSuchUpload
		if errors.As(err, &nsu) || isNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list the parts copied into %s: %w", key, err)
		}
		for _, p := range out.Parts {
			n := aws.ToInt32(p.PartNumber)
			done[n] = s3types.CompletedPart{PartNumber: aws.Int32(n), ETag: p.ETag}
		}
		if !aws.ToBool(out.IsTruncated) || out.NextPartNumberMarker == nil {
			return done, nil
		}
		marker = out.NextPartNumberMarker
	}
}

// copyParts copies every part that is not in done into the multipart
// upload, a bounded number at a time, adding each to done, and records a
// checkpoint every few seconds.
func (s *reassembleStep) copyParts(ctx context.Context, log *zap.Logger, h *held, mpu string, done map[int32]s3types.CompletedPart) error {
	u := h.upload
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.parallelism)
	var mu sync.Mutex
	last := time.Now()
	var todo []upload.Part
	for _, p := range u.Parts() {
		if _, ok := done[int32(p.Number+1)]; !ok {
			todo = append(todo, p)
		}
	}
	for _, p := range todo {
		n := int32(p.Number + 1)
		g.Go(func() (err error) {
			defer recoverInto(&err, log, "part copy", zap.Int("part", p.Number))
			out, err := s.s3.UploadPartCopy(gctx, &s3.UploadPartCopyInput{
				Bucket:     aws.String(s.bucket),
				Key:        aws.String(u.FullKey()),
				UploadId:   aws.String(mpu),
				PartNumber: aws.Int32(n),
				CopySource: aws.String(url.PathEscape(s.bucket) + "/" + escapeKey(u.PartKey(p.Number))),
			})
			if err != nil {
				return fmt.Errorf("copy part %d of %s: %w", p.Number, u.ID, err)
			}
			mu.Lock()
			done[n] = s3types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.CopyPartResult.ETag}
			copied, due := len(done), time.Since(last) >= checkpointEvery
			if due {
				last = time.Now()
			}
			mu.Unlock()
			if due {
				return s.checkpoint(gctx, h, upload.Assembly{UploadID: mpu, Copied: copied})
			}
			return nil
		})
	}
	return g.Wait()
}

// escapeKey URL-encodes a key for x-amz-copy-source, keeping '/'.
func escapeKey(key string) string {
	u := url.URL{Path: key}
	return u.EscapedPath()
}
