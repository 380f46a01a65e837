package store

import (
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"atomuploads/upload"
)

// item is the table's representation of an upload.
type item struct {
	AtomID        string     `dynamodbav:"atomId"`
	UploadID      string     `dynamodbav:"uploadId"`
	Version       int64      `dynamodbav:"version"`
	Filename      string     `dynamodbav:"filename"`
	Size          int64      `dynamodbav:"size"`
	ContentType   string     `dynamodbav:"contentType"`
	Status        string     `dynamodbav:"status"`
	Error         string     `dynamodbav:"error"`
	CreatedAt     string     `dynamodbav:"createdAt"`
	UpdatedAt     string     `dynamodbav:"updatedAt"`
	Region        string     `dynamodbav:"region"`
	Bucket        string     `dynamodbav:"bucket"`
	PartSize      int64      `dynamodbav:"partSize"`
	SHA256        string     `dynamodbav:"sha256,omitempty"`
	Assembled     bool       `dynamodbav:"assembled"`
	AssemblyID    string     `dynamodbav:"assemblyUploadId,omitempty"`
	AssemblyDone  int        `dynamodbav:"assemblyCopied,omitempty"`
	AssemblyETag  string     `dynamodbav:"assemblyETag,omitempty"`
	Advances      int64      `dynamodbav:"advances,omitempty"`
	Destinations  []destItem `dynamodbav:"destinations"`
	CompleteParts []int      `dynamodbav:"completeParts,numberset,omitempty"`
	ExpiresAt     int64      `dynamodbav:"expiresAt,omitempty"`
	// Live and ProgressAt are the keys of the sparse index of uploads
	// that are not terminal (indexLive): Live is set only while the
	// upload is not terminal, ProgressAt is the time of its last change.
	Live       string `dynamodbav:"live,omitempty"`
	ProgressAt int64  `dynamodbav:"progressAt,omitempty"`
	// LastPartAt is when a part last completed (unix ms), set by
	// CompletePart only; RetriedAt when the upload was last retried.
	LastPartAt int64  `dynamodbav:"lastPartAt,omitempty"`
	RetriedAt  string `dynamodbav:"retriedAt,omitempty"`
	// PartsDeleted: the clean-up deletes (or deleted) the parts. Cleanup
	// and CleanupAt are the keys of the sparse index of the uploads whose
	// parts are due to be deleted (indexCleanup): set by the write that
	// ends an upload whose parts may go, removed by CleanedUp.
	PartsDeleted bool `dynamodbav:"partsDeleted,omitempty"`
	// YouTubeReadParts is the relay's claim (attrYouTubeRead).
	YouTubeReadParts int    `dynamodbav:"youtubeReadParts,omitempty"`
	Cleanup          string `dynamodbav:"cleanup,omitempty"`
	CleanupAt        int64  `dynamodbav:"cleanupAt,omitempty"`
}

type destItem struct {
	Type     string  `dynamodbav:"type"`
	Status   string  `dynamodbav:"status"`
	Progress float64 `dynamodbav:"progress"`
	Error    string  `dynamodbav:"error,omitempty"`

	Title         string   `dynamodbav:"title,omitempty"`
	Description   string   `dynamodbav:"description,omitempty"`
	Tags          []string `dynamodbav:"tags,omitempty"`
	CategoryID    string   `dynamodbav:"categoryId,omitempty"`
	PrivacyStatus string   `dynamodbav:"privacyStatus,omitempty"`

	Session          string `dynamodbav:"session,omitempty"`
	UploadedBytes    int64  `dynamodbav:"uploadedBytes,omitempty"`
	VideoID          string `dynamodbav:"videoId,omitempty"`
	ProcessingStatus string `dynamodbav:"processingStatus,omitempty"`
	AssetAdded       bool   `dynamodbav:"assetAdded,omitempty"`
	AssetError       string `dynamodbav:"assetError,omitempty"`

	JobID    string     `dynamodbav:"jobId,omitempty"`
	Attempt  int        `dynamodbav:"attempt,omitempty"`
	Outputs  []string   `dynamodbav:"outputs,omitempty"`
	Files    []fileItem `dynamodbav:"files,omitempty"`
	Playback string     `dynamodbav:"playback,omitempty"`

	JobStartedAt string `dynamodbav:"jobStartedAt,omitempty"`

	PolledAt string `dynamodbav:"polledAt,omitempty"`
	Advances int64  `dynamodbav:"advances,omitempty"`
	RetryAt  string `dynamodbav:"retryAt,omitempty"`

	TimeLeftMs  int64  `dynamodbav:"processingTimeLeftMs,omitempty"`
	SHA256      string `dynamodbav:"sha256,omitempty"`
	HashState   []byte `dynamodbav:"hashState,omitempty"`
	HashedBytes int64  `dynamodbav:"hashedBytes,omitempty"`
	WaitingFor  string `dynamodbav:"waitingFor,omitempty"`
	ResumeAt    string `dynamodbav:"resumeAt,omitempty"`
	ParkedSince string `dynamodbav:"parkedSince,omitempty"`
}

