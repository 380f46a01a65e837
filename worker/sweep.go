package worker

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"go.uber.org/zap"

	"atomuploads/metrics"
	"atomuploads/upload"
)

// sweepStore is what the sweeps' leases need of the table.
type sweepStore interface {
	AcquireSweep(ctx context.Context, l upload.Lease) error
	Renew(ctx context.Context, l upload.Lease) error
}

// sweepJob is one periodic job of the Sweeper.
type sweepJob interface {
	// name names the job and its lease.
	name() string
	// sweep does one round of the job. It must be idempotent: a round cut
	// short by a crash is done again by the next holder.
	sweep(ctx context.Context) error
}

// SweepConfig configures the Sweeper.
type SweepConfig struct {
	Owner    string        // this instance, as the sweeps' lease owner
	Interval time.Duration // how often each job runs, across all instances
	LeaseTTL time.Duration // the sweep leases' TTL while a round runs

	QueueURL      string        // where re-driven work goes
	DeadLetterURL string        // the dead-letter queue to read; empty: no reader
	StrandedAfter time.Duration // how long an upload may go without progress before it is re-driven
	MaxChunkBytes int64         // the relay's largest chunk (what "a part is ready to relay" means)
	// What this service does; work for what it does not is never due.
	YouTube, Transcode, AtomAPI bool

	Bucket string // the uploads bucket, whose parts the clean-up deletes
	// AbandonAfter is how long an upload may go without a part before it
	// expires (0: never); DeletePartsAfter how long after an upload ended
	// its parts are deleted (0: never).
	AbandonAfter, DeletePartsAfter time.Duration
	// Metrics, when set, adds the census of live uploads to the jobs, and
	// counts the status changes the dead-letter reader makes.
	Metrics *metrics.Metrics
}

// SweepStore is what the sweeps need of the table.
type SweepStore interface {
	sweepStore
	reconcileStore
	recordStore
	expiryStore
	cleanupStore
}

// Sweeper runs periodic jobs over the whole table (the reconciler, the
// dead-letter reader, the expiry, the clean-up), each under a lease of its own, so that one instance
// at a time runs each job, about once an interval however many instances
// there are. The instance that ran a round keeps the job's lease until the
// next round is due, and so keeps the job while it lives; when it dies, the
// lease expires and another instance takes the job on.
type Sweeper struct {
	store sweepStore
	jobs  []sweepJob
	cfg   SweepConfig
	log   *zap.Logger

	stop context.CancelFunc
	done sync.WaitGroup
}

// NewSweeper returns the Sweeper of the service's periodic jobs: the
// reconciler; the dead-letter reader when there is a dead-letter queue;
// the census of live uploads when there are metrics; the expiry of
// abandoned uploads when cfg.AbandonAfter is set (it cancels their YouTube
// sessions through yt, which may be nil); the clean-up of the parts of
// uploads that are over when cfg.DeletePartsAfter is set and there is an
// s3.
func NewSweeper(cfg SweepConfig, store SweepStore, queue SQSAPI, s3 SweepS3, yt SessionCanceller, log *zap.Logger) *Sweeper {
	sched := &scheduler{queue: queue, queueURL: cfg.QueueURL, deadLetterURL: cfg.DeadLetterURL}
	jobs := []sweepJob{&reconciler{
		store: store, sched: sched, log: log, now: time.Now,
		strandedAfter: cfg.StrandedAfter, maxChunkBytes: cfg.MaxChunkBytes,
		youtube: cfg.YouTube, transcode: cfg.Transcode, atomAPI: cfg.AtomAPI,
	}}
	if cfg.DeadLetterURL != "" {
		var records recordStore = store
		if cfg.Metrics != nil {
			records = observedRecords{recordStore: store, m: cfg.Metrics}
		}
		jobs = append(jobs, &deadLetters{queue: queue, url: cfg.DeadLetterURL, store: records, log: log, now: time.Now})
	}
	if cfg.Metrics != nil {
		c := &census{store: store, metrics: cfg.Metrics, log: log, now: time.Now, queues: map[string]string{metrics.QueueMain: cfg.QueueURL}}
		if cfg.DeadLetterURL != "" {
			c.queues[metrics.QueueDeadLetter] = cfg.DeadLetterURL
		}
		if qa, ok := queue.(queueAttributes); ok {
			c.queue = qa
		}
		jobs = append(jobs, c)
	}
	if cfg.AbandonAfter > 0 {
		jobs = append(jobs, newExpirer(store, yt, log, cfg.AbandonAfter))
	}
	if cfg.DeletePartsAfter > 0 && s3 != nil {
		jobs = append(jobs, &cleaner{store: store, s3: s3, bucket: cfg.Bucket, log: log, now: time.Now, after: cfg.DeletePartsAfter})
	}
	return &Sweeper{store: store, jobs: jobs, cfg: cfg, log: log}
}

// Start runs the jobs in the background and returns at once.
func (s *Sweeper) Start(ctx context.Context) error {
	if s.stop != nil {
		return errors.New("sweeper: started twice")
	}
	ctx, s.stop = context.WithCancel(context.WithoutCancel(ctx))
	for _, j := range s.jobs {
		s.done.Add(1)
		go func() {
			defer s.done.Done()
			defer recoverTo(s.log, "sweep "+j.name())
			s.loop(ctx, j)
		}()
	}
	return nil
}

// Stop ends the jobs: a round in progress is cut short (the next holder
// does it again) and its lease expires by itself.
func (s *Sweeper) Stop(ctx context.Context) error {
	if s.stop == nil {
		return nil
	}
	s.stop()
	done := make(chan struct{})
	go func() { s.done.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

// loop tries the job's lease about once an interval (jittered, so that
// instances started together spread out) and runs a round when it gets it.
func (s *Sweeper) loop(ctx context.Context, j sweepJob) {
	for {
		wait := s.cfg.Interval/2 + rand.N(s.cfg.Interval/2+1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		s.round(ctx, j)
	}
}

// round runs one round of the job under its lease, renewing it while the
// round runs, then keeps the lease until the next round is due.
func (s *Sweeper) round(ctx context.Context, j sweepJob) {
	lease := upload.SweepLease(j.name(), s.cfg.Owner, s.cfg.LeaseTTL)
	err := s.store.AcquireSweep(ctx, lease)
	if errors.Is(err, upload.ErrLeaseHeld) {
		if e, ok := j.(interface{ elsewhere() }); ok {
			e.elsewhere()
		}
		return // another instance has the job
	}
	if err != nil {
		s.log.Warn("acquire a sweep lease", zap.String("sweep", j.name()), zap.Error(err))
		return
	}
	roundCtx, lose := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer recoverTo(s.log, "sweep lease renewer", zap.String("sweep", j.name()))
		renewLease(roundCtx, lose, s.store, lease, s.log)
	}()
	start := time.Now()
	err = j.sweep(roundCtx)
	lose(nil)
	wg.Wait()
	if err != nil && ctx.Err() == nil {
		s.log.Warn("sweep failed; the next round tries again", zap.String("sweep", j.name()), zap.Error(err))
	}
	s.log.Debug("swept", zap.String("sweep", j.name()), zap.Int64("durationMs", time.Since(start).Milliseconds()))
	// Keep the job until the next round is due.
	keep := lease
	keep.TTL = s.cfg.Interval
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	if err := s.store.Renew(bctx, keep); err != nil && !errors.Is(err, upload.ErrLeaseLost) {
		s.log.Warn("keep a sweep lease", zap.String("sweep", j.name()), zap.Error(err))
	}
}
