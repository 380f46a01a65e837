package upload

import (
	"strings"
	"time"
)

// The end of an upload's life: an upload whose parts stop arriving expires
// (Abandoned, Expire), and once an upload is over its parts may be deleted
// (PartsDeletable, PartsDeleted). Package worker's sweeps apply these rules;
// uploads.abandonAfter and uploads.deletePartsAfter configure them.

// QuietSince is when the upload last heard from its browser: its start,
// its last completed part or its last retry, whichever came last. A record
// written before parts had their time (parts complete, no LastPartAt)
// counts its last change instead, which is never earlier.
func (u *Upload) QuietSince() time.Time {
	t := u.CreatedAt
	if u.LastPartAt.After(t) {
		t = u.LastPartAt
	}
	if u.LastPartAt.IsZero() && len(u.Completed) > 0 && u.UpdatedAt.After(t) {
		t = u.UpdatedAt
	}
	if u.RetriedAt.After(t) {
		t = u.RetriedAt
	}
	return t
}

// Abandoned reports whether the upload waits for parts that have not come
// for after (counted from its start, then from the last part): it is
// uploading, a part is missing, and none completed since QuietSince. An
// after of 0 never abandons.
func (u *Upload) Abandoned(now time.Time, after time.Duration) bool {
	return after > 0 && u.Status == StatusUploading && !u.AllPartsComplete() && !now.Before(u.QuietSince().Add(after))
}

// AbandonedReason is the error of an upload, and of each of its unfinished
// destinations, that expired after after without a part.
func AbandonedReason(after time.Duration) string {
	return "upload abandoned: no part arrived for " + ShortDuration(after)
}

// Expire ends an abandoned upload: its status becomes expired and each
// destination not finished fails with AbandonedReason (a parked one stops
// waiting). An upload that is not abandoned at now is ECONFLICT, and
// unchanged.
func (u *Upload) Expire(now time.Time, after time.Duration) error {
	if !u.Abandoned(now, after) {
		return Errorf(ECONFLICT, "upload %s is %s and last heard of at %s: it is not abandoned", u.ID, u.Status, u.QuietSince().UTC().Format(time.RFC3339))
	}
	reason := AbandonedReason(after)
	u.Status = StatusExpired
	u.Error = reason
	for i := range u.Destinations {
		d := &u.Destinations[i]
		if !d.Status.Terminal() {
			d.Unpark()
			d.RetryAt = time.Time{}
		}
		d.Fail(reason)
	}
	u.UpdatedAt = now.UTC()
	return nil
}

// PartsDeletable reports whether the upload is over and deleting its parts
// loses no file: the original is made (complete, or failed after the
// reassembly), or the upload was cancelled or expired. A failed upload
// whose original was never made keeps its parts: they are the only copy
// of the file.
func (u *Upload) PartsDeletable() bool {
	switch u.Status {
	case StatusCancelled, StatusExpired:
		return true
	case StatusComplete, StatusFailed:
		return u.Assembled
	case StatusUploading, StatusProcessing:
	}
	return false
}

// retryNeedsParts reports whether retrying the upload's failed
// destinations would read the parts: a YouTube relay reads them, and so
// does a reassembly that never finished.
func (u *Upload) retryNeedsParts() bool {
	for _, d := range u.Destinations {
		if d.Status != DestFailed {
			continue
		}
		if d.Type == YouTube || !u.Assembled {
			return true
		}
	}
	return false
}

// ShortDuration writes d as time.Duration does, without the zero minutes
// and seconds it ends with: 24h, 1h30m, 90s → 1m30s.
func ShortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
