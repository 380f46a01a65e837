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
	Parts        []Part        `json:"parts"`
	Credentials  *Credentials  `json:"credentials,omitempty"`
}

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
	VideoID          string   `json:"videoId,omitempty"`
	URL              string   `json:"url,omitempty"`
	UploadedBytes    *int64   `json:"uploadedBytes,omitempty"` // bytes YouTube has committed
	ProcessingStatus string   `json:"processingStatus,omitempty"`
	JobID            string   `json:"jobId,omitempty"`
	Outputs          []string `json:"outputs,omitempty"` // keys in the output bucket
	// Playback is the key of the HLS master playlist (s3Bucket, complete).
	Playback string `json:"playback,omitempty"`
	// Renditions describe the outputs, in the order of Outputs.
	Renditions []Rendition `json:"renditions,omitempty"`
}

// Rendition describes one output of an s3Bucket destination.
type Rendition struct {
	Key  string `json:"key"`  // in the output bucket, as in Outputs
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
// newest first.
type UploadList struct {
	Uploads []Upload `json:"uploads"`
}

// Error is the body of every 4xx and 5xx answer: what is wrong, for people.
type Error struct {
	Message string `json:"message"`
}
