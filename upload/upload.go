// Package upload is the domain of atom-uploads: the upload record, its
// destinations and parts plan, the S3 key layout, the ids, the state
// transitions and the domain errors. It is pure Go and does no I/O; every
// other package speaks in its terms.
package upload

import (
	"fmt"
	"mime"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Status is the state of a whole upload.
type Status string

// Upload statuses: uploading → processing → complete | failed | cancelled,
// and uploading → expired.
const (
	StatusUploading  Status = "uploading"  // parts are still arriving
	StatusProcessing Status = "processing" // every part is in; destinations are working
	StatusComplete   Status = "complete"   // every destination is complete
	StatusFailed     Status = "failed"     // the upload or one of its destinations failed
	StatusCancelled  Status = "cancelled"  // cancelled by a user
	StatusExpired    Status = "expired"    // abandoned: no part arrived for uploads.abandonAfter (Expire)
)

// Statuses lists every upload status, in the order of the lifecycle.
var Statuses = []Status{StatusUploading, StatusProcessing, StatusComplete, StatusFailed, StatusCancelled, StatusExpired}

// Terminal reports whether no further work happens for the upload.
func (s Status) Terminal() bool {
	return s == StatusComplete || s == StatusFailed || s == StatusCancelled || s == StatusExpired
}

// DestinationType names where an upload goes.
type DestinationType string

// Destination types of the REST contract.
const (
	YouTube  DestinationType = "youtube"
	S3Bucket DestinationType = "s3Bucket"
)

// DestinationStatus is the state of one destination.
type DestinationStatus string

// Destination statuses. YouTube: waiting → upload → transcoding → complete |
// failed (transcoding is YouTube processing the video). s3Bucket: waiting →
// transcoding → complete | failed.
const (
	DestWaiting     DestinationStatus = "waiting"
	DestUpload      DestinationStatus = "upload"
	DestTranscoding DestinationStatus = "transcoding"
	DestComplete    DestinationStatus = "complete"
	DestFailed      DestinationStatus = "failed"
)

// Terminal reports whether the destination is done, one way or the other.
func (s DestinationStatus) Terminal() bool { return s == DestComplete || s == DestFailed }

// YouTubeMetadata is what the video is published with.
type YouTubeMetadata struct {
	Title         string
	Description   string
	Tags          []string
	CategoryID    string
	PrivacyStatus string
}

// Destination is one target of an upload and its progress.
type Destination struct {
	Type     DestinationType
	Status   DestinationStatus
	Progress float64 // 0–100
	Error    string

	// YouTube destination.
	Meta             *YouTubeMetadata
	Session          string // sealed resumable session handle (package youtube); never rendered or logged
	UploadedBytes    int64  // bytes YouTube has committed
	VideoID          string
	ProcessingStatus string
	// ProcessingTimeLeftMs is YouTube's estimate of the processing time
	// left, while it processes.
	ProcessingTimeLeftMs int64
	AssetAdded           bool // the atom API has the video as an asset
	// AssetError says why the atom API did not take the video when that
	// work was given up. It is kept apart from Error, which the
	// destination's own lifecycle sets and clears (YouTube may still be
	// processing the video when the asset call is given up).
	AssetError string

	// SHA256 is the hex SHA-256 of the bytes the destination is proven to
	// have received: for YouTube, of every byte YouTube committed, in order.
	SHA256 string
	// HashState is the relay's running SHA-256 of the bytes YouTube has
	// committed, saved (crypto/sha256's binary form) with HashedBytes, the
	// offset it covers, so that another worker goes on from there.
	HashState   []byte
	HashedBytes int64

	// s3Bucket destination.
	JobID   string
	Attempt int // transcode attempts started
	Outputs []string
	// JobStartedAt is when the current transcode job was started (zero
	// for a job recorded before it was kept): its duration, for metrics.
	JobStartedAt time.Time
	// Files describe the outputs (kind, picture size, bitrate), Playback
	// is the key of the HLS master playlist; both set when complete.
	Files    []OutputFile
	Playback string

	// PolledAt is when the destination's remote state (YouTube processing,
	// transcode job) was last asked for.
	PolledAt time.Time

	// Advances counts the destination's steps forward (a session started,
	// bytes committed, a poll answered, a job started, the asset added). It
	// only grows: a worker that compares it before and after an attempt
	// knows whether the attempt made progress.
	Advances int64
	// RetryAt is when the destination's next attempt is due, while a
	// delayed follow-up message waits to drive it; zero when none does.
	RetryAt time.Time

	// WaitingFor says what a parked destination waits for (one of the
	// Wait… values), empty when it is not parked; ResumeAt is when it
	// tries again, ParkedSince when it began to wait.
	WaitingFor  string
	ResumeAt    time.Time
	ParkedSince time.Time
}

// OutputFile is one file an s3Bucket destination's transcode wrote to the
// output bucket.
type OutputFile struct {
	Key    string
	Kind   string // hls, hlsVideo, hlsAudio, mp4 or poster
	Width  int    // pixels, for video and the poster
	Height int
	// Bitrate in bits/s: a video variant's peak (as its playlist declares
	// it), the average of the audio and the MP4.
	Bitrate int
}

// What a parked destination waits for.
const (
	WaitYouTubeQuota       = "youtubeQuota"       // the project's daily YouTube quota, reset at midnight Pacific
	WaitYouTubeUploadLimit = "youtubeUploadLimit" // the channel's upload limit, which can last days
	WaitYouTubeCredentials = "youtubeCredentials" // someone to fix the YouTube credentials
)

// Park records that the destination waits for something until resumeAt,
// keeping its status and progress: nothing is lost while it waits.
func (d *Destination) Park(waitingFor string, resumeAt, now time.Time) {
	if d.WaitingFor == "" {
		d.ParkedSince = now.UTC()
	}
	d.WaitingFor, d.ResumeAt = waitingFor, resumeAt.UTC()
}

// Unpark records that the destination no longer waits.
func (d *Destination) Unpark() {
	d.WaitingFor, d.ResumeAt, d.ParkedSince = "", time.Time{}, time.Time{}
}

// Parked reports whether the destination waits at now.
func (d *Destination) Parked(now time.Time) bool {
	return d.WaitingFor != "" && now.Before(d.ResumeAt)
}

// Advance counts one step forward of the destination.
func (d *Destination) Advance() { d.Advances++ }

// URL is the YouTube watch URL of the destination's video, if any.
func (d *Destination) URL() string {
	if d.VideoID == "" {
		return ""
	}
	return "https://www.youtube.com/watch?v=" + d.VideoID
}

var allowedMoves = map[DestinationType]map[DestinationStatus][]DestinationStatus{
	YouTube: {
		DestWaiting:     {DestUpload, DestFailed},
		DestUpload:      {DestTranscoding, DestFailed},
		DestTranscoding: {DestComplete, DestFailed},
	},
	S3Bucket: {
		DestWaiting:     {DestTranscoding, DestFailed},
		DestTranscoding: {DestComplete, DestFailed},
	},
}

// MoveTo changes the destination's status. Staying in the same status is
// allowed (progress updates); any move the lifecycle does not have is refused
// with ECONFLICT.
func (d *Destination) MoveTo(to DestinationStatus) error {
	if d.Status == to {
		return nil
	}
	for _, ok := range allowedMoves[d.Type][d.Status] {
		if ok == to {
			d.Status = to
			switch to {
			case DestComplete:
				d.Progress, d.Error = 100, ""
			case DestFailed:
				// Fail gives the reason; a bare move keeps the one there is.
			case DestWaiting, DestUpload, DestTranscoding:
				d.Error = ""
			}
			return nil
		}
	}
	return Errorf(ECONFLICT, "%s destination cannot move from %s to %s", d.Type, d.Status, to)
}

// Fail moves the destination to failed with a readable reason. A terminal
// destination keeps its state.
func (d *Destination) Fail(reason string) {
	if d.Status.Terminal() {
		return
	}
	d.Status = DestFailed
	d.Error = reason
}

// Upload is the progress record of one upload.
type Upload struct {
	ID          string
	AtomID      string
	Filename    string
	Size        int64
	ContentType string
	Status      Status
	Error       string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	Region      string
	Bucket      string
	PartSize    int64
	// SHA256 is the hex SHA-256 of the whole file, as the client said when
	// it started the upload; empty when it did not say.
	SHA256 string

	Destinations []Destination
	// Completed holds the numbers of the parts that are in S3 with the
	// planned size.
	Completed map[int]bool
	// Assembled is set once the full file exists at FullKey.
	Assembled bool
	// Assembly is the multipart copy that reassembles the original, while
	// it is under way.
	Assembly Assembly
	// Advances counts the upload's own steps forward (parts completed,
	// reassembly checkpoints); it only grows, like Destination.Advances.
	Advances int64
	// Leases holds the expiry of each lease some worker holds or held on
	// the upload; a lease is live while its expiry is in the future.
	Leases map[LeaseName]time.Time

	// LastPartAt is when a part last completed (zero before the first):
	// with CreatedAt and RetriedAt, the clock of Abandoned.
	LastPartAt time.Time
	// RetriedAt is when the upload was last retried (Retry): a retry that
	// sends it back to waiting for parts gives the browser its time again,
	// and work given up before then is not failed again by its dead letter.
	RetriedAt time.Time
	// PartsDeleted is set once the clean-up has decided to delete the
	// parts (they may be on their way out): nothing may read them again.
	PartsDeleted bool
	// YouTubeReadParts: the relay has claimed parts [0, YouTubeReadParts)
	// (pinned and complete when it did): their pins never change again. It
	// only grows; the relay raises it with each write it makes, to the end
	// of the parts it reads next.
	YouTubeReadParts int

	// Version increments on every change of the record (not of Completed,
	// which only ever grows); writers use it for optimistic locking.
	Version int64
}

// Assembly is a multipart copy of the parts into the original, recorded
// so that another worker can finish it after a crash instead of starting
// again.
type Assembly struct {
	// UploadID is S3's id of the multipart upload of FullKey.
	UploadID string
	// Copied is how many parts had been copied at the last checkpoint.
	Copied int
	// ETag is the original's, once S3 completed the multipart copy: what
	// is left then is to read it back and prove it, not to copy again.
	ETag string
}

// LeaseLive reports whether some worker holds the named lease at now.
func (u *Upload) LeaseLive(name LeaseName, now time.Time) bool {
	return u.Leases[name].After(now)
}

// AnyLeaseLive reports whether some worker holds any lease of the upload.
func (u *Upload) AnyLeaseLive(now time.Time) bool {
	for _, exp := range u.Leases {
		if exp.After(now) {
			return true
		}
	}
	return false
}

// StartRequest is what a media tool asks for when it starts an upload.
type StartRequest struct {
	Filename     string
	Size         int64
	ContentType  string
	Destinations []DestinationRequest
	// SHA256 is the whole file's SHA-256 in hex, optional: every byte
	// YouTube and S3 receive is then proven against it.
	SHA256 string
}

// DestinationRequest asks for one destination.
type DestinationRequest struct {
	Type    DestinationType
	YouTube YouTubeMetadata
}

// Limits of the start request.
const (
	MaxFilenameBytes    = 255
	MaxTitleRunes       = 100
	MaxDescriptionBytes = 5000
	MaxTagsRunes        = 500
)

// New validates a start request and returns the new upload record, planned
// with the preferred part size. Every problem of the request is reported in
// one EINVALID error.
func New(req StartRequest, atomID, id string, now time.Time, region, bucket string, preferredPartSize int64) (*Upload, error) {
	var problems []string
	if !ValidAtomID(atomID) {
		problems = append(problems, fmt.Sprintf("atomId %q must be 1-100 letters, digits, '-' or '_'", atomID))
	}
	if !ValidUploadID(id) {
		problems = append(problems, fmt.Sprintf("upload id %q is not a valid id", id))
	}
	problems = append(problems, checkFilename(req.Filename)...)
	contentType, p := checkContentType(req.ContentType)
	problems = append(problems, p...)
	partSize, err := PartSize(req.Size, preferredPartSize)
	if err != nil {
		problems = append(problems, ErrorMessage(err))
	}
	dests, p := newDestinations(req.Destinations)
	problems = append(problems, p...)
	sum := strings.ToLower(req.SHA256)
	if sum != "" && !sha256Pattern.MatchString(sum) {
		problems = append(problems, fmt.Sprintf("sha256 %q must be the file's SHA-256 as 64 hexadecimal digits", req.SHA256))
	}
	if len(problems) > 0 {
		return nil, Errorf(EINVALID, "%s", strings.Join(problems, "; "))
	}
	now = now.UTC()
	return &Upload{
		ID:           id,
		AtomID:       atomID,
		Filename:     req.Filename,
		Size:         req.Size,
		ContentType:  contentType,
		Status:       StatusUploading,
		CreatedAt:    now,
		UpdatedAt:    now,
		Region:       region,
		Bucket:       bucket,
		PartSize:     partSize,
		SHA256:       sum,
		Destinations: dests,
		Completed:    map[int]bool{},
	}, nil
}

func checkFilename(name string) []string {
	switch {
	case name == "":
		return []string{"filename is required"}
	case len(name) > MaxFilenameBytes:
		return []string{fmt.Sprintf("filename must be at most %d bytes, got %d", MaxFilenameBytes, len(name))}
	case !utf8.ValidString(name) || strings.ContainsRune(name, utf8.RuneError):
		return []string{"filename must be valid UTF-8"}
	case strings.ContainsAny(name, "/\\"):
		return []string{"filename must not contain '/' or '\\'"}
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return []string{"filename must not contain control characters"}
	case strings.IndexFunc(name, isFormat) >= 0:
		return []string{"filename must not contain invisible formatting characters (bidi overrides, zero-width characters, byte order marks)"}
	}
	return nil
}

// isFormat reports Unicode format characters (category Cf): bidi
// controls that reorder how a name is shown, zero-width joiners and
// spaces, the byte order mark. None belongs in a file name.
func isFormat(r rune) bool { return unicode.Is(unicode.Cf, r) }

// hasControl reports control characters other than the line breaks and
// tabs that allow (a description's).
func hasControl(s, allow string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) && !strings.ContainsRune(allow, r) }) >= 0
}

