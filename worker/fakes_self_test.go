package worker_test

import (
	"bytes"
	"errors"
	"io"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"atomuploads/upload"
	"atomuploads/youtube"
)

// The fakes are only as good as their likeness to what they stand for:
// these tests pin the semantics the worker relies on (those of package
// store, S3 and YouTube's resumable protocol).

func fakeLeaseOf(u *upload.Upload, owner string) upload.Lease {
	return upload.Lease{AtomID: u.AtomID, UploadID: u.ID, Name: upload.LeaseYouTube, Owner: owner, TTL: time.Minute}
}

func TestFakeStoreLeases(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := newFakeStore()
	u := newUnitUpload(t, threeParts, ytDest())
	st.create(t, u)
	a, b := fakeLeaseOf(u, "a#1"), fakeLeaseOf(u, "b#1")

	acquire := func(l upload.Lease, wantTakenOver bool, wantErr error) {
		t.Helper()
		got, takenOver, err := st.Acquire(ctx, l)
		if !errors.Is(err, wantErr) || takenOver != wantTakenOver {
			t.Fatalf("Acquire(%s) = taken over %t, %v; want %t, %v", l.Owner, takenOver, err, wantTakenOver, wantErr)
		}
		if err == nil && got.ID != u.ID {
			t.Fatalf("Acquire returned record %s, want %s", got.ID, u.ID)
		}
	}
	acquire(a, false, nil)                     // free
	acquire(a, false, nil)                     // own
	acquire(b, false, upload.ErrLeaseHeld)     // held
	if err := st.Release(ctx, b); err != nil { // not b's: nothing happens
		t.Fatal(err)
	}
	acquire(b, false, upload.ErrLeaseHeld)
	if err := st.Release(ctx, a); err != nil {
		t.Fatal(err)
	}
	acquire(b, false, nil) // released: not a takeover
	if err := st.Abandon(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := st.Renew(ctx, b); !errors.Is(err, upload.ErrLeaseLost) {
		t.Errorf("Renew of an abandoned lease = %v, want upload.ErrLeaseLost", err)
	}
	acquire(a, true, nil) // abandoned by b: a takeover
	if err := st.Renew(ctx, a); err != nil {
		t.Errorf("Renew by the holder = %v", err)
	}
	if err := st.Renew(ctx, b); !errors.Is(err, upload.ErrLeaseLost) {
		t.Errorf("Renew by another = %v, want upload.ErrLeaseLost", err)
	}
	st.clock.Advance(2 * time.Minute)
	if err := st.Renew(ctx, a); !errors.Is(err, upload.ErrLeaseLost) {
		t.Errorf("Renew of an expired lease = %v, want upload.ErrLeaseLost", err)
	}
	if _, err := st.UpdateHolding(ctx, a, func(*upload.Upload) error { return nil }); !errors.Is(err, upload.ErrLeaseLost) {
		t.Errorf("UpdateHolding with an expired lease = %v, want upload.ErrLeaseLost", err)
	}
	acquire(b, true, nil) // expired: a takeover
	before, _ := st.lease(u.AtomID, u.ID, upload.LeaseYouTube)
	st.clock.Advance(time.Second)
	if _, err := st.UpdateHolding(ctx, b, func(*upload.Upload) error { return nil }); err != nil {
		t.Errorf("UpdateHolding by the holder = %v", err)
	}
	if after, _ := st.lease(u.AtomID, u.ID, upload.LeaseYouTube); after.Expiry <= before.Expiry {
		t.Errorf("UpdateHolding left the expiry at %d, want it renewed past %d", after.Expiry, before.Expiry)
	}
	other := fakeLeaseOf(newUnitUpload(t, threeParts), "a#1")
	if _, _, err := st.Acquire(ctx, other); upload.ErrorCode(err) != upload.ENOTFOUND {
		t.Errorf("Acquire of an unknown upload = %v, want ENOTFOUND", err)
	}
}

func TestFakeStoreReleaseIfMissing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := newFakeStore()
	u := newUnitUpload(t, threeParts, ytDest())
	st.create(t, u)
	a := fakeLeaseOf(u, "a#1")
	if _, _, err := st.Acquire(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CompletePart(ctx, u.AtomID, u.ID, 1); err != nil {
		t.Fatal(err)
	}
	if released, err := st.ReleaseIfMissing(ctx, a, 1); released || err != nil {
		t.Errorf("ReleaseIfMissing of a complete part = %t, %v; want kept", released, err)
	}
	if _, ok := st.lease(u.AtomID, u.ID, upload.LeaseYouTube); !ok {
		t.Error("the lease was released although the part is in")
	}
	if released, err := st.ReleaseIfMissing(ctx, fakeLeaseOf(u, "b#1"), 2); !released || err != nil {
		t.Errorf("ReleaseIfMissing of a lease one does not hold = %t, %v; want released", released, err)
	}
	if _, ok := st.lease(u.AtomID, u.ID, upload.LeaseYouTube); !ok {
		t.Error("another owner's release freed the lease")
	}
	if released, err := st.ReleaseIfMissing(ctx, a, 2); !released || err != nil {
		t.Errorf("ReleaseIfMissing of a missing part = %t, %v; want released", released, err)
	}
	if _, ok := st.lease(u.AtomID, u.ID, upload.LeaseYouTube); ok {
		t.Error("the lease is still held")
	}
}

func TestFakeStoreRecords(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := newFakeStore()
	u := newUnitUpload(t, threeParts, ytDest())
	st.create(t, u)

	// Copies in and out: changing a record read changes nothing stored.
	got, err := st.Get(ctx, u.AtomID, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	got.Destinations[0].Meta.Tags[0] = "changed"
	got.Completed[2] = true
	u.Destinations[0].Status = upload.DestFailed
	if again, _ := st.Get(ctx, u.AtomID, u.ID); again.Destinations[0].Meta.Tags[0] != "news" || again.Completed[2] || again.Destinations[0].Status != upload.DestWaiting {
		t.Error("a record read or created shares memory with the stored one")
	}

	// CompletePart: an idempotent ADD that leaves the version alone.
	for range 2 {
		got, err = st.CompletePart(ctx, u.AtomID, u.ID, 0)
		if err != nil || !got.Completed[0] || got.Version != 0 {
			t.Fatalf("CompletePart = %v (version %d), %v; want part 0, version 0", got.CompletedParts(), got.Version, err)
		}
	}
	// Update writes what a write of the table writes, not the parts.
	got, err = st.Update(ctx, u.AtomID, u.ID, func(u *upload.Upload) error {
		u.Completed[2] = true
		u.Destinations[0].Progress = 42
		return nil
	})
	if err != nil || got.Version != 1 {
		t.Fatalf("Update = version %d, %v; want 1", got.Version, err)
	}
	if stored := st.record(t, u.AtomID, u.ID); stored.Completed[2] || stored.Destinations[0].Progress != 42 || stored.Version != 1 {
		t.Errorf("stored parts %v, progress %.0f, version %d; want [0], 42, 1", stored.CompletedParts(), stored.Destinations[0].Progress, stored.Version)
	}
	errFn := errors.New("refused")
	if _, err := st.Update(ctx, u.AtomID, u.ID, func(*upload.Upload) error { return errFn }); !errors.Is(err, errFn) {
		t.Errorf("Update with a failing change = %v, want its error", err)
	}

	// Concurrent updates: each reads again after a conflict; none is lost.
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			if _, err := st.Update(ctx, u.AtomID, u.ID, func(u *upload.Upload) error {
				u.Destinations[0].UploadedBytes++
				return nil
			}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := st.record(t, u.AtomID, u.ID).Destinations[0].UploadedBytes; got != 5 {
		t.Errorf("uploadedBytes %d after 5 concurrent increments, want 5", got)
	}

	st.modify(t, u.AtomID, u.ID, func(u *upload.Upload) { _ = u.Cancel(time.Now()) })
	got, err = st.CompletePart(ctx, u.AtomID, u.ID, 1)
	if upload.ErrorCode(err) != upload.ECONFLICT || got == nil || got.Status != upload.StatusCancelled {
		t.Errorf("CompletePart of a cancelled upload = %v, %v; want ECONFLICT with the record", got, err)
	}
	if _, err := st.CompletePart(ctx, u.AtomID, "01J0000000000000000000000Z", 1); upload.ErrorCode(err) != upload.ENOTFOUND {
		t.Errorf("CompletePart of an unknown upload = %v, want ENOTFOUND", err)
	}
	if _, err := st.Get(ctx, u.AtomID, "01J0000000000000000000000Z"); upload.ErrorCode(err) != upload.ENOTFOUND {
		t.Errorf("Get of an unknown upload = %v, want ENOTFOUND", err)
	}
}

func TestFakeS3(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newFakeS3()
	five := bytes.Repeat([]byte("a"), int(5*upload.MiB))
	s.put("b", "dir/one", five)
	s.put("b", "dir/two two", []byte("tail"))

	if _, err := s.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("b"), Key: aws.String("nope")}); !errors.As(err, new(*s3types.NotFound)) {
		t.Errorf("HeadObject of a missing key = %v, want *types.NotFound", err)
	}
	out, err := s.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("dir/two two"), Range: aws.String("bytes=1-2")})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(b) != "ai" {
		t.Errorf("range 1-2 of %q = %q, want %q", "tail", b, "ai")
	}

	mpu, _ := s.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("b"), Key: aws.String("full")})
	var parts []s3types.CompletedPart
	for i, key := range []string{"dir/one", "dir/two two"} {
		cp, err := s.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
			Bucket: aws.String("b"), Key: aws.String("full"), UploadId: mpu.UploadId, PartNumber: aws.Int32(int32(i + 1)),
			CopySource: aws.String("b/" + (&url.URL{Path: key}).EscapedPath()),
		})
		if err != nil {
			t.Fatalf("copy %s: %v", key, err)
		}
		parts = append(parts, s3types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: cp.CopyPartResult.ETag})
	}
	reversed := []s3types.CompletedPart{parts[1], parts[0]}
	if _, err := s.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("b"), Key: aws.String("full"), UploadId: mpu.UploadId,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: reversed}}); err == nil {
		t.Error("parts out of order completed")
	}
	if _, err := s.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("b"), Key: aws.String("full"), UploadId: mpu.UploadId,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts}}); err != nil {
		t.Fatal(err)
	}
	if full, _ := s.object("b", "full"); !bytes.Equal(full, append(bytes.Clone(five), "tail"...)) {
		t.Errorf("full object of %d bytes, want the parts joined", len(full))
	}
	if mpus, open, _ := s.state(); mpus != 0 || open != 0 {
		t.Errorf("%d uploads, %d bodies left", mpus, open)
	}
}

