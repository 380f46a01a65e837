package upload

import (
	"fmt"
	"time"
)

// LeaseName names one of the leases an upload's record carries: a claim,
// with an owner and an expiry, that makes one worker at a time do a piece
// of work that must not be done twice at once.
type LeaseName string

// The leases of an upload.
const (
	// LeaseYouTube is held by the one writer of the YouTube resumable
	// session: bytes reach YouTube in order, once.
	LeaseYouTube LeaseName = "youtube"
	// LeaseAssembly is held by the one reassembler of the original.
	LeaseAssembly LeaseName = "assembly"
	// LeaseAsset is held by the one caller of the atom API.
	LeaseAsset LeaseName = "asset"
)

// LeaseSweep is the lease of a periodic sweep, held on the sweep's own item
// rather than on an upload's (SweepLease).
const LeaseSweep LeaseName = "sweep"

// Leases lists every lease name of an upload, for exhaustive checks.
var Leases = []LeaseName{LeaseYouTube, LeaseAssembly, LeaseAsset}

// Lease is one holder's claim on a lease of an upload: which lease, of which
// upload, by whom, for how long after each acquisition or renewal.
type Lease struct {
	AtomID   string
	UploadID string
	Name     LeaseName
	// Owner is unique per turn: two goroutines of one process never share
	// an owner, so neither can mistake the other's claim for its own.
	Owner string
	TTL   time.Duration
}

// Domain errors of lost lease races.
var (
	// ErrLeaseHeld: another owner holds the lease, and it has not expired.
	ErrLeaseHeld = Errorf(ECONFLICT, "another worker holds the lease")
	// ErrLeaseLost: the owner no longer holds the lease (it expired and
	// was taken over, or was released by someone who found it expired).
	ErrLeaseLost = Errorf(ECONFLICT, "the lease was lost to another worker")
)

// SweepAtom is the partition of the items that hold the leases of the
// periodic sweeps (the reconciler, the dead-letter reader, …), one item a
// sweep with the sweep's name in place of an upload id. No atom can have
// this id (atom ids start with a letter or digit), so no API call reaches
// these items, and they are never live uploads.
const SweepAtom = "_sweeps"

// SweepLease is owner's claim on the lease of the named sweep.
func SweepLease(sweep, owner string, ttl time.Duration) Lease {
	return Lease{AtomID: SweepAtom, UploadID: sweep, Name: LeaseSweep, Owner: owner, TTL: ttl}
}

// PartPin is a part as the worker checked it: the S3 object's ETag, its
// SHA-256 checksum as S3 verified it on the PUT (base64; empty when the
// part was sent without one), and its size. Every later read of the part
// is conditional on the ETag, so an object changed after its check is
// never relayed or copied unnoticed. Read is set once a relay or a
// reassembly has begun to read the part: from then on its pin never
// changes.
type PartPin struct {
	Part           int
	ETag           string
	ChecksumSHA256 string
	Size           int64
	// CreatedAt is when S3 created the part's object (the S3 event's
	// time, or the object's Last-Modified): where the part-to-YouTube lag
	// starts. Zero when unknown (a pin from before it was kept).
	CreatedAt time.Time
	Read      bool
	ReadBy    string // who read it first: Reader…
}

// Who reads parts.
const (
	ReaderYouTube  = "youtube"  // the relay
	ReaderAssembly = "assembly" // the reassembly
)

// How PartPin went.
const (
	PinNew     = "new"     // the part was pinned for the first time
	PinSame    = "same"    // the part was pinned already, as it is
	PinRenewed = "renewed" // the part changed before anyone read it: checked afresh
)

// ErrPartRead is a part that changed after a relay or a reassembly began to read
// it; what was sent can no longer be proven to be the part.
var ErrPartRead = Errorf(ECONFLICT, "the part changed after it was read")

// PartChangedError is ErrPartRead for one part, saying who had read it.
type PartChangedError struct {
	Part   int
	ReadBy string // Reader…, or "" when unknown
}

// Error says what happened, in words the upload's error can carry.
func (e *PartChangedError) Error() string {
	switch e.ReadBy {
	case ReaderYouTube:
		return fmt.Sprintf("part %d changed after it was sent to YouTube", e.Part)
	case ReaderAssembly:
		return fmt.Sprintf("part %d changed after it was copied into the original", e.Part)
	}
	return fmt.Sprintf("part %d changed after it was read", e.Part)
}

// Is makes errors.Is(err, ErrPartRead) hold.
func (e *PartChangedError) Is(target error) bool { return target == ErrPartRead }
