package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"atomuploads/metrics"
	"atomuploads/retry"
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
	MaxAttempts           int           // attempts in a row without progress before a piece of work is given up
	MaxReceiveCount       int           // the queue's redrive maxReceiveCount (without a dead-letter reader, its last try fails the upload)
	DeadLetterURL         string        // where given-up work goes (empty: it is failed and deleted)
	RetryBackoff          time.Duration // first pause before a failed attempt's retry; it doubles, up to MaxRetryDelay
	MaxRetryDelay         time.Duration // longest such pause (at most SQS's 15 minutes)
	Park                  ParkConfig    // how YouTube's quota, upload limit and credential refusals park the relay
	RequirePartChecksums  bool          // refuse parts sent without x-amz-checksum-sha256
	// Now is the clock; time.Now when nil (tests move it forward).
	Now func() time.Time
}

// Dispatcher handles the queue's messages: it parses each into a Task,
// reads the upload's record, and runs the one step of the task's kind, then
// the steps that step names as due next.
type Dispatcher struct {
	cfg   Config
	store interface {
		recordStore
		Touch(ctx context.Context, atomID, id string) error
	}
	log     *zap.Logger
	metrics *metrics.Metrics
	now     func() time.Time
	sched   *scheduler
	retry   retry.Policy // pauses before the retries of failed attempts

	part        *partStep
	relay       *relayStep
	reassemble  *reassembleStep
	transcode   *transcodeStep
	youTubePoll *youTubePollStep
	asset       *assetStep
	creds       *credentialsGate
}

// YouTubeCredentialsRefused reports since when YouTube has refused the
// service's credentials, if it does (for the health check).
func (d *Dispatcher) YouTubeCredentialsRefused() (time.Time, bool) { return d.creds.Broken() }

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
	// base is log without the task's own fields (its part), for the
	// steps the task's step names as due next.
	base *zap.Logger
	// fresh: the work comes straight from an S3 event received for the
	// first time. Only such work may be dropped when another worker holds
	// its lease (that worker sees the part); the service's own messages
	// are continuations nobody else may be driving, and are never dropped.
	fresh bool
}

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
	if d.Metrics != nil {
		d.Store = observedStore{Store: d.Store, m: d.Metrics}
	}
	m := d.Metrics
	sched := &scheduler{queue: d.Queue, queueURL: cfg.QueueURL, deadLetterURL: cfg.DeadLetterURL}
	ls := &leases{store: d.Store, owner: cfg.Owner, ttl: cfg.LeaseTTL, log: d.Log, metrics: m}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	if cfg.MaxRetryDelay <= 0 || cfg.MaxRetryDelay > maxDelay {
		cfg.MaxRetryDelay = maxDelay
	}
	if cfg.Park.MaxHop <= 0 || cfg.Park.MaxHop > maxDelay {
		cfg.Park.MaxHop = maxDelay
	}
	creds := &credentialsGate{retry: cfg.Park.CredentialsRetry, log: d.Log}
	return &Dispatcher{
		cfg: cfg, store: d.Store, log: d.Log, metrics: m, now: now, sched: sched,
		retry: retry.Policy{Base: cfg.RetryBackoff, Cap: cfg.MaxRetryDelay},
		part:  &partStep{store: d.Store, s3: d.S3, bucket: cfg.Bucket, now: now, requireChecksums: cfg.RequirePartChecksums},
		relay: &relayStep{
			store: d.Store, s3: d.S3, yt: d.YouTube, leases: ls, sched: sched, now: now, creds: creds, park: cfg.Park,
			bucket: cfg.Bucket, maxChunkBytes: cfg.MaxChunkBytes, leaseTTL: cfg.LeaseTTL,
			pollInterval: cfg.PollInterval, metrics: m,
		},
		reassemble: &reassembleStep{store: d.Store, s3: d.S3, leases: ls, now: now, bucket: cfg.Bucket, parallelism: cfg.ReassemblyParallelism, metrics: m},
		transcode: &transcodeStep{
			store: d.Store, tc: d.Transcoder, sched: sched, now: now, bucket: cfg.Bucket,
			pollInterval: cfg.PollInterval, maxJobs: cfg.MaxTranscodeAttempts, metrics: m,
		},
		youTubePoll: &youTubePollStep{store: d.Store, yt: d.YouTube, sched: sched, now: now, pollInterval: cfg.PollInterval, creds: creds, park: cfg.Park, metrics: m},
		creds:       creds,
		asset:       &assetStep{store: d.Store, atom: d.AtomAPI, leases: ls, sched: sched, now: now, leaseTTL: cfg.LeaseTTL, metrics: m},
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
	start := time.Now()
	ctx, note := withOutcome(ctx)
	msg, err := parse(m.Body)
	res := d.handle(ctx, m, msg, err)
	d.metrics.MessageHandled(msg.kind(), note.of(ctx, res), time.Since(start))
	return res
}