func TestFakeYouTubeResumableRules(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const size = upload.ChunkAlign + 10
	y := newFakeYouTube()
	id, err := y.StartSession(ctx, upload.YouTubeMetadata{Title: "t"}, size, "video/mp4")
	if err != nil {
		t.Fatal(err)
	}
	put := func(start, n int64) (youtube.Progress, error) {
		return y.PutChunk(ctx, id, bytes.NewReader(make([]byte, n)), start, n, size)
	}
	var ye *youtube.Error
	if _, err := put(0, 1000); !errors.As(err, &ye) || ye.Temporary {
		t.Errorf("a short chunk that does not end the file = %v, want a permanent refusal", err)
	}
	if _, err := put(1000, size-1000); !errors.As(err, &ye) {
		t.Errorf("a gap = %v, want a refusal", err)
	}
	if p, err := put(0, upload.ChunkAlign); err != nil || p.Committed != upload.ChunkAlign || p.Done {
		t.Errorf("first chunk = %+v, %v; want 256 KiB committed", p, err)
	}
	if _, err := put(0, upload.ChunkAlign); !errors.As(err, &ye) {
		t.Errorf("an overlap = %v, want a refusal", err)
	}
	if p, err := y.Offset(ctx, id, size); err != nil || p.Committed != upload.ChunkAlign {
		t.Errorf("Offset = %+v, %v; want 256 KiB", p, err)
	}
	p, err := put(upload.ChunkAlign, 10)
	if err != nil || !p.Done || p.VideoID == "" || p.Committed != size {
		t.Errorf("last chunk = %+v, %v; want done with a video", p, err)
	}
	if n := len(y.protocolViolations()); n != 3 {
		t.Errorf("%d violations, want 3", n)
	}
	y.expire()
	if _, err := y.Offset(ctx, id, size); !errors.Is(err, youtube.ErrSessionGone) {
		t.Errorf("Offset of an expired session = %v, want youtube.ErrSessionGone", err)
	}
}

