package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"atomuploads/upload"
)

// Config configures the Dispatcher and its steps.
type Config struct {
	QueueURL              string        // where follow-up messages go: the queue the pool reads
	Bucket                string        // the uploads bucket; events of other buckets are ignored
	Owner                 string        // this instance, as lease owner
	LeaseTTL              time.Duration // leases are renewed at a third of this
	PollInterval          time.Duration // YouTube processing and transcode polls
	ReassemblyParallelism int           // UploadPartCopy calls at once
	MaxChunkBytes         int64         // largest YouTube PUT
	MaxTranscodeAttempts  int           // lost transcode jobs are restarted up to this many times in all
	MaxAttempts           int           // consecutive failed relay runs, polls or asset calls before giving up
	MaxReceiveCount       int           // the queue's redrive maxReceiveCount: the last try fails the upload
}

// Dispatcher handles the queue's messages: it parses each into a Task,
// reads the upload's record, and runs the one step of the task's kind, then
// the steps that step names as due next.
type Dispatcher struct {
	cfg   Config
	store recordStore
	log   *zap.Logger
	now   func() time.Time

	part        *partStep
	relay       *relayStep
	reassemble  *reassembleStep
	transcode   *transcodeStep
	youTubePoll *youTubePollStep
	asset       *assetStep
}

// step is one concern of an upload's work.
type step interface {
	run(ctx context.Context, j job) outcome
}

// job is a task in hand: the task, the message that carried it, and the
// upload's record as read when the message was taken.
type job struct {
	task   Task
	msg    Message
	upload *upload.Upload
	log    *zap.Logger
}

// redelivered reports whether the message came before: its first handler
// may have died holding a lease.
func (j job) redelivered() bool { return j.msg.ReceiveCount > 1 }

// outcome is what a step made of a job.
type outcome struct {
	// err means the work failed and the message must be tried again.
	err error
	// then are steps of the same upload that are due now; the Dispatcher
	// runs them side by side, in this process.
	then []Kind
	// record, when set, is the upload as the step left it, for the steps
	// of then.
	record *upload.Upload
}

// New returns the Dispatcher, the Handler of the worker pool.
func New(cfg Config, d Deps) *Dispatcher {
	sched := &scheduler{queue: d.Queue, queueURL: cfg.QueueURL}
	ls := &leases{store: d.Store, owner: cfg.Owner, ttl: cfg.LeaseTTL, log: d.Log}
	now := time.Now
	return &Dispatcher{
		cfg: cfg, store: d.Store, log: d.Log, now: now,
		part: &partStep{store: d.Store, s3: d.S3, bucket: cfg.Bucket, now: now},
		relay: &relayStep{
			store: d.Store, s3: d.S3, yt: d.YouTube, leases: ls, sched: sched, now: now,
			bucket: cfg.Bucket, maxChunkBytes: cfg.MaxChunkBytes, leaseTTL: cfg.LeaseTTL,
			pollInterval: cfg.PollInterval, maxAttempts: cfg.MaxAttempts,
		},
		reassemble: &reassembleStep{store: d.Store, s3: d.S3, leases: ls, now: now, bucket: cfg.Bucket, parallelism: cfg.ReassemblyParallelism},
		transcode: &transcodeStep{
			store: d.Store, tc: d.Transcoder, sched: sched, now: now, bucket: cfg.Bucket,
			pollInterval: cfg.PollInterval, maxAttempts: cfg.MaxAttempts, maxJobs: cfg.MaxTranscodeAttempts,
		},
		youTubePoll: &youTubePollStep{store: d.Store, yt: d.YouTube, sched: sched, now: now, pollInterval: cfg.PollInterval, maxAttempts: cfg.MaxAttempts},
		asset: &assetStep{
			store: d.Store, atom: d.AtomAPI, leases: ls, sched: sched, now: now,
			pollInterval: cfg.PollInterval, leaseTTL: cfg.LeaseTTL, maxAttempts: cfg.MaxAttempts,
		},
	}
}

// step returns the one step of a kind.
func (d *Dispatcher) step(k Kind) step {
	switch k {
	case KindPart:
		return d.part
	case KindRelay:
		return d.relay
	case KindReassemble:
		return d.reassemble
	case KindFull, KindTranscodePoll:
		return d.transcode
	case KindYouTubePoll:
		return d.youTubePoll
	case KindAsset:
		return d.asset
	}
	// parse admits only the kinds above; a new kind without a step is a
	// bug that the exhaustive lint and the dispatch test catch.
	panic(fmt.Sprintf("worker: no step for kind %q", k))
}

