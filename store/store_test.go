package store_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"atomuploads/devstack/stacktest"
	"atomuploads/store"
	"atomuploads/upload"
)

func newStore(t testing.TB) *store.Store {
	t.Helper()
	st := stacktest.New(t)
	return store.New(st.DynamoDB, st.Table, 24*time.Hour)
}

func newUpload(t testing.TB, atomID string, created time.Time) *upload.Upload {
	t.Helper()
	id, err := upload.NewID(created, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, err := upload.New(upload.StartRequest{
		Filename: "clip.mp4", Size: 20 * upload.MiB, ContentType: "video/mp4",
		Destinations: []upload.DestinationRequest{
			{Type: upload.YouTube, YouTube: upload.YouTubeMetadata{Title: "A clip", Tags: []string{"news"}}},
			{Type: upload.S3Bucket},
		},
	}, atomID, id, created, "eu-west-1", "bucket", 8*upload.MiB)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func ctx(t testing.TB) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func TestCreateGetRoundTrip(t *testing.T) {
	s := newStore(t)
	c := ctx(t)
	u := newUpload(t, "atom-1", time.Now())
	if err := s.Create(c, u); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(c, "atom-1", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != u.ID || got.Filename != "clip.mp4" || got.Size != u.Size || got.PartSize != 8*upload.MiB ||
		got.Status != upload.StatusUploading || len(got.Destinations) != 2 || !got.CreatedAt.Equal(u.CreatedAt) {
		t.Errorf("got %+v, want %+v", got, u)
	}
	if m := got.Destination(upload.YouTube).Meta; m == nil || m.Title != "A clip" || m.PrivacyStatus != "private" || len(m.Tags) != 1 {
		t.Errorf("youtube metadata = %+v, want the requested one", m)
	}
	if err := s.Create(c, u); upload.ErrorCode(err) != upload.ECONFLICT {
		t.Errorf("second Create error = %v, want %s", err, upload.ECONFLICT)
	}
	if _, err := s.Get(c, "atom-2", u.ID); upload.ErrorCode(err) != upload.ENOTFOUND {
		t.Errorf("Get from another atom: error = %v, want %s", err, upload.ENOTFOUND)
	}
}

type listQuery struct {
	AtomID   string
	After    string
	Statuses []upload.Status
	Limit    int
}

// list collects what List hands over.
func list(t testing.TB, s *store.Store, q listQuery) ([]*upload.Upload, string) {
	t.Helper()
	var got []*upload.Upload
	next, err := s.List(ctx(t), q.AtomID, q.After, q.Statuses, q.Limit, func(u *upload.Upload) error {
		got = append(got, u)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, next
}

func ids(us []*upload.Upload) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.ID
	}
	return out
}

func TestListIsPerAtomNewestFirst(t *testing.T) {
	s := newStore(t)
	c := ctx(t)
	base := time.Now().Add(-10 * time.Minute) // within the store's retention: DynamoDB Local deletes expired items
	var want []string
	for i := range 5 {
		u := newUpload(t, "atom-a", base.Add(time.Duration(i)*time.Minute))
		if err := s.Create(c, u); err != nil {
			t.Fatal(err)
		}
		want = append([]string{u.ID}, want...)
	}
	if err := s.Create(c, newUpload(t, "atom-b", base)); err != nil {
		t.Fatal(err)
	}
	got, next := list(t, s, listQuery{AtomID: "atom-a", Limit: 100})
	if len(got) != len(want) || next != "" {
		t.Fatalf("got %d uploads and next %q, want %d and no next", len(got), next, len(want))
	}
	for i := range got {
		if got[i].ID != want[i] {
			t.Errorf("uploads[%d] = %s, want %s", i, got[i].ID, want[i])
		}
	}
	if got, next := list(t, s, listQuery{AtomID: "atom-a", Limit: 2}); len(got) != 2 || got[0].ID != want[0] || next != want[1] {
		t.Errorf("List with limit 2 = %d uploads, next %q; want the 2 newest and next %s", len(got), next, want[1])
	}
}

// TestListPagesWithAfter: pages follow one another without a gap or a
// repeat, and the last one says there is no more.
func TestListPagesWithAfter(t *testing.T) {
	s := newStore(t)
	c := ctx(t)
	base := time.Now().Add(-10 * time.Minute) // within the store's retention: DynamoDB Local deletes expired items
	var want []string
	for i := range 7 {
		u := newUpload(t, "atom-a", base.Add(time.Duration(i)*time.Minute))
		if err := s.Create(c, u); err != nil {
			t.Fatal(err)
		}
		want = append([]string{u.ID}, want...)
	}
	var all []string
	after, pages := "", 0
	for {
		got, next := list(t, s, listQuery{AtomID: "atom-a", After: after, Limit: 3})
		pages++
		all = append(all, ids(got)...)
		if next == "" {
			break
		}
		if next != got[len(got)-1].ID {
			t.Errorf("next %s is not the page's last upload %s", next, got[len(got)-1].ID)
		}
		after = next
	}
	if !slices.Equal(all, want) || pages != 3 {
		t.Errorf("pages of 3 = %v in %d pages, want %v in 3", all, pages, want)
	}
	// A page that ends exactly at the atom's end says so.
	if got, next := list(t, s, listQuery{AtomID: "atom-a", After: want[3], Limit: 3}); len(got) != 3 || next != "" {
		t.Errorf("the last 3: %d uploads, next %q; want 3 and no next", len(got), next)
	}
}

// TestListFiltersByStatus keeps only the asked statuses, fills the page
// across DynamoDB's pages (Limit applies before the filter), and stops with
// a cursor when it has examined too many uploads.
func TestListFiltersByStatus(t *testing.T) {
	s := newStore(t)
	c := ctx(t)
	base := time.Now().Add(-10 * time.Minute) // within the store's retention: DynamoDB Local deletes expired items
	var failed, cancelled []string
	for i := range 50 {
		u := newUpload(t, "atom-a", base.Add(time.Duration(i)*time.Second))
		switch i % 10 {
		case 3:
			u.Status = upload.StatusFailed
			failed = append([]string{u.ID}, failed...)
		case 7:
			u.Status = upload.StatusCancelled
			cancelled = append([]string{u.ID}, cancelled...)
		}
		if err := s.Create(c, u); err != nil {
			t.Fatal(err)
		}
	}
	got, next := list(t, s, listQuery{AtomID: "atom-a", Statuses: []upload.Status{upload.StatusFailed}, Limit: 100})
	if !slices.Equal(ids(got), failed) || next != "" {
		t.Errorf("failed = %v next %q, want %v and no next", ids(got), next, failed)
	}
	got, next = list(t, s, listQuery{AtomID: "atom-a", Statuses: []upload.Status{upload.StatusFailed, upload.StatusCancelled}, Limit: 4})
	both := []string{cancelled[0], failed[0], cancelled[1], failed[1]}
	if !slices.Equal(ids(got), both) || next != both[3] {
		t.Errorf("failed or cancelled, 4 = %v next %q, want %v and next %s", ids(got), next, both, both[3])
	}
	if got, next := list(t, s, listQuery{AtomID: "atom-a", Statuses: []upload.Status{upload.StatusComplete}, Limit: 10}); len(got) != 0 || next != "" {
		t.Errorf("complete = %d uploads, next %q; want none", len(got), next)
	}

	// Examining at most 25 uploads (two queries of 20), a filtered page
	// stops short with a cursor at the last upload examined, and the next
	// page goes on from there.
	defer store.SetListMaxExamined(25)()
	got, next = list(t, s, listQuery{AtomID: "atom-a", Statuses: []upload.Status{upload.StatusFailed}, Limit: 100})
	if len(got) != 4 || next == "" {
		t.Fatalf("bounded: %d uploads, next %q; want the 4 failed of the 40 newest and a cursor", len(got), next)
	}
	rest, next2 := list(t, s, listQuery{AtomID: "atom-a", Statuses: []upload.Status{upload.StatusFailed}, After: next, Limit: 100})
	if all := append(ids(got), ids(rest)...); !slices.Equal(all, failed) || next2 != "" {
		t.Errorf("bounded pages = %v (next %q), want %v", all, next2, failed)
	}
}

// countingDB records the Query calls among the records handed over.
type countingDB struct {
	store.DynamoDBAPI
	events *[]string
}

func (d countingDB) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	*d.events = append(*d.events, "query")
	return d.DynamoDBAPI.Query(ctx, in, opts...)
}

// TestListHandsRecordsOverPageByPage: List reads a DynamoDB page, hands its
// records over, then reads the next; it never reads ahead of the page it
// gives, and an error of fn stops it.
func TestListHandsRecordsOverPageByPage(t *testing.T) {
	st := stacktest.New(t)
	var events []string
	s := store.New(countingDB{st.DynamoDB, &events}, st.Table, time.Hour)
	c := ctx(t)
	base := time.Now().Add(-10 * time.Minute) // within the store's retention: DynamoDB Local deletes expired items
	for i := range 45 {
		if err := s.Create(c, newUpload(t, "atom-a", base.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	given := 0
	next, err := s.List(c, "atom-a", "", nil, 45, func(*upload.Upload) error {
		events = append(events, "record")
		given++
		return nil
	})
	if err != nil || given != 45 || next != "" {
		t.Fatalf("List: %d records, next %q, error %v; want 45, none, nil", given, next, err)
	}
	var shape []string
	for i, e := range events {
		if i == 0 || e != events[i-1] {
			shape = append(shape, e)
		}
	}
	if want := []string{"query", "record", "query", "record", "query", "record"}; !slices.Equal(shape, want) {
		t.Errorf("List did %v, want queries and records interleaved page by page, %v", shape, want)
	}
	stop := errors.New("stop")
	events, given = nil, 0
	if _, err := s.List(c, "atom-a", "", nil, 45, func(*upload.Upload) error {
		given++
		return stop
	}); !errors.Is(err, stop) || given != 1 {
		t.Errorf("fn failing: List error %v after %d records, want fn's error after 1", err, given)
	}
}

func TestConcurrentUpdatesAllLand(t *testing.T) {
	s := newStore(t)
	c := ctx(t)
	u := newUpload(t, "atom-1", time.Now())
	if err := s.Create(c, u); err != nil {
		t.Fatal(err)
	}
	const writers = 12
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Update(c, u.AtomID, u.ID, func(u *upload.Upload) error {
				u.Destination(upload.S3Bucket).Progress++
				return nil
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Update: %v", err)
		}
	}
	got, err := s.Get(c, u.AtomID, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p := got.Destination(upload.S3Bucket).Progress; p != writers {
		t.Errorf("progress = %v, want %d (a lost update)", p, writers)
	}
	if got.Version != writers {
		t.Errorf("version = %d, want %d", got.Version, writers)
	}
}

func TestUpdateErrorWritesNothing(t *testing.T) {
	s := newStore(t)
	c := ctx(t)
	u := newUpload(t, "atom-1", time.Now())
	if err := s.Create(c, u); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	_, err := s.Update(c, u.AtomID, u.ID, func(u *upload.Upload) error {
		u.Status = upload.StatusFailed
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error = %v, want boom", err)
	}
	got, _ := s.Get(c, u.AtomID, u.ID)
	if got.Status != upload.StatusUploading || got.Version != 0 {
		t.Errorf("record changed: status %s version %d", got.Status, got.Version)
	}
}

func TestCompletePartIsIdempotentAndRefusedWhenCancelled(t *testing.T) {
	s := newStore(t)
	c := ctx(t)
	u := newUpload(t, "atom-1", time.Now()) // 20 MiB in 8 MiB parts: 3 parts
	if err := s.Create(c, u); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{2, 0, 2, 0} {
		got, err := s.CompletePart(c, u.AtomID, u.ID, n)
		if err != nil {
			t.Fatalf("CompletePart(%d): %v", n, err)
		}
		if !got.Completed[n] {
			t.Errorf("part %d not complete after CompletePart", n)
		}
	}
	got, _ := s.Get(c, u.AtomID, u.ID)
	if fmt.Sprint(got.CompletedParts()) != "[0 2]" || got.AllPartsComplete() {
		t.Errorf("completed = %v, want [0 2] and not all", got.CompletedParts())
	}
	// An Update does not lose parts completed since its read.
	if _, err := s.Update(c, u.AtomID, u.ID, func(u *upload.Upload) error { return u.Cancel(time.Now()) }); err != nil {
		t.Fatal(err)
	}
	got, err := s.CompletePart(c, u.AtomID, u.ID, 1)
	if upload.ErrorCode(err) != upload.ECONFLICT || got == nil || got.Status != upload.StatusCancelled {
		t.Errorf("CompletePart on cancelled upload = %v, %v; want ECONFLICT with the cancelled record", got, err)
	}
	if _, err := s.CompletePart(c, u.AtomID, "01JZ0000000000000000000000", 0); upload.ErrorCode(err) != upload.ENOTFOUND {
		t.Errorf("CompletePart on unknown upload: error = %v, want %s", err, upload.ENOTFOUND)
	}
}

// lease is owner's claim on the named lease of u.
func lease(u *upload.Upload, name upload.LeaseName, owner string, ttl time.Duration) upload.Lease {
	return upload.Lease{AtomID: u.AtomID, UploadID: u.ID, Name: name, Owner: owner, TTL: ttl}
}

func TestLeases(t *testing.T) {
	s := newStore(t)
	c := ctx(t)
	u := newUpload(t, "atom-1", time.Now())
	if err := s.Create(c, u); err != nil {
		t.Fatal(err)
	}
	const ttl = 300 * time.Millisecond
	if _, takenOver, err := s.Acquire(c, lease(u, upload.LeaseYouTube, "a", ttl)); err != nil || takenOver {
		t.Fatalf("a acquires a free lease: takenOver=%v err=%v, want false, nil", takenOver, err)
	}
	if _, _, err := s.Acquire(c, lease(u, upload.LeaseYouTube, "b", ttl)); !errors.Is(err, upload.ErrLeaseHeld) {
		t.Fatalf("b acquires a held lease: error = %v, want ErrLeaseHeld", err)
	}
	if _, _, err := s.Acquire(c, lease(u, upload.LeaseAssembly, "b", ttl)); err != nil {
		t.Errorf("leases are independent, b acquiring assembly: %v", err)
	}
	if got, err := s.Get(c, u.AtomID, u.ID); err != nil || !got.LeaseLive(upload.LeaseYouTube, time.Now()) || got.LeaseLive(upload.LeaseAsset, time.Now()) {
		t.Errorf("record's leases %v (err %v), want youtube live and asset not", got.Leases, err)
	}
	h := lease(u, upload.LeaseYouTube, "a", ttl)
	if _, err := s.UpdateHolding(c, h, func(u *upload.Upload) error {
		return u.Destination(upload.YouTube).MoveTo(upload.DestUpload)
	}); err != nil {
		t.Fatalf("holder updates: %v", err)
	}

	// Part 1 arrives while a holds the lease: a's release must not succeed.
	if _, err := s.CompletePart(c, u.AtomID, u.ID, 1); err != nil {
		t.Fatal(err)
	}
	released, err := s.ReleaseIfMissing(c, lease(u, upload.LeaseYouTube, "a", ttl), 1)
	if err != nil || released {
		t.Fatalf("release unless part 1: released=%v err=%v, want false (the part arrived)", released, err)
	}
	released, err = s.ReleaseIfMissing(c, lease(u, upload.LeaseYouTube, "a", ttl), 2)
	if err != nil || !released {
		t.Fatalf("release unless part 2: released=%v err=%v, want true", released, err)
	}

	// Expiry hands the lease over; the old holder's writes then fail.
	if _, takenOver, err := s.Acquire(c, lease(u, upload.LeaseYouTube, "a", ttl)); err != nil || takenOver {
		t.Fatalf("a acquires a released lease: takenOver=%v err=%v, want false, nil", takenOver, err)
	}
	time.Sleep(ttl + 50*time.Millisecond)
	if _, takenOver, err := s.Acquire(c, lease(u, upload.LeaseYouTube, "b", ttl)); err != nil || !takenOver {
		t.Fatalf("b takes over an expired lease: takenOver=%v err=%v, want true, nil", takenOver, err)
	}
	if _, err := s.UpdateHolding(c, h, func(*upload.Upload) error { return nil }); !errors.Is(err, upload.ErrLeaseLost) {
		t.Errorf("old holder writes: error = %v, want ErrLeaseLost", err)
	}
	if err := s.Renew(c, lease(u, upload.LeaseYouTube, "a", ttl)); !errors.Is(err, upload.ErrLeaseLost) {
		t.Errorf("old holder renews: error = %v, want ErrLeaseLost", err)
	}
	if err := s.Renew(c, lease(u, upload.LeaseYouTube, "b", ttl)); err != nil {
		t.Errorf("new holder renews: %v", err)
	}

	// A plain release vouches for the record: no takeover for the next.
	if err := s.Release(c, lease(u, upload.LeaseYouTube, "a", ttl)); err != nil {
		t.Errorf("releasing a lease one does not hold: %v, want no error", err)
	}
	if _, _, err := s.Acquire(c, lease(u, upload.LeaseYouTube, "a", ttl)); !errors.Is(err, upload.ErrLeaseHeld) {
		t.Errorf("another's release freed b's lease: %v", err)
	}
	if err := s.Release(c, lease(u, upload.LeaseYouTube, "b", ttl)); err != nil {
		t.Fatal(err)
	}
	if _, takenOver, err := s.Acquire(c, lease(u, upload.LeaseYouTube, "a", ttl)); err != nil || takenOver {
		t.Errorf("acquire a released lease: takenOver=%v err=%v, want false, nil", takenOver, err)
	}
}

func TestAbandonedLeaseIsTakenOver(t *testing.T) {
	s := newStore(t)
	c := ctx(t)
	u := newUpload(t, "atom-1", time.Now())
	if err := s.Create(c, u); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Acquire(c, lease(u, upload.LeaseYouTube, "a", time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.Abandon(c, lease(u, upload.LeaseYouTube, "b", time.Minute)); err != nil {
		t.Fatalf("abandoning a lease one does not hold: %v, want no error", err)
	}
	if _, _, err := s.Acquire(c, lease(u, upload.LeaseYouTube, "b", time.Minute)); !errors.Is(err, upload.ErrLeaseHeld) {
		t.Fatalf("another's abandon freed a's lease: %v", err)
	}
	if err := s.Abandon(c, lease(u, upload.LeaseYouTube, "a", time.Minute)); err != nil {
		t.Fatal(err)
	}
	// Free at once, and the next holder learns it was not released cleanly.
	if _, takenOver, err := s.Acquire(c, lease(u, upload.LeaseYouTube, "b", time.Minute)); err != nil || !takenOver {
		t.Errorf("acquire an abandoned lease: takenOver=%v err=%v, want true, nil", takenOver, err)
	}
}
