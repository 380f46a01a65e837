package worker

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"atomuploads/upload"
)

// reconcileStore is what the reconciler needs of the table.
type reconcileStore interface {
	Get(ctx context.Context, atomID, id string) (*upload.Upload, error)
	Quiet(ctx context.Context, before time.Time, fn func(atomID, id string) error) error
	Touch(ctx context.Context, atomID, id string) error
}

// reconciler re-drives what nobody drives: each round it looks at the
// uploads that are not terminal and have had no progress (and no retry
// scheduled) for strandedAfter, through the table's sparse index of live
// uploads, and sends a fresh message for each piece of work that is due
// and whose lease nobody holds. It then touches the upload, so that it is
// looked at again only after another strandedAfter: an upload gets a new
// driver at most that often, and a stranded one within strandedAfter plus
// one round.
type reconciler struct {
	store         reconcileStore
	sched         *scheduler
	log           *zap.Logger
	now           func() time.Time
	strandedAfter time.Duration
	maxChunkBytes int64
	// what this service does: work for what it does not is never due
	youtube, transcode, atomAPI bool
}

func (r *reconciler) name() string { return "reconciler" }

func (r *reconciler) sweep(ctx context.Context) error {
	now := r.now()
	return r.store.Quiet(ctx, now.Add(-r.strandedAfter), func(atomID, id string) error {
		return r.look(ctx, now, atomID, id)
	})
}

// look re-drives the due work of one quiet upload.
func (r *reconciler) look(ctx context.Context, now time.Time, atomID, id string) error {
	u, err := r.store.Get(ctx, atomID, id)
	switch {
	case upload.ErrorCode(err) == upload.ENOTFOUND:
		return nil // expired meanwhile
	case err != nil:
		return err
	case u.Status.Terminal():
		return nil // the index lags behind
	}
	log := r.log.With(zap.String("atomId", atomID), zap.String("uploadId", id))
	for _, k := range r.due(u, now) {
		t := Task{Kind: k, AtomID: atomID, UploadID: id, Mark: markOf(u, k), Marked: true}
		if err := r.sched.schedule(ctx, t, 0); err != nil {
			return err
		}
		log.Warn("re-driven", zap.String("kind", string(k)), zap.String("destination", string(destinationOf(k))),
			zap.String("reason", fmt.Sprintf("no progress and no worker for %s", r.strandedAfter)),
			zap.Time("lastChange", u.UpdatedAt))
	}
	return r.store.Touch(ctx, atomID, id)
}

// due is the work of an upload that is due now and that no worker holds
// the lease of. Work that waits on the browser (the next part) is not due.
func (r *reconciler) due(u *upload.Upload, now time.Time) []Kind {
	var due []Kind
	// Once the clean-up deleted the parts, no reassembly or relay can
	// read them again (the transcode, the polls and the asset need none).
	parts := !u.PartsDeleted
	if parts && u.AllPartsComplete() && !u.Assembled && !u.LeaseLive(upload.LeaseAssembly, now) {
		due = append(due, KindReassemble)
	}
	if d := u.Destination(upload.YouTube); d != nil && r.youtube {
		switch {
		case d.Status.Terminal():
		case d.Parked(now):
			// Waiting for YouTube (quota, upload limit, credentials): its
			// hops drive it, and it is not due before it resumes.
		case d.VideoID == "" && parts && !u.LeaseLive(upload.LeaseYouTube, now) &&
			(d.UploadedBytes >= u.Size || available(u, d.UploadedBytes, r.maxChunkBytes) > 0):
			due = append(due, KindRelay)
		case d.VideoID != "":
			due = append(due, KindYouTubePoll)
		}
		if d.VideoID != "" && !d.AssetAdded && d.Status != upload.DestFailed && d.AssetError == "" && r.atomAPI && !u.LeaseLive(upload.LeaseAsset, now) {
			due = append(due, KindAsset)
		}
	}
	if d := u.Destination(upload.S3Bucket); d != nil && r.transcode && u.Assembled && !d.Status.Terminal() {
		if d.JobID == "" {
			due = append(due, KindFull)
		} else {
			due = append(due, KindTranscodePoll)
		}
	}
	return due
}

// destinationOf is the destination a kind of work drives, if one.
func destinationOf(k Kind) upload.DestinationType {
	switch k {
	case KindRelay, KindYouTubePoll, KindAsset:
		return upload.YouTube
	case KindFull, KindTranscodePoll:
		return upload.S3Bucket
	case KindPart, KindReassemble:
	}
	return ""
}

// Driver sends the messages that drive an upload's due work at once: the
// API's retry uses it, so that a retried upload does not wait for the
// reconciler.
type Driver struct{ r *reconciler }

// NewDriver returns a Driver that sends to cfg.QueueURL.
func NewDriver(cfg SweepConfig, queue Sender, log *zap.Logger) *Driver {
	return &Driver{r: &reconciler{
		sched: &scheduler{queue: queue, queueURL: cfg.QueueURL}, log: log, now: time.Now,
		maxChunkBytes: cfg.MaxChunkBytes, youtube: cfg.YouTube, transcode: cfg.Transcode, atomAPI: cfg.AtomAPI,
	}}
}

// Drive sends a message for each piece of the upload's work that is due
// now and whose lease nobody holds.
func (d *Driver) Drive(ctx context.Context, u *upload.Upload) error {
	for _, k := range d.r.due(u, d.r.now()) {
		t := Task{Kind: k, AtomID: u.AtomID, UploadID: u.ID, Mark: markOf(u, k), Marked: true}
		if err := d.r.sched.schedule(ctx, t, 0); err != nil {
			return err
		}
		d.r.log.Info("driven", zap.String("atomId", u.AtomID), zap.String("uploadId", u.ID), zap.String("kind", string(k)))
	}
	return nil
}
