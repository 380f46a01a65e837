package worker_test

// In-process fakes of the worker's dependencies, for the stack-free unit
// tests (TestUnit…), and the small helpers those tests share. Each fake
// keeps the semantics the worker relies on (the store's versioned records
// and leases, S3's ranges and multipart copy, YouTube's resumable rules),
// counts its calls, and takes injected faults.

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"atomuploads/transcode"
	"atomuploads/upload"
	"atomuploads/worker"
	"atomuploads/youtube"
)

// ---------------------------------------------------------------------------
// Faults and clock shared by the fakes.

// faults counts the calls of a fake's operations and injects failures and
// hooks into them. Every operation of a fake starts with call(op).
type faults struct {
	fmu    sync.Mutex
	calls  map[string]int
	next   map[string][]error   // the next calls of op fail with these, in order
	always map[string]error     // every call of op fails with this
	hooks  map[string]func(int) // run (outside any lock) before op, with the call's number from 1
}

// failNext makes the next len(errs) calls of op fail with errs, in order.
func (f *faults) failNext(op string, errs ...error) {
	f.fmu.Lock()
	defer f.fmu.Unlock()
	if f.next == nil {
		f.next = map[string][]error{}
	}
	f.next[op] = append(f.next[op], errs...)
}

// failAlways makes every call of op fail with err; nil stops it.
func (f *faults) failAlways(op string, err error) {
	f.fmu.Lock()
	defer f.fmu.Unlock()
	if f.always == nil {
		f.always = map[string]error{}
	}
	if err == nil {
		delete(f.always, op)
		return
	}
	f.always[op] = err
}

// onCall runs fn before every call of op, with the call's number (from 1).
// fn may block, change the fakes, or panic.
func (f *faults) onCall(op string, fn func(n int)) {
	f.fmu.Lock()
	defer f.fmu.Unlock()
	if f.hooks == nil {
		f.hooks = map[string]func(int){}
	}
	f.hooks[op] = fn
}

// call counts a call of op, runs its hook and returns its injected error.
func (f *faults) call(op string) error {
	f.fmu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[op]++
	n := f.calls[op]
	hook := f.hooks[op]
	var err error
	if q := f.next[op]; len(q) > 0 {
		err, f.next[op] = q[0], q[1:]
	} else if a := f.always[op]; a != nil {
		err = a
	}
	f.fmu.Unlock()
	if hook != nil {
		hook(n)
	}
	return err
}

// count is the number of calls of op so far.
func (f *faults) count(op string) int {
	f.fmu.Lock()
	defer f.fmu.Unlock()
	return f.calls[op]
}

// fakeClock is wall time moved on by an offset that tests advance, so that
// leases expire without waiting.
type fakeClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// ---------------------------------------------------------------------------
// Store: the progress table.

// fakeStore implements worker.Store with the semantics of package store:
// records are versioned and every write is conditional on the version read
// (Update reads again and retries on a conflict); CompletePart adds to the
// set of parts without changing the version; leases have an owner and an
// expiry on the store's clock. Records go in and out as deep copies.
type fakeStore struct {
	faults
	clock *fakeClock

	mu      sync.Mutex
	records map[string]*fakeItem
	sweeps  map[string]*fakeLease // the sweeps' leases, by sweep name
	touched []string              // storeKey of each Touch, in order
	// laggingIndex makes Quiet list what an eventually consistent index
	// may still list: terminal records, and the ghosts (ids of records
	// that are gone).
	laggingIndex bool
	ghosts       [][2]string
	counters     map[string]int      // Admit's
	pins         map[string]*fakePin // by storeKey and part
}

// fakePin is a part's pin item (store/pins.go).
type fakePin struct {
	pin    upload.PartPin
	readBy string
}

type fakeItem struct {
	u      *upload.Upload
	leases map[upload.LeaseName]*fakeLease
	// progressAt is the sort key of the live index: the time of the
	// record's last write or Touch (Quiet's "quiet since").
	progressAt time.Time
	// cleanupAt is the sort key of the index of uploads due for clean-up
	// (DueForCleanup): when the record ended; zero when it is not in it.
	cleanupAt time.Time
}

// index keeps the record's place in the index of uploads due for
// clean-up, as store.Store's write does: in from the write that ends an
// upload whose parts may go, until CleanedUp; out when it lives again
// before its parts are marked deleted.
func (it *fakeItem) index(now time.Time) {
	switch {
	case it.u.PartsDeleted:
	case !it.u.Status.Terminal():
		it.cleanupAt = time.Time{}
	case it.u.PartsDeletable() && !it.u.PartsDeleted && it.cleanupAt.IsZero():
		it.cleanupAt = now
	}
}

// fakeLease is a lease's two attributes in the record: who holds it, and
// until when (Unix ms; 0 once abandoned).
type fakeLease struct {
	Owner  string
	Expiry int64
}

var _ worker.Store = (*fakeStore)(nil)

func newFakeStore() *fakeStore {
	return &fakeStore{clock: &fakeClock{}, records: map[string]*fakeItem{}, sweeps: map[string]*fakeLease{}}
}

func storeKey(atomID, id string) string { return atomID + "/" + id }

func notFound(atomID, id string) error {
	return upload.Errorf(upload.ENOTFOUND, "atom %s has no upload %s", atomID, id)
}

// errFakeVersion: the record changed since it was read.
var errFakeVersion = errors.New("version changed")

// create stores a copy of u, as Store.Create does.
func (s *fakeStore) create(t testing.TB, u *upload.Upload) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.records[storeKey(u.AtomID, u.ID)]; ok {
		t.Fatalf("upload %s exists already", u.ID)
	}
	s.records[storeKey(u.AtomID, u.ID)] = &fakeItem{u: stored(u), leases: map[upload.LeaseName]*fakeLease{}, progressAt: u.UpdatedAt}
}

// modify changes a stored record directly (a test's setup, or another
// writer), bumping its version.
func (s *fakeStore) modify(t testing.TB, atomID, id string, fn func(u *upload.Upload)) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.records[storeKey(atomID, id)]
	if it == nil {
		t.Fatalf("no upload %s", id)
	}
	u := cloneUpload(it.u)
	fn(u)
	u.Version = it.u.Version + 1
	it.u = stored(u)
	it.progressAt = s.clock.Now()
	it.index(it.progressAt)
}

// endedAt sets when the record entered the index of uploads due for
// clean-up (it must be in it).
func (s *fakeStore) endedAt(t testing.TB, atomID, id string, at time.Time) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.records[storeKey(atomID, id)]
	if it == nil || it.cleanupAt.IsZero() {
		t.Fatalf("upload %s is not due for clean-up", id)
	}
	it.cleanupAt = at
}

// dueForCleanup reports whether the record is in the index of uploads due
// for clean-up.
func (s *fakeStore) dueForCleanup(atomID, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.records[storeKey(atomID, id)]
	return it != nil && !it.cleanupAt.IsZero()
}

// quietSince sets when the record last changed, as the live index sees it.
func (s *fakeStore) quietSince(t testing.TB, atomID, id string, at time.Time) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.records[storeKey(atomID, id)]
	if it == nil {
		t.Fatalf("no upload %s", id)
	}
	it.progressAt = at
}

// lastChange is when the record last changed or was touched.
func (s *fakeStore) lastChange(atomID, id string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if it := s.records[storeKey(atomID, id)]; it != nil {
		return it.progressAt
	}
	return time.Time{}
}

// touches is how many times Touch marked the upload as driven.
func (s *fakeStore) touches(atomID, id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, k := range s.touched {
		if k == storeKey(atomID, id) {
			n++
		}
	}
	return n
}

// view is the record as the table returns it: a copy, with the expiry of
// each lease that has one (package store's fromAttrs; an abandoned lease's
// expiry is 0, which reads as none).
func view(it *fakeItem) *upload.Upload {
	u := cloneUpload(it.u)
	u.Leases = nil
	for name, l := range it.leases {
		if l.Expiry > 0 {
			if u.Leases == nil {
				u.Leases = map[upload.LeaseName]time.Time{}
			}
			u.Leases[name] = time.UnixMilli(l.Expiry).UTC()
		}
	}
	return u
}

// record returns a copy of the stored record.
func (s *fakeStore) record(t testing.TB, atomID, id string) *upload.Upload {
	t.Helper()
	u, err := s.read(atomID, id)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// setLease writes a lease's attributes, as another holder would have.
func (s *fakeStore) setLease(t testing.TB, atomID, id string, name upload.LeaseName, owner string, expiry time.Time) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.records[storeKey(atomID, id)]
	if it == nil {
		t.Fatalf("no upload %s", id)
	}
	it.leases[name] = &fakeLease{Owner: owner, Expiry: expiry.UnixMilli()}
}

// lease returns a lease's attributes; ok is false when nobody's name is
// on it (free, or released).
func (s *fakeStore) lease(atomID, id string, name upload.LeaseName) (l fakeLease, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.records[storeKey(atomID, id)]
	if it == nil || it.leases[name] == nil {
		return fakeLease{}, false
	}
	return *it.leases[name], true
}

func (s *fakeStore) read(atomID, id string) (*upload.Upload, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.records[storeKey(atomID, id)]
	if it == nil {
		return nil, notFound(atomID, id)
	}
	return view(it), nil
}

func (s *fakeStore) Get(ctx context.Context, atomID, id string) (*upload.Upload, error) {
	if err := s.call("Get"); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get upload %s: %w", id, err)
	}
	return s.read(atomID, id)
}

func (s *fakeStore) Update(ctx context.Context, atomID, id string, fn func(*upload.Upload) error) (*upload.Upload, error) {
	if err := s.call("Update"); err != nil {
		return nil, err
	}
	return s.update(ctx, atomID, id, nil, false, fn)
}

