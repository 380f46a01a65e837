package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.uber.org/zap"

	"atomuploads/upload"
)

// cleanupStore is what the clean-up needs of the table.
type cleanupStore interface {
	Get(ctx context.Context, atomID, id string) (*upload.Upload, error)
	Update(ctx context.Context, atomID, id string, fn func(*upload.Upload) error) (*upload.Upload, error)
	DueForCleanup(ctx context.Context, before time.Time, fn func(atomID, id string) error) error
	CleanedUp(ctx context.Context, atomID, id string) error
}

// SweepS3 is what the clean-up needs of S3: listing and deleting an
// upload's parts, and finding and aborting its dangling multipart uploads.
type SweepS3 interface {
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error)
	ListMultipartUploads(ctx context.Context, in *s3.ListMultipartUploadsInput, optFns ...func(*s3.Options)) (*s3.ListMultipartUploadsOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
}

// cleaner deletes the parts of uploads that are over, deletePartsAfter
// after they ended: it finds them through the table's sparse index of
// uploads due for clean-up (which holds only those, so the millions of
// finished records cost nothing), and for each
//
//  1. records partsDeleted (a versioned write, so that a retry that would
//     read the parts either comes first, and the upload is live again and
//     left alone, or comes after and is refused);
//  2. deletes every object under …/parts/ (listed, so stray keys go too);
//  3. aborts the multipart upload of …/full the record names, and any other
//     of …/full (a reassembly that died before it recorded its own); the
//     browser puts its parts whole, and a multipart upload of a part is
//     left to the bucket's rule that aborts incomplete ones;
//  4. takes the upload out of the index.
//
// Each step is idempotent and the upload stays in the index until the
// last (even if a retry that needs no parts revives it meanwhile), so a
// round cut short (a crash, a deployment) is finished by the next holder
// of the job. The original (…/full) is kept.
type cleaner struct {
	store  cleanupStore
	s3     SweepS3
	bucket string
	log    *zap.Logger
	now    func() time.Time
	after  time.Duration
}

func (c *cleaner) name() string { return "cleanup" }

func (c *cleaner) sweep(ctx context.Context) error {
	now := c.now()
	return c.store.DueForCleanup(ctx, now.Add(-c.after), func(atomID, id string) error {
		return c.clean(ctx, now, atomID, id)
	})
}

// clean deletes the parts of one upload due for clean-up.
func (c *cleaner) clean(ctx context.Context, now time.Time, atomID, id string) error {
	u, err := c.store.Get(ctx, atomID, id)
	switch {
	case upload.ErrorCode(err) == upload.ENOTFOUND:
		return nil // gone from the table (TTL), and from the index with it
	case err != nil:
		return err
	case !u.Status.Terminal() && !u.PartsDeleted:
		return nil // retried meanwhile: the index lags behind
	case u.AnyLeaseLive(now):
		return nil // a worker is finishing a step: the next round
	}
	log := c.log.With(zap.String("atomId", atomID), zap.String("uploadId", id))
	start := time.Now()
	if !u.PartsDeleted {
		if !u.PartsDeletable() {
			// Not ours to delete (the index lags behind a change).
			return c.store.CleanedUp(ctx, atomID, id)
		}
		u, err = c.store.Update(ctx, atomID, id, func(u *upload.Upload) error {
			if !u.Status.Terminal() || !u.PartsDeletable() {
				return upload.Errorf(upload.ECONFLICT, "upload %s is %s: its parts stay", u.ID, u.Status)
			}
			u.PartsDeleted = true
			return nil
		})
		if upload.ErrorCode(err) == upload.ECONFLICT {
			return nil // retried meanwhile
		}
		if err != nil {
			return err
		}
	}
	parts, err := c.deleteParts(ctx, u)
	if err != nil {
		return err
	}
	mpus, err := c.abortMultipart(ctx, u)
	if err != nil {
		return err
	}
	if err := c.store.CleanedUp(ctx, atomID, id); err != nil {
		return err
	}
	log.Info("parts deleted", zap.String("status", string(u.Status)), zap.Int("parts", parts),
		zap.Int("multipartUploads", mpus), zap.Int64("durationMs", time.Since(start).Milliseconds()))
	return nil
}

// deleteParts deletes every object under the upload's parts prefix, a page
// of the listing at a time, and returns how many it deleted.
func (c *cleaner) deleteParts(ctx context.Context, u *upload.Upload) (int, error) {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(c.bucket), Prefix: aws.String(upload.PartsPrefix(u.AtomID, u.ID))}
	deleted := 0
	for {
		out, err := c.s3.ListObjectsV2(ctx, in)
		if err != nil {
			return deleted, fmt.Errorf("list the parts of %s: %w", u.ID, err)
		}
		if len(out.Contents) > 0 {
			ids := make([]s3types.ObjectIdentifier, 0, len(out.Contents))
			for _, o := range out.Contents {
				ids = append(ids, s3types.ObjectIdentifier{Key: o.Key})
			}
			del, err := c.s3.DeleteObjects(ctx, &s3.DeleteObjectsInput{
				Bucket: aws.String(c.bucket),
				Delete: &s3types.Delete{Objects: ids, Quiet: aws.Bool(true)},
			})
			if err != nil {
				return deleted, fmt.Errorf("delete the parts of %s: %w", u.ID, err)
			}
			if len(del.Errors) > 0 {
				e := del.Errors[0]
				return deleted, fmt.Errorf("delete the parts of %s: %d not deleted, %s: %s %s", u.ID, len(del.Errors),
					aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message))
			}
			deleted += len(ids)
		}
		if !aws.ToBool(out.IsTruncated) || out.NextContinuationToken == nil {
			return deleted, nil
		}
		in.ContinuationToken = out.NextContinuationToken
	}
}

// abortMultipart aborts the multipart upload of the original the record
// names and every other multipart upload of the original, and returns how
// many it aborted. They are listed by the original's key: S3 lists by any
// prefix, MinIO only by a whole key.
func (c *cleaner) abortMultipart(ctx context.Context, u *upload.Upload) (int, error) {
	type mpu struct{ key, id string }
	var todo []mpu
	if u.Assembly.UploadID != "" {
		todo = append(todo, mpu{u.FullKey(), u.Assembly.UploadID})
	}
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(c.bucket), Prefix: aws.String(u.FullKey())}
	for {
		out, err := c.s3.ListMultipartUploads(ctx, in)
		if err != nil {
			return 0, fmt.Errorf("list the multipart uploads of %s: %w", u.ID, err)
		}
		for _, m := range out.Uploads {
			if k, id := aws.ToString(m.Key), aws.ToString(m.UploadId); k == u.FullKey() && id != u.Assembly.UploadID {
				todo = append(todo, mpu{k, id})
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			break
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
	aborted := 0
	for _, m := range todo {
		_, err := c.s3.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(c.bucket), Key: aws.String(m.key), UploadId: aws.String(m.id)})
		var nsu *s3types.NoSuchUpload
		switch {
		case errors.As(err, &nsu) || isNotFound(err):
			continue // gone already (completed, aborted, or a lifecycle rule)
		case err != nil:
			return aborted, fmt.Errorf("abort the multipart upload of %s: %w", m.key, err)
		}
		aborted++
	}
	return aborted, nil
}