func TestFakeStoreLeasesInTheRecord(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := newFakeStore()
	u := newUnitUpload(t, threeParts, ytDest())
	st.create(t, u)
	a := fakeLeaseOf(u, "a#1")
	got, _, err := st.Acquire(ctx, a)
	if err != nil || len(got.Leases) != 0 {
		t.Fatalf("Acquire = %v, %v; want the record as it was, without the lease", got.Leases, err)
	}
	got, _ = st.Get(ctx, u.AtomID, u.ID)
	if exp := got.Leases[upload.LeaseYouTube]; !got.LeaseLive(upload.LeaseYouTube, time.Now()) || exp.After(time.Now().Add(time.Minute+time.Second)) {
		t.Errorf("leases %v, want the youtube lease live for a minute", got.Leases)
	}
	if err := st.Abandon(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got, _ = st.Get(ctx, u.AtomID, u.ID); got.LeaseLive(upload.LeaseYouTube, time.Now()) || len(got.Leases) != 0 {
		t.Errorf("leases %v after Abandon, want none (an expiry of 0 reads as none)", got.Leases)
	}
	// A lease in a record written back is not written: leases are attributes of their own.
	if _, err := st.Update(ctx, u.AtomID, u.ID, func(u *upload.Upload) error {
		u.Leases = map[upload.LeaseName]time.Time{upload.LeaseAsset: time.Now().Add(time.Hour)}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, _ = st.Get(ctx, u.AtomID, u.ID); len(got.Leases) != 0 {
		t.Errorf("leases %v, want none written by Update", got.Leases)
	}
}

func TestFakeStoreProgressAndQuiet(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := newFakeStore()
	u := newUnitUpload(t, threeParts, ytDest())
	st.create(t, u)
	old := newUnitUpload(t, threeParts, ytDest())
	st.create(t, old)
	done := newUnitUpload(t, threeParts, ytDest())
	st.create(t, done)
	st.modify(t, done.AtomID, done.ID, func(u *upload.Upload) { _ = u.Cancel(time.Now()) })
	for _, x := range []*upload.Upload{u, old, done} {
		st.quietSince(t, x.AtomID, x.ID, time.Now().Add(-time.Hour))
	}
	st.quietSince(t, old.AtomID, old.ID, time.Now().Add(-2*time.Hour))
	quiet := func() []string {
		var ids []string
		if err := st.Quiet(ctx, time.Now().Add(-time.Minute), func(_, id string) error {
			ids = append(ids, id)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	if got := quiet(); len(got) != 2 || got[0] != old.ID || got[1] != u.ID {
		t.Errorf("quiet %v, want the two live uploads, oldest first", got)
	}
	errStop := errors.New("stop")
	if err := st.Quiet(ctx, time.Now(), func(string, string) error { return errStop }); !errors.Is(err, errStop) {
		t.Errorf("Quiet = %v, want fn's error", err)
	}

	// CompletePart counts progress every time (an ADD), and moves progressAt.
	for range 2 {
		if _, err := st.CompletePart(ctx, u.AtomID, u.ID, 0); err != nil {
			t.Fatal(err)
		}
	}
	if got := st.record(t, u.AtomID, u.ID); got.Advances != 2 {
		t.Errorf("advances %d after two CompletePart calls, want 2", got.Advances)
	}
	if got := quiet(); len(got) != 1 || got[0] != old.ID {
		t.Errorf("quiet %v after a part of %s, want only %s", got, u.ID, old.ID)
	}
	// Touch moves it too, without a write; a terminal record is not touched.
	if err := st.Touch(ctx, old.AtomID, old.ID); err != nil {
		t.Fatal(err)
	}
	if err := st.Touch(ctx, done.AtomID, done.ID); err != nil {
		t.Fatal(err)
	}
	if got := quiet(); len(got) != 0 {
		t.Errorf("quiet %v after the touch, want none", got)
	}
	if st.touches(old.AtomID, old.ID) != 1 || st.record(t, old.AtomID, old.ID).Version != 0 {
		t.Error("Touch was not recorded, or changed the record")
	}
	// An update writes the assembly and the advances.
	if _, err := st.Update(ctx, u.AtomID, u.ID, func(u *upload.Upload) error {
		u.Assembly, u.Advances = upload.Assembly{UploadID: "mpu-1", Copied: 2}, u.Advances+1
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := st.record(t, u.AtomID, u.ID); got.Assembly.UploadID != "mpu-1" || got.Assembly.Copied != 2 || got.Advances != 3 {
		t.Errorf("assembly %+v, advances %d; want them written", got.Assembly, got.Advances)
	}
}

func TestFakeStoreSweepLeases(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := newFakeStore()
	a, b := upload.SweepLease("reconciler", "a", time.Minute), upload.SweepLease("reconciler", "b", time.Minute)
	if err := st.AcquireSweep(ctx, a); err != nil {
		t.Fatalf("AcquireSweep of a free lease = %v", err)
	}
	if err := st.AcquireSweep(ctx, a); err != nil {
		t.Errorf("AcquireSweep of one's own lease = %v", err)
	}
	if err := st.AcquireSweep(ctx, b); !errors.Is(err, upload.ErrLeaseHeld) {
		t.Errorf("AcquireSweep of a held lease = %v, want upload.ErrLeaseHeld", err)
	}
	if err := st.AcquireSweep(ctx, upload.SweepLease("deadLetters", "b", time.Minute)); err != nil {
		t.Errorf("AcquireSweep of another sweep's lease = %v", err)
	}
	if err := st.Renew(ctx, a); err != nil {
		t.Errorf("Renew by the holder = %v", err)
	}
	if err := st.Renew(ctx, b); !errors.Is(err, upload.ErrLeaseLost) {
		t.Errorf("Renew by another = %v, want upload.ErrLeaseLost", err)
	}
	st.clock.Advance(2 * time.Minute)
	if err := st.Renew(ctx, a); !errors.Is(err, upload.ErrLeaseLost) {
		t.Errorf("Renew of an expired lease = %v, want upload.ErrLeaseLost", err)
	}
	if err := st.AcquireSweep(ctx, b); err != nil {
		t.Errorf("AcquireSweep of an expired lease = %v", err)
	}
	if l, _ := st.sweepLease("reconciler"); l.Owner != "b" {
		t.Errorf("lease %+v, want b's", l)
	}
}

func TestFakeS3ListParts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newFakeS3()
	s.listPage = 2
	s.put("b", "p", []byte("part"))
	mpu, _ := s.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("b"), Key: aws.String("full")})
	for _, n := range []int32{5, 1, 3} {
		if _, err := s.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: aws.String("b"), Key: aws.String("full"), UploadId: mpu.UploadId,
			PartNumber: aws.Int32(n), CopySource: aws.String("b/p")}); err != nil {
			t.Fatal(err)
		}
	}
	var got []int32
	var marker *string
	for pages := 1; ; pages++ {
		out, err := s.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("b"), Key: aws.String("full"), UploadId: mpu.UploadId, PartNumberMarker: marker})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range out.Parts {
			got = append(got, aws.ToInt32(p.PartNumber))
		}
		if !aws.ToBool(out.IsTruncated) {
			if pages != 2 {
				t.Errorf("%d pages, want 2", pages)
			}
			break
		}
		marker = out.NextPartNumberMarker
	}
	if len(got) != 3 || got[0] != 1 || got[1] != 3 || got[2] != 5 {
		t.Errorf("parts %v, want [1 3 5]", got)
	}
	if _, err := s.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("b"), Key: aws.String("full"), UploadId: aws.String("gone")}); !errors.As(err, new(*s3types.NoSuchUpload)) {
		t.Errorf("ListParts of an unknown upload = %v, want *types.NoSuchUpload", err)
	}
}
