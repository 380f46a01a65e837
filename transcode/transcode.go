package transcode

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"atomuploads/upload"
)

// Spec says what to transcode.
type Spec struct {
	AtomID   string
	UploadID string
	// SourceBucket and SourceKey locate the original, normally
	// uploads/<atomId>/<uploadId>/full.
	SourceBucket string
	SourceKey    string
	// Token makes Start idempotent: the same token never starts a second
	// job (e.g. "<uploadId>-<attempt>"). 1–64 letters, digits, '-' or '_'.
	Token string
}

// State is the lifecycle state of a transcode job.
type State string

// Job states: submitted → progressing → complete | error.
const (
	StateSubmitted   State = "submitted"   // accepted, waiting for a worker
	StateProgressing State = "progressing" // being transcoded
	StateComplete    State = "complete"    // every output is in the destination bucket
	StateError       State = "error"       // failed, see Job.Error and Job.Retryable
)

// Terminal reports whether the job will not change any more.
func (s State) Terminal() bool { return s == StateComplete || s == StateError }

// Job is the state of a transcode job as the backend reports it.
type Job struct {
	ID      string
	State   State
	Percent float64 // 0..100
	// Outputs are keys in the destination bucket, set when complete.
	Outputs []string
	// Error is a readable reason when State is StateError.
	Error string
	// Retryable (StateError only) says the job was lost, for example because
	// its worker stopped, and starting again with a new Token may succeed.
	// It is false when the input is at fault.
	Retryable bool
}

// Rendition is one MP4 output.
type Rendition struct {
	// Name is the output's base name: the key is <atomId>/<uploadId>/<Name>.mp4.
	// 1–32 letters, digits, '-' or '_'; not "poster".
	Name string
	// Height in pixels, even, 32–4320. The width follows the input's aspect
	// ratio, rounded to an even number. Inputs are scaled up or down.
	Height int
	// VideoBitrate is the peak video bitrate in bits/s (MediaConvert QVBR
	// MaxBitrate; ffmpeg -maxrate with constant quality below it).
	VideoBitrate int
	// AudioBitrate is the AAC stereo bitrate in bits/s; 0 means 128000.
	AudioBitrate int
}

// DefaultAudioBitrate is used when a Rendition does not set AudioBitrate.
const DefaultAudioBitrate = 128000

// DefaultRenditions is the rendition set used when a Config has none:
// 1080p, 720p and 360p.
func DefaultRenditions() []Rendition {
	return []Rendition{
		{Name: "1080p", Height: 1080, VideoBitrate: 5_000_000, AudioBitrate: 128000},
		{Name: "720p", Height: 720, VideoBitrate: 3_000_000, AudioBitrate: 128000},
		{Name: "360p", Height: 360, VideoBitrate: 800_000, AudioBitrate: 96000},
	}
}

func (r Rendition) audioBitrate() int {
	if r.AudioBitrate == 0 {
		return DefaultAudioBitrate
	}
	return r.AudioBitrate
}

// PosterName is the base name of the poster frame.
const PosterName = "poster"

var (
	idPattern    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$`)
	tokenPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	namePattern  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
)

// Validate reports every problem of the spec in one EINVALID error.
func (s Spec) Validate() error {
	var problems []string
	if !idPattern.MatchString(s.AtomID) {
		problems = append(problems, fmt.Sprintf("atomId %q must be 1-100 letters, digits, '-' or '_'", s.AtomID))
	}
	if !idPattern.MatchString(s.UploadID) {
		problems = append(problems, fmt.Sprintf("uploadId %q must be 1-100 letters, digits, '-' or '_'", s.UploadID))
	}
	if s.SourceBucket == "" {
		problems = append(problems, "source bucket is required")
	}
	if s.SourceKey == "" {
		problems = append(problems, "source key is required")
	}
	if !tokenPattern.MatchString(s.Token) {
		problems = append(problems, fmt.Sprintf("token %q must be 1-64 letters, digits, '-' or '_'", s.Token))
	}
	if len(problems) > 0 {
		return upload.Errorf(upload.EINVALID, "transcode spec: %s", strings.Join(problems, "; "))
	}
	return nil
}

// OutputPrefix is the prefix, in the destination bucket, of every output
// of an upload: <atomId>/<uploadId>/.
func OutputPrefix(atomID, uploadID string) string {
	return atomID + "/" + uploadID + "/"
}

// validateRenditions reports the problems of a rendition set (an empty set
// is valid: it means DefaultRenditions).
func validateRenditions(rs []Rendition) []error {
	var errs []error
	seen := map[string]bool{}
	for i, r := range rs {
		at := fmt.Sprintf("renditions[%d]", i)
		if !namePattern.MatchString(r.Name) || r.Name == PosterName {
			errs = append(errs, fmt.Errorf("%s.name %q must be 1-32 letters, digits, '-' or '_' and not %q", at, r.Name, PosterName))
		} else if seen[r.Name] {
			errs = append(errs, fmt.Errorf("%s.name %q is used twice", at, r.Name))
		}
		seen[r.Name] = true
		if r.Height < 32 || r.Height > 4320 || r.Height%2 != 0 {
			errs = append(errs, fmt.Errorf("%s.height must be an even number of pixels from 32 to 4320, got %d", at, r.Height))
		}
		if r.VideoBitrate < 1000 || r.VideoBitrate > 100_000_000 {
			errs = append(errs, fmt.Errorf("%s.videoBitrate must be 1000-100000000 bits/s, got %d", at, r.VideoBitrate))
		}
		if r.AudioBitrate != 0 && (r.AudioBitrate < 16000 || r.AudioBitrate > 320000) {
			errs = append(errs, fmt.Errorf("%s.audioBitrate must be 0 (default %d) or 16000-320000 bits/s, got %d", at, DefaultAudioBitrate, r.AudioBitrate))
		}
	}
	return errs
}

func renditionsOrDefault(rs []Rendition) []Rendition {
	if len(rs) == 0 {
		return DefaultRenditions()
	}
	return append([]Rendition(nil), rs...)
}

// joinProblems joins config problems under a heading, or returns nil.
func joinProblems(what string, errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %w", what, errors.Join(errs...))
}
