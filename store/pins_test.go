package store_test

import (
	"errors"
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
