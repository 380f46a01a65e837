package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"atomuploads/store"
	"atomuploads/transcode"
	"atomuploads/upload"
)

// task handles one of the service's own messages.
func (h *Steps) task(ctx context.Context, m Message, t task) Result {
	log := h.log.With(zap.String("messageId", m.ID), zap.String("atomId", t.AtomID), zap.String("uploadId", t.UploadID))
	u, err := h.store.Get(ctx, t.AtomID, t.UploadID)
	switch {
	case upload.ErrorCode(err) == upload.ENOTFOUND:
		log.Warn("ignored a task of an unknown upload", zap.String("kind", t.Kind))
		return Result{}
	case err != nil:
		return Result{Err: err}
	}
	switch t.Kind {
	case kindRelay:
		return h.youTubeNext(ctx, u, t.Failures, m.ReceiveCount > 1)
	case kindYouTubePoll:
		return h.pollYouTube(ctx, log.With(zap.String("destination", string(upload.YouTube))), u, t)
	case kindTranscodePoll:
		return h.pollTranscode(ctx, log.With(zap.String("destination", string(upload.S3Bucket))), u, t)
	}
	return Result{}
}

// polledRecently drops a duplicate poll chain: a message that was sent
// twice would otherwise poll twice as often, forever. Polls schedule their
// successor before they record the poll, so a crash or a failed write
// leaves a duplicate chain, which this cuts, rather than no chain.
func (h *Steps) polledRecently(d *upload.Destination) bool {
	return time.Since(d.PolledAt) < h.cfg.PollInterval/2
}

// pollLater handles a failed poll: poll again later, or give up on the
// destination after too many failures in a row.
func (h *Steps) pollLater(ctx context.Context, log *zap.Logger, u *upload.Upload, t task, dest upload.DestinationType, cause error) Result {
	t.Failures++
	if t.Failures > h.cfg.MaxAttempts {
		return h.failDestination(ctx, log, u, dest,
			fmt.Sprintf("could not get the %s state after %d attempts: %s", dest, t.Failures-1, upload.ErrorMessage(cause)))
	}
	if err := h.schedule(ctx, t, h.cfg.PollInterval); err != nil {
		return Result{Err: err}
	}
	log.Warn("poll failed; polling again later", zap.Int("failures", t.Failures), zap.Error(cause))
	return Result{}
}

// pollYouTube follows YouTube's processing of the uploaded video, then
// makes sure the atom has the video.
func (h *Steps) pollYouTube(ctx context.Context, log *zap.Logger, u *upload.Upload, t task) Result {
	d := u.Destination(upload.YouTube)
	switch {
	case d == nil || h.yt == nil || d.VideoID == "":
		return Result{}
	case d.Status == upload.DestComplete && !d.AssetAdded:
		return h.assetLater(ctx, log, u, t)
	case d.Status.Terminal() || h.polledRecently(d):
		return Result{}
	}
	p, err := h.yt.Processing(ctx, d.VideoID)
	if err != nil {
		return h.pollLater(ctx, log, u, t, upload.YouTube, err)
	}
	var (
		done   = p.ProcessingStatus == "succeeded" || p.UploadStatus == "processed"
		failed = p.ProcessingStatus == "failed" || p.ProcessingStatus == "terminated" ||
			p.UploadStatus == "failed" || p.UploadStatus == "rejected" || p.UploadStatus == "deleted"
	)
	if !done && !failed {
		if err := h.schedule(ctx, task{Kind: kindYouTubePoll, AtomID: u.AtomID, UploadID: u.ID}, h.cfg.PollInterval); err != nil {
			return Result{Err: err}
		}
	}
	u, err = h.store.Update(ctx, u.AtomID, u.ID, func(u *upload.Upload) error {
		d := u.Destination(upload.YouTube)
		if d == nil || d.Status.Terminal() {
			return nil
		}
		d.PolledAt = time.Now()
		d.ProcessingStatus = p.ProcessingStatus
		if p.PartsTotal > 0 {
			d.Progress = float64(p.PartsProcessed) / float64(p.PartsTotal) * 100
		}
		switch {
		case done:
			return d.MoveTo(upload.DestComplete)
		case failed:
			d.Fail(youTubeFailure(p.UploadStatus, p.ProcessingStatus, p.FailureReason, p.RejectionReason))
		}
		return nil
	})
	if err != nil {
		return Result{Err: err}
	}
	d = u.Destination(upload.YouTube)
	switch d.Status {
	case upload.DestComplete:
		log.Info("YouTube processing complete", zap.String("status", string(d.Status)), zap.String("videoId", d.VideoID))
		if !d.AssetAdded {
			return h.assetLater(ctx, log, u, task{Kind: kindYouTubePoll, AtomID: u.AtomID, UploadID: u.ID})
		}
	case upload.DestFailed:
		log.Error("destination failed", zap.String("status", string(d.Status)), zap.String("error", d.Error))
	default:
		log.Debug("YouTube processing", zap.Float64("progress", d.Progress), zap.String("processingStatus", d.ProcessingStatus))
	}
	return Result{}
}

