package upload_test

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"atomuploads/upload"
)

var (
	allDestStatuses = []upload.DestinationStatus{
		upload.DestWaiting, upload.DestUpload, upload.DestTranscoding, upload.DestComplete, upload.DestFailed,
	}
	allStatuses = []upload.Status{
		upload.StatusUploading, upload.StatusProcessing, upload.StatusComplete, upload.StatusFailed, upload.StatusCancelled,
		upload.StatusExpired,
	}
	// cet is a non-UTC zone: every time the domain stores must be in UTC.
	cet = time.FixedZone("CET", 60*60)
)

func TestStatusTerminal(t *testing.T) {
	t.Parallel()
	wantStatus := map[upload.Status]bool{
		upload.StatusUploading:  false,
		upload.StatusProcessing: false,
		upload.StatusComplete:   true,
		upload.StatusFailed:     true,
		upload.StatusCancelled:  true,
		upload.StatusExpired:    true,
		"":                      false,
	}
	for s, want := range wantStatus {
		if got := s.Terminal(); got != want {
			t.Errorf("Status(%q).Terminal() = %v, want %v", s, got, want)
		}
	}
	wantDest := map[upload.DestinationStatus]bool{
		upload.DestWaiting:     false,
		upload.DestUpload:      false,
		upload.DestTranscoding: false,
		upload.DestComplete:    true,
		upload.DestFailed:      true,
		"":                     false,
	}
	for s, want := range wantDest {
		if got := s.Terminal(); got != want {
			t.Errorf("DestinationStatus(%q).Terminal() = %v, want %v", s, got, want)
		}
	}
}

// lifecycle is the destination lifecycle of the design, written out
// independently of the package's table.
var lifecycle = map[upload.DestinationType]map[upload.DestinationStatus][]upload.DestinationStatus{
	upload.YouTube: {
		upload.DestWaiting:     {upload.DestUpload, upload.DestFailed},
		upload.DestUpload:      {upload.DestTranscoding, upload.DestFailed},
		upload.DestTranscoding: {upload.DestComplete, upload.DestFailed},
	},
	upload.S3Bucket: {
		upload.DestWaiting:     {upload.DestTranscoding, upload.DestFailed},
		upload.DestTranscoding: {upload.DestComplete, upload.DestFailed},
	},
}

// TestDestinationMoveTo tries every move of every destination type.
func TestDestinationMoveTo(t *testing.T) {
	t.Parallel()
	for _, typ := range []upload.DestinationType{upload.YouTube, upload.S3Bucket, "vimeo"} {
		for _, from := range allDestStatuses {
			for _, to := range allDestStatuses {
				allowed := slices.Contains(lifecycle[typ][from], to)
				t.Run(fmt.Sprintf("%s/%s->%s", typ, from, to), func(t *testing.T) {
					t.Parallel()
					before := upload.Destination{
						Type:     typ,
						Status:   from,
						Progress: 42.5,
						Error:    "an earlier problem",
						VideoID:  "vid123",
						JobID:    "job-1",
						Outputs:  []string{"out/a.m3u8"},
					}
					d := before
					d.Outputs = slices.Clone(before.Outputs)
					err := d.MoveTo(to)

					switch {
					case from == to:
						if err != nil {
							t.Fatalf("MoveTo(%s) from %s = %v, want nil (staying is a progress update)", to, from, err)
						}
						if !reflect.DeepEqual(d, before) {
							t.Errorf("MoveTo(%s) from %s changed the destination to %+v, want %+v", to, from, d, before)
						}
					case !allowed:
						if code := upload.ErrorCode(err); code != upload.ECONFLICT {
							t.Fatalf("MoveTo(%s) from %s error = %v (code %q), want code %q", to, from, err, code, upload.ECONFLICT)
						}
						wantMsg := fmt.Sprintf("%s destination cannot move from %s to %s", typ, from, to)
						if got := upload.ErrorMessage(err); got != wantMsg {
							t.Errorf("MoveTo(%s) from %s message = %q, want %q", to, from, got, wantMsg)
						}
						if !reflect.DeepEqual(d, before) {
							t.Errorf("refused MoveTo(%s) from %s changed the destination to %+v, want %+v", to, from, d, before)
						}
					default:
						if err != nil {
							t.Fatalf("MoveTo(%s) from %s = %v, want nil", to, from, err)
						}
						if d.Status != to {
							t.Errorf("MoveTo(%s) from %s status = %q, want %q", to, from, d.Status, to)
						}
						wantProgress := before.Progress
						if to == upload.DestComplete {
							wantProgress = 100
						}
						if d.Progress != wantProgress {
							t.Errorf("MoveTo(%s) from %s progress = %v, want %v", to, from, d.Progress, wantProgress)
						}
						switch to {
						case upload.DestFailed:
							// MoveTo gives no reason; it must not erase the one there is.
							if d.Error != before.Error {
								t.Errorf("MoveTo(%s) from %s error = %q, want %q", to, from, d.Error, before.Error)
							}
						case upload.DestComplete, upload.DestWaiting, upload.DestUpload, upload.DestTranscoding:
							// The contract: an error only when failed.
							if d.Error != "" {
								t.Errorf("MoveTo(%s) from %s error = %q, want it cleared", to, from, d.Error)
							}
						}
						if d.VideoID != before.VideoID || d.JobID != before.JobID || !slices.Equal(d.Outputs, before.Outputs) {
							t.Errorf("MoveTo(%s) from %s changed details to %+v, want those of %+v", to, from, d, before)
						}
					}
				})
			}
		}
	}
}