func (d *Dispatcher) handle(ctx context.Context, m Message, msg message, err error) Result {
	switch {
	case errors.Is(err, errUnknownKind):
		// Perhaps a newer version's: not ours to drop, and never to loop.
		d.log.Error("dead-lettered a message of an unknown kind", zap.String("messageId", m.ID), zap.String("reason", err.Error()))
		return Result{DeadLetter: true}
	case err != nil:
		// Nothing a retry could fix: log it once and delete it.
		d.log.Error("ignored a message that is not an event", zap.String("messageId", m.ID), zap.String("reason", err.Error()))
		return ignored(ctx)
	}
	var res Result
	switch {
	case msg.test:
		d.log.Info("ignored s3:TestEvent", zap.String("messageId", m.ID))
		res = ignored(ctx)
	case msg.task != nil:
		res = d.start(ctx, m, *msg.task, d.log.With(zap.String("messageId", m.ID)), false)
	default:
		for _, r := range msg.s3 {
			// On an error, retry the whole message: records done are idempotent.
			if res = d.record(ctx, m, r); res.Err != nil {
				break
			}
		}
	}
	if res.Err != nil && ctx.Err() == nil && d.cfg.DeadLetterURL == "" && d.cfg.MaxReceiveCount > 0 && m.ReceiveCount >= d.cfg.MaxReceiveCount {
		d.lastTry(ctx, m, msg, res.Err)
	}
	return res
}

// lastTry fails the uploads of a message on its last try when no
// dead-letter reader will: the redrive policy is about to move it to the
// dead-letter queue, and the upload must not look as if it were still
// being worked on.
func (d *Dispatcher) lastTry(ctx context.Context, m Message, msg message, err error) {
	reason := fmt.Sprintf("gave up after %d attempts without progress: %s", m.ReceiveCount, cause(err))
	for _, t := range msg.tasks() {
		log := d.log.With(zap.String("messageId", m.ID), zap.String("atomId", t.AtomID), zap.String("uploadId", t.UploadID))
		if _, err := d.store.Update(ctx, t.AtomID, t.UploadID, giveUpChange(t.Kind, reason, d.now)); err != nil {
			log.Error("could not mark the upload failed", zap.Error(err))
			continue
		}
		log.Error("gave up", zap.String("kind", string(t.Kind)), zap.String("error", reason))
	}
}

// record turns one S3 event record into a part or full task.
func (d *Dispatcher) record(ctx context.Context, m Message, r s3Record) Result {
	log := d.log.With(zap.String("messageId", m.ID), zap.String("bucket", r.S3.Bucket.Name))
	key, err := r.Key()
	if err != nil {
		log.Error("ignored an event with an undecodable key", zap.String("key", r.S3.Object.Key))
		return ignored(ctx)
	}
	log = log.With(zap.String("key", key))
	if r.EventSource != "aws:s3" || !strings.HasPrefix(r.EventName, "ObjectCreated:") {
		log.Warn("ignored an event that is not an S3 object creation", zap.String("eventName", r.EventName))
		return ignored(ctx)
	}
	if r.S3.Bucket.Name != d.cfg.Bucket {
		log.Warn("ignored an event of another bucket")
		return ignored(ctx)
	}
	t, ok := taskOfKey(key)
	if !ok {
		log.Warn("ignored a key outside the upload layout", zap.String("reason", upload.ErrorMessage(parseKeyErr(key))))
		return ignored(ctx)
	}
	t.Created = r.created()
	return d.start(ctx, m, t, log, true)
}