func (s *fakeStore) UpdateHolding(ctx context.Context, l upload.Lease, fn func(*upload.Upload) error) (*upload.Upload, error) {
	if err := s.call("UpdateHolding"); err != nil {
		return nil, err
	}
	return s.update(ctx, l.AtomID, l.UploadID, &l, false, fn)
}

// UpdateIfNoPart is Update on condition also that no part completed since
// the read, as store.Store.UpdateIfNoPart.
func (s *fakeStore) UpdateIfNoPart(ctx context.Context, atomID, id string, fn func(*upload.Upload) error) (*upload.Upload, error) {
	if err := s.call("UpdateIfNoPart"); err != nil {
		return nil, err
	}
	return s.update(ctx, atomID, id, nil, true, fn)
}

// update is store.Store.update: read, apply fn, write on condition that
// the version is unchanged (and, with l, that l is held, which the write
// renews); a version conflict reads again, a bounded number of times.
func (s *fakeStore) update(ctx context.Context, atomID, id string, l *upload.Lease, noPart bool, fn func(*upload.Upload) error) (*upload.Upload, error) {
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("update upload %s: %w", id, err)
		}
		u, err := s.read(atomID, id)
		if err != nil {
			return nil, err
		}
		lastPart := u.LastPartAt
		if err := fn(u); err != nil {
			return nil, err
		}
		u.UpdatedAt = s.clock.Now().UTC()
		if noPart {
			err = s.writeIfNoPart(u, lastPart)
		} else {
			err = s.write(u, l)
		}
		switch {
		case errors.Is(err, errFakeVersion) && attempt < 11:
			time.Sleep(time.Duration(attempt) * 100 * time.Microsecond)
			continue
		case errors.Is(err, errFakeVersion):
			return nil, upload.Errorf(upload.ECONFLICT, "upload %s is changing too often to update; try again", id)
		case err != nil:
			return nil, err
		}
		u.Version++
		return u, nil
	}
}

// writeIfNoPart is write on condition also that the last part completed
// when it had when the record was read.
func (s *fakeStore) writeIfNoPart(u *upload.Upload, lastPart time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if it := s.records[storeKey(u.AtomID, u.ID)]; it != nil && !it.u.LastPartAt.Equal(lastPart) {
		return errFakeVersion
	}
	return s.writeLocked(u, nil)
}

// write stores the record fields a write of store.Store changes (status,
// error, updatedAt, destinations, assembled, the assembly, advances, the
// retry's time, partsDeleted; not the parts, their time or the leases) if
// the version is the one read, moves progressAt to now and keeps the
// record's place in the clean-up index.
func (s *fakeStore) write(u *upload.Upload, l *upload.Lease) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writeLocked(u, l)
}

// writeLocked is write with s.mu held.
func (s *fakeStore) writeLocked(u *upload.Upload, l *upload.Lease) error {
	it := s.records[storeKey(u.AtomID, u.ID)]
	switch {
	case it == nil:
		return notFound(u.AtomID, u.ID)
	case it.u.Version != u.Version:
		return errFakeVersion
	}
	if l != nil {
		now := s.clock.Now()
		ls := it.leases[l.Name]
		if ls == nil || ls.Owner != l.Owner || ls.Expiry <= now.UnixMilli() {
			return upload.ErrLeaseLost
		}
		ls.Expiry = now.Add(l.TTL).UnixMilli()
	}
	next := cloneUpload(it.u)
	c := stored(u)
	next.Status, next.Error, next.UpdatedAt, next.Destinations, next.Assembled = c.Status, c.Error, c.UpdatedAt, c.Destinations, c.Assembled
	next.Assembly, next.Advances = c.Assembly, c.Advances
	next.RetriedAt, next.PartsDeleted = c.RetriedAt, c.PartsDeleted
	next.Version++
	it.u = next
	it.progressAt = s.clock.Now()
	it.index(it.progressAt)
	return nil
}

