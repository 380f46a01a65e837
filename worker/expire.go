package worker

import (
	"context"
	"time"

	"go.uber.org/zap"

	"atomuploads/upload"
)

// expiryStore is what the expiry needs of the table.
type expiryStore interface {
	Get(ctx context.Context, atomID, id string) (*upload.Upload, error)
	Quiet(ctx context.Context, before time.Time, fn func(atomID, id string) error) error
	UpdateIfNoPart(ctx context.Context, atomID, id string, fn func(*upload.Upload) error) (*upload.Upload, error)
}

// SessionCanceller aborts a YouTube resumable session (DELETE on its URI);
// a session YouTube no longer knows is not an error.
type SessionCanceller interface {
	Cancel(ctx context.Context, session string) error
}

// expiryPasses is how many passes over the live uploads the expiry makes
// in abandonAfter (at most one a sweep): an upload expires at most
// abandonAfter/expiryPasses late, and the passes cost a read of each live
// upload expiryPasses times in abandonAfter.
const expiryPasses = 24

// expirer ends abandoned uploads: each pass it reads every live upload
// (the sparse index of live uploads; the finished ones cost nothing) and
// expires the ones whose parts stopped arriving abandonAfter ago
// (upload.Abandoned, which goes by the record's own time of the last part,
// not by the index's progressAt, which the reconciler moves).
//
// An upload expires in two idempotent steps, so that a pass cut short by a
// crash loses nothing: its YouTube session is cancelled first (best
// effort: an abandoned upload whose YouTube credentials are refused must
// still expire), then the record is written expired on condition that no
// part completed since it was read. A part that wins that race keeps the
// upload alive; its relay finds the session gone and starts a new one.
type expirer struct {
	store expiryStore
	yt    SessionCanceller // nil without YouTube
	log   *zap.Logger
	now   func() time.Time
	after time.Duration
	every time.Duration // a pass at most this often

	lastPass time.Time // of this instance; the next holder of the job starts with a pass
}

func newExpirer(st expiryStore, yt SessionCanceller, log *zap.Logger, after time.Duration) *expirer {
	return &expirer{store: st, yt: yt, log: log, now: time.Now, after: after, every: after / expiryPasses}
}

func (x *expirer) name() string { return "expiry" }

func (x *expirer) sweep(ctx context.Context) error {
	now := x.now()
	if !x.lastPass.IsZero() && now.Sub(x.lastPass) < x.every {
		return nil
	}
	// Every live upload: an abandoned one may have been touched a moment
	// ago (the reconciler's look, a parked relay's hop).
	if err := x.store.Quiet(ctx, now, func(atomID, id string) error { return x.look(ctx, atomID, id) }); err != nil {
		return err
	}
	x.lastPass = now
	return nil
}

// look expires one live upload if it is abandoned.
func (x *expirer) look(ctx context.Context, atomID, id string) error {
	u, err := x.store.Get(ctx, atomID, id)
	switch {
	case upload.ErrorCode(err) == upload.ENOTFOUND:
		return nil // expired from the table meanwhile
	case err != nil:
		return err
	case !u.Abandoned(x.now(), x.after):
		return nil
	}
	log := x.log.With(zap.String("atomId", atomID), zap.String("uploadId", id))
	cancelled := false
	if d := u.Destination(upload.YouTube); d != nil && d.Session != "" && d.VideoID == "" && x.yt != nil {
		if err := x.yt.Cancel(ctx, d.Session); err != nil {
			if ctx.Err() != nil {
				return err
			}
			log.Warn("could not cancel the YouTube session of an abandoned upload; YouTube drops it in time",
				zap.String("destination", string(upload.YouTube)), zap.Error(err))
		} else {
			cancelled = true
		}
	}
	after, err := x.store.UpdateIfNoPart(ctx, atomID, id, func(u *upload.Upload) error { return u.Expire(x.now(), x.after) })
	switch {
	case upload.ErrorCode(err) == upload.ECONFLICT || upload.ErrorCode(err) == upload.ENOTFOUND:
		// A part arrived (or the upload changed) meanwhile: not abandoned.
		log.Info("not expired: the upload moved on while it was being expired", zap.Bool("youtubeSessionCancelled", cancelled),
			zap.String("reason", upload.ErrorMessage(err)))
		return nil
	case err != nil:
		return err
	}
	log.Info("upload expired", zap.String("status", string(after.Status)), zap.String("error", after.Error),
		zap.Int("complete", len(after.CompletedParts())), zap.Int("parts", after.PartCount()),
		zap.Time("lastHeardOf", after.QuietSince()), zap.Bool("youtubeSessionCancelled", cancelled))
	return nil
}