// start reads the task's record and runs its step; a message that came
// again is first moved onto a fresh one (rehome).
func (d *Dispatcher) start(ctx context.Context, m Message, t Task, log *zap.Logger, event bool) Result {
	log = log.With(zap.String("atomId", t.AtomID), zap.String("uploadId", t.UploadID))
	base := log
	if t.Kind == KindPart {
		log = log.With(zap.Int("part", t.Part))
	}
	u, err := d.store.Get(ctx, t.AtomID, t.UploadID)
	switch {
	case upload.ErrorCode(err) == upload.ENOTFOUND:
		log.Warn("ignored an event of an unknown upload", zap.String("kind", string(t.Kind)))
		return ignored(ctx)
	case err != nil:
		// The table did not answer: a failed attempt like any other,
		// retried on a message of its own after the retry policy's pause
		// (left to SQS, a minute's outage would use up its receives).
		// Earlier receives are not counted: without the record nobody can
		// tell whether they progressed, and the give-up they would lead
		// to could not be recorded anyway.
		return d.retryLater(ctx, job{task: t, msg: m, log: log, base: base, fresh: event && m.ReceiveCount <= 1}, err)
	case (t.Kind == KindPart || t.Kind == KindFull) && (u.Status == upload.StatusCancelled || u.Status == upload.StatusFailed || u.Status == upload.StatusExpired):
		// A part that arrives after its upload expired is one of these.
		log.Info("ignored an event of a finished upload", zap.String("status", string(u.Status)))
		return ignored(ctx)
	}
	j := job{task: t, msg: m, upload: u, log: log, base: base, fresh: event && m.ReceiveCount <= 1}
	defer stillWorking(log, t.Kind)()
	if m.ReceiveCount > 1 {
		return d.rehome(ctx, j)
	}
	return d.run(ctx, j)
}

