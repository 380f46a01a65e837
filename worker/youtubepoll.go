package worker

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"atomuploads/metrics"
	"atomuploads/upload"
	"atomuploads/youtube"
)

// youTubePollStep follows YouTube's processing of the uploaded video until
// it ends, well or not.
type youTubePollStep struct {
	store interface {
		recordStore
		Touch(ctx context.Context, atomID, id string) error
	}
	yt interface {
		Processing(ctx context.Context, videoID string) (upload.YouTubeProcessing, error)
	}
	sched        *scheduler
	now          func() time.Time
	pollInterval time.Duration
	creds        *credentialsGate
	park         ParkConfig
	metrics      *metrics.Metrics
}

func (s *youTubePollStep) run(ctx context.Context, j job) outcome {
	log := j.log.With(zap.String("destination", string(upload.YouTube)))
	u := j.upload
	d := u.Destination(upload.YouTube)
	switch {
	case d == nil || s.yt == nil || d.VideoID == "":
		return outcome{}
	case d.Status.Terminal() || polledRecently(d, s.now(), s.pollInterval):
		return outcome{}
	}
	p, err := s.yt.Processing(ctx, d.VideoID)
	if err != nil {
		youTubeError(s.metrics, err)
		// Polls cost quota too: out of quota, or with refused credentials,
		// they wait like the relay, and no attempt is spent.
		now := s.now()
		var resume time.Time
		switch youtube.ClassOf(err) {
		case youtube.ClassQuota:
			resume = nextQuotaReset(now).Add(jitter(s.park.Jitter))
		case youtube.ClassCredentials:
			resume = s.creds.refused(now, err)
		case youtube.ClassTemporary, youtube.ClassUploadLimit, youtube.ClassRequest, youtube.ClassRefused:
			return outcome{err: fmt.Errorf("ask YouTube how video %s is processed: %w", d.VideoID, err)}
		}
		log.Warn("processing poll waits", zap.Time("resumeAt", resume), zap.String("cause", cause(err)))
		if err := s.sched.schedule(ctx, j.task, hop(now, resume, s.park.MaxHop)); err != nil {
			return outcome{err: err}
		}
		if err := s.store.Touch(ctx, u.AtomID, u.ID); err != nil {
			log.Warn("touch upload", zap.Error(err))
		}
		return outcome{}
	}
	s.creds.ok()
	if !p.Done() && !p.Failed() {
		if err := s.sched.schedule(ctx, Task{Kind: KindYouTubePoll, AtomID: u.AtomID, UploadID: u.ID}, s.pollInterval); err != nil {
			return outcome{err: err}
		}
	}
	u, err = s.store.Update(ctx, u.AtomID, u.ID, upload.Settled(s.now, func(u *upload.Upload) error {
		d := u.Destination(upload.YouTube)
		if d == nil || d.Status.Terminal() {
			return nil
		}
		d.PolledAt = s.now()
		d.Advance()
		return d.ApplyProcessing(p)
	}))
	if err != nil {
		return outcome{err: err}
	}
	d = u.Destination(upload.YouTube)
	switch d.Status {
	case upload.DestComplete:
		log.Info("YouTube processing complete", zap.String("status", string(d.Status)), zap.String("videoId", d.VideoID))
	case upload.DestFailed:
		log.Error("destination failed", zap.String("status", string(d.Status)), zap.String("error", d.Error))
	case upload.DestWaiting, upload.DestUpload, upload.DestTranscoding:
		log.Debug("YouTube processing", zap.Float64("progress", d.Progress), zap.String("processingStatus", d.ProcessingStatus))
	}
	return outcome{}
}