// checkContentType accepts video/* and application/octet-stream and
// returns the canonical form (lower-case type, parameters quoted as
// needed): the value goes into S3 and YouTube headers as it is stored.
func checkContentType(ct string) (string, []string) {
	if ct == "" {
		return "application/octet-stream", nil
	}
	if hasControl(ct, "") || !utf8.ValidString(ct) {
		return "", []string{"contentType must not contain control characters"}
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", []string{fmt.Sprintf("contentType %q is not a media type", ct)}
	}
	if !strings.HasPrefix(mt, "video/") && mt != "application/octet-stream" {
		return "", []string{fmt.Sprintf("contentType %q must be video/* or application/octet-stream", ct)}
	}
	for k, v := range params {
		if hasControl(k+v, "") {
			return "", []string{"contentType must not contain control characters"}
		}
	}
	canonical := mime.FormatMediaType(mt, params)
	if canonical == "" {
		return "", []string{fmt.Sprintf("contentType %q has parameters that cannot be written back as a header", ct)}
	}
	return canonical, nil
}

var privacy = map[string]bool{"private": true, "unlisted": true, "public": true}

func newDestinations(reqs []DestinationRequest) ([]Destination, []string) {
	if len(reqs) == 0 {
		return nil, []string{"destinations must name at least one of youtube, s3Bucket"}
	}
	var problems []string
	seen := map[DestinationType]bool{}
	dests := make([]Destination, 0, len(reqs))
	for i, r := range reqs {
		at := fmt.Sprintf("destinations[%d]", i)
		switch r.Type {
		case YouTube, S3Bucket:
		case "":
			problems = append(problems, at+".type is required (youtube or s3Bucket)")
			continue
		default:
			problems = append(problems, fmt.Sprintf("%s.type %q is unknown (use youtube or s3Bucket)", at, r.Type))
			continue
		}
		if seen[r.Type] {
			problems = append(problems, fmt.Sprintf("%s: only one %s destination is allowed", at, r.Type))
			continue
		}
		seen[r.Type] = true
		d := Destination{Type: r.Type, Status: DestWaiting}
		if r.Type == YouTube {
			meta, p := checkYouTube(at, r.YouTube)
			problems = append(problems, p...)
			d.Meta = &meta
		}
		dests = append(dests, d)
	}
	return dests, problems
}