// fileItem describes one output of an s3Bucket destination.
type fileItem struct {
	Key     string `dynamodbav:"key"`
	Kind    string `dynamodbav:"kind"`
	Width   int    `dynamodbav:"width,omitempty"`
	Height  int    `dynamodbav:"height,omitempty"`
	Bitrate int    `dynamodbav:"bitrate,omitempty"`
}

const timeFormat = time.RFC3339Nano

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeFormat)
}

func parseTime(s string) time.Time {
	t, err := time.Parse(timeFormat, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

func toItem(u *upload.Upload) item {
	it := item{
		AtomID:       u.AtomID,
		UploadID:     u.ID,
		Version:      u.Version,
		Filename:     u.Filename,
		Size:         u.Size,
		ContentType:  u.ContentType,
		Status:       string(u.Status),
		Error:        u.Error,
		CreatedAt:    formatTime(u.CreatedAt),
		UpdatedAt:    formatTime(u.UpdatedAt),
		Region:       u.Region,
		Bucket:       u.Bucket,
		PartSize:     u.PartSize,
		SHA256:       u.SHA256,
		Assembled:    u.Assembled,
		AssemblyID:   u.Assembly.UploadID,
		AssemblyDone: u.Assembly.Copied,
		AssemblyETag: u.Assembly.ETag,
		Advances:     u.Advances,
		ProgressAt:   u.UpdatedAt.UnixMilli(),
	}
	it.RetriedAt, it.PartsDeleted = formatTime(u.RetriedAt), u.PartsDeleted
	it.YouTubeReadParts = u.YouTubeReadParts
	if !u.LastPartAt.IsZero() {
		it.LastPartAt = u.LastPartAt.UnixMilli()
	}
	if !u.Status.Terminal() {
		it.Live = liveValue
	}
	if parts := u.CompletedParts(); len(parts) > 0 {
		it.CompleteParts = parts // an empty set is no attribute (DynamoDB has no empty sets)
	}
	for _, d := range u.Destinations {
		di := destItem{
			Type:             string(d.Type),
			Status:           string(d.Status),
			Progress:         d.Progress,
			Error:            d.Error,
			Session:          d.Session,
			UploadedBytes:    d.UploadedBytes,
			VideoID:          d.VideoID,
			ProcessingStatus: d.ProcessingStatus,
			AssetAdded:       d.AssetAdded,
			AssetError:       d.AssetError,
			JobID:            d.JobID,
			Attempt:          d.Attempt,
			Outputs:          d.Outputs,
			JobStartedAt:     formatTime(d.JobStartedAt),
			Playback:         d.Playback,
			PolledAt:         formatTime(d.PolledAt),
			Advances:         d.Advances,
			RetryAt:          formatTime(d.RetryAt),
			TimeLeftMs:       d.ProcessingTimeLeftMs,
			SHA256:           d.SHA256,
			HashState:        d.HashState,
			HashedBytes:      d.HashedBytes,
			WaitingFor:       d.WaitingFor,
			ResumeAt:         formatTime(d.ResumeAt),
			ParkedSince:      formatTime(d.ParkedSince),
		}
		for _, f := range d.Files {
			di.Files = append(di.Files, fileItem{Key: f.Key, Kind: f.Kind, Width: f.Width, Height: f.Height, Bitrate: f.Bitrate})
		}
		if m := d.Meta; m != nil {
			di.Title, di.Description, di.Tags = m.Title, m.Description, m.Tags
			di.CategoryID, di.PrivacyStatus = m.CategoryID, m.PrivacyStatus
		}
		it.Destinations = append(it.Destinations, di)
	}
	return it
}

func fromAttrs(av map[string]types.AttributeValue) (*upload.Upload, error) {
	var it item
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
		return nil, fmt.Errorf("decode upload item: %w", err)
	}
	u := &upload.Upload{
		ID:          it.UploadID,
		AtomID:      it.AtomID,
		Filename:    it.Filename,
		Size:        it.Size,
		ContentType: it.ContentType,
		Status:      upload.Status(it.Status),
		Error:       it.Error,
		CreatedAt:   parseTime(it.CreatedAt),
		UpdatedAt:   parseTime(it.UpdatedAt),
		Region:      it.Region,
		Bucket:      it.Bucket,
		PartSize:    it.PartSize,
		SHA256:      it.SHA256,
		Assembled:   it.Assembled,
		Assembly:    upload.Assembly{UploadID: it.AssemblyID, Copied: it.AssemblyDone, ETag: it.AssemblyETag},
		Advances:    it.Advances,
		Version:     it.Version,
		Completed:   make(map[int]bool, len(it.CompleteParts)),
	}
	u.RetriedAt, u.PartsDeleted = parseTime(it.RetriedAt), it.PartsDeleted
	u.YouTubeReadParts = it.YouTubeReadParts
	if it.LastPartAt > 0 {
		u.LastPartAt = time.UnixMilli(it.LastPartAt).UTC()
	}
	for _, name := range upload.Leases {
		_, le := leaseAttrs(name)
		if ms, ok := numAttr(av[le]); ok && ms > 0 {
			if u.Leases == nil {
				u.Leases = map[upload.LeaseName]time.Time{}
			}
			u.Leases[name] = time.UnixMilli(ms).UTC()
		}
	}
	sort.Ints(it.CompleteParts)
	for _, n := range it.CompleteParts {
		u.Completed[n] = true
	}
	for _, di := range it.Destinations {
		d := upload.Destination{
			Type:                 upload.DestinationType(di.Type),
			Status:               upload.DestinationStatus(di.Status),
			Progress:             di.Progress,
			Error:                di.Error,
			Session:              di.Session,
			UploadedBytes:        di.UploadedBytes,
			VideoID:              di.VideoID,
			ProcessingStatus:     di.ProcessingStatus,
			AssetAdded:           di.AssetAdded,
			AssetError:           di.AssetError,
			JobID:                di.JobID,
			Attempt:              di.Attempt,
			Outputs:              di.Outputs,
			JobStartedAt:         parseTime(di.JobStartedAt),
			Playback:             di.Playback,
			PolledAt:             parseTime(di.PolledAt),
			Advances:             di.Advances,
			RetryAt:              parseTime(di.RetryAt),
			ProcessingTimeLeftMs: di.TimeLeftMs,
			SHA256:               di.SHA256,
			HashState:            di.HashState,
			HashedBytes:          di.HashedBytes,
			WaitingFor:           di.WaitingFor,
			ResumeAt:             parseTime(di.ResumeAt),
			ParkedSince:          parseTime(di.ParkedSince),
		}
		for _, f := range di.Files {
			d.Files = append(d.Files, upload.OutputFile{Key: f.Key, Kind: f.Kind, Width: f.Width, Height: f.Height, Bitrate: f.Bitrate})
		}
		if d.Type == upload.YouTube {
			d.Meta = &upload.YouTubeMetadata{
				Title: di.Title, Description: di.Description, Tags: di.Tags,
				CategoryID: di.CategoryID, PrivacyStatus: di.PrivacyStatus,
			}
		}
		u.Destinations = append(u.Destinations, d)
	}
	return u, nil
}
