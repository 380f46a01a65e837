package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"atomuploads/metrics"
	"atomuploads/upload"
	"atomuploads/youtube"
)

// observedStore is the Store with the status changes of the records the
// worker writes counted (metrics): Update and UpdateHolding compare the
// statuses of the record as read with the record as written. Every change
// of a destination's or an upload's status goes through one of them.
type observedStore struct {
	Store
	m *metrics.Metrics
}

func (s observedStore) Update(ctx context.Context, atomID, id string, fn func(*upload.Upload) error) (*upload.Upload, error) {
	return observeUpdate(s.m, fn, func(fn func(*upload.Upload) error) (*upload.Upload, error) {
		return s.Store.Update(ctx, atomID, id, fn)
	})
}

func (s observedStore) UpdateHolding(ctx context.Context, l upload.Lease, fn func(*upload.Upload) error) (*upload.Upload, error) {
	return observeUpdate(s.m, fn, func(fn func(*upload.Upload) error) (*upload.Upload, error) {
		return s.Store.UpdateHolding(ctx, l, fn)
	})
}

// observedRecords is recordStore with its status changes counted.
type observedRecords struct {
	recordStore
	m *metrics.Metrics
}

func (s observedRecords) Update(ctx context.Context, atomID, id string, fn func(*upload.Upload) error) (*upload.Upload, error) {
	return observeUpdate(s.m, fn, func(fn func(*upload.Upload) error) (*upload.Upload, error) {
		return s.recordStore.Update(ctx, atomID, id, fn)
	})
}

// statuses are a record's statuses: the upload's and each destination's
// (a record has one destination of each type, two at most).
type statuses struct {
	upload upload.Status
	n      int
	dests  [4]destStatus
}

type destStatus struct {
	typ    upload.DestinationType
	status upload.DestinationStatus
}

func statusesOf(u *upload.Upload) statuses {
	s := statuses{upload: u.Status}
	for _, d := range u.Destinations {
		if s.n < len(s.dests) {
			s.dests[s.n] = destStatus{d.Type, d.Status}
			s.n++
		}
	}
	return s
}

// of is the status of the destination of type t, "" when there is none.
func (s *statuses) of(t upload.DestinationType) upload.DestinationStatus {
	for _, d := range s.dests[:s.n] {
		if d.typ == t {
			return d.status
		}
	}
	return ""
}

// observeUpdate runs update with fn, remembering the statuses of the
// record each time fn is given one (a conflict runs it again on a fresh
// read): once the write succeeded, the last ones are what it changed.
func observeUpdate(m *metrics.Metrics, fn func(*upload.Upload) error, update func(func(*upload.Upload) error) (*upload.Upload, error)) (*upload.Upload, error) {
	var before statuses
	u, err := update(func(u *upload.Upload) error {
		before = statusesOf(u)
		return fn(u)
	})
	if err != nil || u == nil {
		return u, err
	}
	if u.Status != before.upload {
		m.UploadMoved(string(u.Status))
	}
	for _, d := range u.Destinations {
		if d.Status != before.of(d.Type) {
			m.DestinationMoved(string(d.Type), string(d.Status), u.UpdatedAt.Sub(u.CreatedAt))
		}
	}
	return u, nil
}

// youTubeError counts an error that YouTube answered, by its class.
func youTubeError(m *metrics.Metrics, err error) {
	var ye *youtube.Error
	if errors.As(err, &ye) {
		m.YouTubeError(ye.Class().String())
	}
}

// stillWorkingEvery is how often work that is still in hand says so.
var stillWorkingEvery = time.Minute

// stillWorking logs "still working" with the job's fields every
// stillWorkingEvery while a message's work runs (a long relay turn, a
// reassembly of many parts), until the returned stop is called: the log
// then shows that the work is alive without a line per chunk or part.
func stillWorking(log *zap.Logger, k Kind) (stop func()) {
	start := time.Now()
	var (
		mu      sync.Mutex
		stopped bool
		t       *time.Timer
	)
	tick := func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		log.Info("still working", zap.String("kind", string(k)), zap.Int64("durationMs", time.Since(start).Milliseconds()))
		t.Reset(stillWorkingEvery)
	}
	mu.Lock()
	t = time.AfterFunc(stillWorkingEvery, tick)
	mu.Unlock()
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}

// outcomeKey is the context key of a message's outcomeNote.
type outcomeKey struct{}

// outcomeNote is what became of a message's work, noted by the step
// functions that decide it (retried later, handed back, given up, …) in
// the message's context, for the metrics: a Result says only whether the
// message is done with.
type outcomeNote struct {
	mu      sync.Mutex
	outcome string
}

// outcomeRank orders outcomes by how much they say went wrong: the
// message's outcome is the worst of its steps'.
var outcomeRank = map[string]int{
	metrics.OutcomeIgnored: 0, metrics.OutcomeDone: 0, metrics.OutcomeRedelivered: 1,
	metrics.OutcomeHandedBack: 2, metrics.OutcomeRetried: 3, metrics.OutcomeDeadLettered: 4,
}

func withOutcome(ctx context.Context) (context.Context, *outcomeNote) {
	n := &outcomeNote{}
	return context.WithValue(ctx, outcomeKey{}, n), n
}

// noteOutcome notes an outcome of the message handled in ctx.
func noteOutcome(ctx context.Context, outcome string) {
	n, ok := ctx.Value(outcomeKey{}).(*outcomeNote)
	if !ok {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.outcome == "" || outcomeRank[outcome] > outcomeRank[n.outcome] {
		n.outcome = outcome
	}
}

// ignored notes that the message is not this service's work; it is done
// with.
func ignored(ctx context.Context) Result {
	noteOutcome(ctx, metrics.OutcomeIgnored)
	return Result{}
}

// of is the message's outcome: the worst noted, or what its Result says.
func (n *outcomeNote) of(ctx context.Context, res Result) string {
	o := metrics.OutcomeDone
	switch {
	case res.DeadLetter:
		o = metrics.OutcomeDeadLettered
	case res.Err != nil && ctx.Err() != nil:
		o = metrics.OutcomeHandedBack
	case res.Err != nil:
		o = metrics.OutcomeRetried
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.outcome != "" && outcomeRank[n.outcome] >= outcomeRank[o] {
		return n.outcome
	}
	return o
}
