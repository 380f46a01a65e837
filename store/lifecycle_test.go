package store_test

import (
	"slices"
	"testing"
	"time"

	"atomuploads/store"
	"atomuploads/upload"
)

// dueForCleanup lists the ids DueForCleanup gives for before.
func dueForCleanup(t testing.TB, s *store.Store, before time.Time) []string {
	t.Helper()
	var ids []string
	if err := s.DueForCleanup(ctx(t), before, func(_, id string) error { ids = append(ids, id); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

// settleOn waits for the eventually consistent index to list want.
func settleOn(t testing.TB, what string, list func() []string, want []string) {
	t.Helper()
	slices.Sort(want)
	deadline := time.Now().Add(20 * time.Second)
	got := list()
	for !slices.Equal(got, want) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		got = list()
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

// TestCompletePartRecordsWhenAndRefusesAnExpiredUpload: lastPartAt moves
// with each part (and with nothing else: a touch leaves it), and an
// expired upload takes no more parts.
func TestCompletePartRecordsWhenAndRefusesAnExpiredUpload(t *testing.T) {
	s := newStore(t)
	c := ctx(t)
	u := newUpload(t, "atom-x", time.Now())
	if err := s.Create(c, u); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(c, u.AtomID, u.ID); !got.LastPartAt.IsZero() {
		t.Errorf("lastPartAt %v before any part, want none", got.LastPartAt)
	}
	before := time.Now().Add(-time.Millisecond)
	if _, err := s.CompletePart(c, u.AtomID, u.ID, 0); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get(c, u.AtomID, u.ID)
	if got.LastPartAt.Before(before) || got.LastPartAt.After(time.Now()) {
		t.Errorf("lastPartAt %v, want the time of CompletePart", got.LastPartAt)
	}
	first := got.LastPartAt
	time.Sleep(5 * time.Millisecond)
	if err := s.Touch(c, u.AtomID, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(c, u.AtomID, u.ID, func(u *upload.Upload) error { u.Advances++; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(c, u.AtomID, u.ID); !got.LastPartAt.Equal(first) {
		t.Errorf("lastPartAt %v after a touch and an update, want it unmoved (%v)", got.LastPartAt, first)
	}
	if _, err := s.Update(c, u.AtomID, u.ID, func(u *upload.Upload) error {
		return u.Expire(u.LastPartAt.Add(time.Hour), time.Hour)
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.CompletePart(c, u.AtomID, u.ID, 1)
	if upload.ErrorCode(err) != upload.ECONFLICT || got == nil || got.Status != upload.StatusExpired || got.Completed[1] {
		t.Errorf("CompletePart on an expired upload = %+v, %v; want ECONFLICT with the expired record, part 1 not complete", got, err)
	}
}

// TestUpdateIfNoPartReadsAgainWhenAPartArrives: a part that completes
// between the read and the write sends the change back to a fresh read,
// where it sees the part.
func TestUpdateIfNoPartReadsAgainWhenAPartArrives(t *testing.T) {
	s := newStore(t)
	c := ctx(t)
	u := newUpload(t, "atom-x", time.Now().Add(-2*time.Hour))
	if err := s.Create(c, u); err != nil {
		t.Fatal(err)
	}
	calls := 0
	got, err := s.UpdateIfNoPart(c, u.AtomID, u.ID, func(r *upload.Upload) error {
		calls++
		if calls == 1 {
			if _, err := s.CompletePart(c, u.AtomID, u.ID, 0); err != nil {
				t.Fatal(err)
			}
		}
		return r.Expire(time.Now(), time.Hour)
	})
	if calls != 2 || upload.ErrorCode(err) != upload.ECONFLICT || got != nil {
		t.Fatalf("UpdateIfNoPart: %d calls, %v; want a second read that refuses the expiry", calls, err)
	}
	if r, _ := s.Get(c, u.AtomID, u.ID); r.Status != upload.StatusUploading || !r.Completed[0] {
		t.Errorf("record %s with parts %v, want uploading with part 0", r.Status, r.CompletedParts())
	}
	// Without a part in between, it writes.
	got, err = s.UpdateIfNoPart(c, u.AtomID, u.ID, func(r *upload.Upload) error { r.Advances++; return nil })
	if err != nil || got == nil || got.Advances != 2 {
		t.Fatalf("UpdateIfNoPart without a part: %+v, %v", got, err)
	}
}

// TestCleanupIndex: an upload enters the index of uploads due for
// clean-up with the write that ends it, if its parts may go (complete,
// cancelled, expired, failed after the reassembly; not failed before it),
// stays there while partsDeleted is recorded, and leaves it with
// CleanedUp, or when a retry brings it back to life.
func TestCleanupIndex(t *testing.T) {
	s := newStore(t)
	c := ctx(t)
	ended := time.Now()
	mk := func(change func(u *upload.Upload) error) *upload.Upload {
		t.Helper()
		u := newUpload(t, "atom-c", time.Now().Add(-2*time.Hour))
		if err := s.Create(c, u); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Update(c, u.AtomID, u.ID, change); err != nil {
			t.Fatal(err)
		}
		return u
	}
	all := func(u *upload.Upload) { u.Completed = map[int]bool{0: true, 1: true, 2: true} }
	complete := mk(func(u *upload.Upload) error {
		all(u)
		u.Assembled = true
		for i := range u.Destinations {
			u.Destinations[i].Status = upload.DestComplete
		}
		u.Settle(time.Now())
		return nil
	})
	cancelled := mk(func(u *upload.Upload) error { return u.Cancel(time.Now()) })
	expired := mk(func(u *upload.Upload) error { return u.Expire(time.Now(), time.Hour) })
	failedWhole := mk(func(u *upload.Upload) error { u.Fail("part 1 is the wrong size", time.Now()); return nil })
	failedAssembled := mk(func(u *upload.Upload) error {
		u.Assembled = true
		u.Fail("YouTube refused it", time.Now())
		return nil
	})
	mk(func(u *upload.Upload) error { u.Advances++; return nil }) // live: never listed
	list := func() []string { return dueForCleanup(t, s, time.Now().Add(time.Minute)) }
	settleOn(t, "DueForCleanup", list, []string{complete.ID, cancelled.ID, expired.ID, failedAssembled.ID})
	if got := dueForCleanup(t, s, ended.Add(-time.Second)); len(got) != 0 {
		t.Errorf("DueForCleanup before they ended = %v, want none", got)
	}

	// Another write of an ended upload keeps its time.
	time.Sleep(20 * time.Millisecond)
	mark := time.Now()
	if _, err := s.Update(c, complete.AtomID, complete.ID, func(u *upload.Upload) error { u.Advances++; return nil }); err != nil {
		t.Fatal(err)
	}
	// Marked deleted: still listed until CleanedUp.
	if _, err := s.Update(c, cancelled.AtomID, cancelled.ID, func(u *upload.Upload) error { u.PartsDeleted = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(c, cancelled.AtomID, cancelled.ID); !got.PartsDeleted {
		t.Error("partsDeleted not recorded")
	}
	// A retry brings the failed one back to life.
	if _, err := s.Update(c, failedAssembled.AtomID, failedAssembled.ID, func(u *upload.Upload) error { return u.Retry(time.Now()) }); err != nil {
		t.Fatal(err)
	}
	settleOn(t, "DueForCleanup after a retry", func() []string { return dueForCleanup(t, s, mark) },
		[]string{complete.ID, cancelled.ID, expired.ID})
	if err := s.CleanedUp(c, cancelled.AtomID, cancelled.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.CleanedUp(c, cancelled.AtomID, "01JZ0000000000000000000000"); err != nil {
		t.Errorf("CleanedUp of an upload that is gone: %v, want no error", err)
	}
	settleOn(t, "DueForCleanup after CleanedUp", list, []string{complete.ID, expired.ID})
	// Marked deleted, then revived by a retry that needs no parts: still
	// listed, until CleanedUp.
	if _, err := s.Update(c, complete.AtomID, complete.ID, func(u *upload.Upload) error {
		u.PartsDeleted = true
		d := u.Destination(upload.YouTube)
		d.VideoID, d.AssetError = "vid", "the atom API did not take the video"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(c, complete.AtomID, complete.ID, func(u *upload.Upload) error { return u.Retry(time.Now()) }); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(c, complete.AtomID, complete.ID); got.Status.Terminal() {
		t.Fatalf("the retried upload is %s", got.Status)
	}
	settleOn(t, "DueForCleanup after a retry of an upload marked deleted", list, []string{complete.ID, expired.ID})
	// A later write of the cleaned upload does not put it back.
	if _, err := s.Update(c, cancelled.AtomID, cancelled.ID, func(u *upload.Upload) error { u.Advances++; return nil }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	settleOn(t, "DueForCleanup after a write of a cleaned upload", list, []string{complete.ID, expired.ID})
	if got, _ := s.Get(c, failedWhole.AtomID, failedWhole.ID); got.Status != upload.StatusFailed || got.PartsDeletable() {
		t.Errorf("the upload failed before its reassembly: %s, deletable %v", got.Status, got.PartsDeletable())
	}
}
