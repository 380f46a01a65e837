package transcode

import (
	"errors"
	"fmt"
	"path"
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
	// Outputs are the files of the job in the destination bucket, set when
	// complete: the HLS master playlist, each variant's media playlist (its
	// segments are named by the playlists, not listed), the progressive MP4
	// and the poster.
	Outputs []Output
	// Playback is the key of the HLS master playlist, set when complete
	// (empty for a job of an older layout that wrote none).
	Playback string
	// Error is a readable reason when State is StateError.
	Error string
	// Retryable (StateError only) says the job was lost, for example because
	// its worker stopped, and starting again with a new Token may succeed.
	// It is false when the input is at fault.
	Retryable bool
}

// Keys are the keys of the job's outputs, in order.
func (j Job) Keys() []string {
	keys := make([]string, len(j.Outputs))
	for i, o := range j.Outputs {
		keys[i] = o.Key
	}
	return keys
}

// OutputKind says what an output file is.
type OutputKind string

// Output kinds.
const (
	KindHLS      OutputKind = "hls"      // the HLS master playlist: what players open
	KindHLSVideo OutputKind = "hlsVideo" // one video variant's media playlist
	KindHLSAudio OutputKind = "hlsAudio" // the audio rendition's media playlist
	KindMP4      OutputKind = "mp4"      // the progressive MP4 (+faststart), for download and players without HLS
	KindPoster   OutputKind = "poster"   // the JPEG poster frame
)

// Output is one file of a job in the destination bucket.
type Output struct {
	Key  string     `json:"key"`
	Kind OutputKind `json:"kind"`
	// Width and Height are the picture's size in pixels (video and poster).
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
	// Bitrate is in bits/s: for a video variant the peak its playlist
	// declares (BANDWIDTH, audio included), for the audio rendition and the
	// MP4 their average. The ffmpeg backend measures it; MediaConvert's is
	// the ceiling the job was given (video maximum plus audio).
	Bitrate int `json:"bitrate,omitempty"`
}

// Rendition is one rung of the video ladder: an HLS variant, and the
// progressive MP4 too when it is the highest rung a source gets.
type Rendition struct {
	// Name names the rendition's files: hls/master_<Name>.m3u8 and, for
	// the highest, <Name>.mp4. 1–32 letters, digits, '-' or '_'; not
	// "poster" or "audio".
	Name string
	// Height is the rung's short side in pixels, even, 32–4320: the height
	// of a landscape picture, the width of a portrait one. The other side
	// follows the source's displayed aspect ratio, made even. A source
	// whose short side is smaller than the rung does not get it (see
	// Ladder).
	Height int
	// VideoBitrate is the peak video bitrate in bits/s (MediaConvert QVBR
	// MaxBitrate; ffmpeg -maxrate with constant quality below it).
	VideoBitrate int
	// AudioBitrate is the AAC stereo bitrate in bits/s of the audio
	// rendition and the MP4 when this is the highest rung a source gets;
	// 0 means 128000.
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

// The layout of an upload's outputs, under OutputPrefix, the same for both
// backends:
//
//	hls/master.m3u8                 HLS master playlist (Job.Playback)
//	hls/master_<rendition>.m3u8     one video variant's media playlist
//	hls/master_audio.m3u8           the audio rendition's (when the source has sound)
//	hls/…                           their fMP4 (CMAF) segments, about 6 s each
//	<highest rendition>.mp4         progressive MP4 (+faststart) of the highest rung
//	poster.0000000.jpg              poster frame, at the highest rung's size
//
// The segments' names are each backend's own; only the playlists name them.
const (
	// HLSDir is the folder of the HLS package.
	HLSDir = "hls/"
	// MasterName is the base name of the master playlist; each media
	// playlist is MasterName + "_" + rendition + ".m3u8".
	MasterName = "master"
	// AudioName is the name of the audio rendition.
	AudioName = "audio"
	// PosterName is the base name of the poster frame.
	PosterName = "poster"
	// PosterFile is the poster's file name: MediaConvert always numbers
	// frame captures, and the ffmpeg backend names it the same way.
	PosterFile = PosterName + ".0000000.jpg"
	// SegmentSeconds is the HLS segment duration; keyframes come every
	// GOPSeconds in every variant, so segments align across variants.
	SegmentSeconds = 6
	GOPSeconds     = 2
)

// MasterKey is the key of the master playlist of an upload's outputs.
func MasterKey(atomID, uploadID string) string {
	return OutputPrefix(atomID, uploadID) + HLSDir + MasterName + ".m3u8"
}

// mediaPlaylistName is the file name of a rendition's media playlist.
func mediaPlaylistName(rendition string) string {
	return MasterName + "_" + rendition + ".m3u8"
}

// ContentType is the Content-Type an output is stored with, by its name:
// what S3 (and a CDN in front of it) serves it as.
func ContentType(key string) string {
	switch path.Ext(key) {
	case ".m3u8":
		return "application/vnd.apple.mpegurl"
	case ".jpg", ".jpeg":
		return "image/jpeg"
	case ".json":
		return "application/json"
	}
	return "video/mp4" // .mp4, fMP4 segments and init segments
}

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
	seen, heights := map[string]bool{}, map[int]bool{}
	for i, r := range rs {
		at := fmt.Sprintf("renditions[%d]", i)
		if !namePattern.MatchString(r.Name) || r.Name == PosterName || r.Name == AudioName {
			errs = append(errs, fmt.Errorf("%s.name %q must be 1-32 letters, digits, '-' or '_' and not %q or %q", at, r.Name, PosterName, AudioName))
		} else if seen[r.Name] {
			errs = append(errs, fmt.Errorf("%s.name %q is used twice", at, r.Name))
		}
		seen[r.Name] = true
		if r.Height < 32 || r.Height > 4320 || r.Height%2 != 0 {
			errs = append(errs, fmt.Errorf("%s.height must be an even number of pixels from 32 to 4320, got %d", at, r.Height))
		} else if heights[r.Height] {
			errs = append(errs, fmt.Errorf("%s.height %d is used twice", at, r.Height))
		}
		heights[r.Height] = true
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
