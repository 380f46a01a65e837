package transcode

import (
	"context"
	"errors"
	"fmt"

	mctypes "github.com/aws/aws-sdk-go-v2/service/mediaconvert/types"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"atomuploads/upload"
)

// domainError returns an error whose first *upload.Error is d and which
// still wraps cause, so logs keep the infrastructure detail while callers
// see only the domain code and message.
func domainError(d *upload.Error, cause error) error {
	return fmt.Errorf("%w (%w)", d, cause)
}

// isContextErr reports whether err is the caller's cancellation or deadline;
// those pass through unchanged.
func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// mediaConvertError converts an error of the MediaConvert client into a
// domain error, by the SDK's typed errors.
func mediaConvertError(err error) error {
	if err == nil || isContextErr(err) {
		return err
	}
	var (
		bad      *mctypes.BadRequestException
		notFound *mctypes.NotFoundException
		conflict *mctypes.ConflictException
		denied   *mctypes.ForbiddenException
		throttle *mctypes.TooManyRequestsException
		quota    *mctypes.ServiceQuotaExceededException
		internal *mctypes.InternalServerErrorException
		api      smithy.APIError
	)
	switch {
	case errors.As(err, &bad):
		return domainError(upload.Errorf(upload.EINVALID, "MediaConvert refused the job: %s", bad.ErrorMessage()), err)
	case errors.As(err, &notFound):
		return domainError(upload.Errorf(upload.ENOTFOUND, "MediaConvert has no such job"), err)
	case errors.As(err, &conflict):
		return domainError(upload.Errorf(upload.ECONFLICT, "MediaConvert reports a conflict: %s", conflict.ErrorMessage()), err)
	case errors.As(err, &denied):
		return domainError(upload.Errorf(upload.EINTERNAL, "MediaConvert denied access; check the service's IAM permissions"), err)
	case errors.As(err, &throttle), errors.As(err, &quota), errors.As(err, &internal):
		return domainError(upload.Errorf(upload.EUNAVAILABLE, "MediaConvert is busy or failing; try again"), err)
	case errors.As(err, &api):
		if api.ErrorFault() == smithy.FaultServer {
			return domainError(upload.Errorf(upload.EUNAVAILABLE, "MediaConvert is failing; try again"), err)
		}
		return domainError(upload.Errorf(upload.EINTERNAL, "MediaConvert error %s", api.ErrorCode()), err)
	}
	return domainError(upload.Errorf(upload.EUNAVAILABLE, "MediaConvert did not answer; try again"), err)
}

// s3Error converts an error of the S3 client into a domain error, by the
// SDK's typed errors and smithy's API error codes.
func s3Error(err error, bucket, key string) error {
	if err == nil || isContextErr(err) {
		return err
	}
	var (
		noKey    *s3types.NoSuchKey
		notFound *s3types.NotFound
		noBucket *s3types.NoSuchBucket
		api      smithy.APIError
	)
	switch {
	case errors.As(err, &noKey), errors.As(err, &notFound):
		return domainError(upload.Errorf(upload.ENOTFOUND, "s3://%s/%s does not exist", bucket, key), err)
	case errors.As(err, &noBucket):
		return domainError(upload.Errorf(upload.EINTERNAL, "bucket %s does not exist", bucket), err)
	case isPreconditionFailed(err):
		return domainError(upload.Errorf(upload.ECONFLICT, "s3://%s/%s already exists", bucket, key), err)
	case errors.As(err, &api):
		if api.ErrorFault() == smithy.FaultServer || api.ErrorCode() == "SlowDown" ||
			api.ErrorCode() == "ConditionalRequestConflict" { // a concurrent conditional write
			return domainError(upload.Errorf(upload.EUNAVAILABLE, "S3 is busy or failing; try again"), err)
		}
		return domainError(upload.Errorf(upload.EINTERNAL, "S3 refused access to s3://%s/%s (%s)", bucket, key, api.ErrorCode()), err)
	}
	return domainError(upload.Errorf(upload.EUNAVAILABLE, "S3 did not answer; try again"), err)
}

// isPreconditionFailed reports whether a conditional S3 write found its
// condition false (HTTP 412): for If-None-Match "*", the object exists.
func isPreconditionFailed(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == "PreconditionFailed"
}