// TestDestinationLifecycle walks each type's happy path, one MoveTo at a
// time, and checks that no step can be skipped.
func TestDestinationLifecycle(t *testing.T) {
	t.Parallel()
	tests := []struct {
		typ  upload.DestinationType
		path []upload.DestinationStatus
		skip []upload.DestinationStatus // moves refused from waiting
	}{
		{typ: upload.YouTube, path: []upload.DestinationStatus{upload.DestUpload, upload.DestTranscoding, upload.DestComplete}, skip: []upload.DestinationStatus{upload.DestTranscoding, upload.DestComplete}},
		{typ: upload.S3Bucket, path: []upload.DestinationStatus{upload.DestTranscoding, upload.DestComplete}, skip: []upload.DestinationStatus{upload.DestUpload, upload.DestComplete}},
	}
	for _, tt := range tests {
		t.Run(string(tt.typ), func(t *testing.T) {
			t.Parallel()
			for _, to := range tt.skip {
				d := upload.Destination{Type: tt.typ, Status: upload.DestWaiting}
				if err := d.MoveTo(to); upload.ErrorCode(err) != upload.ECONFLICT {
					t.Errorf("%s MoveTo(%s) from waiting = %v, want an %s error", tt.typ, to, err, upload.ECONFLICT)
				}
			}
			d := upload.Destination{Type: tt.typ, Status: upload.DestWaiting}
			for i, to := range tt.path {
				d.Progress = float64(10 * (i + 1))
				if err := d.MoveTo(to); err != nil {
					t.Fatalf("%s step %d MoveTo(%s) = %v, want nil", tt.typ, i, to, err)
				}
			}
			if d.Status != upload.DestComplete || d.Progress != 100 {
				t.Errorf("%s after the lifecycle = %s at %v%%, want complete at 100%%", tt.typ, d.Status, d.Progress)
			}
			if err := d.MoveTo(upload.DestFailed); upload.ErrorCode(err) != upload.ECONFLICT {
				t.Errorf("%s MoveTo(failed) from complete = %v, want an %s error", tt.typ, err, upload.ECONFLICT)
			}
		})
	}
}

