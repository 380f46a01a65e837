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
		return h.youTubeNext(ctx, u, t.Failures)
	case kindYouTubePoll:
		return h.pollYouTube(ctx, log.With(zap.String("destination", string(upload.YouTube))), u, t)
	case kindTranscodePoll:
		return h.pollTranscode(ctx, log.With(zap.String("destination", string(upload.S3Bucket))), u, t)
	}
	return Result{}
}

// polledRecently drops a duplicate poll chain: a message that was sent
// twice would otherwise poll twice as often, forever.
func (h *Steps) polledRecently(d *upload.Destination) bool {
	return time.Since(d.PolledAt) < h.cfg.PollInterval/2
}

// pollLater schedules the next poll, or gives up after too many failures.
func (h *Steps) pollLater(ctx context.Context, log *zap.Logger, u *upload.Upload, t task, dest upload.DestinationType, cause error) Result {
	if cause == nil {
		t.Failures = 0
		return Result{FollowUps: []FollowUp{{Body: t.body(), Delay: h.cfg.PollInterval}}}
	}
	t.Failures++
	if t.Failures > h.cfg.MaxPollFailures {
		reason := fmt.Sprintf("could not get the %s state after %d attempts: %s", dest, t.Failures-1, upload.ErrorMessage(cause))
		if _, err := h.store.Update(ctx, u.AtomID, u.ID, func(u *upload.Upload) error {
			if d := u.Destination(dest); d != nil {
				d.Fail(reason)
			}
			return nil
		}); err != nil {
			return Result{Err: err}
		}
		log.Error("destination failed", zap.String("status", string(upload.DestFailed)), zap.String("error", reason), zap.NamedError("cause", cause))
		return Result{}
	}
	log.Warn("poll failed; polling again later", zap.Int("failures", t.Failures), zap.Error(cause))
	return Result{FollowUps: []FollowUp{{Body: t.body(), Delay: h.cfg.PollInterval}}}
}

// pollYouTube follows YouTube's processing of the uploaded video, and
// makes sure the atom has the video.
func (h *Steps) pollYouTube(ctx context.Context, log *zap.Logger, u *upload.Upload, t task) Result {
	d := u.Destination(upload.YouTube)
	if d == nil || h.yt == nil || d.VideoID == "" {
		return Result{}
	}
	if !d.AssetAdded {
		h.addAsset(ctx, u)
	}
	if d.Status != upload.DestTranscoding || h.polledRecently(d) {
		return Result{}
	}
	p, err := h.yt.Processing(ctx, d.VideoID)
	if err != nil {
		return h.pollLater(ctx, log, u, t, upload.YouTube, err)
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
		case p.ProcessingStatus == "succeeded" || p.UploadStatus == "processed":
			return d.MoveTo(upload.DestComplete)
		case p.ProcessingStatus == "failed" || p.ProcessingStatus == "terminated" ||
			p.UploadStatus == "failed" || p.UploadStatus == "rejected" || p.UploadStatus == "deleted":
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
			h.addAsset(ctx, u) // one last try; it is logged if it fails
		}
		return Result{}
	case upload.DestFailed:
		log.Error("destination failed", zap.String("status", string(d.Status)), zap.String("error", d.Error))
		return Result{}
	}
	log.Debug("YouTube processing", zap.Float64("progress", d.Progress), zap.String("processingStatus", d.ProcessingStatus))
	return h.pollLater(ctx, log, u, t, upload.YouTube, nil)
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

// addAsset adds the video to the atom once per upload: the asset lease
// makes one instance call, the record's flag makes it happen once. A
// failure is logged and tried again at the next poll.
func (h *Steps) addAsset(ctx context.Context, u *upload.Upload) {
	d := u.Destination(upload.YouTube)
	if h.atom == nil || d == nil || d.VideoID == "" || d.AssetAdded {
		return
	}
	log := h.log.With(zap.String("atomId", u.AtomID), zap.String("uploadId", u.ID), zap.String("destination", string(upload.YouTube)))
	owner := h.holder()
	fresh, _, err := h.store.Acquire(ctx, u.AtomID, u.ID, store.LeaseAsset, owner, h.cfg.LeaseTTL)
	if err != nil {
		if !errors.Is(err, store.ErrLeaseHeld) {
			log.Warn("add asset to atom: lease", zap.Error(err))
		}
		return
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := h.store.Release(rctx, u.AtomID, u.ID, store.LeaseAsset, owner, store.NoPart); err != nil {
			log.Warn("release asset lease", zap.Error(err))
		}
	}()
	if fd := fresh.Destination(upload.YouTube); fd.AssetAdded {
		return
	}
	start := time.Now()
	err = h.renewing(ctx, fresh, store.LeaseAsset, owner, func(ctx context.Context) error {
		return h.atom.AddAsset(ctx, u.AtomID, d.URL())
	})
	if err != nil {
		log.Error("add asset to atom failed; trying again at the next poll", zap.String("videoId", d.VideoID), zap.Error(err))
		return
	}
	if _, err := h.store.UpdateHolding(ctx, u.AtomID, u.ID,
		store.Holding{Lease: store.LeaseAsset, Owner: owner, TTL: h.cfg.LeaseTTL},
		func(u *upload.Upload) error {
			u.Destination(upload.YouTube).AssetAdded = true
			return nil
		}); err != nil {
		log.Error("record asset added", zap.Error(err))
		return
	}
	log.Info("asset added to atom", zap.String("videoId", d.VideoID), zap.Int64("durationMs", time.Since(start).Milliseconds()))
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
		return Result{FollowUps: []FollowUp{{
			Body:  task{Kind: kindTranscodePoll, AtomID: u.AtomID, UploadID: u.ID}.body(),
			Delay: h.cfg.PollInterval,
		}}}
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
	return Result{FollowUps: []FollowUp{{
		Body:  task{Kind: kindTranscodePoll, AtomID: u.AtomID, UploadID: u.ID}.body(),
		Delay: h.cfg.PollInterval,
	}}}
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
	if job.State == transcode.StateError {
		if job.Retryable && d.Attempt < h.cfg.MaxTranscodeAttempts {
			log.Warn("transcode job lost; starting it again", zap.String("jobId", d.JobID), zap.String("error", job.Error))
			return h.startTranscode(ctx, log, u, d.Attempt+1)
		}
		return h.failDestination(ctx, log, u, upload.S3Bucket, "transcode failed: "+job.Error)
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
		return Result{}
	}
	return h.pollLater(ctx, log, u, t, upload.S3Bucket, nil)
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
