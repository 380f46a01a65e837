package worker

import (
	"context"
	"io"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/zap"

	"atomuploads/metrics"
	"atomuploads/transcode"
	"atomuploads/upload"
	"atomuploads/youtube"
)

// Store is the progress table as the worker uses it. Each step declares
// the part of it that it calls (recordStore, leaseStore and the few methods
// beside them); Store is their union, which the Dispatcher is given.
type Store interface {
	recordStore
	leaseStore
	CompletePart(ctx context.Context, atomID, id string, n int) (*upload.Upload, error)
	UpdateHolding(ctx context.Context, l upload.Lease, fn func(*upload.Upload) error) (*upload.Upload, error)
	ReleaseIfMissing(ctx context.Context, l upload.Lease, n int) (bool, error)
	// Touch marks an upload as driven now (a retry is scheduled).
	Touch(ctx context.Context, atomID, id string) error
	// Admit counts one more under a counter while it is below limit.
	Admit(ctx context.Context, counter string, limit int) (bool, error)
	// Refund gives one admission of a counter back.
	Refund(ctx context.Context, counter string) error
	pinStore
}

// pinStore keeps the pins of parts (upload.PartPin).
type pinStore interface {
	PinPart(ctx context.Context, atomID, id string, p upload.PartPin) (string, error)
	ClaimPart(ctx context.Context, atomID, id string, n int, reader string) (upload.PartPin, error)
	Pins(ctx context.Context, atomID, id string, from, to int) (map[int]upload.PartPin, error)
}

// recordStore reads and changes records.
type recordStore interface {
	Get(ctx context.Context, atomID, id string) (*upload.Upload, error)
	Update(ctx context.Context, atomID, id string, fn func(*upload.Upload) error) (*upload.Upload, error)
}

// holdingStore changes a record on condition that a lease is still held.
type holdingStore interface {
	UpdateHolding(ctx context.Context, l upload.Lease, fn func(*upload.Upload) error) (*upload.Upload, error)
}

// S3API is what the worker needs of S3.
type S3API interface {
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPartCopy(ctx context.Context, in *s3.UploadPartCopyInput, optFns ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
	ListParts(ctx context.Context, in *s3.ListPartsInput, optFns ...func(*s3.Options)) (*s3.ListPartsOutput, error)
}

// YouTube is the YouTube Data API as the relay and the processing
// follow-up use it.
type YouTube interface {
	StartSession(ctx context.Context, meta upload.YouTubeMetadata, size int64, contentType string) (string, error)
	PutChunk(ctx context.Context, sessionURI string, body io.Reader, start, n, total int64) (youtube.Progress, error)
	Offset(ctx context.Context, sessionURI string, total int64) (youtube.Progress, error)
	Processing(ctx context.Context, videoID string) (upload.YouTubeProcessing, error)
	Cancel(ctx context.Context, session string) error
}

// Transcoder runs the s3Bucket destination's transcode jobs.
type Transcoder interface {
	Start(ctx context.Context, spec transcode.Spec) (string, error)
	Job(ctx context.Context, jobID string) (transcode.Job, error)
}

// AtomAPI adds the YouTube video to the media atom. AddAsset adds it
// only when the atom does not have it yet, and reports whether it did.
type AtomAPI interface {
	AddAsset(ctx context.Context, atomID, videoURL string) (added bool, err error)
}

// Sender sends the service's own follow-up messages to the queue.
type Sender interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// Deps are the collaborators of the Dispatcher. YouTube, Transcoder and
// AtomAPI may be nil when the service runs without them, and Metrics when
// nothing is measured.
type Deps struct {
	Store      Store
	Queue      Sender
	S3         S3API
	YouTube    YouTube
	Transcoder Transcoder
	AtomAPI    AtomAPI
	Log        *zap.Logger
	Metrics    *metrics.Metrics
}