func TestDestinationFail(t *testing.T) {
	t.Parallel()
	for _, typ := range []upload.DestinationType{upload.YouTube, upload.S3Bucket} {
		for _, from := range allDestStatuses {
			t.Run(fmt.Sprintf("%s/%s", typ, from), func(t *testing.T) {
				t.Parallel()
				before := upload.Destination{Type: typ, Status: from, Progress: 37, Error: "earlier"}
				d := before
				d.Fail("the video was rejected")
				if from.Terminal() {
					if !reflect.DeepEqual(d, before) {
						t.Errorf("Fail() on %s destination = %+v, want it unchanged %+v", from, d, before)
					}
					return
				}
				if d.Status != upload.DestFailed {
					t.Errorf("Fail() from %s status = %q, want %q", from, d.Status, upload.DestFailed)
				}
				if d.Error != "the video was rejected" {
					t.Errorf("Fail() from %s error = %q, want %q", from, d.Error, "the video was rejected")
				}
				if d.Progress != before.Progress {
					t.Errorf("Fail() from %s progress = %v, want %v", from, d.Progress, before.Progress)
				}
			})
		}
	}
}

func TestDestinationURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		videoID string
		want    string
	}{
		{videoID: "", want: ""},
		{videoID: "dQw4w9WgXcQ", want: "https://www.youtube.com/watch?v=dQw4w9WgXcQ"},
	}
	for _, tt := range tests {
		d := upload.Destination{Type: upload.YouTube, VideoID: tt.videoID}
		if got := d.URL(); got != tt.want {
			t.Errorf("URL() with video %q = %q, want %q", tt.videoID, got, tt.want)
		}
	}
}

// record returns an upload of three parts (8 MiB, 8 MiB, 4 MiB + 1) with
// the given parts complete and destinations in the given statuses.
func record(tb testing.TB, status upload.Status, complete []int, dests ...upload.Destination) *upload.Upload {
	tb.Helper()
	u := &upload.Upload{
		ID:           testUploadID,
		AtomID:       "atom-1",
		Size:         20*upload.MiB + 1,
		PartSize:     8 * upload.MiB,
		Status:       status,
		Completed:    map[int]bool{},
		Destinations: dests,
		CreatedAt:    time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC),
		UpdatedAt:    time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC),
	}
	if got := u.PartCount(); got != 3 {
		tb.Fatalf("record() has %d parts, want 3", got)
	}
	for _, n := range complete {
		u.Completed[n] = true
	}
	return u
}

func dest(typ upload.DestinationType, s upload.DestinationStatus, errText string) upload.Destination {
	return upload.Destination{Type: typ, Status: s, Error: errText}
}

