package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.uber.org/zap"

	"atomuploads/upload"
)

// partStep handles a part object's arrival: it checks the object against
// the plan, marks the part complete, and names what is due next: the relay
// (the part may be the next YouTube needs) and, once every part is in, the
// reassembly.
type partStep struct {
	store interface {
		recordStore
		pinStore
		CompletePart(ctx context.Context, atomID, id string, n int) (*upload.Upload, error)
	}
	s3 interface {
		HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	}
	bucket string
	now    func() time.Time
	// requireChecksums refuses a part sent without a SHA-256 checksum.
	requireChecksums bool
}

func (s *partStep) run(ctx context.Context, j job) outcome {
	u, n, log := j.upload, j.task.Part, j.log
	// An event is a hint, not a fact: only the object in S3, as S3 says it
	// is now, counts.
	head, err := s.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: strPtr(u.PartKey(n)), ChecksumMode: s3types.ChecksumModeEnabled})
	if err != nil {
		if isNotFound(err) {
			log.Warn("ignored an event of a part that is not in S3")
			return outcome{}
		}
		return outcome{err: fmt.Errorf("head part %d of %s: %w", n, u.ID, err)}
	}
	p, ok := u.Part(n)
	if !ok {
		// The browser's credentials can write any key under parts/: a
		// stray object is the browser's mistake, not the upload's end.
		log.Warn("ignored an object outside the plan", zap.Int("parts", u.PartCount()), zap.Int64("bytes", deref(head.ContentLength)))
		return outcome{}
	}
	if size := deref(head.ContentLength); size != p.Size() {
		return s.reject(ctx, log, u, fmt.Sprintf("part %d is %d bytes but the plan expects %d (bytes %d–%d of the file); start a new upload",
			n, size, p.Size(), p.Start, p.End))
	}
	checksum := deref(head.ChecksumSHA256)
	if s.requireChecksums && checksum == "" {
		return s.reject(ctx, log, u, fmt.Sprintf("part %d was sent without a SHA-256 checksum (x-amz-checksum-sha256), which this service requires; start the upload again with a client that sends one", n))
	}
	// Pinned before it counts as complete: whoever reads a complete part
	// reads it as it was checked, or learns that it changed.
	// The event's time has milliseconds; Last-Modified, seconds.
	created := j.task.Created
	if created.IsZero() {
		created = deref(head.LastModified)
	}
	pinned, err := s.store.PinPart(ctx, u.AtomID, u.ID, upload.PartPin{Part: n, ETag: deref(head.ETag), ChecksumSHA256: checksum, Size: p.Size(), CreatedAt: created})
	var changed *upload.PartChangedError
	switch {
	case errors.As(err, &changed):
		return s.reject(ctx, log, u, changed.Error()+": the file can no longer be proven; start a new upload")
	case err != nil:
		return outcome{err: err}
	case pinned == upload.PinRenewed:
		log.Warn("part changed before it was read; checked afresh", zap.String("etag", deref(head.ETag)))
	}
	if !u.Completed[n] {
		u, err = s.store.CompletePart(ctx, u.AtomID, u.ID, n)
		if upload.ErrorCode(err) == upload.ECONFLICT {
			log.Info("ignored a part of a finished upload")
			return outcome{}
		}
		if err != nil {
			return outcome{err: err}
		}
		log.Info("part complete", zap.Int64("bytes", p.Size()), zap.Int("complete", len(u.Completed)), zap.Int("parts", u.PartCount()))
	}
	// Reassembly and relay side by side: the last part must reach YouTube
	// without waiting for the copy, and the copy (needed by the transcode)
	// must not wait for a relay that may still have the whole file to send.
	var then []Kind
	if u.AllPartsComplete() && !u.Assembled {
		then = append(then, KindReassemble)
	}
	if u.Destination(upload.YouTube) != nil {
		then = append(then, KindRelay)
	}
	return outcome{then: then, record: u}
}

// reject fails the upload for bad input; the message is done.
func (s *partStep) reject(ctx context.Context, log *zap.Logger, u *upload.Upload, reason string) outcome {
	_, err := s.store.Update(ctx, u.AtomID, u.ID, upload.Settled(s.now, func(u *upload.Upload) error {
		u.Fail(reason, s.now())
		return nil
	}))
	if err != nil {
		return outcome{err: err}
	}
	log.Error("upload failed", zap.String("status", string(upload.StatusFailed)), zap.String("error", reason))
	return outcome{}
}

func strPtr(s string) *string { return &s }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func isNotFound(err error) bool {
	var (
		nf *s3types.NotFound
		nk *s3types.NoSuchKey
	)
	return errors.As(err, &nf) || errors.As(err, &nk)
}
