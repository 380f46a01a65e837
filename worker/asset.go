package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"atomuploads/metrics"
	"atomuploads/upload"
)

// assetStep adds the YouTube video to the atom once per upload: the asset
// lease makes one instance call, the record's flag makes it happen once,
// and the atom API client adds nothing when the atom has the video already,
// which covers an instance that died after the atom API took the asset and
// before the flag was recorded. What it cannot cover is an addition still
// in progress at the atom API when the next read comes; a failed call
// therefore keeps the lease until it expires.
//
// A failed addition is retried like any failed work (Dispatcher.retryLater);
// when it is given up, the destination's error says so (the video itself is
// fine on YouTube).
type assetStep struct {
	store interface {
		recordStore
		holdingStore
	}
	atom   AtomAPI
	leases *leases
	sched  *scheduler
	now    func() time.Time

	leaseTTL time.Duration
	metrics  *metrics.Metrics
}

// errAssetBusy: another instance holds the asset lease.
var errAssetBusy = errors.New("another instance is adding the asset")

func (s *assetStep) run(ctx context.Context, j job) outcome {
	log := j.log.With(zap.String("destination", string(upload.YouTube)))
	err := s.add(ctx, log, j)
	switch {
	case err == nil:
		return outcome{}
	case errors.Is(err, errAssetBusy):
		// Another instance is adding it, or died doing so: look again once
		// its lease has run out.
		t := j.task
		t.Kind = KindAsset
		return outcome{err: s.sched.schedule(ctx, t, s.leaseTTL+time.Second)}
	}
	return outcome{err: err}
}

// assetOutcome is an asset call's outcome, for the metrics.
func assetOutcome(added bool, err error) string {
	switch {
	case err != nil:
		return metrics.AssetFailed
	case added:
		return metrics.AssetAdded
	}
	return metrics.AssetPresent
}

// assetDue reports whether the atom should get the destination's video:
// YouTube has it, the atom has not, and neither YouTube (a rejection) nor
// a person (a cancel) said no, and it was not given up (until a person
// retries it).
func assetDue(u *upload.Upload, d *upload.Destination) bool {
	return d != nil && d.VideoID != "" && !d.AssetAdded && d.AssetError == "" && d.Status != upload.DestFailed && u.Status != upload.StatusCancelled
}

// add adds the asset under the asset lease. It reports nil when the atom
// has the video or there is no atom API, and errAssetBusy when another
// instance holds the lease.
func (s *assetStep) add(ctx context.Context, log *zap.Logger, j job) error {
	if d := j.upload.Destination(upload.YouTube); s.atom == nil || !assetDue(j.upload, d) {
		return nil
	}
	err := s.leases.hold(ctx, j.task.AtomID, j.task.UploadID, upload.LeaseAsset, func(ctx context.Context, h *held) (ending, error) {
		d := h.upload.Destination(upload.YouTube)
		if !assetDue(h.upload, d) {
			return release, nil
		}
		start := time.Now()
		added, err := s.atom.AddAsset(ctx, h.lease.AtomID, d.URL())
		s.metrics.AssetCall(assetOutcome(added, err))
		if err != nil {
			// An addition the atom API is still working on when the
			// client gave up (a timeout, the end of the shutdown grace)
			// gets the rest of the lease to land before any instance
			// reads the atom again.
			return keep, fmt.Errorf("add video %s to atom %s: %w", d.VideoID, h.lease.AtomID, err)
		}
		// The record must be written even if ctx ends: an asset added but
		// not recorded would be added again.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
		defer cancel()
		if _, err := s.store.UpdateHolding(bctx, h.lease, upload.Settled(s.now, func(u *upload.Upload) error {
			d := u.Destination(upload.YouTube)
			d.AssetAdded, d.AssetError = true, ""
			d.Advance()
			return nil
		})); err != nil {
			return release, fmt.Errorf("record the asset of video %s: %w", d.VideoID, err)
		}
		msg := "asset added to atom"
		if !added {
			msg = "asset found on the atom already"
		}
		log.Info(msg, zap.String("videoId", d.VideoID), zap.Int64("durationMs", time.Since(start).Milliseconds()))
		return release, nil
	})
	if errors.Is(err, upload.ErrLeaseHeld) {
		return errAssetBusy
	}
	return err
}