func TestUploadSettle(t *testing.T) {
	t.Parallel()
	all := []int{0, 1, 2}
	tests := []struct {
		name       string
		status     upload.Status
		complete   []int
		extra      map[int]bool // entries added to Completed as they are
		assembled  bool
		priorError string
		dests      []upload.Destination
		want       upload.Status
		wantError  string
	}{
		{name: "no part yet", status: upload.StatusUploading, dests: []upload.Destination{dest(upload.YouTube, upload.DestWaiting, "")}, want: upload.StatusUploading},
		{name: "all but the last part", status: upload.StatusUploading, complete: []int{0, 1}, dests: []upload.Destination{dest(upload.YouTube, upload.DestUpload, "")}, want: upload.StatusUploading},
		{name: "all but the first part", status: upload.StatusUploading, complete: []int{1, 2}, want: upload.StatusUploading},
		{name: "a part recorded as not complete", status: upload.StatusUploading, complete: []int{0, 2}, extra: map[int]bool{1: false}, want: upload.StatusUploading},
		{name: "parts beyond the plan do not count", status: upload.StatusUploading, complete: []int{0, 1, 3, 4}, want: upload.StatusUploading},
		{name: "assembled but parts missing stays uploading", status: upload.StatusUploading, complete: []int{0, 1}, assembled: true, dests: []upload.Destination{dest(upload.S3Bucket, upload.DestComplete, "")}, want: upload.StatusUploading},
		{name: "every part in: processing", status: upload.StatusUploading, complete: all, dests: []upload.Destination{dest(upload.YouTube, upload.DestUpload, ""), dest(upload.S3Bucket, upload.DestWaiting, "")}, want: upload.StatusProcessing},
		{name: "every part in, destinations done, not assembled: processing", status: upload.StatusUploading, complete: all, dests: []upload.Destination{dest(upload.YouTube, upload.DestComplete, "")}, want: upload.StatusProcessing},
		{name: "every part in plus extras: processing", status: upload.StatusUploading, complete: all, extra: map[int]bool{7: true, 8: false}, want: upload.StatusProcessing},
		{name: "uploading straight to complete", status: upload.StatusUploading, complete: all, assembled: true, dests: []upload.Destination{dest(upload.YouTube, upload.DestComplete, ""), dest(upload.S3Bucket, upload.DestComplete, "")}, want: upload.StatusComplete},
		{name: "processing, not assembled", status: upload.StatusProcessing, complete: all, dests: []upload.Destination{dest(upload.YouTube, upload.DestComplete, ""), dest(upload.S3Bucket, upload.DestComplete, "")}, want: upload.StatusProcessing},
		{name: "processing, assembled, youtube still processing", status: upload.StatusProcessing, complete: all, assembled: true, dests: []upload.Destination{dest(upload.YouTube, upload.DestTranscoding, ""), dest(upload.S3Bucket, upload.DestComplete, "")}, want: upload.StatusProcessing},
		{name: "processing, assembled, s3Bucket waiting, youtube failed", status: upload.StatusProcessing, complete: all, assembled: true, dests: []upload.Destination{dest(upload.YouTube, upload.DestFailed, "quota exceeded"), dest(upload.S3Bucket, upload.DestWaiting, "")}, want: upload.StatusProcessing},
		{name: "processing, assembled, every destination complete", status: upload.StatusProcessing, complete: all, assembled: true, dests: []upload.Destination{dest(upload.YouTube, upload.DestComplete, ""), dest(upload.S3Bucket, upload.DestComplete, "")}, want: upload.StatusComplete},
		{name: "processing, assembled, one destination failed", status: upload.StatusProcessing, complete: all, assembled: true, dests: []upload.Destination{dest(upload.YouTube, upload.DestFailed, "the video was rejected: duplicate"), dest(upload.S3Bucket, upload.DestComplete, "")}, want: upload.StatusFailed, wantError: "youtube: the video was rejected: duplicate"},
		{name: "processing, assembled, both failed: errors joined in order", status: upload.StatusProcessing, complete: all, assembled: true, dests: []upload.Destination{dest(upload.S3Bucket, upload.DestFailed, "input is not a video"), dest(upload.YouTube, upload.DestFailed, "quota exceeded")}, want: upload.StatusFailed, wantError: "s3Bucket: input is not a video; youtube: quota exceeded"},
		{name: "processing, assembled, no destinations", status: upload.StatusProcessing, complete: all, assembled: true, want: upload.StatusComplete},
		{name: "complete stays complete", status: upload.StatusComplete, complete: all, assembled: true, dests: []upload.Destination{dest(upload.YouTube, upload.DestFailed, "late failure")}, want: upload.StatusComplete},
		{name: "failed stays failed with its error", status: upload.StatusFailed, priorError: "part 1 has the wrong size", complete: all, assembled: true, dests: []upload.Destination{dest(upload.YouTube, upload.DestComplete, "")}, want: upload.StatusFailed, wantError: "part 1 has the wrong size"},
		{name: "failed stays failed while uploading parts", status: upload.StatusFailed, priorError: "gave up", complete: []int{0}, want: upload.StatusFailed, wantError: "gave up"},
		{name: "cancelled stays cancelled", status: upload.StatusCancelled, complete: all, assembled: true, dests: []upload.Destination{dest(upload.YouTube, upload.DestComplete, "")}, want: upload.StatusCancelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := record(t, tt.status, tt.complete, tt.dests...)
			for n, ok := range tt.extra {
				u.Completed[n] = ok
			}
			u.Assembled = tt.assembled
			u.Error = tt.priorError
			destsBefore := slices.Clone(u.Destinations)
			now := time.Date(2026, 3, 1, 13, 30, 0, 0, cet)

			u.Settle(now)

			if u.Status != tt.want {
				t.Errorf("Settle() status = %q, want %q", u.Status, tt.want)
			}
			if u.Error != tt.wantError {
				t.Errorf("Settle() error = %q, want %q", u.Error, tt.wantError)
			}
			if !u.UpdatedAt.Equal(now) || u.UpdatedAt.Location() != time.UTC {
				t.Errorf("Settle() UpdatedAt = %v, want %v in UTC", u.UpdatedAt, now.UTC())
			}
			if !reflect.DeepEqual(u.Destinations, destsBefore) {
				t.Errorf("Settle() destinations = %+v, want them unchanged %+v", u.Destinations, destsBefore)
			}
		})
	}
}

