package store_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"atomuploads/upload"
)

// TestPins: a part is pinned once; a changed part is pinned afresh while
// nobody read it, and refused once somebody has.
func TestPins(t *testing.T) {
	s := newStore(t)
	c := ctx(t)
	u := newUpload(t, "atom-p", time.Now())
	pin := func(etag string) (string, error) {
		return s.PinPart(c, u.AtomID, u.ID, upload.PartPin{Part: 3, ETag: etag, ChecksumSHA256: "sum-" + etag, Size: 42})
	}
	for _, step := range []struct {
		etag string
		want string
	}{{`"a"`, upload.PinNew}, {`"a"`, upload.PinSame}, {`"b"`, upload.PinRenewed}} {
		if got, err := pin(step.etag); err != nil || got != step.want {
			t.Fatalf("pin %s = %q, %v; want %q", step.etag, got, err, step.want)
		}
	}
	got, err := s.ClaimPart(c, u.AtomID, u.ID, 3, upload.ReaderYouTube)
	if err != nil || got.ETag != `"b"` || got.ChecksumSHA256 != `sum-"b"` || got.Size != 42 || !got.Read {
		t.Fatalf("claim = %+v, %v; want the renewed pin, read", got, err)
	}
	if _, err := pin(`"c"`); !errors.Is(err, upload.ErrPartRead) {
		t.Errorf("pin a part changed after it was read: %v, want ErrPartRead", err)
	}
	if got, _ := s.ClaimPart(c, u.AtomID, u.ID, 3, upload.ReaderYouTube); got.ETag != `"b"` {
		t.Errorf("pin after a refused change = %q, want it kept as %q", got.ETag, `"b"`)
	}
	if got, err := pin(`"b"`); err != nil || got != upload.PinSame {
		t.Errorf("the same object again after the read: %q, %v; want same", got, err)
	}
	if _, err := s.ClaimPart(c, u.AtomID, u.ID, 4, upload.ReaderYouTube); upload.ErrorCode(err) != upload.ENOTFOUND {
		t.Errorf("claim a part never pinned: %v, want ENOTFOUND", err)
	}
}

// TestPinKeepsWhenThePartWasCreated: the pin carries when S3 created the
// part (the relay's lag starts there) to whoever claims it, in the same
// write as the pin; a pin without one claims without one.
func TestPinKeepsWhenThePartWasCreated(t *testing.T) {
	s := newStore(t)
	c := ctx(t)
	u := newUpload(t, "atom-c", time.Now())
	created := time.Date(2026, 11, 25, 12, 0, 59, 863_000_000, time.UTC)
	if _, err := s.PinPart(c, u.AtomID, u.ID, upload.PartPin{Part: 0, ETag: `"a"`, Size: 42, CreatedAt: created}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PinPart(c, u.AtomID, u.ID, upload.PartPin{Part: 1, ETag: `"b"`, Size: 42}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ClaimPart(c, u.AtomID, u.ID, 0, upload.ReaderYouTube); err != nil || !got.CreatedAt.Equal(created) {
		t.Errorf("claim = %+v, %v; want created at %s", got, err, created)
	}
	if got, err := s.ClaimPart(c, u.AtomID, u.ID, 1, upload.ReaderYouTube); err != nil || !got.CreatedAt.IsZero() {
		t.Errorf("claim of a pin without a creation time = %+v, %v; want none", got, err)
	}
}

// TestRelayMark: the relay claims a run of parts with the mark on the
// upload (YouTubeReadParts, written with the record), then reads their
// pins in one query; a pin below the mark is never renewed, one above it
// still is; a writer that does not touch the mark keeps it; parts never
// pinned have no pin.
func TestRelayMark(t *testing.T) {
	s := newStore(t)
	c := ctx(t)
	u := newUpload(t, "atom-cp", time.Now())
	if err := s.Create(c, u); err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 11, 30, 1, 2, 3, 4_000_000, time.UTC)
	for n := range 12 {
		if n == 5 {
			continue // never pinned
		}
		p := upload.PartPin{Part: n, ETag: fmt.Sprintf(`"e%d"`, n), ChecksumSHA256: fmt.Sprintf("sum%d", n), Size: int64(100 + n), CreatedAt: created}
		if _, err := s.PinPart(c, u.AtomID, u.ID, p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Update(c, u.AtomID, u.ID, func(u *upload.Upload) error { u.YouTubeReadParts = 10; return nil }); err != nil {
		t.Fatal(err)
	}
	got, err := s.Pins(c, u.AtomID, u.ID, 2, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 7 {
		t.Errorf("%d pins of parts 2-9, want 7 (part 5 was never pinned): %v", len(got), got)
	}
	for n := 2; n < 10; n++ {
		p, ok := got[n]
		if n == 5 {
			if ok {
				t.Errorf("part 5, never pinned, has pin %+v", p)
			}
			continue
		}
		want := upload.PartPin{Part: n, ETag: fmt.Sprintf(`"e%d"`, n), ChecksumSHA256: fmt.Sprintf("sum%d", n), Size: int64(100 + n), CreatedAt: created}
		if p != want {
			t.Errorf("pin of part %d = %+v, want %+v", n, p, want)
		}
	}
	// Another writer (not the relay) keeps the mark.
	if _, err := s.Update(c, u.AtomID, u.ID, func(u *upload.Upload) error { u.Filename = "other.mp4"; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(c, u.AtomID, u.ID); err != nil || got.YouTubeReadParts != 10 {
		t.Fatalf("mark after another write = %d, %v; want 10", got.YouTubeReadParts, err)
	}
	// Below the mark (even part 0, claimed but not read back): refused;
	// at or above it: renewed.
	for _, n := range []int{0, 9} {
		var by *upload.PartChangedError
		if _, err := s.PinPart(c, u.AtomID, u.ID, upload.PartPin{Part: n, ETag: `"changed"`, Size: 1}); !errors.Is(err, upload.ErrPartRead) {
			t.Errorf("renew the pin of claimed part %d: %v, want ErrPartRead", n, err)
		} else if !errors.As(err, &by) || by.ReadBy != upload.ReaderYouTube {
			t.Errorf("renew the pin of claimed part %d: %v, want it read by the relay", n, err)
		}
	}
	if got, err := s.PinPart(c, u.AtomID, u.ID, upload.PartPin{Part: 10, ETag: `"changed"`, Size: 1}); err != nil || got != upload.PinRenewed {
		t.Errorf("renew the pin of unclaimed part 10 = %q, %v; want renewed", got, err)
	}
}