// Handle handles one message of the queue.
func (d *Dispatcher) Handle(ctx context.Context, m Message) Result {
	msg, err := parse(m.Body)
	switch {
	case errors.Is(err, errUnknownKind):
		// Perhaps a newer version's: not ours to drop, and never to loop.
		d.log.Error("dead-lettered a message of an unknown kind", zap.String("messageId", m.ID), zap.String("reason", err.Error()))
		return Result{DeadLetter: true}
	case err != nil:
		// Nothing a retry could fix: log it once and delete it.
		d.log.Error("ignored a message that is not an event", zap.String("messageId", m.ID), zap.String("reason", err.Error()))
		return Result{}
	}
	var res Result
	switch {
	case msg.test:
		d.log.Info("ignored s3:TestEvent", zap.String("messageId", m.ID))
	case msg.task != nil:
		res = d.task(ctx, m, *msg.task)
	default:
		for _, r := range msg.s3 {
			// On an error, retry the whole message: records done are idempotent.
			if res = d.record(ctx, m, r); res.Err != nil {
				break
			}
		}
	}
	if res.Err != nil && ctx.Err() == nil && d.cfg.MaxReceiveCount > 0 && m.ReceiveCount >= d.cfg.MaxReceiveCount {
		d.giveUp(ctx, m, msg, res.Err)
	}
	return res
}

// giveUp fails the uploads of a message on its last try: the redrive
// policy is about to move it to the dead-letter queue, and the upload must
// not look as if it were still being worked on.
func (d *Dispatcher) giveUp(ctx context.Context, m Message, msg message, cause error) {
	detail := cause.Error()
	if len(detail) > 300 {
		detail = detail[:300] + "…"
	}
	reason := fmt.Sprintf("the service gave up after %d attempts (%s); its message is in the dead-letter queue", m.ReceiveCount, detail)
	for _, k := range msg.uploads() {
		log := d.log.With(zap.String("messageId", m.ID), zap.String("atomId", k.AtomID), zap.String("uploadId", k.UploadID))
		_, err := d.store.Update(ctx, k.AtomID, k.UploadID, upload.Settled(d.now, func(u *upload.Upload) error {
			u.Fail(reason, d.now())
			return nil
		}))
		if err != nil {
			log.Error("could not mark the upload failed", zap.Error(err))
			continue
		}
		log.Error("upload failed", zap.String("status", string(upload.StatusFailed)), zap.String("error", reason))
	}
}

// record turns one S3 event record into a part or full task.
func (d *Dispatcher) record(ctx context.Context, m Message, r s3Record) Result {
	log := d.log.With(zap.String("messageId", m.ID), zap.String("bucket", r.S3.Bucket.Name))
	key, err := r.Key()
	if err != nil {
		log.Error("ignored an event with an undecodable key", zap.String("key", r.S3.Object.Key))
		return Result{}
	}
	log = log.With(zap.String("key", key))
	if r.EventSource != "aws:s3" || !strings.HasPrefix(r.EventName, "ObjectCreated:") {
		log.Warn("ignored an event that is not an S3 object creation", zap.String("eventName", r.EventName))
		return Result{}
	}
	if r.S3.Bucket.Name != d.cfg.Bucket {
		log.Warn("ignored an event of another bucket")
		return Result{}
	}
	k, err := upload.ParseKey(key)
	if err != nil {
		log.Warn("ignored a key outside the upload layout", zap.String("reason", upload.ErrorMessage(err)))
		return Result{}
	}
	t := Task{Kind: KindFull, AtomID: k.AtomID, UploadID: k.UploadID}
	if k.Kind == upload.KeyPart {
		t.Kind, t.Part = KindPart, k.Part
		log = log.With(zap.Int("part", k.Part))
	}
	return d.start(ctx, m, t, log)
}

// task handles one of the service's own messages.
func (d *Dispatcher) task(ctx context.Context, m Message, t Task) Result {
	log := d.log.With(zap.String("messageId", m.ID))
	return d.start(ctx, m, t, log)
}

// start reads the task's record and runs its step.
func (d *Dispatcher) start(ctx context.Context, m Message, t Task, log *zap.Logger) Result {
	log = log.With(zap.String("atomId", t.AtomID), zap.String("uploadId", t.UploadID))
	u, err := d.store.Get(ctx, t.AtomID, t.UploadID)
	switch {
	case upload.ErrorCode(err) == upload.ENOTFOUND:
		log.Warn("ignored an event of an unknown upload", zap.String("kind", string(t.Kind)))
		return Result{}
	case err != nil:
		return Result{Err: err}
	case (t.Kind == KindPart || t.Kind == KindFull) && (u.Status == upload.StatusCancelled || u.Status == upload.StatusFailed):
		log.Info("ignored an event of a finished upload", zap.String("status", string(u.Status)))
		return Result{}
	}
	return d.run(ctx, job{task: t, msg: m, upload: u, log: log})
}

// run runs the job's step, then the steps it names as due, side by side.
func (d *Dispatcher) run(ctx context.Context, j job) Result {
	out := d.step(j.task.Kind).run(ctx, j)
	if out.err != nil || len(out.then) == 0 {
		return Result{Err: out.err}
	}
	var g errgroup.Group
	for _, k := range out.then {
		next := j
		next.task = Task{Kind: k, AtomID: j.task.AtomID, UploadID: j.task.UploadID}
		if out.record != nil {
			next.upload = out.record
		}
		g.Go(func() (err error) {
			defer recoverInto(&err, d.log, "step "+string(k), zap.String("atomId", next.task.AtomID), zap.String("uploadId", next.task.UploadID))
			return d.run(ctx, next).Err
		})
	}
	if err := g.Wait(); err != nil {
		// The work done is durable; the retried message finds it.
		return Result{Err: err}
	}
	return Result{}
}