// TestUploadSettleSequence drives one upload through its life with
// Settle after each change, as the worker does.
func TestUploadSettleSequence(t *testing.T) {
	t.Parallel()
	u := record(t, upload.StatusUploading, nil,
		upload.Destination{Type: upload.YouTube, Status: upload.DestWaiting},
		upload.Destination{Type: upload.S3Bucket, Status: upload.DestWaiting})
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	steps := []struct {
		name   string
		change func(tb testing.TB, u *upload.Upload)
		want   upload.Status
	}{
		{name: "part 2 arrives first", change: func(_ testing.TB, u *upload.Upload) { u.Completed[2] = true }, want: upload.StatusUploading},
		{name: "part 0 arrives", change: func(tb testing.TB, u *upload.Upload) {
			u.Completed[0] = true
			mustMove(tb, u.Destination(upload.YouTube), upload.DestUpload)
		}, want: upload.StatusUploading},
		{name: "part 1 arrives last", change: func(_ testing.TB, u *upload.Upload) { u.Completed[1] = true }, want: upload.StatusProcessing},
		{name: "youtube has every byte", change: func(tb testing.TB, u *upload.Upload) {
			mustMove(tb, u.Destination(upload.YouTube), upload.DestTranscoding)
		}, want: upload.StatusProcessing},
		{name: "assembled, transcode started", change: func(tb testing.TB, u *upload.Upload) {
			u.Assembled = true
			mustMove(tb, u.Destination(upload.S3Bucket), upload.DestTranscoding)
		}, want: upload.StatusProcessing},
		{name: "transcode done", change: func(tb testing.TB, u *upload.Upload) {
			mustMove(tb, u.Destination(upload.S3Bucket), upload.DestComplete)
		}, want: upload.StatusProcessing},
		{name: "youtube done", change: func(tb testing.TB, u *upload.Upload) {
			mustMove(tb, u.Destination(upload.YouTube), upload.DestComplete)
		}, want: upload.StatusComplete},
		{name: "settled again", change: func(testing.TB, *upload.Upload) {}, want: upload.StatusComplete},
	}
	for _, s := range steps {
		at = at.Add(time.Minute)
		s.change(t, u)
		u.Settle(at)
		if u.Status != s.want {
			t.Fatalf("after %q: Settle() status = %q, want %q", s.name, u.Status, s.want)
		}
		if !u.UpdatedAt.Equal(at) {
			t.Errorf("after %q: Settle() UpdatedAt = %v, want %v", s.name, u.UpdatedAt, at)
		}
	}
	if u.Error != "" {
		t.Errorf("complete upload error = %q, want \"\"", u.Error)
	}
}

func mustMove(tb testing.TB, d *upload.Destination, to upload.DestinationStatus) {
	tb.Helper()
	if d == nil {
		tb.Fatalf("no destination to move to %s", to)
	}
	if err := d.MoveTo(to); err != nil {
		tb.Fatalf("MoveTo(%s) from %s = %v, want nil", to, d.Status, err)
	}
}

