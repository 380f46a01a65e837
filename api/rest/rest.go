// Package rest is the wire format of the atom-uploads REST contract
// (design.md, "The REST contract", and api/openapi.yaml): the JSON bodies
// the API renders and accepts, defined once for the server (package api,
// which converts the domain's records into them) and for its clients
// (package client, which sends a StartRequest and decodes the answers). The
// names and omitempty of every field are the contract: the media tool
// depends on them.
//
// The package is plain data, with no dependency on the web framework, the
// AWS SDK or the domain: statuses and types are the strings of the contract.
package rest

import "time"

// StartRequest is the body of POST /api2/atom/{atomId}/uploads.
type StartRequest struct {
	Filename     string               `json:"filename"`
	Size         int64                `json:"size"`
	ContentType  string               `json:"contentType"`
	Destinations []DestinationRequest `json:"destinations"`
	// SHA256 is the whole file's SHA-256 in hex, optional: every byte
	// YouTube and S3 receive is then proven against it.
	SHA256 string `json:"sha256,omitempty"`
}

// DestinationRequest asks for one destination: "youtube" or "s3Bucket". The
// other fields apply only to a youtube destination.
type DestinationRequest struct {
	Type          string   `json:"type"`
	Title         string   `json:"title,omitempty"`
	Description   string   `json:"description,omitempty"`
	Tags          []string `json:"tags,omitempty"`
	CategoryID    string   `json:"categoryId,omitempty"`
	PrivacyStatus string   `json:"privacyStatus,omitempty"`
}

// Upload is an upload record: the answer to start, get and cancel, and an
// item of the list. Credentials are present only in the answer to start.
//
// The full view (the default) has Parts, the whole plan. The summary view
// (?view=summary on get and list) has no Parts but PartsTotal,
// PartsComplete and PartsMissing, which are absent in the full view.
type Upload struct {
	ID           string        `json:"id"`
	AtomID       string        `json:"atomId"`
	Filename     string        `json:"filename"`
	Size         int64         `json:"size"`
	ContentType  string        `json:"contentType"`
	Status       string        `json:"status"` // uploading → processing → complete | failed | cancelled
	Error        string        `json:"error,omitempty"`
	CreatedAt    string        `json:"createdAt"` // RFC 3339
	UpdatedAt    string        `json:"updatedAt"` // RFC 3339
	Region       string        `json:"region"`
	Bucket       string        `json:"bucket"`
	Destinations []Destination `json:"destinations"`
	Parts        []Part        `json:"parts,omitempty"` // full view: every planned part (a plan has at least one)
	// PartsTotal is how many parts the plan has (summary view).
	PartsTotal *int `json:"partsTotal,omitempty"`
	// PartsComplete is how many of them are in S3 (summary view).
	PartsComplete *int `json:"partsComplete,omitempty"`
	// PartsMissing lists the parts not yet in S3 as runs of part numbers,
	// in order (summary view): [[3, 7], [12, 12]] is parts 3 to 7 and 12;
	// [] when every part is in.
	PartsMissing []PartRange  `json:"partsMissing,omitzero"`
	Credentials  *Credentials `json:"credentials,omitempty"`
}

// PartRange is a run of part numbers, first and last, both included.
type PartRange [2]int

// Destination is the progress of one destination of an upload.
type Destination struct {
	Type     string  `json:"type"`     // youtube | s3Bucket
	Status   string  `json:"status"`   // waiting → upload → transcoding → complete | failed
	Progress float64 `json:"progress"` // 0–100
	Details  Details `json:"details"`
	Error    string  `json:"error,omitempty"`
}

// Details are a destination's type-specific fields: the video for youtube,
// the transcode job for s3Bucket.
type Details struct {
	VideoID              string `json:"videoId,omitempty"`
	URL                  string `json:"url,omitempty"`
	UploadedBytes        *int64 `json:"uploadedBytes,omitempty"` // bytes YouTube has committed
	ProcessingStatus     string `json:"processingStatus,omitempty"`
	ProcessingTimeLeftMs int64  `json:"processingTimeLeftMs,omitempty"` // YouTube's estimate, while it processes
	// WaitingFor says what a parked destination waits for (youtubeQuota,
	// youtubeUploadLimit, youtubeCredentials) and ResumeAt (RFC 3339) when
	// it tries again.
	WaitingFor string `json:"waitingFor,omitempty"`
	ResumeAt   string `json:"resumeAt,omitempty"`
	// SHA256 is the hex SHA-256 of the bytes the destination is proven to
	// have: every byte YouTube committed, or the reassembled original.
	SHA256 string `json:"sha256,omitempty"`
	JobID  string `json:"jobId,omitempty"`
	// Outputs are the files of a transcode in the output bucket (s3Bucket,
	// complete), the master playlist first.
	Outputs []Output `json:"outputs,omitempty"`
	// Playback is the key of the HLS master playlist (s3Bucket, complete).
	Playback string `json:"playback,omitempty"`
}

// Output is one file of an s3Bucket destination's transcode.
type Output struct {
	Key  string `json:"key"`  // in the output bucket
	Kind string `json:"kind"` // hls (the master playlist), hlsVideo, hlsAudio, mp4 or poster
	// Width and Height of the picture, in pixels (video and poster).
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
	// Bitrate in bits/s: a video variant's peak, as its playlist declares
	// it; the average of the audio and of the MP4.
	Bitrate int `json:"bitrate,omitempty"`
}

// Part is one planned part: bytes [Start, End) of the file go to Key.
type Part struct {
	Start    int64  `json:"start"`
	End      int64  `json:"end"` // exclusive
	Key      string `json:"key"`
	Complete bool   `json:"complete"`
}

// Size is the part's length in bytes.
func (p Part) Size() int64 { return p.End - p.Start }

// Credentials are an upload's temporary AWS credentials: they can put only
// that upload's parts, and they expire.
type Credentials struct {
	AccessKeyID     string `json:"temporaryAccessId"`
	SecretAccessKey string `json:"temporarySecretKey"`
	SessionToken    string `json:"sessionToken"`
	Expiry          int64  `json:"expiry"` // unix seconds
}

// Expires is when the credentials stop working.
func (c Credentials) Expires() time.Time { return time.Unix(c.Expiry, 0) }

// String never shows the secrets.
func (c Credentials) String() string {
	return "credentials(expiry " + c.Expires().UTC().Format(time.RFC3339) + ")"
}

// GoString never shows the secrets either (%#v).
func (c Credentials) GoString() string { return c.String() }

// CredentialsResponse is the body of the answer to
// POST /api2/atom/{atomId}/uploads/{uploadId}/credentials.
type CredentialsResponse struct {
	Credentials *Credentials `json:"credentials"`
}

// UploadList is the body of the answer to GET /api2/atom/{atomId}/uploads,
// newest first: one page of at most limit uploads. NextCursor, when
// present, asks for the next page (?cursor=); the last page has none.
type UploadList struct {
	Uploads    []Upload `json:"uploads"`
	NextCursor string   `json:"nextCursor,omitempty"`
}

// Error is the body of every 4xx and 5xx answer: what is wrong, for people.
type Error struct {
	Message string `json:"message"`
}
