package worker

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"atomuploads/metrics"
	"atomuploads/transcode"
	"atomuploads/upload"
)

// transcodeStep starts the s3Bucket destination's transcode once the
// original is assembled (KindFull) and follows the job (KindTranscodePoll),
// starting it again when the backend lost it.
type transcodeStep struct {
	store recordStore
	tc    Transcoder
	sched *scheduler
	now   func() time.Time

	bucket       string
	pollInterval time.Duration
	maxJobs      int // jobs started in all when jobs are lost
	metrics      *metrics.Metrics
}

func (s *transcodeStep) run(ctx context.Context, j job) outcome {
	log := j.log.With(zap.String("destination", string(upload.S3Bucket)))
	u := j.upload
	d := u.Destination(upload.S3Bucket)
	if d == nil || s.tc == nil || d.Status.Terminal() {
		return outcome{}
	}
	switch j.task.Kind {
	case KindFull:
		if !u.Assembled {
			// Only a reassembly writes the original, and it records that it
			// did before it starts the transcode: anything else at …/full
			// (a forged or early event) is not the upload's file.
			log.Warn("ignored an original the record does not know as assembled")
			return outcome{}
		}
		if d.JobID != "" {
			// Started already; the event came again, perhaps because the
			// process died before the first poll was sent: poll (duplicate
			// poll chains are cut by polledRecently).
			return outcome{err: s.sched.schedule(ctx, Task{Kind: KindTranscodePoll, AtomID: u.AtomID, UploadID: u.ID}, s.pollInterval)}
		}
		// The next attempt: 1 the first time, and after a person's retry
		// (which keeps Attempt) one past the failed job's, so its token is
		// new and start records it.
		return s.start(ctx, log, u, d.Attempt+1)
	case KindTranscodePoll:
		return s.poll(ctx, log, j)
	case KindPart, KindRelay, KindReassemble, KindYouTubePoll, KindAsset:
	}
	return outcome{err: fmt.Errorf("transcode step given a %s task", j.task.Kind)}
}

// start starts attempt n of the transcode. The token makes a retried start
// return the same job, so a message delivered twice starts one job.
func (s *transcodeStep) start(ctx context.Context, log *zap.Logger, u *upload.Upload, attempt int) outcome {
	spec := transcode.Spec{
		AtomID: u.AtomID, UploadID: u.ID,
		SourceBucket: s.bucket, SourceKey: u.FullKey(),
		Token: fmt.Sprintf("%s-%d", u.ID, attempt),
	}
	jobID, err := s.tc.Start(ctx, spec)
	if upload.ErrorCode(err) == upload.EINVALID {
		s.metrics.TranscodeJob(metrics.TranscodeFailed)
		return failDestination(ctx, s.store, log, u, upload.S3Bucket, "transcode refused: "+upload.ErrorMessage(err), s.now)
	}
	if err != nil {
		return outcome{err: err}
	}
	recorded := false
	_, err = s.store.Update(ctx, u.AtomID, u.ID, upload.Settled(s.now, func(u *upload.Upload) error {
		d := u.Destination(upload.S3Bucket)
		recorded = false
		if d == nil || d.Status.Terminal() || d.Attempt >= attempt {
			return nil // recorded by another delivery, which logs it and polls
		}
		recorded = true
		d.JobID, d.Attempt, d.Progress, d.JobStartedAt = jobID, attempt, 0, s.now()
		d.Advance()
		return d.MoveTo(upload.DestTranscoding)
	}))
	if err != nil || !recorded {
		return outcome{err: err}
	}
	s.metrics.TranscodeJob(metrics.TranscodeStarted)
	log.Info("transcode started", zap.String("jobId", jobID), zap.Int("attempt", attempt), zap.String("status", string(upload.DestTranscoding)))
	// On an error the retried message sees the job and schedules the poll.
	return outcome{err: s.sched.schedule(ctx, Task{Kind: KindTranscodePoll, AtomID: u.AtomID, UploadID: u.ID}, s.pollInterval)}
}

// poll follows the transcode job.
func (s *transcodeStep) poll(ctx context.Context, log *zap.Logger, j job) outcome {
	u := j.upload
	d := u.Destination(upload.S3Bucket)
	if d.JobID == "" || polledRecently(d, s.now(), s.pollInterval) {
		return outcome{}
	}
	job, err := s.tc.Job(ctx, d.JobID)
	if err != nil {
		return outcome{err: fmt.Errorf("ask the transcoder about job %s: %w", d.JobID, err)}
	}
	switch job.State {
	case transcode.StateError:
		if job.Retryable && d.Attempt < s.maxJobs {
			s.metrics.TranscodeJob(metrics.TranscodeLost)
			s.jobEnded(d, metrics.TranscodeLost)
			log.Warn("transcode job lost; starting it again", zap.String("jobId", d.JobID), zap.String("error", job.Error))
			return s.start(ctx, log, u, d.Attempt+1)
		}
		s.metrics.TranscodeJob(metrics.TranscodeFailed)
		s.jobEnded(d, metrics.TranscodeFailed)
		return failDestination(ctx, s.store, log, u, upload.S3Bucket, "transcode failed: "+job.Error, s.now)
	case transcode.StateComplete:
	case transcode.StateSubmitted, transcode.StateProgressing:
		if err := s.sched.schedule(ctx, Task{Kind: KindTranscodePoll, AtomID: u.AtomID, UploadID: u.ID}, s.pollInterval); err != nil {
			return outcome{err: err}
		}
	}
	u, err = s.store.Update(ctx, u.AtomID, u.ID, upload.Settled(s.now, func(u *upload.Upload) error {
		d := u.Destination(upload.S3Bucket)
		if d == nil || d.Status.Terminal() || d.JobID != job.ID {
			return nil
		}
		d.PolledAt = s.now()
		d.Progress = job.Percent
		d.Advance()
		if job.State == transcode.StateComplete {
			d.Outputs, d.Playback, d.Files = job.Keys(), job.Playback, nil
			for _, o := range job.Outputs {
				d.Files = append(d.Files, upload.OutputFile{Key: o.Key, Kind: string(o.Kind), Width: o.Width, Height: o.Height, Bitrate: o.Bitrate})
			}
			return d.MoveTo(upload.DestComplete)
		}
		return nil
	}))
	if err != nil {
		return outcome{err: err}
	}
	if d := u.Destination(upload.S3Bucket); d.Status == upload.DestComplete {
		s.metrics.TranscodeJob(metrics.TranscodeComplete)
		s.jobEnded(d, metrics.TranscodeComplete)
		log.Info("transcode complete", zap.String("jobId", d.JobID), zap.Strings("outputs", d.Outputs), zap.String("playback", d.Playback), zap.String("status", string(d.Status)))
	}
	return outcome{}
}

// jobEnded records how long the destination's transcode job ran, from
// its start to the poll that saw it end, when its start is known.
func (s *transcodeStep) jobEnded(d *upload.Destination, outcome string) {
	if !d.JobStartedAt.IsZero() {
		s.metrics.TranscodeDuration(outcome, s.now().Sub(d.JobStartedAt))
	}
}

// polledRecently drops a duplicate poll chain: a message that was sent
// twice would otherwise poll twice as often, forever. Polls schedule their
// successor before they record the poll, so a crash or a failed write
// leaves a duplicate chain, which this cuts, rather than no chain.
func polledRecently(d *upload.Destination, now time.Time, interval time.Duration) bool {
	return now.Sub(d.PolledAt) < interval/2
}