func (s *fakeStore) CompletePart(ctx context.Context, atomID, id string, n int) (*upload.Upload, error) {
	if err := s.call("CompletePart"); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("complete part %d of %s: %w", n, id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.records[storeKey(atomID, id)]
	if it == nil {
		return nil, notFound(atomID, id)
	}
	if st := it.u.Status; st == upload.StatusCancelled || st == upload.StatusFailed || st == upload.StatusExpired {
		return view(it), upload.Errorf(upload.ECONFLICT, "upload %s is %s and takes no more parts", id, st)
	}
	// An ADD to a set, and one to the advances (every call, as the
	// table's), and the time of the part: the version stays.
	it.u.Completed[n] = true
	it.u.Advances++
	it.progressAt = s.clock.Now()
	it.u.LastPartAt = it.progressAt.UTC()
	return view(it), nil
}

func (s *fakeStore) Acquire(ctx context.Context, l upload.Lease) (*upload.Upload, bool, error) {
	if err := s.call("Acquire"); err != nil {
		return nil, false, err
	}
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("acquire %s lease of %s: %w", l.Name, l.UploadID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.records[storeKey(l.AtomID, l.UploadID)]
	if it == nil {
		return nil, false, notFound(l.AtomID, l.UploadID)
	}
	now := s.clock.Now()
	prev := it.leases[l.Name]
	if prev != nil && prev.Expiry >= now.UnixMilli() && prev.Owner != l.Owner {
		return nil, false, upload.ErrLeaseHeld
	}
	old := view(it) // the item as it was (ReturnValues ALL_OLD)
	it.leases[l.Name] = &fakeLease{Owner: l.Owner, Expiry: now.Add(l.TTL).UnixMilli()}
	return old, prev != nil && prev.Owner != l.Owner, nil
}

func (s *fakeStore) Renew(ctx context.Context, l upload.Lease) error {
	if err := s.call("Renew"); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("renew %s lease of %s: %w", l.Name, l.UploadID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ls := s.leaseOf(l)
	now := s.clock.Now()
	if ls == nil || ls.Owner != l.Owner || ls.Expiry <= now.UnixMilli() {
		return upload.ErrLeaseLost
	}
	ls.Expiry = now.Add(l.TTL).UnixMilli()
	return nil
}

func (s *fakeStore) Release(ctx context.Context, l upload.Lease) error {
	if err := s.call("Release"); err != nil {
		return err
	}
	_, err := s.release(ctx, l, -1)
	return err
}

func (s *fakeStore) ReleaseIfMissing(ctx context.Context, l upload.Lease, n int) (bool, error) {
	if err := s.call("ReleaseIfMissing"); err != nil {
		return false, err
	}
	return s.release(ctx, l, n)
}

// release removes l's lease if l holds it (and, for n ≥ 0, part n is not
// complete); a lease one does not hold counts as released.
func (s *fakeStore) release(ctx context.Context, l upload.Lease, n int) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("release %s lease of %s: %w", l.Name, l.UploadID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.Name == upload.LeaseSweep {
		if ls := s.sweeps[l.UploadID]; ls != nil && ls.Owner == l.Owner {
			delete(s.sweeps, l.UploadID)
		}
		return true, nil
	}
	it := s.records[storeKey(l.AtomID, l.UploadID)]
	if it == nil || it.leases[l.Name] == nil || it.leases[l.Name].Owner != l.Owner {
		return true, nil
	}
	if n >= 0 && it.u.Completed[n] {
		return false, nil
	}
	delete(it.leases, l.Name)
	return true, nil
}

func (s *fakeStore) Abandon(ctx context.Context, l upload.Lease) error {
	if err := s.call("Abandon"); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("abandon %s lease of %s: %w", l.Name, l.UploadID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ls := s.leaseOf(l); ls != nil && ls.Owner == l.Owner {
		ls.Expiry = 0
	}
	return nil
}

// leaseOf is the lease l names: an upload's, or a sweep's; nil when
// nobody's name is on it. s.mu is held.
func (s *fakeStore) leaseOf(l upload.Lease) *fakeLease {
	if l.Name == upload.LeaseSweep {
		return s.sweeps[l.UploadID]
	}
	if it := s.records[storeKey(l.AtomID, l.UploadID)]; it != nil {
		return it.leases[l.Name]
	}
	return nil
}

// Touch marks the upload as changed now without changing it (only while
// it is live: a terminal record is not in the index, and the call is not
// an error), as store.Store.Touch.
func (s *fakeStore) Touch(ctx context.Context, atomID, id string) error {
	if err := s.call("Touch"); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("touch upload %s: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.touched = append(s.touched, storeKey(atomID, id))
	if it := s.records[storeKey(atomID, id)]; it != nil && !it.u.Status.Terminal() {
		it.progressAt = s.clock.Now()
	}
	return nil
}

// Admit counts one more under counter while it is below limit, as
// store.Store.Admit.
func (s *fakeStore) Admit(_ context.Context, counter string, limit int) (bool, error) {
	if err := s.call("Admit"); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counters == nil {
		s.counters = map[string]int{}
	}
	if s.counters[counter] >= limit {
		return false, nil
	}
	s.counters[counter]++
	return true, nil
}

// Refund gives one admission back, as store.Store.Refund.
func (s *fakeStore) Refund(_ context.Context, counter string) error {
	if err := s.call("Refund"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counters[counter] > 0 {
		s.counters[counter]--
	}
	return nil
}

// PinPart pins a part as store.Store.PinPart: new, the same, renewed while
// nobody read it, or a PartChangedError once somebody has.
func (s *fakeStore) PinPart(_ context.Context, atomID, id string, p upload.PartPin) (string, error) {
	if err := s.call("PinPart"); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pins == nil {
		s.pins = map[string]*fakePin{}
	}
	key := fmt.Sprintf("%s#%d", storeKey(atomID, id), p.Part)
	old := s.pins[key]
	switch {
	case old == nil:
		s.pins[key] = &fakePin{pin: p}
		return upload.PinNew, nil
	case old.pin.ETag == p.ETag:
		return upload.PinSame, nil
	case old.readBy != "":
		return "", &upload.PartChangedError{Part: p.Part, ReadBy: old.readBy}
	case s.records[storeKey(atomID, id)] != nil && p.Part < s.records[storeKey(atomID, id)].u.YouTubeReadParts:
		return "", &upload.PartChangedError{Part: p.Part, ReadBy: upload.ReaderYouTube}
	}
	old.pin = p
	return upload.PinRenewed, nil
}

// Pins returns the pins of parts [from, to), as store.Store.Pins.
func (s *fakeStore) Pins(_ context.Context, atomID, id string, from, to int) (map[int]upload.PartPin, error) {
	if err := s.call("Pins"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pins := map[int]upload.PartPin{}
	for n := from; n < to; n++ {
		if p := s.pins[fmt.Sprintf("%s#%d", storeKey(atomID, id), n)]; p != nil {
			pin := p.pin
			if p.readBy != "" {
				pin.Read, pin.ReadBy = true, p.readBy
			}
			pins[n] = pin
		}
	}
	return pins, nil
}

// ClaimPart marks a part read by reader and returns its pin, as
// store.Store.ClaimPart; a part never pinned is ENOTFOUND.
func (s *fakeStore) ClaimPart(_ context.Context, atomID, id string, n int, reader string) (upload.PartPin, error) {
	if err := s.call("ClaimPart"); err != nil {
		return upload.PartPin{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pins[fmt.Sprintf("%s#%d", storeKey(atomID, id), n)]
	if p == nil {
		return upload.PartPin{}, upload.Errorf(upload.ENOTFOUND, "part %d of %s was never pinned", n, id)
	}
	if p.readBy == "" {
		p.readBy = reader
	}
	pin := p.pin
	pin.Read, pin.ReadBy = true, p.readBy
	return pin, nil
}

// Quiet calls fn with the ids of the records that are not terminal and
// have not changed since before, oldest change first, until fn fails, as
// store.Store.Quiet. fn runs without the store's lock.
func (s *fakeStore) Quiet(ctx context.Context, before time.Time, fn func(atomID, id string) error) error {
	if err := s.call("Quiet"); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("query quiet uploads: %w", err)
	}
	type quiet struct {
		atomID, id string
		at         time.Time
	}
	s.mu.Lock()
	var qs []quiet
	for _, it := range s.records {
		if (!it.u.Status.Terminal() || s.laggingIndex) && it.progressAt.UnixMilli() < before.UnixMilli() {
			qs = append(qs, quiet{it.u.AtomID, it.u.ID, it.progressAt})
		}
	}
	if s.laggingIndex {
		for _, g := range s.ghosts {
			qs = append(qs, quiet{g[0], g[1], time.Time{}})
		}
	}
	s.mu.Unlock()
	slices.SortFunc(qs, func(a, b quiet) int { return a.at.Compare(b.at) })
	for _, q := range qs {
		if err := fn(q.atomID, q.id); err != nil {
			return err
		}
	}
	return nil
}

// DueForCleanup calls fn with the ids of the records in the clean-up index
// that ended before before, longest ended first, until fn fails, as
// store.Store.DueForCleanup (with laggingIndex, the ghosts too). fn runs
// without the store's lock.
func (s *fakeStore) DueForCleanup(ctx context.Context, before time.Time, fn func(atomID, id string) error) error {
	if err := s.call("DueForCleanup"); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("query uploads due for clean-up: %w", err)
	}
	type due struct {
		atomID, id string
		at         time.Time
	}
	s.mu.Lock()
	var ds []due
	for _, it := range s.records {
		if !it.cleanupAt.IsZero() && it.cleanupAt.UnixMilli() < before.UnixMilli() {
			ds = append(ds, due{it.u.AtomID, it.u.ID, it.cleanupAt})
		}
	}
	if s.laggingIndex {
		for _, g := range s.ghosts {
			ds = append(ds, due{g[0], g[1], time.Time{}})
		}
	}
	s.mu.Unlock()
	slices.SortFunc(ds, func(a, b due) int { return a.at.Compare(b.at) })
	for _, d := range ds {
		if err := fn(d.atomID, d.id); err != nil {
			return err
		}
	}
	return nil
}

// CleanedUp takes the record out of the clean-up index, as
// store.Store.CleanedUp.
func (s *fakeStore) CleanedUp(ctx context.Context, atomID, id string) error {
	if err := s.call("CleanedUp"); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("record the clean-up of upload %s: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if it := s.records[storeKey(atomID, id)]; it != nil {
		it.cleanupAt = time.Time{}
	}
	return nil
}

// AcquireSweep takes a sweep's lease, as store.Store.AcquireSweep: free,
// expired, or one's own.
func (s *fakeStore) AcquireSweep(ctx context.Context, l upload.Lease) error {
	if err := s.call("AcquireSweep"); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("acquire the %s sweep lease: %w", l.UploadID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	if prev := s.sweeps[l.UploadID]; prev != nil && prev.Expiry >= now.UnixMilli() && prev.Owner != l.Owner {
		return upload.ErrLeaseHeld
	}
	s.sweeps[l.UploadID] = &fakeLease{Owner: l.Owner, Expiry: now.Add(l.TTL).UnixMilli()}
	return nil
}

// sweepLease returns a sweep's lease; ok is false when nobody holds it.
func (s *fakeStore) sweepLease(name string) (l fakeLease, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ls := s.sweeps[name]; ls != nil {
		return *ls, true
	}
	return fakeLease{}, false
}

// setSweepLease writes a sweep's lease, as another instance would have.
func (s *fakeStore) setSweepLease(name, owner string, expiry time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweeps[name] = &fakeLease{Owner: owner, Expiry: expiry.UnixMilli()}
}

// cloneUpload deep-copies a record: nothing of the copy is shared.
func cloneUpload(u *upload.Upload) *upload.Upload {
	c := *u
	c.Completed = maps.Clone(u.Completed)
	if c.Completed == nil {
		c.Completed = map[int]bool{}
	}
	c.Leases = maps.Clone(u.Leases)
	c.Destinations = make([]upload.Destination, len(u.Destinations))
	for i, d := range u.Destinations {
		if d.Meta != nil {
			m := *d.Meta
			m.Tags = slices.Clone(m.Tags)
			d.Meta = &m
		}
		d.Outputs = slices.Clone(d.Outputs)
		c.Destinations[i] = d
	}
	return &c
}

// stored is a copy of u as the table keeps it: times in UTC, without a
// monotonic reading.
func stored(u *upload.Upload) *upload.Upload {
	c := cloneUpload(u)
	c.Leases = nil // the leases are attributes of their own (fakeItem.leases)
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	c.LastPartAt, c.RetriedAt = c.LastPartAt.UTC(), c.RetriedAt.UTC()
	for i := range c.Destinations {
		c.Destinations[i].PolledAt = c.Destinations[i].PolledAt.UTC()
		c.Destinations[i].RetryAt = c.Destinations[i].RetryAt.UTC()
	}
	return c
}

// ---------------------------------------------------------------------------
// S3.

// fakeS3 implements worker.S3API over objects in memory: HeadObject,
// ranged GetObject, and multipart copy that joins the parts.
type fakeS3 struct {
	faults

	mu         sync.Mutex
	objects    map[string][]byte // bucket/key
	mpus       map[string]*fakeMPU
	nextMPU    int
	openBodies int // GetObject bodies not closed yet
	copying    int // UploadPartCopy calls in flight
	maxCopying int
	listPage   int      // parts in a page of ListParts, keys in one of ListObjectsV2 (S3's 1000 unless set)
	deleted    []string // keys DeleteObjects deleted, in order
}

type fakeMPU struct {
	bucket, key string
	parts       map[int32]fakeMPUPart
}

type fakeMPUPart struct {
	etag string
	data []byte
}

var _ worker.S3API = (*fakeS3)(nil)

func newFakeS3() *fakeS3 {
	return &fakeS3{objects: map[string][]byte{}, mpus: map[string]*fakeMPU{}}
}

func s3Error(op string, err error) error {
	return &smithy.OperationError{ServiceID: "S3", OperationName: op, Err: err}
}

// apiError is an AWS service's refusal as the SDK reports it (the fakes of
// S3 wrap it in the operation's error, as the SDK does); its message is
// the service's own text, which no record may show.
func apiError(code string) error {
	return &smithy.GenericAPIError{Code: code, Message: code + ": the service's own words, request id 4F2A", Fault: smithy.FaultClient}
}

// dynamoError is a refusal of the progress table as package store passes
// it on: the SDK's error of the DynamoDB operation.
func dynamoError(code string) error {
	return &smithy.OperationError{ServiceID: "DynamoDB", OperationName: "UpdateItem", Err: apiError(code)}
}

// storeBusy is the error package store returns when the table throttles:
// a domain error joined to the SDK's.
func storeBusy() error {
	return errors.Join(upload.Errorf(upload.EUNAVAILABLE, "the progress table is busy; try again"), dynamoError("ProvisionedThroughputExceededException"))
}

// sqsError is a refusal of the queue as the SDK reports it.
func sqsError(code string) error {
	return &smithy.OperationError{ServiceID: "SQS", OperationName: "SendMessage", Err: apiError(code)}
}

// put stores an object; the fake keeps data as it is given (tests never
// change a file once made).
func (s *fakeS3) put(bucket, key string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects[bucket+"/"+key] = data
}

func (s *fakeS3) object(bucket, key string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objects[bucket+"/"+key]
	return b, ok
}

// state is what a test checks at the end: multipart uploads left behind,
// bodies left open, and the most UploadPartCopy calls seen at once.
func (s *fakeS3) state() (mpus, openBodies, maxCopying int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mpus), s.openBodies, s.maxCopying
}

func (s *fakeS3) HeadObject(ctx context.Context, in *s3.HeadObjectInput, _ ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	if err := s.call("HeadObject"); err != nil {
		return nil, s3Error("HeadObject", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, s3Error("HeadObject", err)
	}
	b, ok := s.object(aws.ToString(in.Bucket), aws.ToString(in.Key))
	if !ok {
		return nil, s3Error("HeadObject", &s3types.NotFound{Message: aws.String("Not Found")})
	}
	return &s3.HeadObjectOutput{ContentLength: aws.Int64(int64(len(b))), ETag: aws.String(fakeETag(b))}, nil
}

// fakeETag is a single PUT's ETag, as S3 makes it: the content's MD5.
func fakeETag(b []byte) string {
	sum := md5.Sum(b)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

// preconditionFailed is S3's answer to an If-Match that does not hold.
func preconditionFailed(op string) error {
	return s3Error(op, &smithy.GenericAPIError{Code: "PreconditionFailed", Message: "At least one of the pre-conditions you specified did not hold"})
}

func (s *fakeS3) GetObject(ctx context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if err := s.call("GetObject"); err != nil {
		return nil, s3Error("GetObject", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, s3Error("GetObject", err)
	}
	b, ok := s.object(aws.ToString(in.Bucket), aws.ToString(in.Key))
	if !ok {
		return nil, s3Error("GetObject", &s3types.NoSuchKey{Message: aws.String("The specified key does not exist.")})
	}
	if m := aws.ToString(in.IfMatch); m != "" && m != fakeETag(b) {
		return nil, preconditionFailed("GetObject")
	}
	if r := aws.ToString(in.Range); r != "" {
		first, last, err := parseByteRange(r)
		if err != nil || first >= int64(len(b)) {
			return nil, s3Error("GetObject", &smithy.GenericAPIError{Code: "InvalidRange", Message: fmt.Sprintf("range %q of %d bytes", r, len(b))})
		}
		b = b[first:min(last+1, int64(len(b)))]
	}
	s.mu.Lock()
	s.openBodies++
	s.mu.Unlock()
	return &s3.GetObjectOutput{Body: &fakeBody{r: bytes.NewReader(b), s: s}, ContentLength: aws.Int64(int64(len(b)))}, nil
}

// parseByteRange parses "bytes=a-b".
func parseByteRange(r string) (first, last int64, err error) {
	a, b, ok := strings.Cut(strings.TrimPrefix(r, "bytes="), "-")
	if !ok || !strings.HasPrefix(r, "bytes=") {
		return 0, 0, fmt.Errorf("range %q", r)
	}
	if first, err = strconv.ParseInt(a, 10, 64); err != nil {
		return 0, 0, err
	}
	if last, err = strconv.ParseInt(b, 10, 64); err != nil || last < first {
		return 0, 0, fmt.Errorf("range %q", r)
	}
	return first, last, nil
}

type fakeBody struct {
	r      *bytes.Reader
	s      *fakeS3
	mu     sync.Mutex
	closed bool
}

func (b *fakeBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errors.New("read on a closed body")
	}
	return b.r.Read(p)
}

func (b *fakeBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		b.s.mu.Lock()
		b.s.openBodies--
		b.s.mu.Unlock()
	}
	return nil
}

func (s *fakeS3) CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	if err := s.call("CreateMultipartUpload"); err != nil {
		return nil, s3Error("CreateMultipartUpload", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, s3Error("CreateMultipartUpload", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextMPU++
	id := fmt.Sprintf("mpu-%d", s.nextMPU)
	s.mpus[id] = &fakeMPU{bucket: aws.ToString(in.Bucket), key: aws.ToString(in.Key), parts: map[int32]fakeMPUPart{}}
	return &s3.CreateMultipartUploadOutput{UploadId: aws.String(id), Bucket: in.Bucket, Key: in.Key}, nil
}

func (s *fakeS3) UploadPartCopy(ctx context.Context, in *s3.UploadPartCopyInput, _ ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error) {
	s.mu.Lock()
	s.copying++
	s.maxCopying = max(s.maxCopying, s.copying)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.copying--
		s.mu.Unlock()
	}()
	if err := s.call("UploadPartCopy"); err != nil {
		return nil, s3Error("UploadPartCopy", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, s3Error("UploadPartCopy", err)
	}
	// x-amz-copy-source is "bucket/key", URL-encoded.
	src := aws.ToString(in.CopySource)
	eb, ek, ok := strings.Cut(src, "/")
	bucket, err1 := url.PathUnescape(eb)
	key, err2 := url.PathUnescape(ek)
	if !ok || err1 != nil || err2 != nil {
		return nil, s3Error("UploadPartCopy", &smithy.GenericAPIError{Code: "InvalidArgument", Message: "bad copy source " + src})
	}
	n := aws.ToInt32(in.PartNumber)
	if n < 1 || n > 10000 {
		return nil, s3Error("UploadPartCopy", &smithy.GenericAPIError{Code: "InvalidArgument", Message: "part number out of range"})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	data, ok := s.objects[bucket+"/"+key]
	if !ok {
		return nil, s3Error("UploadPartCopy", &s3types.NoSuchKey{Message: aws.String("no copy source " + src)})
	}
	if m := aws.ToString(in.CopySourceIfMatch); m != "" && m != fakeETag(data) {
		return nil, preconditionFailed("UploadPartCopy")
	}
	m := s.mpus[aws.ToString(in.UploadId)]
	if m == nil || m.bucket != aws.ToString(in.Bucket) || m.key != aws.ToString(in.Key) {
		return nil, s3Error("UploadPartCopy", &s3types.NoSuchUpload{Message: aws.String("no such upload")})
	}
	etag := fmt.Sprintf("%q", fmt.Sprintf("%s-%d-%d", aws.ToString(in.UploadId), n, len(data)))
	m.parts[n] = fakeMPUPart{etag: etag, data: data}
	return &s3.UploadPartCopyOutput{CopyPartResult: &s3types.CopyPartResult{ETag: aws.String(etag)}}, nil
}

func (s *fakeS3) CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	if err := s.call("CompleteMultipartUpload"); err != nil {
		return nil, s3Error("CompleteMultipartUpload", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, s3Error("CompleteMultipartUpload", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.mpus[aws.ToString(in.UploadId)]
	if m == nil || m.bucket != aws.ToString(in.Bucket) || m.key != aws.ToString(in.Key) {
		return nil, s3Error("CompleteMultipartUpload", &s3types.NoSuchUpload{Message: aws.String("no such upload")})
	}
	invalid := func(format string, args ...any) error {
		return s3Error("CompleteMultipartUpload", &smithy.GenericAPIError{Code: "InvalidPart", Message: fmt.Sprintf(format, args...)})
	}
	if in.MultipartUpload == nil || len(in.MultipartUpload.Parts) == 0 {
		return nil, invalid("no parts")
	}
	size := 0
	for _, p := range in.MultipartUpload.Parts {
		size += len(m.parts[aws.ToInt32(p.PartNumber)].data)
	}
	full := make([]byte, 0, size)
	prev := int32(0)
	for i, p := range in.MultipartUpload.Parts {
		n := aws.ToInt32(p.PartNumber)
		got, ok := m.parts[n]
		switch {
		case n <= prev:
			return nil, s3Error("CompleteMultipartUpload", &smithy.GenericAPIError{Code: "InvalidPartOrder", Message: "parts not in ascending order"})
		case !ok || got.etag != aws.ToString(p.ETag):
			return nil, invalid("part %d: no such part or a different ETag", n)
		case i < len(in.MultipartUpload.Parts)-1 && int64(len(got.data)) < upload.MinPartSize:
			return nil, s3Error("CompleteMultipartUpload", &smithy.GenericAPIError{Code: "EntityTooSmall", Message: fmt.Sprintf("part %d is %d bytes", n, len(got.data))})
		}
		prev = n
		full = append(full, got.data...)
	}
	s.objects[m.bucket+"/"+m.key] = full
	delete(s.mpus, aws.ToString(in.UploadId))
	return &s3.CompleteMultipartUploadOutput{Bucket: in.Bucket, Key: in.Key, ETag: aws.String(fakeETag(full))}, nil
}

// ListParts lists the parts of a multipart upload, a page at a time from
// after PartNumberMarker, in part order.
func (s *fakeS3) ListParts(ctx context.Context, in *s3.ListPartsInput, _ ...func(*s3.Options)) (*s3.ListPartsOutput, error) {
	if err := s.call("ListParts"); err != nil {
		return nil, s3Error("ListParts", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, s3Error("ListParts", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.mpus[aws.ToString(in.UploadId)]
	if m == nil || m.bucket != aws.ToString(in.Bucket) || m.key != aws.ToString(in.Key) {
		return nil, s3Error("ListParts", &s3types.NoSuchUpload{Message: aws.String("no such upload")})
	}
	from := int32(0)
	if mk := aws.ToString(in.PartNumberMarker); mk != "" {
		n, err := strconv.Atoi(mk)
		if err != nil {
			return nil, s3Error("ListParts", &smithy.GenericAPIError{Code: "InvalidArgument", Message: "bad part number marker " + mk})
		}
		from = int32(n)
	}
	page := s.listPage
	if page <= 0 {
		page = 1000
	}
	numbers := slices.Sorted(maps.Keys(m.parts))
	out := &s3.ListPartsOutput{Bucket: in.Bucket, Key: in.Key, UploadId: in.UploadId, IsTruncated: aws.Bool(false)}
	for _, n := range numbers {
		if n <= from {
			continue
		}
		if len(out.Parts) == page {
			out.IsTruncated = aws.Bool(true)
			out.NextPartNumberMarker = aws.String(strconv.Itoa(int(aws.ToInt32(out.Parts[len(out.Parts)-1].PartNumber))))
			break
		}
		p := m.parts[n]
		out.Parts = append(out.Parts, s3types.Part{PartNumber: aws.Int32(n), ETag: aws.String(p.etag), Size: aws.Int64(int64(len(p.data)))})
	}
	return out, nil
}

// mpuParts returns the part numbers copied into each multipart upload in
// progress.
func (s *fakeS3) mpuParts() map[string][]int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]int32{}
	for id, m := range s.mpus {
		out[id] = slices.Sorted(maps.Keys(m.parts))
	}
	return out
}

func (s *fakeS3) AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, _ ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	if err := s.call("AbortMultipartUpload"); err != nil {
		return nil, s3Error("AbortMultipartUpload", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, s3Error("AbortMultipartUpload", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mpus[aws.ToString(in.UploadId)] == nil {
		return nil, s3Error("AbortMultipartUpload", &s3types.NoSuchUpload{Message: aws.String("no such upload")})
	}
	delete(s.mpus, aws.ToString(in.UploadId))
	return &s3.AbortMultipartUploadOutput{}, nil
}

var _ worker.SweepS3 = (*fakeS3)(nil)

// ListObjectsV2 lists the bucket's keys under a prefix in key order, a
// page (of listPage keys, S3's 1000 unless set) after the continuation
// token, which is the last key of the page before.
func (s *fakeS3) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	if err := s.call("ListObjectsV2"); err != nil {
		return nil, s3Error("ListObjectsV2", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, s3Error("ListObjectsV2", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	page := s.listPage
	if page <= 0 {
		page = 1000
	}
	bucket, prefix, after := aws.ToString(in.Bucket)+"/", aws.ToString(in.Prefix), aws.ToString(in.ContinuationToken)
	var keys []string
	for k := range s.objects {
		if key, ok := strings.CutPrefix(k, bucket); ok && strings.HasPrefix(key, prefix) && key > after {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	out := &s3.ListObjectsV2Output{IsTruncated: aws.Bool(false)}
	if len(keys) > page {
		keys = keys[:page]
		out.IsTruncated, out.NextContinuationToken = aws.Bool(true), aws.String(keys[page-1])
	}
	for _, k := range keys {
		out.Contents = append(out.Contents, s3types.Object{Key: aws.String(k), Size: aws.Int64(int64(len(s.objects[bucket+k])))})
	}
	out.KeyCount = aws.Int32(int32(len(out.Contents)))
	return out, nil
}

// DeleteObjects deletes the keys given (a key that is not there is
// deleted too, as S3 says).
func (s *fakeS3) DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, _ ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error) {
	if err := s.call("DeleteObjects"); err != nil {
		return nil, s3Error("DeleteObjects", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, s3Error("DeleteObjects", err)
	}
	if in.Delete == nil || len(in.Delete.Objects) == 0 || len(in.Delete.Objects) > 1000 {
		return nil, s3Error("DeleteObjects", &smithy.GenericAPIError{Code: "MalformedXML", Message: "1 to 1000 keys"})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := &s3.DeleteObjectsOutput{}
	for _, o := range in.Delete.Objects {
		delete(s.objects, aws.ToString(in.Bucket)+"/"+aws.ToString(o.Key))
		s.deleted = append(s.deleted, aws.ToString(o.Key))
		if !aws.ToBool(in.Delete.Quiet) {
			out.Deleted = append(out.Deleted, s3types.DeletedObject{Key: o.Key})
		}
	}
	return out, nil
}

// ListMultipartUploads lists the multipart uploads in progress whose keys
// start with the prefix, in one page.
func (s *fakeS3) ListMultipartUploads(ctx context.Context, in *s3.ListMultipartUploadsInput, _ ...func(*s3.Options)) (*s3.ListMultipartUploadsOutput, error) {
	if err := s.call("ListMultipartUploads"); err != nil {
		return nil, s3Error("ListMultipartUploads", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, s3Error("ListMultipartUploads", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := &s3.ListMultipartUploadsOutput{IsTruncated: aws.Bool(false)}
	for _, id := range slices.Sorted(maps.Keys(s.mpus)) {
		m := s.mpus[id]
		if m.bucket == aws.ToString(in.Bucket) && strings.HasPrefix(m.key, aws.ToString(in.Prefix)) {
			out.Uploads = append(out.Uploads, s3types.MultipartUpload{Key: aws.String(m.key), UploadId: aws.String(id)})
		}
	}
	return out, nil
}

// deletedKeys returns the keys DeleteObjects deleted, in order.
func (s *fakeS3) deletedKeys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deleted)
}

// ---------------------------------------------------------------------------
// Sender: the service's own follow-up messages.

// fakeSender records the messages the worker sends itself.
type fakeSender struct {
	faults
	mu   sync.Mutex
	msgs []sentMessage
}

// sentMessage is one message sent, with its own-task body decoded.
type sentMessage struct {
	QueueURL string
	Body     string
	Delay    time.Duration
	Kind     worker.Kind
	AtomID   string
	UploadID string
	Part     int // of a part task
	Failures int
	Mark     int64
	Marked   bool // the body carries a mark
	Cause    string
	GaveUp   bool // the service's own dead letter of work it gave up
}

// decodeSent decodes a message sent to a queue.
func decodeSent(queueURL, body string, delay time.Duration) sentMessage {
	m := sentMessage{QueueURL: queueURL, Body: body, Delay: delay}
	var own struct {
		AtomUploads *struct {
			Kind     worker.Kind `json:"kind"`
			AtomID   string      `json:"atomId"`
			UploadID string      `json:"uploadId"`
			Part     *int        `json:"part"`
			Failures int         `json:"failures"`
			Mark     *int64      `json:"mark"`
			Cause    string      `json:"cause"`
			GaveUp   bool        `json:"gaveUp"`
		} `json:"atomUploads"`
	}
	if err := json.Unmarshal([]byte(body), &own); err == nil && own.AtomUploads != nil {
		a := own.AtomUploads
		m.Kind, m.AtomID, m.UploadID, m.Failures, m.Cause, m.GaveUp = a.Kind, a.AtomID, a.UploadID, a.Failures, a.Cause, a.GaveUp
		if a.Part != nil {
			m.Part = *a.Part
		}
		if a.Mark != nil {
			m.Mark, m.Marked = *a.Mark, true
		}
	}
	return m
}

var _ worker.Sender = (*fakeSender)(nil)

func (q *fakeSender) SendMessage(ctx context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	if err := q.call("SendMessage"); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m := decodeSent(aws.ToString(in.QueueUrl), aws.ToString(in.MessageBody), time.Duration(in.DelaySeconds)*time.Second)
	q.mu.Lock()
	defer q.mu.Unlock()
	q.msgs = append(q.msgs, m)
	return &sqs.SendMessageOutput{MessageId: aws.String(fmt.Sprintf("sent-%d", len(q.msgs)))}, nil
}

// sent returns the messages sent so far.
func (q *fakeSender) sent() []sentMessage {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.msgs)
}

// ofKind returns the messages of one kind sent so far.
func (q *fakeSender) ofKind(k worker.Kind) []sentMessage {
	var out []sentMessage
	for _, m := range q.sent() {
		if m.Kind == k {
			out = append(out, m)
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// YouTube.

// fakeYouTube implements worker.YouTube with the resumable rules: a chunk
// starts at the committed offset, is a multiple of 256 KiB unless it ends
// the file, and only one chunk of a session is received at a time. A
// request that breaks a rule is recorded as a violation and refused (400),
// as youtubetest does.
type fakeYouTube struct {
	faults

	mu         sync.Mutex
	sessions   map[string]*fakeSession
	order      []string
	videos     map[string]*fakeSession
	violations []string
	processing []fakeProcessing

	// beforeCommit runs after a chunk's bytes were read, before they are
	// committed; an error refuses the chunk (nothing committed).
	beforeCommit func(ctx context.Context, start, n int64) error
	// afterCommit runs after a chunk was committed; an error is returned
	// as if the answer was lost on the way back.
	afterCommit func(ctx context.Context, start, n int64) error
}

type fakeSession struct {
	ID        string
	Meta      upload.YouTubeMetadata
	Size      int64
	Committed int64
	Chunks    []fakeChunk
	VideoID   string
	Gone      bool // expired on YouTube's side
	Cancelled bool
	busy      bool
}

// fakeChunk is a chunk committed: where, how long, and the SHA-256 of its
// bytes (the fake keeps no bytes, so that memory stays small).
type fakeChunk struct {
	Start, Len int64
	Sum        [sha256.Size]byte
}

// fakeProcessing is one scripted answer of Processing.
type fakeProcessing struct {
	p   upload.YouTubeProcessing
	err error
}

var _ worker.YouTube = (*fakeYouTube)(nil)

func newFakeYouTube() *fakeYouTube {
	return &fakeYouTube{sessions: map[string]*fakeSession{}, videos: map[string]*fakeSession{}}
}

// refused is YouTube's 400 for a request that breaks the protocol.
func (y *fakeYouTube) refused(format string, args ...any) error {
	problem := fmt.Sprintf(format, args...)
	y.violations = append(y.violations, problem)
	return &youtube.Error{Status: 400, Reason: "badRequest", Message: "YouTube answered 400 badRequest: " + problem}
}

// temporaryYouTubeError is a 503 that retrying may cure.
func temporaryYouTubeError() error {
	return &youtube.Error{Status: 503, Reason: "backendError", Message: "YouTube answered 503 backendError: try again", Temporary: true}
}

// refusedError is YouTube's refusal of an upload for good.
func refusedError() error {
	return &youtube.Error{Status: 403, Reason: "somethingElse", Message: "YouTube answered 403 somethingElse: no"}
}

// quotaError is YouTube's refusal of an upload over quota.
func quotaError() error {
	return &youtube.Error{Status: 403, Reason: "quotaExceeded", Message: "YouTube answered 403 quotaExceeded: The request cannot be completed because you have exceeded your quota."}
}

func (y *fakeYouTube) StartSession(ctx context.Context, meta upload.YouTubeMetadata, size int64, _ string) (string, error) {
	if err := y.call("StartSession"); err != nil {
		return "", fmt.Errorf("start session: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if size <= 0 {
		return "", upload.Errorf(upload.EINVALID, "start session: size must be positive, got %d", size)
	}
	y.mu.Lock()
	defer y.mu.Unlock()
	s := &fakeSession{ID: fmt.Sprintf("session-%d", len(y.order)+1), Meta: meta, Size: size}
	s.Meta.Tags = slices.Clone(meta.Tags)
	y.sessions[s.ID] = s
	y.order = append(y.order, s.ID)
	return s.ID, nil
}

func (y *fakeYouTube) PutChunk(ctx context.Context, session string, body io.Reader, start, n, total int64) (youtube.Progress, error) {
	op := fmt.Sprintf("PUT chunk bytes %d-%d/%d", start, start+n-1, total)
	if err := y.call("PutChunk"); err != nil {
		return youtube.Progress{}, fmt.Errorf("%s: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return youtube.Progress{}, fmt.Errorf("%s: %w", op, err)
	}
	if start < 0 || n <= 0 || start+n > total {
		return youtube.Progress{}, upload.Errorf(upload.EINVALID, "%s: the range is not within the file", op)
	}
	y.mu.Lock()
	s := y.sessions[session]
	var err error
	switch {
	case s == nil || s.Gone || s.Cancelled:
		err = youtube.ErrSessionGone
	case total != s.Size:
		err = y.refused("session %s: total %d differs from the declared length %d", s.ID, total, s.Size)
	case s.VideoID != "":
		err = y.refused("session %s: the upload is already complete", s.ID)
	case s.busy:
		err = y.refused("session %s: another chunk is still being received (more than one writer)", s.ID)
	case start != s.Committed:
		err = y.refused("session %s: the chunk starts at byte %d but %d bytes are committed", s.ID, start, s.Committed)
	case start+n != total && n%upload.ChunkAlign != 0:
		err = y.refused("session %s: a chunk that does not end the file must be a multiple of 256 KiB, got %d bytes", s.ID, n)
	}
	if err != nil {
		y.mu.Unlock()
		return youtube.Progress{}, fmt.Errorf("%s: %w", op, err)
	}
	s.busy = true
	before, after := y.beforeCommit, y.afterCommit
	y.mu.Unlock()
	defer func() {
		y.mu.Lock()
		s.busy = false
		y.mu.Unlock()
	}()

	h := sha256.New()
	if _, err := io.CopyN(h, body, n); err != nil {
		return youtube.Progress{}, fmt.Errorf("%s: read the chunk: %w", op, err)
	}
	if before != nil {
		if err := before(ctx, start, n); err != nil {
			return youtube.Progress{}, fmt.Errorf("%s: %w", op, err)
		}
	}
	y.mu.Lock()
	s.Committed += n
	s.Chunks = append(s.Chunks, fakeChunk{Start: start, Len: n, Sum: [sha256.Size]byte(h.Sum(nil))})
	p := youtube.Progress{Committed: s.Committed}
	if s.Committed == s.Size {
		s.VideoID = fmt.Sprintf("vid%s", strings.TrimPrefix(s.ID, "session-"))
		y.videos[s.VideoID] = s
		p.Done, p.VideoID = true, s.VideoID
	}
	y.mu.Unlock()
	if after != nil {
		if err := after(ctx, start, n); err != nil {
			return youtube.Progress{}, fmt.Errorf("%s: %w", op, err)
		}
	}
	return p, nil
}

func (y *fakeYouTube) Offset(ctx context.Context, session string, total int64) (youtube.Progress, error) {
	op := fmt.Sprintf("query offset bytes */%d", total)
	if err := y.call("Offset"); err != nil {
		return youtube.Progress{}, fmt.Errorf("%s: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return youtube.Progress{}, fmt.Errorf("%s: %w", op, err)
	}
	y.mu.Lock()
	defer y.mu.Unlock()
	s := y.sessions[session]
	switch {
	case s == nil || s.Gone || s.Cancelled:
		return youtube.Progress{}, fmt.Errorf("%s: %w", op, youtube.ErrSessionGone)
	case total != s.Size:
		return youtube.Progress{}, fmt.Errorf("%s: %w", op, y.refused("session %s: total %d differs from the declared length %d", s.ID, total, s.Size))
	case s.VideoID != "":
		return youtube.Progress{Committed: s.Size, Done: true, VideoID: s.VideoID}, nil
	}
	return youtube.Progress{Committed: s.Committed}, nil
}

func (y *fakeYouTube) Processing(ctx context.Context, _ string) (upload.YouTubeProcessing, error) {
	if err := y.call("Processing"); err != nil {
		return upload.YouTubeProcessing{}, err
	}
	if err := ctx.Err(); err != nil {
		return upload.YouTubeProcessing{}, err
	}
	y.mu.Lock()
	defer y.mu.Unlock()
	if len(y.processing) == 0 {
		return upload.YouTubeProcessing{UploadStatus: "uploaded", ProcessingStatus: "processing"}, nil
	}
	a := y.processing[0]
	if len(y.processing) > 1 {
		y.processing = y.processing[1:]
	}
	return a.p, a.err
}

// script sets the answers of Processing, in order; the last one repeats.
func (y *fakeYouTube) script(answers ...fakeProcessing) {
	y.mu.Lock()
	defer y.mu.Unlock()
	y.processing = answers
}

func (y *fakeYouTube) Cancel(_ context.Context, session string) error {
	if err := y.call("Cancel"); err != nil {
		return err
	}
	y.mu.Lock()
	defer y.mu.Unlock()
	if s := y.sessions[session]; s != nil {
		s.Cancelled = true
	}
	return nil
}

// expire makes YouTube forget every session, as it does after a week.
func (y *fakeYouTube) expire() {
	y.mu.Lock()
	defer y.mu.Unlock()
	for _, s := range y.sessions {
		s.Gone = true
	}
}

// allSessions returns copies of the sessions, in the order they started.
func (y *fakeYouTube) allSessions() []fakeSession {
	y.mu.Lock()
	defer y.mu.Unlock()
	out := make([]fakeSession, 0, len(y.order))
	for _, id := range y.order {
		s := *y.sessions[id]
		s.Chunks = slices.Clone(s.Chunks)
		out = append(out, s)
	}
	return out
}

func (y *fakeYouTube) protocolViolations() []string {
	y.mu.Lock()
	defer y.mu.Unlock()
	return slices.Clone(y.violations)
}

// ---------------------------------------------------------------------------
// Transcoder and atom API.

// fakeTranscoder implements worker.Transcoder: Start is idempotent by the
// spec's token; Job answers from a script.
type fakeTranscoder struct {
	faults

	mu      sync.Mutex
	specs   []transcode.Spec // jobs started, in order
	byToken map[string]string
	answers []fakeJob
}

// fakeJob is one scripted answer of Job (its ID is the job asked for).
type fakeJob struct {
	job transcode.Job
	err error
}

var _ worker.Transcoder = (*fakeTranscoder)(nil)

func (c *fakeTranscoder) Start(ctx context.Context, spec transcode.Spec) (string, error) {
	if err := c.call("Start"); err != nil {
		return "", err
	}
	if err := spec.Validate(); err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if id, ok := c.byToken[spec.Token]; ok {
		return id, nil
	}
	if c.byToken == nil {
		c.byToken = map[string]string{}
	}
	c.specs = append(c.specs, spec)
	id := fmt.Sprintf("job-%d", len(c.specs))
	c.byToken[spec.Token] = id
	return id, nil
}

func (c *fakeTranscoder) Job(ctx context.Context, jobID string) (transcode.Job, error) {
	if err := c.call("Job"); err != nil {
		return transcode.Job{}, err
	}
	if err := ctx.Err(); err != nil {
		return transcode.Job{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Contains(slices.Collect(maps.Values(c.byToken)), jobID) {
		return transcode.Job{}, upload.Errorf(upload.ENOTFOUND, "no transcode job %s", jobID)
	}
	if len(c.answers) == 0 {
		return transcode.Job{ID: jobID, State: transcode.StateProgressing, Percent: 50}, nil
	}
	a := c.answers[0]
	c.answers = c.answers[1:]
	a.job.ID = jobID
	return a.job, a.err
}

// script queues the answers of Job; once they are used up, jobs are
// progressing at 50%.
func (c *fakeTranscoder) script(answers ...fakeJob) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.answers = append(c.answers, answers...)
}

func (c *fakeTranscoder) started() []transcode.Spec {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.specs)
}

// fakeAtom implements worker.AtomAPI: an atom's assets, added once each.
type fakeAtom struct {
	faults

	mu       sync.Mutex
	assets   map[string][]string
	inFlight int
	most     int // AddAsset calls at once, at most
}

var _ worker.AtomAPI = (*fakeAtom)(nil)

func (a *fakeAtom) AddAsset(ctx context.Context, atomID, videoURL string) (bool, error) {
	a.mu.Lock()
	a.inFlight++
	a.most = max(a.most, a.inFlight)
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.inFlight--
		a.mu.Unlock()
	}()
	if err := a.call("AddAsset"); err != nil {
		return false, fmt.Errorf("add asset to atom %s: %w", atomID, err)
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if slices.Contains(a.assets[atomID], videoURL) {
		return false, nil
	}
	if a.assets == nil {
		a.assets = map[string][]string{}
	}
	a.assets[atomID] = append(a.assets[atomID], videoURL)
	return true, nil
}

func (a *fakeAtom) assetsOf(atomID string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.assets[atomID])
}

// ---------------------------------------------------------------------------
// The harness: a Dispatcher over the fakes.

const (
	unitBucket   = "unit-uploads"
	unitQueueURL = "https://sqs.eu-west-1.amazonaws.com/000000000000/unit-uploads"
	unitDLQURL   = "https://sqs.eu-west-1.amazonaws.com/000000000000/unit-uploads-dlq"
	unitAtom     = "atom-unit-1"
)

// unitEnv is one test's fakes and the Dispatcher over them.
type unitEnv struct {
	t     testing.TB
	cfg   worker.Config
	store *fakeStore
	s3    *fakeS3
	queue *fakeSender
	yt    *fakeYouTube
	tc    *fakeTranscoder
	atom  *fakeAtom
	log   *zap.Logger
	logs  *observer.ObservedLogs
	d     *worker.Dispatcher
}

// unitOpts changes a unitEnv: its configuration, and which optional
// dependencies it runs without.
type unitOpts struct {
	cfg          func(*worker.Config)
	noYouTube    bool
	noTranscoder bool
	noAtom       bool
}

// unitConfig is the steps' configuration of the unit tests: leases long
// enough that they never expire by themselves, 2 MiB chunks (two and a half
// to a part), and the production retry curve of failed attempts (10 s
// doubling, capped at 5 minutes; the fakes send delayed messages at once,
// so nothing waits for it).
func unitConfig() worker.Config {
	return worker.Config{
		QueueURL:              unitQueueURL,
		Bucket:                unitBucket,
		Owner:                 "unit-a",
		LeaseTTL:              30 * time.Second,
		PollInterval:          time.Minute,
		ReassemblyParallelism: 3,
		MaxChunkBytes:         2 * upload.MiB,
		MaxTranscodeAttempts:  3,
		MaxAttempts:           3,
		MaxReceiveCount:       5,
		RetryBackoff:          10 * time.Second,
		MaxRetryDelay:         5 * time.Minute,
	}
}

func newUnitEnv(t testing.TB, opts ...unitOpts) *unitEnv {
	t.Helper()
	var o unitOpts
	if len(opts) > 0 {
		o = opts[0]
	}
	e := &unitEnv{
		t: t, cfg: unitConfig(),
		store: newFakeStore(), s3: newFakeS3(), queue: &fakeSender{},
		yt: newFakeYouTube(), tc: &fakeTranscoder{}, atom: &fakeAtom{},
	}
	if o.cfg != nil {
		o.cfg(&e.cfg)
	}
	e.log, e.logs = unitLogger(t)
	if o.noYouTube {
		e.yt = nil
	}
	if o.noTranscoder {
		e.tc = nil
	}
	if o.noAtom {
		e.atom = nil
	}
	e.d = e.instance(e.cfg.Owner)
	return e
}

// unitLogger is a logger whose lines the test can inspect; they are
// printed when the test fails.
func unitLogger(t testing.TB) (*zap.Logger, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, l := range logs.All() {
			t.Logf("%s %s %v", l.Level, l.Message, l.ContextMap())
		}
	})
	return zap.New(core), logs
}

// instance returns another Dispatcher over the same fakes, as another
// instance of the service with its own lease owner.
func (e *unitEnv) instance(owner string) *worker.Dispatcher {
	cfg := e.cfg
	cfg.Owner = owner
	deps := worker.Deps{Store: e.store, Queue: e.queue, S3: e.s3, Log: e.log.With(zap.String("owner", owner))}
	// A nil fake must be a nil interface: the steps check for nil.
	if e.yt != nil {
		deps.YouTube = e.yt
	}
	if e.tc != nil {
		deps.Transcoder = e.tc
	}
	if e.atom != nil {
		deps.AtomAPI = e.atom
	}
	return worker.New(cfg, deps)
}

// handle gives a message body to the Dispatcher, as received the first time.
func (e *unitEnv) handle(body string) worker.Result {
	e.t.Helper()
	return e.handleOn(e.d, body, 1)
}

// handleOn gives a message body to d, received for the receiveCount-th time.
func (e *unitEnv) handleOn(d *worker.Dispatcher, body string, receiveCount int) worker.Result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return d.Handle(ctx, worker.Message{ID: fmt.Sprintf("m-%d", time.Now().UnixNano()), Body: body, ReceiveCount: receiveCount})
}

// mustHandle handles body and fails the test unless it succeeded.
func (e *unitEnv) mustHandle(body string) {
	e.t.Helper()
	if res := e.handle(body); res.Err != nil || res.DeadLetter {
		e.t.Fatalf("Handle(%.120s) = %+v, want success", body, res)
	}
}

// create stores a new upload of size bytes planned in 5 MiB parts, with an
// s3Bucket destination unless others are given.
func (e *unitEnv) create(size int64, dests ...upload.DestinationRequest) *upload.Upload {
	e.t.Helper()
	u := newUnitUpload(e.t, size, dests...)
	e.store.create(e.t, u)
	return u
}

// newUnitUpload builds an upload record: 5 MiB parts, a random id.
func newUnitUpload(t testing.TB, size int64, dests ...upload.DestinationRequest) *upload.Upload {
	t.Helper()
	if len(dests) == 0 {
		dests = []upload.DestinationRequest{s3BucketDest()}
	}
	id, err := upload.NewID(time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, err := upload.New(upload.StartRequest{Filename: "clip.mp4", Size: size, ContentType: "video/mp4", Destinations: dests},
		unitAtom, id, time.Now(), "eu-west-1", unitBucket, 5*upload.MiB)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func ytDest() upload.DestinationRequest {
	return upload.DestinationRequest{Type: upload.YouTube, YouTube: upload.YouTubeMetadata{Title: "Unit clip", Tags: []string{"news"}, CategoryID: "25"}}
}

func s3BucketDest() upload.DestinationRequest {
	return upload.DestinationRequest{Type: upload.S3Bucket}
}

// randomPool is 1 MiB of random bytes that unitFile draws from.
var randomPool = sync.OnceValue(func() []byte {
	b := make([]byte, upload.MiB)
	_, _ = rand.Read(b)
	return b
})

// unitFile returns size bytes in which no two 4 KiB blocks are alike: each
// is a random run of the pool stamped with its offset, so that bytes out of
// place show. (Reading size bytes from crypto/rand for every test would
// cost the race-enabled run seconds.)
func unitFile(t testing.TB, size int64) []byte {
	t.Helper()
	const block = 4 * upload.KiB
	pool := randomPool()
	var seed [8]byte
	if _, err := rand.Read(seed[:]); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size)
	for off := int64(0); off < size; off += block {
		from := (int64(binary.LittleEndian.Uint64(seed[:])%uint64(len(pool))) + off*7919) % (int64(len(pool)) - block)
		n := copy(b[off:min(off+block, size)], pool[from:from+block])
		if n >= 16 {
			binary.LittleEndian.PutUint64(b[off:], uint64(off))
			copy(b[off+8:off+16], seed[:])
		}
	}
	return b
}

// putPart puts part n of file in S3, as the browser does.
func (e *unitEnv) putPart(u *upload.Upload, file []byte, n int) {
	e.t.Helper()
	p, ok := u.Part(n)
	if !ok {
		e.t.Fatalf("part %d is not in the plan", n)
	}
	e.s3.put(unitBucket, u.PartKey(n), file[p.Start:p.End])
}

// arrive puts part n in S3 and handles its event.
func (e *unitEnv) arrive(u *upload.Upload, file []byte, n int) {
	e.t.Helper()
	e.putPart(u, file, n)
	e.mustHandle(partBody(u, n))
}

// allIn puts every part in S3 and marks it complete, without the worker.
func (e *unitEnv) allIn(u *upload.Upload, file []byte) {
	e.t.Helper()
	for n := range u.PartCount() {
		e.putPart(u, file, n)
		if _, err := e.store.CompletePart(context.Background(), u.AtomID, u.ID, n); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *unitEnv) get(u *upload.Upload) *upload.Upload {
	e.t.Helper()
	return e.store.record(e.t, u.AtomID, u.ID)
}

// logged is the number of log lines with the message.
func (e *unitEnv) logged(msg string) int { return e.logs.FilterMessage(msg).Len() }

// s3EventBody is an S3 event notification of one record.
func s3EventBody(eventName, bucket, key string) string {
	rec := map[string]any{
		"eventVersion": "2.1",
		"eventSource":  "aws:s3",
		"eventName":    eventName,
		"s3": map[string]any{
			"bucket": map[string]any{"name": bucket},
			"object": map[string]any{"key": key, "size": 1, "sequencer": "0055AED6DCD90281E5"},
		},
	}
	b, _ := json.Marshal(map[string]any{"Records": []any{rec}})
	return string(b)
}

// partBody is the event of part n's creation.
func partBody(u *upload.Upload, n int) string {
	return s3EventBody("ObjectCreated:Put", unitBucket, u.PartKey(n))
}

// fullBody is the event of the reassembled original's creation.
func fullBody(u *upload.Upload) string {
	return s3EventBody("ObjectCreated:CompleteMultipartUpload", unitBucket, u.FullKey())
}

// ownBody is one of the service's own messages.
func ownBody(kind worker.Kind, u *upload.Upload, failures int) string {
	return ownTask{kind: kind, failures: failures}.body(u)
}

// ownTask is one of the service's own messages with every field it may
// carry.
type ownTask struct {
	kind     worker.Kind
	part     int // of a part task
	failures int
	mark     *int64
	cause    string
	hop      bool // a link of a parked destination's chain of hops
	gaveUp   bool // the service's own dead letter of work it gave up
}

func (o ownTask) body(u *upload.Upload) string {
	t := map[string]any{"kind": o.kind, "atomId": u.AtomID, "uploadId": u.ID}
	if o.kind == worker.KindPart {
		t["part"] = o.part
	}
	if o.failures != 0 {
		t["failures"] = o.failures
	}
	if o.mark != nil {
		t["mark"] = *o.mark
	}
	if o.cause != "" {
		t["cause"] = o.cause
	}
	if o.hop {
		t["hop"] = true
	}
	if o.gaveUp {
		t["gaveUp"] = true
	}
	b, _ := json.Marshal(map[string]any{"atomUploads": t})
	return string(b)
}

// partTaskBody is the service's own message of part n, as a re-homed part
// event becomes.
func partTaskBody(u *upload.Upload, n, failures int) string {
	return ownTask{kind: worker.KindPart, part: n, failures: failures}.body(u)
}

// retryCeiling is the longest pause the retry policy takes before the
// retry of work that failed failures times in a row.
func (e *unitEnv) retryCeiling(failures int) time.Duration {
	c := e.cfg.RetryBackoff
	for range max(failures, 1) - 1 {
		c *= 2
	}
	return min(c, e.cfg.MaxRetryDelay, 15*time.Minute)
}

// checkRetry asserts that m is the continuation of work that failed: of
// kind k, failures attempts without progress, the cause in words, marked
// with the upload's progress, and delayed within the policy's jittered
// bounds (half to all of its ceiling, in SQS's whole seconds).
func (e *unitEnv) checkRetry(m sentMessage, k worker.Kind, failures int, cause string) {
	e.t.Helper()
	c := e.retryCeiling(failures)
	if m.Kind != k || m.Failures != failures || m.Cause != cause || !m.Marked || m.QueueURL != e.cfg.QueueURL {
		e.t.Errorf("retry message %+v, want %s with failures %d, cause %q and a mark, on the queue", m, k, failures, cause)
	}
	if m.Delay < (c/2).Truncate(time.Second) || m.Delay > c {
		e.t.Errorf("retry of %s after %s, want %s–%s", k, m.Delay, c/2, c)
	}
}

// checkVideo asserts that YouTube has exactly file, from one session
// chunked by the rules, and that nothing broke its protocol.
func (e *unitEnv) checkVideo(file []byte) fakeSession {
	e.t.Helper()
	if v := e.yt.protocolViolations(); len(v) > 0 {
		e.t.Errorf("YouTube protocol violations: %q", v)
	}
	ss := e.yt.allSessions()
	if len(ss) == 0 {
		e.t.Fatal("no YouTube session")
	}
	s := ss[len(ss)-1]
	if s.VideoID == "" || s.Committed != int64(len(file)) {
		e.t.Fatalf("YouTube video %q of %d bytes, want one of the %d bytes of the file", s.VideoID, s.Committed, len(file))
	}
	checkChunks(e.t, s)
	checkReceived(e.t, s, file)
	return s
}

// checkReceived asserts that the chunks a session committed are the bytes
// of file from its start.
func checkReceived(t testing.TB, s fakeSession, file []byte) {
	t.Helper()
	var next int64
	for i, c := range s.Chunks {
		if c.Start != next || c.Start+c.Len > int64(len(file)) || sha256.Sum256(file[c.Start:c.Start+c.Len]) != c.Sum {
			t.Fatalf("chunk %d (bytes %d–%d) differs from the file", i, c.Start, c.Start+c.Len)
		}
		next = c.Start + c.Len
	}
}

// checkChunks asserts a session's chunks: in order, each once, aligned.
func checkChunks(t testing.TB, s fakeSession) {
	t.Helper()
	var next int64
	for i, c := range s.Chunks {
		if c.Start != next {
			t.Errorf("chunk %d starts at %d, want %d", i, c.Start, next)
		}
		if c.Start+c.Len != s.Size && c.Len%upload.ChunkAlign != 0 {
			t.Errorf("chunk %d is %d bytes: not a multiple of 256 KiB and not the last", i, c.Len)
		}
		next = c.Start + c.Len
	}
}

// checkS3Clean asserts that no multipart upload and no GetObject body was
// left behind.
func (e *unitEnv) checkS3Clean() {
	e.t.Helper()
	if mpus, open, _ := e.s3.state(); mpus != 0 || open != 0 {
		e.t.Errorf("S3: %d multipart uploads and %d bodies left open, want none", mpus, open)
	}
}

// ---------------------------------------------------------------------------
// SQS, for the pool.

// fakeSQS implements worker.SQSAPI over one queue in memory: received
// messages are in flight until deleted, or until their visibility is set
// to 0 (then they can be received again); a visibility above 0 keeps them
// in flight for the rest of the test. Messages sent to the queue itself
// become visible after sendDelay (SQS's DelaySeconds are not waited for);
// messages sent to any other queue (the dead-letter queue) are recorded.
type fakeSQS struct {
	faults
	queueURL  string
	sendDelay time.Duration

	mu         sync.Mutex
	nextID     int
	visible    []*fakeSQSMessage
	inFlight   map[string]*fakeSQSMessage // by receipt handle
	deleted    []string                   // message ids
	visibility []visibilityChange
	elsewhere  []sentMessage // sent to other queues
	wake       chan struct{}
}

type fakeSQSMessage struct {
	id, body string
	receives int
	after    time.Time // not visible before
	sent     time.Time // SQS's SentTimestamp: kept when the redrive moves it
}

type visibilityChange struct {
	ID      string
	Timeout time.Duration
}

var _ worker.SQSAPI = (*fakeSQS)(nil)

func newFakeSQS(queueURL string) *fakeSQS {
	return &fakeSQS{queueURL: queueURL, inFlight: map[string]*fakeSQSMessage{}, wake: make(chan struct{}, 1)}
}

// enqueue puts a message on the queue and returns its id.
func (q *fakeSQS) enqueue(body string) string {
	return q.enqueueAfter(body, 0)
}

func (q *fakeSQS) enqueueAfter(body string, delay time.Duration) string {
	return q.enqueueReceived(body, delay, 0)
}

// enqueueReceived puts a message on the queue that was received receives
// times already (as one the redrive policy moved from another queue).
func (q *fakeSQS) enqueueReceived(body string, delay time.Duration, receives int) string {
	q.mu.Lock()
	q.nextID++
	m := &fakeSQSMessage{id: fmt.Sprintf("msg-%d", q.nextID), body: body, after: time.Now().Add(delay), receives: receives, sent: time.Now()}
	q.visible = append(q.visible, m)
	q.mu.Unlock()
	q.poke()
	return m.id
}

func (q *fakeSQS) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *fakeSQS) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, _ ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	if err := q.call("ReceiveMessage"); err != nil {
		return nil, err
	}
	if aws.ToString(in.QueueUrl) != q.queueURL {
		return nil, fmt.Errorf("receive from %s: no such queue", aws.ToString(in.QueueUrl))
	}
	wait := time.NewTimer(min(time.Duration(in.WaitTimeSeconds)*time.Second, 20*time.Millisecond))
	defer wait.Stop()
	for {
		if out := q.take(int(in.MaxNumberOfMessages)); len(out) > 0 {
			return &sqs.ReceiveMessageOutput{Messages: out}, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("receive message: %w", ctx.Err())
		case <-q.wake:
		case <-wait.C:
			return &sqs.ReceiveMessageOutput{}, nil
		}
	}
}

// take makes up to n visible messages in flight.
func (q *fakeSQS) take(n int) []sqstypes.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []sqstypes.Message
	now := time.Now()
	rest := q.visible[:0]
	for _, m := range q.visible {
		if len(out) == n || now.Before(m.after) {
			rest = append(rest, m)
			continue
		}
		m.receives++
		receipt := fmt.Sprintf("%s#%d", m.id, m.receives)
		q.inFlight[receipt] = m
		out = append(out, sqstypes.Message{
			MessageId: aws.String(m.id), ReceiptHandle: aws.String(receipt), Body: aws.String(m.body),
			Attributes: map[string]string{
				"ApproximateReceiveCount": strconv.Itoa(m.receives),
				"SentTimestamp":           strconv.FormatInt(m.sent.UnixMilli(), 10),
			},
		})
	}
	q.visible = rest
	return out
}

func (q *fakeSQS) DeleteMessage(_ context.Context, in *sqs.DeleteMessageInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error) {
	if err := q.call("DeleteMessage"); err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	m := q.inFlight[aws.ToString(in.ReceiptHandle)]
	if m == nil {
		return nil, &smithy.GenericAPIError{Code: "ReceiptHandleIsInvalid", Message: "no such receipt"}
	}
	delete(q.inFlight, aws.ToString(in.ReceiptHandle))
	q.deleted = append(q.deleted, m.id)
	return &sqs.DeleteMessageOutput{}, nil
}

func (q *fakeSQS) ChangeMessageVisibility(_ context.Context, in *sqs.ChangeMessageVisibilityInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	if err := q.call("ChangeMessageVisibility"); err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	m := q.inFlight[aws.ToString(in.ReceiptHandle)]
	if m == nil {
		return nil, &smithy.GenericAPIError{Code: "MessageNotInflight", Message: "no such receipt"}
	}
	timeout := time.Duration(in.VisibilityTimeout) * time.Second
	q.visibility = append(q.visibility, visibilityChange{ID: m.id, Timeout: timeout})
	if timeout == 0 {
		delete(q.inFlight, aws.ToString(in.ReceiptHandle))
		m.after = time.Time{}
		q.visible = append(q.visible, m)
		q.poke()
	}
	return &sqs.ChangeMessageVisibilityOutput{}, nil
}

func (q *fakeSQS) SendMessage(ctx context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	if err := q.call("SendMessage"); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if aws.ToString(in.QueueUrl) == q.queueURL {
		return &sqs.SendMessageOutput{MessageId: aws.String(q.enqueueAfter(aws.ToString(in.MessageBody), q.sendDelay))}, nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.elsewhere = append(q.elsewhere, decodeSent(aws.ToString(in.QueueUrl), aws.ToString(in.MessageBody), time.Duration(in.DelaySeconds)*time.Second))
	return &sqs.SendMessageOutput{MessageId: aws.String("elsewhere")}, nil
}

// snapshot returns the ids deleted, the visibility changes and the
// messages sent to other queues so far, and the number of messages on the
// queue (visible or in flight).
func (q *fakeSQS) snapshot() (deleted []string, visibility []visibilityChange, elsewhere []sentMessage, depth int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.deleted), slices.Clone(q.visibility), slices.Clone(q.elsewhere), len(q.visible) + len(q.inFlight)
}