func TestUploadCancel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		status    upload.Status
		dests     []upload.Destination
		wantDests []upload.Destination
	}{
		{
			name:      "uploading, nothing started",
			status:    upload.StatusUploading,
			dests:     []upload.Destination{dest(upload.YouTube, upload.DestWaiting, ""), dest(upload.S3Bucket, upload.DestWaiting, "")},
			wantDests: []upload.Destination{dest(upload.YouTube, upload.DestFailed, "cancelled"), dest(upload.S3Bucket, upload.DestFailed, "cancelled")},
		},
		{
			name:      "uploading, youtube relaying",
			status:    upload.StatusUploading,
			dests:     []upload.Destination{dest(upload.YouTube, upload.DestUpload, "")},
			wantDests: []upload.Destination{dest(upload.YouTube, upload.DestFailed, "cancelled")},
		},
		{
			name:      "processing, finished destinations keep their state",
			status:    upload.StatusProcessing,
			dests:     []upload.Destination{dest(upload.YouTube, upload.DestComplete, ""), dest(upload.S3Bucket, upload.DestTranscoding, "")},
			wantDests: []upload.Destination{dest(upload.YouTube, upload.DestComplete, ""), dest(upload.S3Bucket, upload.DestFailed, "cancelled")},
		},
		{
			name:      "processing, a failed destination keeps its reason",
			status:    upload.StatusProcessing,
			dests:     []upload.Destination{dest(upload.YouTube, upload.DestFailed, "quota exceeded"), dest(upload.S3Bucket, upload.DestTranscoding, "")},
			wantDests: []upload.Destination{dest(upload.YouTube, upload.DestFailed, "quota exceeded"), dest(upload.S3Bucket, upload.DestFailed, "cancelled")},
		},
		{
			name:   "processing, no destinations",
			status: upload.StatusProcessing,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := record(t, tt.status, []int{0}, tt.dests...)
			now := time.Date(2026, 3, 1, 14, 0, 0, 0, cet)
			if err := u.Cancel(now); err != nil {
				t.Fatalf("Cancel() = %v, want nil", err)
			}
			if u.Status != upload.StatusCancelled {
				t.Errorf("Cancel() status = %q, want %q", u.Status, upload.StatusCancelled)
			}
			if !reflect.DeepEqual(u.Destinations, tt.wantDests) {
				t.Errorf("Cancel() destinations = %+v, want %+v", u.Destinations, tt.wantDests)
			}
			if !u.UpdatedAt.Equal(now) || u.UpdatedAt.Location() != time.UTC {
				t.Errorf("Cancel() UpdatedAt = %v, want %v in UTC", u.UpdatedAt, now.UTC())
			}
			if err := u.Cancel(now.Add(time.Minute)); upload.ErrorCode(err) != upload.ECONFLICT {
				t.Errorf("second Cancel() = %v, want an %s error", err, upload.ECONFLICT)
			}
		})
	}

	for _, status := range []upload.Status{upload.StatusComplete, upload.StatusFailed, upload.StatusCancelled, upload.StatusExpired} {
		t.Run("terminal "+string(status), func(t *testing.T) {
			t.Parallel()
			u := record(t, status, []int{0, 1, 2}, dest(upload.YouTube, upload.DestComplete, ""), dest(upload.S3Bucket, upload.DestFailed, "input is not a video"))
			u.Error = "earlier"
			before := *u
			before.Destinations = slices.Clone(u.Destinations)

			err := u.Cancel(time.Date(2026, 3, 1, 14, 0, 0, 0, time.UTC))

			if code := upload.ErrorCode(err); code != upload.ECONFLICT {
				t.Fatalf("Cancel() on %s = %v (code %q), want code %q", status, err, code, upload.ECONFLICT)
			}
			wantMsg := fmt.Sprintf("upload %s is already %s and cannot be cancelled", testUploadID, status)
			if got := upload.ErrorMessage(err); got != wantMsg {
				t.Errorf("Cancel() on %s message = %q, want %q", status, got, wantMsg)
			}
			if !reflect.DeepEqual(*u, before) {
				t.Errorf("Cancel() on %s changed the record to %+v, want %+v", status, *u, before)
			}
		})
	}
}

