package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"atomuploads/upload"
)

// Driver sends the messages that drive an upload's due work at once (the
// worker's, wired by main).
type Driver interface {
	Drive(ctx context.Context, u *upload.Upload) error
}

// Objects is what the retry asks of S3: are the upload's objects still
// there.
type Objects interface {
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
}

// Option adds an optional part to the API.
type Option func(*Server)

// WithRetry enables POST …/retry: failed destinations restart from where
// they failed, driven at once by driver, provided the objects they need
// are still in bucket.
func WithRetry(driver Driver, objects Objects, bucket string) Option {
	return func(s *Server) { s.driver, s.objects, s.objectsBucket = driver, objects, bucket }
}

// retry restarts every failed destination of the upload from where it
// failed (upload.Upload.Retry), provided its parts (or its original) are
// still in S3, and drives the work at once. 409 says why when nothing can
// be retried. Retrying twice changes nothing the second time (409:
// nothing failed).
func (s *Server) retry(c echo.Context) error {
	atomID, id, err := ids(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	u, err := s.uploads.Get(ctx, atomID, id)
	if err != nil {
		return err
	}
	if err := s.objectsThere(ctx, u); err != nil {
		return err
	}
	u, err = s.uploads.Update(ctx, atomID, id, upload.Settled(s.now, func(u *upload.Upload) error { return u.Retry(s.now()) }))
	if err != nil {
		return err
	}
	s.log.Info("upload retried", zap.String("atomId", atomID), zap.String("uploadId", id), zap.String("status", string(u.Status)))
	if err := s.driver.Drive(ctx, u); err != nil {
		// The record says what is due; the reconciler drives it if this
		// could not.
		s.log.Warn("drive a retried upload", zap.String("atomId", atomID), zap.String("uploadId", id), zap.Error(err))
	}
	return writeRecord(c, http.StatusOK, u, viewFull, nil)
}

// objectsThere checks that what a retry needs is still in S3: the first
// and the last part (parts are deleted together), and the original once it
// was assembled.
func (s *Server) objectsThere(ctx context.Context, u *upload.Upload) error {
	var keys []string
	if parts := u.CompletedParts(); len(parts) > 0 {
		keys = append(keys, u.PartKey(parts[0]), u.PartKey(parts[len(parts)-1]))
	}
	if u.Assembled {
		keys = append(keys, u.FullKey())
	}
	for _, key := range keys {
		_, err := s.objects.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.objectsBucket), Key: aws.String(key)})
		var nf *s3types.NotFound
		switch {
		case errors.As(err, &nf):
			return upload.Errorf(upload.ECONFLICT, "upload %s cannot be retried: its files are no longer in S3 (%s is gone); start a new upload", u.ID, key)
		case err != nil:
			return fmt.Errorf("check %s: %w", key, err)
		}
	}
	return nil
}