// run runs the job's step, then the steps it names as due, side by side.
// A step that fails is retried on a message of its own (retryLater); one
// stopped by the shutdown is handed over on one (handBack). The job's
// message is done once each step has succeeded or has its message.
func (d *Dispatcher) run(ctx context.Context, j job) Result {
	out := d.step(j.task.Kind).run(ctx, j)
	if out.err != nil {
		if ctx.Err() != nil {
			return d.handBack(ctx, j)
		}
		return d.retryLater(ctx, j, out.err)
	}
	if len(out.then) == 0 {
		return Result{}
	}
	var g errgroup.Group
	for _, k := range out.then {
		next := j
		next.task = Task{Kind: k, AtomID: j.task.AtomID, UploadID: j.task.UploadID}
		if out.record != nil {
			next.upload = out.record
		}
		next.log = j.base.With(zap.String("step", string(k)))
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

// continuation is the job's task on a fresh message: attempts so far
// without progress, and the upload's progress now as its mark.
func (d *Dispatcher) continuation(j job, fresh *upload.Upload, failures int, why string) Task {
	t := j.task
	t.Attempt, t.Cause = failures, why
	if fresh != nil { // unread: the task keeps the mark it has
		t.Mark, t.Marked = markOf(fresh, t.Kind), true
	}
	return t
}

// progressed reads the upload again and reports whether it moved past the
// job's record (or its message's mark) as far as the job's kind goes.
func (d *Dispatcher) progressed(ctx context.Context, j job) (*upload.Upload, bool) {
	if j.upload == nil {
		return nil, false // the job's record could not be read: nothing to compare
	}
	fresh, err := d.store.Get(ctx, j.task.AtomID, j.task.UploadID)
	if err != nil {
		return j.upload, false
	}
	before := markOf(j.upload, j.task.Kind)
	if j.task.Marked {
		before = min(before, j.task.Mark)
	}
	return fresh, markOf(fresh, j.task.Kind) > before
}

// retryLater puts a failed attempt's work on a message of its own, after
// the retry policy's pause. Attempts that made progress do not count;
// after MaxAttempts in a row that made none, the work is given up.
func (d *Dispatcher) retryLater(ctx context.Context, j job, err error) Result {
	fresh, progressed := d.progressed(ctx, j)
	failures := j.task.Attempt + 1
	if progressed {
		failures = 0
	}
	why := cause(err)
	if failures >= d.cfg.MaxAttempts {
		return d.giveUp(ctx, j, fresh, failures, why)
	}
	t := d.continuation(j, fresh, failures, why)
	delay := d.retry.Delay(max(failures, 1))
	if serr := d.sched.schedule(ctx, t, delay); serr != nil {
		return Result{Err: errors.Join(err, serr)}
	}
	// The upload has a driver until the message is due: keep it out of
	// the reconciler's sight till then.
	if terr := d.store.Touch(ctx, j.task.AtomID, j.task.UploadID); terr != nil {
		j.log.Warn("touch upload", zap.Error(terr))
	}
	j.log.Warn("attempt failed; it is retried later", zap.String("kind", string(j.task.Kind)), zap.Int("failures", failures),
		zap.Bool("progressed", progressed), zap.Duration("retryIn", delay), zap.String("cause", why), zap.Error(err))
	noteOutcome(ctx, metrics.OutcomeRetried)
	return Result{}
}

// handBack hands the work of a job stopped by the shutdown over to any
// instance at once, on a fresh message: a hand-back is not a failure, and
// costs the work nothing.
func (d *Dispatcher) handBack(ctx context.Context, j job) Result {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	fresh, progressed := d.progressed(bctx, j)
	failures := j.task.Attempt
	if progressed {
		failures = 0
	}
	t := d.continuation(j, fresh, failures, j.task.Cause)
	if err := d.sched.schedule(bctx, t, 0); err != nil {
		return Result{Err: err} // the pool hands the message itself back
	}
	j.log.Info("handed back", zap.String("kind", string(j.task.Kind)), zap.Int("failures", failures), zap.Bool("progressed", progressed))
	noteOutcome(ctx, metrics.OutcomeHandedBack)
	return Result{}
}

// rehome moves a message that came again onto a fresh one, without doing
// its work: its last handler stopped before it finished (killed, out of
// memory, or its message's visibility ran out), which counts as an attempt
// unless the work progressed since the message was sent. The fresh message
// starts SQS's receive count again, so interruptions of work that keeps
// progressing never send it to the dead-letter queue.
func (d *Dispatcher) rehome(ctx context.Context, j job) Result {
	now := markOf(j.upload, j.task.Kind)
	progressed := j.task.Marked && now > j.task.Mark
	failures := j.task.Attempt + j.msg.ReceiveCount - 1
	if progressed {
		failures = 0
	}
	why := j.task.Cause
	if why == "" {
		why = "the worker handling it stopped before it finished (killed, or out of memory)"
	}
	if failures >= d.cfg.MaxAttempts {
		return d.giveUp(ctx, j, j.upload, failures, why)
	}
	t := d.continuation(j, j.upload, failures, j.task.Cause)
	if err := d.sched.schedule(ctx, t, 0); err != nil {
		return Result{Err: err}
	}
	j.log.Info("continuing on a fresh message", zap.String("kind", string(j.task.Kind)), zap.Int("receiveCount", j.msg.ReceiveCount),
		zap.Int("failures", failures), zap.Bool("progressed", progressed))
	noteOutcome(ctx, metrics.OutcomeRedelivered)
	return Result{}
}

// giveUp ends work that made no progress for MaxAttempts attempts in a
// row: the record says why, in domain words (POST …/retry starts it
// again), and the work's message goes to the dead-letter queue (when there
// is one) marked gaveUp: the service's reader logs it once and deletes it,
// and until then ops see it there.
func (d *Dispatcher) giveUp(ctx context.Context, j job, fresh *upload.Upload, failures int, why string) Result {
	reason := fmt.Sprintf("gave up after %d attempts without progress: %s", failures, why)
	if _, err := d.store.Update(ctx, j.task.AtomID, j.task.UploadID, giveUpChange(j.task.Kind, reason, d.now)); err != nil {
		return Result{Err: err}
	}
	j.log.Error("gave up", zap.String("kind", string(j.task.Kind)), zap.Int("failures", failures), zap.String("error", reason))
	if d.cfg.DeadLetterURL != "" {
		t := d.continuation(j, fresh, failures, why)
		t.GaveUp = true // recorded already: the reader only keeps it for people
		if err := d.sched.deadLetter(ctx, t); err != nil {
			j.log.Warn("could not put the given-up work in the dead-letter queue", zap.Error(err))
		}
	}
	noteOutcome(ctx, metrics.OutcomeDeadLettered)
	return Result{}
}