func TestUploadFail(t *testing.T) {
	t.Parallel()
	const reason = "part 1 is 3 bytes, the plan says 8388608"
	for _, status := range allStatuses {
		t.Run(string(status), func(t *testing.T) {
			t.Parallel()
			u := record(t, status, []int{0},
				dest(upload.YouTube, upload.DestUpload, ""),
				dest(upload.S3Bucket, upload.DestComplete, ""))
			if status.Terminal() {
				u.Error = "earlier"
			}
			before := *u
			before.Destinations = slices.Clone(u.Destinations)
			now := time.Date(2026, 3, 1, 15, 0, 0, 0, cet)

			u.Fail(reason, now)

			if status.Terminal() {
				if !reflect.DeepEqual(*u, before) {
					t.Errorf("Fail() on %s changed the record to %+v, want %+v", status, *u, before)
				}
				return
			}
			if u.Status != upload.StatusFailed {
				t.Errorf("Fail() status = %q, want %q", u.Status, upload.StatusFailed)
			}
			if u.Error != reason {
				t.Errorf("Fail() error = %q, want %q", u.Error, reason)
			}
			wantDests := []upload.Destination{dest(upload.YouTube, upload.DestFailed, reason), dest(upload.S3Bucket, upload.DestComplete, "")}
			if !reflect.DeepEqual(u.Destinations, wantDests) {
				t.Errorf("Fail() destinations = %+v, want %+v", u.Destinations, wantDests)
			}
			if !u.UpdatedAt.Equal(now) || u.UpdatedAt.Location() != time.UTC {
				t.Errorf("Fail() UpdatedAt = %v, want %v in UTC", u.UpdatedAt, now.UTC())
			}
			// A failed upload stays failed, whatever Settle sees.
			u.Assembled = true
			u.Completed = map[int]bool{0: true, 1: true, 2: true}
			u.Settle(now.Add(time.Minute))
			if u.Status != upload.StatusFailed || u.Error != reason {
				t.Errorf("Settle() after Fail() = %q, %q, want %q, %q", u.Status, u.Error, upload.StatusFailed, reason)
			}
		})
	}
}

func TestUploadAllPartsCompleteAndCompletedParts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		completed map[int]bool
		wantAll   bool
		wantParts []int
	}{
		{name: "nil map", completed: nil, wantAll: false, wantParts: []int{}},
		{name: "empty", completed: map[int]bool{}, wantAll: false, wantParts: []int{}},
		{name: "first only", completed: map[int]bool{0: true}, wantAll: false, wantParts: []int{0}},
		{name: "all but last", completed: map[int]bool{0: true, 1: true}, wantAll: false, wantParts: []int{0, 1}},
		{name: "out of order, all", completed: map[int]bool{2: true, 0: true, 1: true}, wantAll: true, wantParts: []int{0, 1, 2}},
		{name: "one recorded false", completed: map[int]bool{0: true, 1: false, 2: true}, wantAll: false, wantParts: []int{0, 2}},
		{name: "enough entries, one missing", completed: map[int]bool{0: true, 2: true, 5: true}, wantAll: false, wantParts: []int{0, 2, 5}},
		{name: "all plus beyond the plan", completed: map[int]bool{0: true, 1: true, 2: true, 9: true}, wantAll: true, wantParts: []int{0, 1, 2, 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := record(t, upload.StatusUploading, nil)
			u.Completed = tt.completed
			if got := u.AllPartsComplete(); got != tt.wantAll {
				t.Errorf("AllPartsComplete() = %v, want %v", got, tt.wantAll)
			}
			got := u.CompletedParts()
			if got == nil || !slices.Equal(got, tt.wantParts) {
				t.Errorf("CompletedParts() = %#v, want %#v", got, tt.wantParts)
			}
		})
	}
}

func TestUploadPart(t *testing.T) {
	t.Parallel()
	const ps = 8 * upload.MiB
	u := record(t, upload.StatusUploading, nil)
	size := u.Size
	if got := u.Parts(); !slices.Equal(got, upload.Parts(size, ps)) {
		t.Errorf("Parts() = %+v, want %+v", got, upload.Parts(size, ps))
	}
	tests := []struct {
		n      int
		want   upload.Part
		wantOK bool
	}{
		{n: -1},
		{n: 0, want: upload.Part{Number: 0, Start: 0, End: ps}, wantOK: true},
		{n: 1, want: upload.Part{Number: 1, Start: ps, End: 2 * ps}, wantOK: true},
		{n: 2, want: upload.Part{Number: 2, Start: 2 * ps, End: size}, wantOK: true},
		{n: 3},
		{n: upload.MaxParts},
	}
	for _, tt := range tests {
		got, ok := u.Part(tt.n)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("Part(%d) = %+v, %v, want %+v, %v", tt.n, got, ok, tt.want, tt.wantOK)
		}
	}
	if _, ok := (&upload.Upload{Size: size}).Part(0); ok {
		t.Errorf("Part(0) without a part size found a part, want none")
	}
}

