package worker

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	_ "time/tzdata" // YouTube's quota day is Pacific time, wherever the service runs

	"go.uber.org/zap"

	"atomuploads/upload"
)

// pacific is the time zone of YouTube's quota day: the daily quota resets
// at midnight Pacific time.
var pacific = mustLoad("America/Los_Angeles")

func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic("worker: time zone " + name + ": " + err.Error()) // embedded by time/tzdata: cannot fail
	}
	return loc
}

// quotaDay names the Pacific day of t, the unit of YouTube's quota.
func quotaDay(t time.Time) string { return t.In(pacific).Format("2006-01-02") }

// nextQuotaReset is the first midnight Pacific time after t.
func nextQuotaReset(t time.Time) time.Time {
	p := t.In(pacific)
	return time.Date(p.Year(), p.Month(), p.Day()+1, 0, 0, 0, 0, pacific)
}

// ParkConfig says how YouTube's refusals park the relay.
type ParkConfig struct {
	// DailyUploadLimit is how many YouTube sessions the service starts per
	// Pacific day, across all instances; 0 is no limit. An upload whose
	// session would exceed it waits for the next day instead of spending
	// the call.
	DailyUploadLimit int
	// UploadLimitRetry is how often a relay parked by uploadLimitExceeded
	// tries again, and UploadLimitHorizon how long it waits in all before
	// the destination fails.
	UploadLimitRetry   time.Duration
	UploadLimitHorizon time.Duration
	// CredentialsRetry is how often relays parked by refused credentials
	// try again (a restart with fixed credentials resumes them then).
	CredentialsRetry time.Duration
	// Jitter spreads the resumption of parked relays, so that they do not
	// all call YouTube at the instant the quota resets.
	Jitter time.Duration
	// MaxHop is the longest delay of one follow-up message while parked
	// (SQS's 15 minutes at most); the chain of them is what resumes.
	MaxHop time.Duration
}

// parkError is a refusal that parks the relay: the destination waits for
// waitingFor until resumeAt, and nothing is lost meanwhile.
type parkError struct {
	waitingFor string
	resumeAt   time.Time
	cause      error
}

func (e *parkError) Error() string {
	return "waiting for " + e.waitingFor + " until " + e.resumeAt.Format(time.RFC3339) + ": " + e.cause.Error()
}

func (e *parkError) Unwrap() error { return e.cause }

// credentialsGate is the process's view of its YouTube credentials: once
// YouTube (or its token endpoint) refuses them, every relay of the process
// parks without calling YouTube until the retry interval has passed, and
// the refusal is logged once an interval, loudly: only a fixed secret
// makes them all go on.
type credentialsGate struct {
	retry time.Duration
	log   *zap.Logger

	mu      sync.Mutex
	until   time.Time // parked until
	since   time.Time // refused since; zero when the credentials work
	lastLog time.Time
}

// refused records a refusal at now and returns when relays resume.
func (g *credentialsGate) refused(now time.Time, cause error) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.since.IsZero() {
		g.since = now
	}
	if now.After(g.until) {
		g.until = now.Add(g.retry)
	}
	if now.Sub(g.lastLog) >= g.retry {
		g.lastLog = now
		g.log.Error("YouTube refuses the service's credentials: every YouTube relay is parked until they are fixed",
			zap.Time("since", g.since), zap.Time("resumeAt", g.until), zap.String("cause", cause.Error()))
	}
	return g.until
}

// parkedUntil reports whether relays are parked for the credentials at
// now, and until when.
func (g *credentialsGate) parkedUntil(now time.Time) (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.until, !g.since.IsZero() && now.Before(g.until)
}

// ok records that YouTube took the credentials.
func (g *credentialsGate) ok() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.since, g.until = time.Time{}, time.Time{}
}

// Broken reports since when YouTube refuses the credentials, if it does.
func (g *credentialsGate) Broken() (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.since, !g.since.IsZero()
}

// jitter is a random duration up to max.
func jitter(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	return rand.N(max)
}

// hop is the delay of the next follow-up message of work parked until
// resumeAt.
func hop(now, resumeAt time.Time, maxHop time.Duration) time.Duration {
	return min(max(resumeAt.Sub(now), 0), maxHop)
}

// stillParked reports whether the destination waits at now.
func stillParked(d *upload.Destination, now time.Time) bool { return d != nil && d.Parked(now) }

// parkYouTube parks the YouTube destination of j's upload until resumeAt,
// if it is not parked already and eligible says so of it, and reports
// whether this call parked it: that call starts the chain of hops.
func parkYouTube(ctx context.Context, store recordStore, now func() time.Time, j job, waitingFor string, resumeAt time.Time,
	eligible func(*upload.Destination) bool,
) (bool, error) {
	at := now()
	parked := false
	_, err := store.Update(ctx, j.task.AtomID, j.task.UploadID, upload.Settled(now, func(u *upload.Upload) error {
		parked = false
		if d := u.Destination(upload.YouTube); d != nil && !d.Status.Terminal() && eligible(d) && !d.Parked(at) {
			d.Park(waitingFor, resumeAt, at)
			parked = true
		}
		return nil
	}))
	return parked, err
}

// sendHop sends t, flagged as a hop, as the next link of the chain that
// drives parked work: due at resumeAt, or after the longest hop when that
// is further off, and keeps the upload out of the reconciler's sight
// meanwhile.
func sendHop(ctx context.Context, sched *scheduler, store toucher, log *zap.Logger, t Task, now, resumeAt time.Time, maxHop time.Duration) error {
	t.Hop = true
	if err := sched.schedule(ctx, t, hop(now, resumeAt, maxHop)); err != nil {
		return err
	}
	if err := store.Touch(ctx, t.AtomID, t.UploadID); err != nil {
		log.Warn("touch upload", zap.Error(err))
	}
	return nil
}

// toucher marks an upload as driven (store.Touch).
type toucher interface {
	Touch(ctx context.Context, atomID, id string) error
}
