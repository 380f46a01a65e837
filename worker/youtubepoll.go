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
	now := s.now()
	if d.Parked(now) {
		// Waiting for YouTube (the quota, the credentials): one chain of
		// hops drives it, and YouTube is not asked before it resumes.
		if j.task.Hop {
			return s.hop(ctx, log, j, d.ResumeAt)
		}
		return outcome{}
	}
	if until, parked := s.creds.parkedUntil(now); parked {
		return s.parkUntil(ctx, log, j, upload.WaitYouTubeCredentials, until, nil)
	}
	p, err := s.yt.Processing(ctx, d.VideoID)
	if err != nil {
		youTubeError(s.metrics, err)
		// Polls cost quota too: out of quota, or with refused credentials,
		// they wait like the relay, and no attempt is spent.
		now := s.now()
		switch youtube.ClassOf(err) {
		case youtube.ClassQuota:
			return s.parkUntil(ctx, log, j, upload.WaitYouTubeQuota, nextQuotaReset(now).Add(jitter(s.park.Jitter)), err)
		case youtube.ClassCredentials:
			return s.parkUntil(ctx, log, j, upload.WaitYouTubeCredentials, s.creds.refused(now, err), err)
		case youtube.ClassTemporary, youtube.ClassUploadLimit, youtube.ClassRequest, youtube.ClassRefused:
		}
		return outcome{err: fmt.Errorf("ask YouTube how video %s is processed: %w", d.VideoID, err)}
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
		d.Unpark()
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

// parkUntil records that the destination's polls wait for waitingFor until
// resumeAt (the details show it), and keeps them driven by one chain of
// hops: the message that parked it starts the chain, a hop goes on with
// it, and any other leaves it to the chain.
func (s *youTubePollStep) parkUntil(ctx context.Context, log *zap.Logger, j job, waitingFor string, resumeAt time.Time, why error) outcome {
	parked, err := parkYouTube(ctx, s.store, s.now, j, waitingFor, resumeAt, func(d *upload.Destination) bool { return d.VideoID != "" })
	if err != nil {
		return outcome{err: err}
	}
	if !parked && !j.task.Hop {
		return outcome{}
	}
	if parked {
		log.Warn("processing poll waits", zap.String("waitingFor", waitingFor), zap.Time("resumeAt", resumeAt), zap.String("cause", cause(why)))
	}
	return s.hop(ctx, log, j, resumeAt)
}

// hop sends the next link of the chain of hops of a parked poll.
func (s *youTubePollStep) hop(ctx context.Context, log *zap.Logger, j job, resumeAt time.Time) outcome {
	t := Task{Kind: KindYouTubePoll, AtomID: j.task.AtomID, UploadID: j.task.UploadID}
	return outcome{err: sendHop(ctx, s.sched, s.store, log, t, s.now(), resumeAt, s.park.MaxHop)}
}