func TestUploadPartContaining(t *testing.T) {
	t.Parallel()
	const ps = 8 * upload.MiB
	size := 20*upload.MiB + 1
	tests := []struct {
		name     string
		size     int64
		partSize int64
		off      int64
		wantPart int // -1: no part
	}{
		{name: "negative", size: size, partSize: ps, off: -1, wantPart: -1},
		{name: "first byte", size: size, partSize: ps, off: 0, wantPart: 0},
		{name: "last byte of part 0", size: size, partSize: ps, off: ps - 1, wantPart: 0},
		{name: "first byte of part 1", size: size, partSize: ps, off: ps, wantPart: 1},
		{name: "first byte of part 2", size: size, partSize: ps, off: 2 * ps, wantPart: 2},
		{name: "last byte", size: size, partSize: ps, off: size - 1, wantPart: 2},
		{name: "size", size: size, partSize: ps, off: size, wantPart: -1},
		{name: "far beyond", size: size, partSize: ps, off: 1 << 40, wantPart: -1},
		{name: "no part size", size: size, partSize: 0, off: 0, wantPart: -1},
		{name: "negative part size", size: size, partSize: -ps, off: 0, wantPart: -1},
		{name: "empty file", size: 0, partSize: ps, off: 0, wantPart: -1},
		{name: "one-byte file", size: 1, partSize: ps, off: 0, wantPart: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := &upload.Upload{Size: tt.size, PartSize: tt.partSize}
			got, ok := u.PartContaining(tt.off)
			if tt.wantPart < 0 {
				if ok || got != (upload.Part{}) {
					t.Errorf("PartContaining(%d) = %+v, %v, want no part", tt.off, got, ok)
				}
				return
			}
			want := upload.PartAt(tt.size, tt.partSize, tt.wantPart)
			if !ok || got != want {
				t.Errorf("PartContaining(%d) = %+v, %v, want %+v, true", tt.off, got, ok, want)
			}
			if tt.off < got.Start || tt.off >= got.End {
				t.Errorf("PartContaining(%d) = %+v, which does not hold the offset", tt.off, got)
			}
		})
	}
}

func TestUploadDestination(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		dests []upload.Destination
		typ   upload.DestinationType
		want  int // index in dests, -1 for none
	}{
		{name: "none", typ: upload.YouTube, want: -1},
		{name: "youtube first", dests: []upload.Destination{dest(upload.YouTube, upload.DestWaiting, ""), dest(upload.S3Bucket, upload.DestWaiting, "")}, typ: upload.YouTube, want: 0},
		{name: "s3Bucket second", dests: []upload.Destination{dest(upload.YouTube, upload.DestWaiting, ""), dest(upload.S3Bucket, upload.DestWaiting, "")}, typ: upload.S3Bucket, want: 1},
		{name: "absent type", dests: []upload.Destination{dest(upload.S3Bucket, upload.DestWaiting, "")}, typ: upload.YouTube, want: -1},
		{name: "unknown type", dests: []upload.Destination{dest(upload.S3Bucket, upload.DestWaiting, "")}, typ: "vimeo", want: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := record(t, upload.StatusUploading, nil, tt.dests...)
			got := u.Destination(tt.typ)
			if tt.want < 0 {
				if got != nil {
					t.Errorf("Destination(%q) = %+v, want nil", tt.typ, got)
				}
				return
			}
			if got != &u.Destinations[tt.want] {
				t.Fatalf("Destination(%q) = %p, want %p (the record's own destination)", tt.typ, got, &u.Destinations[tt.want])
			}
			got.Progress = 12.5
			if u.Destinations[tt.want].Progress != 12.5 {
				t.Errorf("a change through Destination(%q) did not reach the record", tt.typ)
			}
		})
	}
}
