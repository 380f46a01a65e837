package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"atomuploads/metrics"
	"atomuploads/upload"
)

// copier is what reassembly needs of S3.
type copier interface {
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPartCopy(ctx context.Context, in *s3.UploadPartCopyInput, optFns ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	ListParts(ctx context.Context, in *s3.ListPartsInput, optFns ...func(*s3.Options)) (*s3.ListPartsOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
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
	store interface {
		recordStore
		holdingStore
		pinStore
	}
	s3          copier
	leases      *leases
	now         func() time.Time
	bucket      string
	parallelism int
	metrics     *metrics.Metrics
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
	if err != nil && ctx.Err() == nil {
		s.metrics.ReassemblyFailed()
	}
	var changed *upload.PartChangedError
	if errors.As(err, &changed) {
		reason := changed.Error() + ": the file can no longer be proven; start a new upload"
		return outcome{err: s.fail(ctx, j, reason)}
	}
	var bad *badOriginal
	if errors.As(err, &bad) {
		return outcome{err: s.fail(ctx, j, bad.reason)}
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
	if u.Assembly.ETag != "" {
		// S3 completed the copy before: only the proof is left.
		log.Info("resuming the reassembly", zap.Int("copied", u.PartCount()), zap.Int("parts", u.PartCount()))
		return s.finish(ctx, log, h, u.Assembly.ETag, start)
	}
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
	out, err := s.s3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.bucket),
		Key:             aws.String(full),
		UploadId:        aws.String(mpu),
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: completed},
	})
	if err != nil {
		return nil, fmt.Errorf("complete multipart copy of %s: %w", u.ID, err)
	}
	// Recorded before the read-back, so that a read-back that fails is all
	// the next attempt does again.
	etag := aws.ToString(out.ETag)
	if err := s.checkpoint(ctx, h, upload.Assembly{UploadID: mpu, Copied: len(done), ETag: etag}); err != nil {
		return nil, err
	}
	return s.finish(ctx, log, h, etag, start)
}

// finish proves the completed original and records it assembled. The
// original is made of the parts as pinned (each copy was conditional on its
// ETag). With the file's SHA-256 from the start request, it is read back
// once and proven against it.
func (s *reassembleStep) finish(ctx context.Context, log *zap.Logger, h *held, etag string, start time.Time) (*upload.Upload, error) {
	u := h.upload
	full := u.FullKey()
	var digest string
	if u.SHA256 != "" {
		var err error
		digest, err = s.digest(ctx, full, etag)
		if changedError(err) || isNotFound(err) {
			// The original is not the one S3 completed: something else
			// writes or deletes the service's own key. Copying again would
			// race it for ever, and count as progress every time.
			return nil, &badOriginal{"the reassembled original was replaced or deleted before it was proven: start a new upload"}
		}
		if err != nil {
			return nil, err
		}
		if digest != u.SHA256 {
			return nil, &badOriginal{fmt.Sprintf("the reassembled original does not match the file: its SHA-256 is %s, the file's is %s", digest, u.SHA256)}
		}
	}
	after, err := s.store.UpdateHolding(ctx, h.lease, upload.Settled(s.now, func(u *upload.Upload) error {
		u.Assembled, u.Assembly = true, upload.Assembly{}
		u.Advances++
		if d := u.Destination(upload.S3Bucket); d != nil && digest != "" {
			d.SHA256 = digest
		}
		return nil
	}))
	if err != nil {
		return nil, err
	}
	s.metrics.Reassembled(time.Since(start))
	log.Info("reassembled", zap.String("key", full), zap.Int64("bytes", u.Size), zap.Int("parts", u.PartCount()),
		zap.Int64("durationMs", time.Since(start).Milliseconds()))
	return after, nil
}

// assembled reports whether the job's upload has its original now.
func assembled(u *upload.Upload) bool { return u != nil && u.Assembled }

// badOriginal is an original that is not the file.
type badOriginal struct{ reason string }

func (e *badOriginal) Error() string { return e.reason }

// fail fails the upload readably: its original cannot be made.
func (s *reassembleStep) fail(ctx context.Context, j job, reason string) error {
	if _, err := s.store.Update(ctx, j.task.AtomID, j.task.UploadID, upload.Settled(s.now, func(u *upload.Upload) error {
		u.Fail(reason, s.now())
		return nil
	})); err != nil {
		return err
	}
	j.log.Error("upload failed", zap.String("status", string(upload.StatusFailed)), zap.String("error", reason))
	return nil
}

// digest reads the original back and returns its SHA-256.
func (s *reassembleStep) digest(ctx context.Context, key, etag string) (string, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)}
	if etag != "" {
		in.IfMatch = aws.String(etag)
	}
	out, err := s.s3.GetObject(ctx, in)
	if err != nil {
		return "", fmt.Errorf("read the original back: %w", err)
	}
	defer out.Body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, out.Body); err != nil {
		return "", fmt.Errorf("read the original back: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

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
	pins := &pinCache{store: s.store, atomID: u.AtomID, id: u.ID, reader: upload.ReaderAssembly}
	for _, p := range todo {
		n := int32(p.Number + 1)
		g.Go(func() (err error) {
			defer recoverInto(&err, log, "part copy", zap.Int("part", p.Number))
			in := &s3.UploadPartCopyInput{
				Bucket:     aws.String(s.bucket),
				Key:        aws.String(u.FullKey()),
				UploadId:   aws.String(mpu),
				PartNumber: aws.Int32(n),
				CopySource: aws.String(url.PathEscape(s.bucket) + "/" + escapeKey(u.PartKey(p.Number))),
			}
			etag, err := pins.etag(gctx, p.Number)
			if err != nil {
				return fmt.Errorf("claim part %d of %s: %w", p.Number, u.ID, err)
			}
			if etag != "" {
				in.CopySourceIfMatch = aws.String(etag)
			}
			out, err := s.s3.UploadPartCopy(gctx, in)
			if changedError(err) {
				return &upload.PartChangedError{Part: p.Number, ReadBy: upload.ReaderAssembly}
			}
			if err != nil {
				return fmt.Errorf("copy part %d of %s: %w", p.Number, u.ID, err)
			}
			s.metrics.PartCopied(p.Size())
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
