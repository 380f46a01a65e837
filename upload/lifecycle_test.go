package upload_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"atomuploads/upload"
)

func TestStatusesListsEveryStatus(t *testing.T) {
	t.Parallel()
	if !slices.Equal(upload.Statuses, allStatuses) {
		t.Errorf("Statuses = %v, want %v", upload.Statuses, allStatuses)
	}
}

func TestShortDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		24 * time.Hour:                "24h",
		90 * time.Minute:              "1h30m",
		90 * time.Second:              "1m30s",
		3 * time.Second:               "3s",
		time.Hour + time.Second:       "1h0m1s",
		1500 * time.Millisecond:       "1.5s",
		24*time.Hour + 30*time.Minute: "24h30m",
		10 * time.Minute:              "10m",
		2*time.Hour + 3*time.Minute:   "2h3m",
	} {
		if got := upload.ShortDuration(d); got != want {
			t.Errorf("ShortDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

// TestAbandoned: the clock of an upload's browser starts at its start and
// starts again at each completed part and each retry; only an upload still
// waiting for a part is abandoned, and 0 abandons nothing.
func TestAbandoned(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	const after = 24 * time.Hour
	for _, tt := range []struct {
		name   string
		change func(u *upload.Upload)
		now    time.Time
		after  time.Duration
		want   bool
	}{
		{name: "no part, just under the time", now: created.Add(after - time.Second), want: false},
		{name: "no part, the time is up", now: created.Add(after), want: true},
		{name: "a part since", change: func(u *upload.Upload) { u.LastPartAt = created.Add(time.Hour) }, now: created.Add(after), want: false},
		{name: "a part long ago", change: func(u *upload.Upload) { u.LastPartAt = created.Add(time.Hour) }, now: created.Add(after + time.Hour), want: true},
		{name: "a retry since", change: func(u *upload.Upload) { u.RetriedAt = created.Add(2 * time.Hour) }, now: created.Add(after + time.Hour), want: false},
		{name: "a record from before parts had their time", change: func(u *upload.Upload) { u.UpdatedAt = created.Add(2 * time.Hour) }, now: created.Add(after + time.Hour), want: false},
		{name: "a change since, but parts have their time", change: func(u *upload.Upload) {
			u.LastPartAt, u.UpdatedAt = created.Add(time.Hour), created.Add(2*time.Hour)
		}, now: created.Add(after + time.Hour), want: true},
		{name: "every part in", change: func(u *upload.Upload) { u.Completed = map[int]bool{0: true, 1: true, 2: true} }, now: created.Add(2 * after), want: false},
		{name: "processing", change: func(u *upload.Upload) { u.Status = upload.StatusProcessing }, now: created.Add(2 * after), want: false},
		{name: "cancelled", change: func(u *upload.Upload) { u.Status = upload.StatusCancelled }, now: created.Add(2 * after), want: false},
		{name: "expiry off", now: created.Add(100 * after), after: -1, want: false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := record(t, upload.StatusUploading, []int{0}, dest(upload.YouTube, upload.DestUpload, ""))
			u.CreatedAt = created
			if tt.change != nil {
				tt.change(u)
			}
			a := after
			if tt.after < 0 {
				a = 0
			}
			if got := u.Abandoned(tt.now, a); got != tt.want {
				t.Errorf("Abandoned(%s after the start, %s) = %v, want %v", tt.now.Sub(created), a, got, tt.want)
			}
		})
	}
}

// TestExpire: an abandoned upload expires; every destination not finished
// fails with the reason in words (a parked one stops waiting), a finished
// one keeps its state. One that is not abandoned is refused, unchanged.
func TestExpire(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	now := created.Add(25 * time.Hour).In(cet)
	u := record(t, upload.StatusUploading, []int{0, 1},
		dest(upload.YouTube, upload.DestUpload, ""),
		dest(upload.S3Bucket, upload.DestFailed, "earlier"))
	u.LastPartAt = created.Add(time.Hour)
	yt := u.Destination(upload.YouTube)
	yt.Session = "sealed"
	yt.Park(upload.WaitYouTubeQuota, now.Add(time.Hour), now)

	if err := u.Expire(now, 24*time.Hour); err != nil {
		t.Fatalf("Expire() = %v", err)
	}
	const reason = "upload abandoned: no part arrived for 24h"
	if u.Status != upload.StatusExpired || u.Error != reason || !u.Status.Terminal() {
		t.Errorf("upload %s %q, want expired, %q", u.Status, u.Error, reason)
	}
	if d := u.Destination(upload.YouTube); d.Status != upload.DestFailed || d.Error != reason || d.WaitingFor != "" || d.Session != "sealed" {
		t.Errorf("youtube %+v, want failed with the reason, no longer parked, its session kept (to be cancelled)", d)
	}
	if d := u.Destination(upload.S3Bucket); d.Status != upload.DestFailed || d.Error != "earlier" {
		t.Errorf("s3Bucket %s %q, want its own failure kept", d.Status, d.Error)
	}
	if !u.UpdatedAt.Equal(now) || u.UpdatedAt.Location() != time.UTC {
		t.Errorf("UpdatedAt %v, want %v in UTC", u.UpdatedAt, now)
	}
	// Settle never brings it back.
	u.Settle(now.Add(time.Hour))
	if u.Status != upload.StatusExpired {
		t.Errorf("Settle() made it %s", u.Status)
	}

	t.Run("not abandoned", func(t *testing.T) {
		t.Parallel()
		u := record(t, upload.StatusUploading, []int{0}, dest(upload.YouTube, upload.DestUpload, ""))
		u.LastPartAt = created.Add(24 * time.Hour)
		before := *u
		before.Destinations = slices.Clone(u.Destinations)
		err := u.Expire(now, 24*time.Hour)
		if upload.ErrorCode(err) != upload.ECONFLICT || !strings.Contains(upload.ErrorMessage(err), "not abandoned") {
			t.Errorf("Expire() = %v, want ECONFLICT saying it is not abandoned", err)
		}
		if !reflect.DeepEqual(*u, before) {
			t.Errorf("Expire() changed the record to %+v", *u)
		}
	})
}

// TestPartsDeletable: the parts of an upload that is over may go, unless
// they are the only copy of the file (a failed upload never reassembled).
func TestPartsDeletable(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		status    upload.Status
		assembled bool
		want      bool
	}{
		{upload.StatusUploading, false, false},
		{upload.StatusProcessing, true, false},
		{upload.StatusComplete, true, true},
		{upload.StatusFailed, true, true},
		{upload.StatusFailed, false, false},
		{upload.StatusCancelled, false, true},
		{upload.StatusCancelled, true, true},
		{upload.StatusExpired, false, true},
	} {
		u := record(t, tt.status, nil)
		u.Assembled = tt.assembled
		if got := u.PartsDeletable(); got != tt.want {
			t.Errorf("%s (assembled %v): PartsDeletable() = %v, want %v", tt.status, tt.assembled, got, tt.want)
		}
	}
}

// TestRetryOnceThePartsAreGone: a retry that would read the parts (a
// YouTube relay, or a reassembly never finished) answers that they were
// deleted; one that needs only the original or the atom API goes on. An
// expired upload is not retried.
func TestRetryOnceThePartsAreGone(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name      string
		assembled bool
		dests     []upload.Destination
		wantErr   string
	}{
		{name: "a YouTube relay", assembled: true, dests: []upload.Destination{dest(upload.YouTube, upload.DestFailed, "gave up"), dest(upload.S3Bucket, upload.DestComplete, "")},
			wantErr: "the parts were deleted"},
		{name: "a transcode without its original", dests: []upload.Destination{dest(upload.S3Bucket, upload.DestFailed, "gave up")},
			wantErr: "the parts were deleted"},
		{name: "a transcode of the original", assembled: true, dests: []upload.Destination{dest(upload.YouTube, upload.DestComplete, ""), dest(upload.S3Bucket, upload.DestFailed, "gave up")}},
		{name: "an asset call", assembled: true, dests: []upload.Destination{{Type: upload.YouTube, Status: upload.DestComplete, VideoID: "vid", AssetError: "the atom API did not take it"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := record(t, upload.StatusFailed, []int{0, 1, 2}, tt.dests...)
			u.Assembled, u.PartsDeleted = tt.assembled, true
			err := u.Retry(now)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Retry() = %v, want it retried", err)
				}
				if !u.RetriedAt.Equal(now) {
					t.Errorf("RetriedAt %v, want %v", u.RetriedAt, now)
				}
				return
			}
			if upload.ErrorCode(err) != upload.ECONFLICT || !strings.Contains(upload.ErrorMessage(err), tt.wantErr) {
				t.Errorf("Retry() = %v, want ECONFLICT saying %q", err, tt.wantErr)
			}
			if u.Status != upload.StatusFailed {
				t.Errorf("status %s after a refused retry, want failed", u.Status)
			}
		})
	}
	t.Run("expired", func(t *testing.T) {
		t.Parallel()
		u := record(t, upload.StatusUploading, []int{0}, dest(upload.YouTube, upload.DestUpload, ""))
		if err := u.Expire(u.CreatedAt.Add(time.Hour), time.Hour); err != nil {
			t.Fatal(err)
		}
		err := u.Retry(now)
		if upload.ErrorCode(err) != upload.ECONFLICT || !strings.Contains(upload.ErrorMessage(err), "has expired (upload abandoned: no part arrived for 1h)") {
			t.Errorf("Retry() = %v, want ECONFLICT saying it expired and why", err)
		}
	})
}