func youTubeFailure(uploadStatus, processing, failure, rejection string) string {
	switch {
	case rejection != "":
		return "YouTube rejected the video: " + rejection
	case failure != "":
		return "YouTube could not process the video: " + failure
	case uploadStatus == "deleted":
		return "the video was deleted on YouTube"
	}
	return fmt.Sprintf("YouTube processing %s (upload status %s)", processing, uploadStatus)
}

// assetLater adds the video to the atom once YouTube has it, trying again
// at each poll interval; after too many failures it says so in the
// destination's error (the video itself is fine on YouTube).
func (h *Steps) assetLater(ctx context.Context, log *zap.Logger, u *upload.Upload, t task) Result {
	err := h.addAsset(ctx, u)
	switch {
	case err == nil:
		return Result{}
	case errors.Is(err, errAssetBusy):
		// Another instance is adding it, or died doing so: look again once
		// its lease has run out.
		if serr := h.schedule(ctx, t, h.cfg.LeaseTTL+time.Second); serr != nil {
			return Result{Err: serr}
		}
		return Result{}
	}
	t.Failures++
	if t.Failures > h.cfg.MaxAttempts {
		reason := fmt.Sprintf("the video is on YouTube, but the atom API did not take it as an asset after %d attempts: %s", t.Failures-1, err)
		if _, uerr := h.store.Update(ctx, u.AtomID, u.ID, func(u *upload.Upload) error {
			if d := u.Destination(upload.YouTube); d != nil && !d.AssetAdded {
				d.Error = reason
			}
			return nil
		}); uerr != nil {
			return Result{Err: uerr}
		}
		log.Error("add asset to atom failed for good", zap.String("error", reason))
		return Result{}
	}
	if serr := h.schedule(ctx, t, h.cfg.PollInterval); serr != nil {
		return Result{Err: serr}
	}
	log.Warn("add asset to atom failed; trying again later", zap.Int("failures", t.Failures), zap.Error(err))
	return Result{}
}

// errAssetBusy: another instance holds the asset lease.
var errAssetBusy = errors.New("another instance is adding the asset")

// addAsset adds the video to the atom once per upload: the asset lease
// makes one instance call, the record's flag makes it happen once, and the
// atom API client adds nothing when the atom has the video already, which
// covers an instance that died after the atom API took the asset and
// before the flag was recorded. What it cannot cover is an addition still
// in progress at the atom API when the next read comes; a failed call
// therefore keeps the lease until it expires. It reports nil when the atom
// has the video or there is no atom API, and errAssetBusy when another
// instance holds the lease (it may have died: the caller looks again
// later).
func (h *Steps) addAsset(ctx context.Context, u *upload.Upload) error {
	d := u.Destination(upload.YouTube)
	if h.atom == nil || d == nil || d.VideoID == "" || d.AssetAdded {
		return nil
	}
	owner := h.holder()
	fresh, _, err := h.store.Acquire(ctx, u.AtomID, u.ID, store.LeaseAsset, owner, h.cfg.LeaseTTL)
	if errors.Is(err, store.ErrLeaseHeld) {
		return errAssetBusy
	}
	if err != nil {
		return err
	}
	// The bookkeeping below must happen even if ctx ends: an asset added
	// but not recorded would be added again.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	// A failed call keeps the lease until it expires: an addition the atom
	// API is still working on when the client gave up (a timeout, the end
	// of the shutdown grace) gets that long to land before any instance
	// reads the atom again.
	keep := false
	defer func() {
		if keep {
			return
		}
		if _, err := h.store.Release(bctx, u.AtomID, u.ID, store.LeaseAsset, owner, store.NoPart); err != nil {
			h.log.Warn("release asset lease", zap.String("atomId", u.AtomID), zap.String("uploadId", u.ID), zap.Error(err))
		}
	}()
	if fd := fresh.Destination(upload.YouTube); fd.AssetAdded {
		return nil
	}
	start := time.Now()
	var added bool
	err = h.renewing(ctx, fresh, store.LeaseAsset, owner, func(ctx context.Context) error {
		var err error
		added, err = h.atom.AddAsset(ctx, u.AtomID, d.URL())
		return err
	})
	if err != nil {
		keep = true
		return fmt.Errorf("add video %s to atom %s: %w", d.VideoID, u.AtomID, err)
	}
	if _, err := h.store.UpdateHolding(bctx, u.AtomID, u.ID,
		store.Holding{Lease: store.LeaseAsset, Owner: owner, TTL: h.cfg.LeaseTTL},
		func(u *upload.Upload) error {
			d := u.Destination(upload.YouTube)
			d.AssetAdded, d.Error = true, ""
			return nil
		}); err != nil {
		return fmt.Errorf("record the asset of video %s: %w", d.VideoID, err)
	}
	msg := "asset added to atom"
	if !added {
		msg = "asset found on the atom already"
	}
	h.log.Info(msg, zap.String("atomId", u.AtomID), zap.String("uploadId", u.ID),
		zap.String("destination", string(upload.YouTube)), zap.String("videoId", d.VideoID),
		zap.Int64("durationMs", time.Since(start).Milliseconds()))
	return nil
}