var (
	digits        = regexp.MustCompile(`^[0-9]{1,4}$`)
	sha256Pattern = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

func checkYouTube(at string, m YouTubeMetadata) (YouTubeMetadata, []string) {
	var problems []string
	switch n := utf8.RuneCountInString(m.Title); {
	case strings.TrimSpace(m.Title) == "":
		problems = append(problems, at+".title is required for a youtube destination")
	case n > MaxTitleRunes:
		problems = append(problems, fmt.Sprintf("%s.title must be at most %d characters, got %d", at, MaxTitleRunes, n))
	}
	if strings.ContainsAny(m.Title, "<>") {
		problems = append(problems, at+".title must not contain < or >")
	}
	if strings.TrimSpace(m.Title) != "" && (hasControl(m.Title, "") || strings.IndexFunc(m.Title, isFormat) >= 0) {
		problems = append(problems, at+".title must not contain control or invisible formatting characters")
	}
	if len(m.Description) > MaxDescriptionBytes {
		problems = append(problems, fmt.Sprintf("%s.description must be at most %d bytes, got %d", at, MaxDescriptionBytes, len(m.Description)))
	}
	if strings.ContainsAny(m.Description, "<>") {
		problems = append(problems, at+".description must not contain < or >")
	}
	if hasControl(m.Description, "\n\r\t") {
		problems = append(problems, at+".description must not contain control characters other than line breaks and tabs")
	}
	total := 0
	for j, tag := range m.Tags {
		total += utf8.RuneCountInString(tag)
		if strings.TrimSpace(tag) == "" || strings.ContainsAny(tag, "<>,") || hasControl(tag, "") {
			problems = append(problems, fmt.Sprintf("%s.tags[%d] must be non-empty and must not contain <, >, ',' or control characters", at, j))
		}
	}
	if total > MaxTagsRunes {
		problems = append(problems, fmt.Sprintf("%s.tags must be at most %d characters in all, got %d", at, MaxTagsRunes, total))
	}
	if m.CategoryID != "" && !digits.MatchString(m.CategoryID) {
		problems = append(problems, fmt.Sprintf("%s.categoryId %q must be a YouTube category number such as \"25\"", at, m.CategoryID))
	}
	if m.PrivacyStatus == "" {
		m.PrivacyStatus = "private"
	} else if !privacy[m.PrivacyStatus] {
		problems = append(problems, fmt.Sprintf("%s.privacyStatus %q must be private, unlisted or public", at, m.PrivacyStatus))
	}
	return m, problems
}

// Parts returns the upload's parts plan.
func (u *Upload) Parts() []Part { return Parts(u.Size, u.PartSize) }

// PartCount is the number of parts in the plan.
func (u *Upload) PartCount() int { return PartCount(u.Size, u.PartSize) }

// Part returns part n of the plan and whether n is in the plan.
func (u *Upload) Part(n int) (Part, bool) {
	if n < 0 || n >= u.PartCount() {
		return Part{}, false
	}
	return PartAt(u.Size, u.PartSize, n), true
}

// PartContaining returns the part that holds byte offset off.
func (u *Upload) PartContaining(off int64) (Part, bool) {
	if off < 0 || off >= u.Size || u.PartSize <= 0 {
		return Part{}, false
	}
	return u.Part(int(off / u.PartSize))
}

// AllPartsComplete reports whether every part of the plan is in S3.
func (u *Upload) AllPartsComplete() bool {
	n := u.PartCount()
	if len(u.Completed) < n {
		return false
	}
	for i := range n {
		if !u.Completed[i] {
			return false
		}
	}
	return true
}

// CompletedParts returns the completed part numbers in order.
func (u *Upload) CompletedParts() []int {
	out := make([]int, 0, len(u.Completed))
	for n, ok := range u.Completed {
		if ok {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out
}

// Destination returns the upload's destination of type t, or nil.
func (u *Upload) Destination(t DestinationType) *Destination {
	for i := range u.Destinations {
		if u.Destinations[i].Type == t {
			return &u.Destinations[i]
		}
	}
	return nil
}

// Cancel moves a running upload to cancelled; its running destinations
// fail with "cancelled". A finished upload cannot be cancelled.
func (u *Upload) Cancel(now time.Time) error {
	if u.Status.Terminal() {
		return Errorf(ECONFLICT, "upload %s is already %s and cannot be cancelled", u.ID, u.Status)
	}
	u.Status = StatusCancelled
	for i := range u.Destinations {
		u.Destinations[i].Fail("cancelled")
	}
	u.UpdatedAt = now.UTC()
	return nil
}

// Fail marks the whole upload failed with a readable reason; destinations
// still running fail with the same reason. A finished upload keeps its state.
func (u *Upload) Fail(reason string, now time.Time) {
	if u.Status.Terminal() {
		return
	}
	u.Status = StatusFailed
	u.Error = reason
	for i := range u.Destinations {
		u.Destinations[i].Fail(reason)
	}
	u.UpdatedAt = now.UTC()
}

// Settled returns the change fn followed by Settle(now()): the form every
// change of a record takes, so that the status always follows from the
// parts and destinations. The store applies changes; it does not settle.
func Settled(now func() time.Time, fn func(*Upload) error) func(*Upload) error {
	return func(u *Upload) error {
		if err := fn(u); err != nil {
			return err
		}
		u.Settle(now())
		return nil
	}
}

// Settle derives the upload status from its parts and destinations: it
// becomes processing once every part is in, and complete (or failed) once it
// is assembled and every destination has finished. Call it after changing
// the record; it never leaves a terminal status.
func (u *Upload) Settle(now time.Time) {
	u.UpdatedAt = now.UTC()
	if u.Status.Terminal() {
		return
	}
	if u.Status == StatusUploading && u.AllPartsComplete() {
		u.Status = StatusProcessing
	}
	if u.Status != StatusProcessing || !u.Assembled {
		return
	}
	var failed []string
	for _, d := range u.Destinations {
		if !d.Status.Terminal() {
			return
		}
		if d.Status == DestFailed {
			failed = append(failed, fmt.Sprintf("%s: %s", d.Type, d.Error))
		}
	}
	if len(failed) > 0 {
		u.Status = StatusFailed
		u.Error = strings.Join(failed, "; ")
		return
	}
	u.Status = StatusComplete
}

// Retry restarts every failed destination from where it failed: a YouTube
// relay from the committed offset of its session (a video YouTube failed
// or rejected is uploaded again, from byte 0 in a new session), a
// transcode with a new job, an asset call given up. The upload goes back
// to uploading or processing. It is ECONFLICT, with the reason, when
// nothing can be retried: the upload was cancelled or expired, nothing
// failed, or what failed needs the parts and they were deleted.
func (u *Upload) Retry(now time.Time) error {
	switch u.Status {
	case StatusCancelled:
		return Errorf(ECONFLICT, "upload %s was cancelled: start a new upload", u.ID)
	case StatusExpired:
		return Errorf(ECONFLICT, "upload %s has expired (%s): start a new upload", u.ID, u.Error)
	case StatusUploading, StatusProcessing, StatusComplete, StatusFailed:
	}
	if u.PartsDeleted && u.retryNeedsParts() {
		return Errorf(ECONFLICT, "upload %s cannot be retried: the parts were deleted after it ended; start a new upload", u.ID)
	}
	retried := 0
	for i := range u.Destinations {
		d := &u.Destinations[i]
		switch {
		case d.Status == DestFailed && d.Type == YouTube:
			if d.VideoID != "" || d.Session == "" {
				// YouTube has a video it failed or rejected, or there is no
				// session to go on with: send the file again, as a new
				// video that the atom gets once YouTube has it.
				d.VideoID, d.Session, d.UploadedBytes, d.ProcessingStatus, d.ProcessingTimeLeftMs = "", "", 0, "", 0
				d.AssetAdded, d.AssetError, d.SHA256 = false, "", ""
				d.HashState, d.HashedBytes, d.PolledAt = nil, 0, time.Time{}
			}
			d.Status, d.Error = DestWaiting, ""
			if d.Session != "" {
				d.Status = DestUpload
			}
			d.Progress = 0
			if u.Size > 0 {
				d.Progress = float64(d.UploadedBytes) / float64(u.Size) * 100
			}
			d.Unpark()
			retried++
		case d.Status == DestFailed && d.Type == S3Bucket:
			// A new job: Attempt goes on counting, so its token is new.
			d.Status, d.Error, d.JobID, d.Progress, d.Outputs, d.PolledAt = DestWaiting, "", "", 0, nil, time.Time{}
			d.Files, d.Playback = nil, ""
			retried++
		case d.Type == YouTube && d.Status != DestFailed && !d.AssetAdded && d.AssetError != "":
			d.AssetError = "" // the asset call is tried again
			retried++
		}
	}
	if retried == 0 {
		return Errorf(ECONFLICT, "upload %s has nothing to retry: no destination failed", u.ID)
	}
	u.Error = ""
	u.Status = StatusUploading
	if u.AllPartsComplete() {
		u.Status = StatusProcessing
	}
	u.UpdatedAt = now.UTC()
	u.RetriedAt = now.UTC()
	return nil
}