// full starts the s3Bucket destination's transcode of the reassembled file.
func (h *Steps) full(ctx context.Context, log *zap.Logger, u *upload.Upload) Result {
	d := u.Destination(upload.S3Bucket)
	switch {
	case d == nil || h.tc == nil || d.Status.Terminal():
		return Result{}
	case d.JobID != "":
		// Started already; the event came again, perhaps because the
		// process died before the first poll was sent: poll (duplicate
		// poll chains are cut by polledRecently).
		if err := h.schedule(ctx, task{Kind: kindTranscodePoll, AtomID: u.AtomID, UploadID: u.ID}, h.cfg.PollInterval); err != nil {
			return Result{Err: err}
		}
		return Result{}
	}
	return h.startTranscode(ctx, log.With(zap.String("destination", string(upload.S3Bucket))), u, 1)
}

// startTranscode starts attempt n of the transcode. The token makes a
// retried start return the same job, so a message delivered twice starts
// one job.
func (h *Steps) startTranscode(ctx context.Context, log *zap.Logger, u *upload.Upload, attempt int) Result {
	spec := transcode.Spec{
		AtomID: u.AtomID, UploadID: u.ID,
		SourceBucket: h.cfg.Bucket, SourceKey: u.FullKey(),
		Token: fmt.Sprintf("%s-%d", u.ID, attempt),
	}
	jobID, err := h.tc.Start(ctx, spec)
	if upload.ErrorCode(err) == upload.EINVALID {
		return h.failDestination(ctx, log, u, upload.S3Bucket, "transcode refused: "+upload.ErrorMessage(err))
	}
	if err != nil {
		return Result{Err: err}
	}
	_, err = h.store.Update(ctx, u.AtomID, u.ID, func(u *upload.Upload) error {
		d := u.Destination(upload.S3Bucket)
		if d == nil || d.Status.Terminal() || d.Attempt >= attempt {
			return nil // recorded by another delivery of this message
		}
		d.JobID, d.Attempt, d.Progress = jobID, attempt, 0
		return d.MoveTo(upload.DestTranscoding)
	})
	if err != nil {
		return Result{Err: err}
	}
	log.Info("transcode started", zap.String("jobId", jobID), zap.Int("attempt", attempt), zap.String("status", string(upload.DestTranscoding)))
	if err := h.schedule(ctx, task{Kind: kindTranscodePoll, AtomID: u.AtomID, UploadID: u.ID}, h.cfg.PollInterval); err != nil {
		return Result{Err: err} // the retried message sees the job and schedules the poll
	}
	return Result{}
}

// pollTranscode follows the transcode job.
func (h *Steps) pollTranscode(ctx context.Context, log *zap.Logger, u *upload.Upload, t task) Result {
	d := u.Destination(upload.S3Bucket)
	if d == nil || h.tc == nil || d.Status.Terminal() || d.JobID == "" || h.polledRecently(d) {
		return Result{}
	}
	job, err := h.tc.Job(ctx, d.JobID)
	if err != nil {
		return h.pollLater(ctx, log, u, t, upload.S3Bucket, err)
	}
	switch job.State {
	case transcode.StateError:
		if job.Retryable && d.Attempt < h.cfg.MaxTranscodeAttempts {
			log.Warn("transcode job lost; starting it again", zap.String("jobId", d.JobID), zap.String("error", job.Error))
			return h.startTranscode(ctx, log, u, d.Attempt+1)
		}
		return h.failDestination(ctx, log, u, upload.S3Bucket, "transcode failed: "+job.Error)
	case transcode.StateComplete:
	default:
		if err := h.schedule(ctx, task{Kind: kindTranscodePoll, AtomID: u.AtomID, UploadID: u.ID}, h.cfg.PollInterval); err != nil {
			return Result{Err: err}
		}
	}
	u, err = h.store.Update(ctx, u.AtomID, u.ID, func(u *upload.Upload) error {
		d := u.Destination(upload.S3Bucket)
		if d == nil || d.Status.Terminal() || d.JobID != job.ID {
			return nil
		}
		d.PolledAt = time.Now()
		d.Progress = job.Percent
		if job.State == transcode.StateComplete {
			d.Outputs = job.Outputs
			return d.MoveTo(upload.DestComplete)
		}
		return nil
	})
	if err != nil {
		return Result{Err: err}
	}
	if d := u.Destination(upload.S3Bucket); d.Status == upload.DestComplete {
		log.Info("transcode complete", zap.String("jobId", d.JobID), zap.Strings("outputs", d.Outputs), zap.String("status", string(d.Status)))
	}
	return Result{}
}

// failDestination fails one destination with a readable reason.
func (h *Steps) failDestination(ctx context.Context, log *zap.Logger, u *upload.Upload, t upload.DestinationType, reason string) Result {
	if _, err := h.store.Update(ctx, u.AtomID, u.ID, func(u *upload.Upload) error {
		if d := u.Destination(t); d != nil {
			d.Fail(reason)
		}
		return nil
	}); err != nil {
		return Result{Err: err}
	}
	log.Error("destination failed", zap.String("status", string(upload.DestFailed)), zap.String("error", reason))
	return Result{}
}
