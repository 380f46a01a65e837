package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"atomuploads/metrics"
	"atomuploads/retry"
	"atomuploads/upload"
	"atomuploads/youtube"
)

// Retry curves of the relay.
var (
	// relayStepRetry paces a turn's own retries of a failed YouTube or S3
	// call before the turn hands over to a later relay message.
	relayStepRetry = retry.Policy{Base: 500 * time.Millisecond, Cap: 8 * time.Second, Attempts: 6}
)

// relayStore is what the relay needs of the table.
type relayStore interface {
	recordStore
	holdingStore
	partReleaser
	Touch(ctx context.Context, atomID, id string) error
	Admit(ctx context.Context, counter string, limit int) (bool, error)
	Refund(ctx context.Context, counter string) error
	pinStore
}

// relayStep streams the upload's parts to its YouTube resumable session,
// in order, for as long as the next bytes are in S3. One writer at a time:
// a per-upload lock in this process and the youtube lease in the table.
//
// No lost wake-up: a turn that finds the next part missing releases the
// lease only while that part is still missing (held.releaseIfMissing), and
// lets go of the in-process lock only if no other goroutine asked for it
// meanwhile (keyedLocks), so a part completed during a turn is always
// relayed. Work from a part's S3 event that finds the lease held elsewhere
// is dropped, because the holder will see its part. Any other work (the
// service's own messages: retries, hand-backs, re-homed redeliveries,
// re-drives) may be the only driver left: the holder may have died holding
// the lease, so it comes back once that lease has expired.
type relayStep struct {
	store  relayStore
	s3     partsGetter
	yt     YouTube
	leases *leases
	sched  *scheduler
	locks  keyedLocks
	now    func() time.Time

	creds *credentialsGate
	park  ParkConfig

	bucket        string
	maxChunkBytes int64
	leaseTTL      time.Duration
	pollInterval  time.Duration
	metrics       *metrics.Metrics
}

func (s *relayStep) run(ctx context.Context, j job) outcome {
	u := j.upload
	d := u.Destination(upload.YouTube)
	switch {
	case d == nil || s.yt == nil || u.Status == upload.StatusCancelled || u.Status == upload.StatusFailed || u.Status == upload.StatusExpired:
		return outcome{}
	case d.VideoID == "" && !d.Status.Terminal():
		now := s.now()
		if stillParked(d, now) {
			// One chain of hops drives parked work: the one the park
			// started. Anything else (a part's event, a re-sent message)
			// leaves it to that chain, so that the number of messages of a
			// parked upload does not grow with its parts.
			if j.task.Hop {
				return s.hop(ctx, j, d.ResumeAt)
			}
			j.log.Debug("relay parked; its hops drive it", zap.String("waitingFor", d.WaitingFor), zap.Time("resumeAt", d.ResumeAt))
			return outcome{}
		}
		if until, parked := s.creds.parkedUntil(now); parked {
			return s.parkWithout(ctx, j, upload.WaitYouTubeCredentials, until)
		}
		return s.relay(ctx, j)
	}
	// The video is on YouTube: this is a message that came again, perhaps
	// because a process died after the video was recorded. Pick up what
	// may have been lost: the processing follow-up and the asset.
	var out outcome
	if d.VideoID != "" && !d.Status.Terminal() {
		// Polls cut duplicate chains (polledRecently), so an extra one is cheap.
		if err := s.sched.schedule(ctx, Task{Kind: KindYouTubePoll, AtomID: u.AtomID, UploadID: u.ID}, s.pollInterval); err != nil {
			return outcome{err: err}
		}
	}
	if d.VideoID != "" && !d.AssetAdded && d.Status != upload.DestFailed {
		out.then = []Kind{KindAsset}
	}
	return out
}

// relay runs turns while this process's lock of the upload is flagged.
func (s *relayStep) relay(ctx context.Context, j job) outcome {
	id := j.task.UploadID
	if !s.locks.lockOrFlag(id) {
		return outcome{}
	}
	held := true
	defer func() {
		// A turn that panicked (the panic is recovered and retried above)
		// or failed lets go too: the retried message relays what was
		// flagged.
		if held {
			s.locks.unlock(id)
		}
	}()
	for {
		out := s.turn(ctx, j)
		if out.err != nil || ctx.Err() != nil {
			return out
		}
		if !s.locks.unlockUnlessFlagged(id) {
			held = false
			return out
		}
		j.task.Attempt, j.task.Hop, j.fresh = 0, false, true
	}
}

// turn is one holder's turn: acquire the lease, relay, let go of it.
func (s *relayStep) turn(ctx context.Context, j job) outcome {
	atomID, id := j.task.AtomID, j.task.UploadID
	r := &relayRun{
		s:    s,
		log:  j.log.With(zap.String("destination", string(upload.YouTube))),
		pins: &pinCache{store: s.store, atomID: atomID, id: id, reader: upload.ReaderYouTube, inOrder: true},
	}
	err := s.leases.hold(ctx, atomID, id, upload.LeaseYouTube, func(ctx context.Context, h *held) (ending, error) {
		r.u, r.held = h.upload, h
		if j.msg.Detach != nil {
			// The turn lasts as long as parts keep coming: it leaves its
			// slot to the part events and follow-ups.
			j.msg.Detach()
		}
		// A holder that released the lease recorded YouTube's last
		// answer; one whose lease expired may have sent more than it
		// recorded.
		r.synced = !h.takenOver
		if err := r.run(ctx); err != nil {
			// After an error the record may lag behind YouTube (a chunk
			// whose answer was lost): the next holder must ask.
			return abandon, err
		}
		return release, nil
	})
	if errors.Is(err, upload.ErrLeaseHeld) {
		if !j.fresh {
			t := j.task
			t.Kind, t.Hop = KindRelay, false // the holder drives it now, and starts any chain
			if err := s.sched.schedule(ctx, t, s.leaseTTL+time.Second); err != nil {
				return outcome{err: err}
			}
		}
		return outcome{}
	}
	var (
		tmp *temporaryError
		pe  *parkError
	)
	switch {
	case errors.As(err, &pe) && ctx.Err() == nil:
		r.log.Warn("relay parked", zap.String("waitingFor", pe.waitingFor), zap.Time("resumeAt", pe.resumeAt),
			zap.Int64("bytes", r.u.Destination(upload.YouTube).UploadedBytes), zap.String("cause", cause(pe.cause)))
		return s.hop(ctx, j, pe.resumeAt)
	case errors.As(err, &tmp):
		r.log.Warn("relay paused; it resumes later", zap.Error(tmp.err))
		return outcome{err: tmp.err}
	case err != nil:
		return outcome{err: err}
	}
	d := r.u.Destination(upload.YouTube)
	if d == nil || d.VideoID == "" || d.Status == upload.DestFailed {
		return outcome{}
	}
	if err := s.sched.schedule(ctx, Task{Kind: KindYouTubePoll, AtomID: atomID, UploadID: id}, s.pollInterval); err != nil {
		return outcome{err: err}
	}
	return outcome{then: []Kind{KindAsset}, record: r.u}
}

// hop keeps parked work driven: a relay message due at resumeAt, or after
// the longest hop when that is further off (SQS delays are 15 minutes at
// most), which keeps the upload out of the reconciler's sight meanwhile.
func (s *relayStep) hop(ctx context.Context, j job, resumeAt time.Time) outcome {
	t := j.task
	t.Kind = KindRelay
	return outcome{err: sendHop(ctx, s.sched, s.store, j.log, t, s.now(), resumeAt, s.park.MaxHop)}
}

// parkWithout parks the destination without having called YouTube (the
// process knows the answer already), then hops: the message that parked it
// starts the chain of hops (or a hop goes on with its own).
func (s *relayStep) parkWithout(ctx context.Context, j job, waitingFor string, resumeAt time.Time) outcome {
	parked, err := parkYouTube(ctx, s.store, s.now, j, waitingFor, resumeAt, func(d *upload.Destination) bool { return d.VideoID == "" })
	if err != nil {
		return outcome{err: err}
	}
	if !parked && !j.task.Hop {
		return outcome{} // parked by another message meanwhile, whose chain drives it
	}
	return s.hop(ctx, j, resumeAt)
}

// classify turns what YouTube refused into what the relay does about it:
// retry (temporary), park (quota, the channel's upload limit, refused
// credentials), or fail with a readable reason (the request is wrong, or
// refused for good).
func (s *relayStep) classify(err error, d *upload.Destination) error {
	var ye *youtube.Error
	if !errors.As(err, &ye) {
		return err
	}
	s.metrics.YouTubeError(ye.Class().String())
	now := s.now()
	switch ye.Class() {
	case youtube.ClassTemporary:
		return err
	case youtube.ClassQuota:
		return &parkError{upload.WaitYouTubeQuota, nextQuotaReset(now).Add(jitter(s.park.Jitter)), err}
	case youtube.ClassUploadLimit:
		if !d.ParkedSince.IsZero() && d.WaitingFor == upload.WaitYouTubeUploadLimit && now.Sub(d.ParkedSince) >= s.park.UploadLimitHorizon {
			return &permanentError{reason: fmt.Sprintf("YouTube's upload limit for the channel did not lift within %s", s.park.UploadLimitHorizon)}
		}
		return &parkError{upload.WaitYouTubeUploadLimit, now.Add(s.park.UploadLimitRetry + jitter(s.park.Jitter)), err}
	case youtube.ClassCredentials:
		return &parkError{upload.WaitYouTubeCredentials, s.creds.refused(now, err), err}
	case youtube.ClassRequest:
		return &permanentError{reason: fmt.Sprintf("YouTube refused the video's %s (%s): correct it and upload again", ye.Field(), ye.Reason)}
	case youtube.ClassRefused:
	}
	what := ye.Reason
	if what == "" {
		what = fmt.Sprintf("answer %d", ye.Status)
	}
	return &permanentError{reason: fmt.Sprintf("YouTube refused the upload (%s)", what)}
}

// temporaryError is a failure that retrying later may cure.
type temporaryError struct{ err error }

func (e *temporaryError) Error() string { return e.err.Error() }
func (e *temporaryError) Unwrap() error { return e.err }

// permanentError is a refusal no retry can cure.
type permanentError struct{ reason string }

func (e *permanentError) Error() string { return e.reason }

// relayRun is one holder's turn at the upload.
type relayRun struct {
	s      *relayStep
	pins   *pinCache
	u      *upload.Upload
	held   *held
	log    *zap.Logger
	synced bool // the recorded committed offset is YouTube's: asked, or left by a clean release
	// admitted: this turn has counted a session start under the daily
	// limit that it has not used yet (its start's answer was lost).
	admitted bool
}

// run relays until the next part is missing (the lease is then released),
// the upload is done, or an error.
func (r *relayRun) run(ctx context.Context) error {
	retries := 0
	for {
		if err := context.Cause(ctx); err != nil {
			return err
		}
		u := r.u
		d := u.Destination(upload.YouTube)
		if d == nil || d.Status.Terminal() || d.VideoID != "" || u.Status.Terminal() {
			return nil
		}
		if d.Parked(r.s.now()) {
			// Parked by another turn meanwhile (this one ran again for a
			// part that came in), whose hops drive it: YouTube said no
			// until then.
			return nil
		}
		// The parts the record says are claimed (the catch-up of a sync
		// reads them too): read their pins without claims of their own.
		r.pins.mark(u.YouTubeReadParts)
		var step error
		switch {
		case d.Session == "":
			step = r.startSession(ctx)
		case !r.synced || d.HashedBytes != d.UploadedBytes:
			step = r.sync(ctx)
		default:
			var n int64
			n, step = r.sendNext(ctx)
			if step == nil && n == 0 {
				released, err := r.releaseUnlessNextArrived(ctx)
				if err != nil || released {
					return err
				}
			}
		}
		if step == nil {
			if r.u.Destination(upload.YouTube).Advances > d.Advances {
				// Only a step forward clears the retries: a sync that
				// answers while every chunk fails must not loop for ever.
				retries = 0
			}
			continue
		}
		var (
			perm *permanentError
			pe   *parkError
		)
		switch {
		case errors.Is(step, upload.ErrLeaseLost):
			return step // another writer has the upload: not one more byte from here
		case errors.As(step, &perm):
			return r.fail(ctx, perm.reason)
		case errors.As(step, &pe):
			now := r.s.now()
			if err := r.update(ctx, func(d *upload.Destination) { d.Park(pe.waitingFor, pe.resumeAt, now) }); err != nil {
				return err
			}
			return pe
		case errors.Is(step, youtube.ErrSessionGone):
			r.s.metrics.RelaySession(metrics.SessionRestarted)
			r.log.Warn("YouTube session gone; starting a new one from byte 0", zap.Int64("bytes", d.UploadedBytes))
			if err := r.update(ctx, func(d *upload.Destination) {
				d.Session, d.UploadedBytes, d.Progress = "", 0, 0
				d.HashState, d.HashedBytes = nil, 0
			}); err != nil {
				return err
			}
		case context.Cause(ctx) != nil:
			return context.Cause(ctx)
		default:
			retries++
			if retries >= relayStepRetry.Attempts {
				return &temporaryError{step}
			}
			r.log.Warn("relay step failed; retrying", zap.Int("attempt", retries), zap.Error(step))
			r.synced = false // ask YouTube where it stands before sending again
			_ = retry.Sleep(ctx, relayStepRetry.Delay(retries))
		}
	}
}

func (r *relayRun) startSession(ctx context.Context) error {
	d := r.u.Destination(upload.YouTube)
	counter := "youtubeSessions-" + quotaDay(r.s.now())
	if limit := r.s.park.DailyUploadLimit; limit > 0 && !r.admitted {
		// Starting a session is what costs quota: count it first, across
		// every instance, and wait for tomorrow rather than spend it.
		now := r.s.now()
		ok, err := r.s.store.Admit(ctx, counter, limit)
		if err != nil {
			return err
		}
		if !ok {
			return &parkError{upload.WaitYouTubeQuota, nextQuotaReset(now).Add(jitter(r.s.park.Jitter)),
				fmt.Errorf("the service's daily limit of %d YouTube uploads is reached", limit)}
		}
		r.admitted = true
	}
	session, err := r.s.yt.StartSession(ctx, *d.Meta, r.u.Size, r.u.ContentType)
	var ye *youtube.Error
	if r.admitted && errors.As(err, &ye) && ye.Status != 0 {
		// YouTube answered no: no session was started, so none is
		// counted. (When no answer came, one may have been: the count
		// stays, and this turn's retries use it.)
		if rerr := r.s.store.Refund(ctx, counter); rerr != nil {
			r.log.Warn("could not give back a YouTube session of the daily limit", zap.Error(rerr))
		}
		r.admitted = false
	}
	if err != nil {
		return r.s.classify(fmt.Errorf("start YouTube session: %w", err), r.u.Destination(upload.YouTube))
	}
	r.admitted = false
	r.s.creds.ok()
	if err := r.update(ctx, func(d *upload.Destination) {
		d.Session, d.UploadedBytes, d.Progress = session, 0, 0
		d.HashState, d.HashedBytes = nil, 0
		d.Advance()
		d.Unpark()
		_ = d.MoveTo(upload.DestUpload)
	}); err != nil {
		return err
	}
	if d := r.u.Destination(upload.YouTube); d == nil || d.Session != session {
		// Cancelled meanwhile: the API could not abort a session it never
		// saw, so abort it here.
		if err := r.s.yt.Cancel(ctx, session); err != nil {
			r.log.Warn("abort the YouTube session of a cancelled upload", zap.Error(err))
		}
		return nil
	}
	r.synced = true
	r.s.metrics.RelaySession(metrics.SessionStarted)
	r.log.Info("YouTube session started", zap.String("status", string(upload.DestUpload)), zap.Int64("bytes", r.u.Size))
	return nil
}

// sync asks YouTube for the committed offset and records it.
func (r *relayRun) sync(ctx context.Context) error {
	d := r.u.Destination(upload.YouTube)
	p, err := r.s.yt.Offset(ctx, d.Session, r.u.Size)
	if err != nil {
		return r.s.classify(fmt.Errorf("ask YouTube for the committed offset: %w", err), r.u.Destination(upload.YouTube))
	}
	r.s.creds.ok()
	if p.Committed != d.UploadedBytes || p.Done || d.HashedBytes != d.UploadedBytes {
		// What YouTube has is not what the record says (a chunk whose
		// answer was lost): hash the bytes between, read again from the
		// parts as pinned, so that the running SHA-256 covers exactly what
		// YouTube committed.
		state, err := r.hashTo(ctx, p.Committed)
		if err != nil {
			return err
		}
		r.log.Info("resuming at YouTube's committed offset", zap.Int64("bytes", p.Committed), zap.Int64("recorded", d.UploadedBytes))
		if _, err := r.committed(ctx, p, state); err != nil {
			return err
		}
	}
	r.synced = true
	r.s.metrics.RelaySession(metrics.SessionResumed)
	return nil
}

// hashTo is the running SHA-256's state at offset to: from the record's
// saved state, hashing the bytes between again (or from byte 0, when the
// record's state is past to).
func (r *relayRun) hashTo(ctx context.Context, to int64) ([]byte, error) {
	d := r.u.Destination(upload.YouTube)
	state, at := d.HashState, d.HashedBytes
	if at > to || len(state) == 0 && at != 0 {
		state, at = nil, 0
	}
	h, err := newRunningHash(state, at)
	if err != nil {
		h, _ = newRunningHash(nil, 0) // an unreadable state: hash again from byte 0
		at = 0
	}
	if err := catchUp(ctx, r.s.s3, r.s.bucket, r.u, r.pins, h, at, to); err != nil {
		return nil, err
	}
	s, _ := h.at(to)
	return s, nil
}

// sendNext puts the next chunk that is in S3; n is 0 when there is none.
func (r *relayRun) sendNext(ctx context.Context) (int64, error) {
	u := r.u
	d := u.Destination(upload.YouTube)
	from := d.UploadedBytes
	if from >= u.Size {
		// YouTube had every byte but named no video: ask it again.
		return 0, errors.New("YouTube reported every byte committed but no video")
	}
	n := available(u, from, r.s.maxChunkBytes)
	if n == 0 {
		return 0, nil
	}
	if d.HashedBytes != from {
		r.synced = false // the running SHA-256 is not at the offset: sync mends it
		return 0, errors.New("the relay's SHA-256 is not at the committed offset")
	}
	h, err := newRunningHash(d.HashState, from)
	if err != nil {
		r.synced = false
		return 0, err
	}
	start := time.Now()
	// A stalled connection must not hold the upload forever while the
	// lease keeps being renewed.
	cctx, cancel := context.WithTimeout(ctx, chunkTimeout(n))
	defer cancel()
	r.pins.prefetch(cctx, partsIn(u, from, from+n))
	if next := available(u, from+n, r.s.maxChunkBytes); next > 0 {
		// And the next chunk's, for the turn: its first read then does
		// not wait for the table.
		r.pins.prefetch(ctx, partsIn(u, from+n, from+n+next))
	}
	body := &partsReader{ctx: cctx, s3: r.s.s3, bucket: r.s.bucket, u: u, off: from, end: from + n, pins: r.pins}
	behind := newHashBehind(h)
	// Closed below once the chunk is over; deferred too, for a panic.
	defer behind.close()
	p, err := r.s.yt.PutChunk(cctx, d.Session, io.TeeReader(body, behind), from, n, u.Size)
	body.Close()
	herr := behind.close() // every byte read is hashed from here on
	if err != nil {
		berr := body.Err()
		var changed *upload.PartChangedError
		if errors.As(berr, &changed) {
			return n, &permanentError{reason: changed.Error() + ": the file can no longer be proven; start a new upload"}
		}
		if berr != nil {
			err = errors.Join(err, berr)
		}
		return n, r.s.classify(fmt.Errorf("put bytes %d-%d: %w", from, from+n-1, err), r.u.Destination(upload.YouTube))
	}
	r.s.creds.ok()
	if !p.Done && p.Committed <= from {
		// A 308 that took none of the chunk: a failed step (paced, and
		// given up on like any), not a success to send it again at once.
		r.synced = false
		return n, fmt.Errorf("YouTube took none of bytes %d-%d (committed %d)", from, from+n-1, p.Committed)
	}
	r.s.metrics.ChunkRelayed(time.Since(start))
	state, ok := h.at(p.Committed)
	if herr != nil {
		ok = false // the hasher failed: its state is not to be trusted
		r.log.Warn("relay's SHA-256 failed; hashing the chunk again", zap.Error(herr))
	}
	switch {
	case ok:
	case p.Committed < from+n && p.Committed%upload.ChunkAlign == 0 || p.Committed == from+n:
		// YouTube took a prefix of the chunk, or all of it while the
		// hasher failed: hash that again from the chunk's start (the
		// record's state), read from the parts as pinned.
		if state, err = r.hashTo(ctx, p.Committed); err != nil {
			r.synced = false
			return n, err
		}
	default:
		// YouTube says it has bytes this chunk did not end or stop at a
		// boundary of: ask it again, and hash to wherever it is.
		r.synced = false
		return n, fmt.Errorf("YouTube committed %d bytes, not a boundary of the chunk %d-%d", p.Committed, from, from+n-1)
	}
	lag, err := r.committed(ctx, p, state)
	if err != nil {
		return n, err
	}
	fields := []zap.Field{zap.Int("part", int(from/u.PartSize)), zap.Int64("bytes", n),
		zap.Int64("committed", p.Committed), zap.Int64("durationMs", time.Since(start).Milliseconds())}
	if lag >= 0 {
		// The part-to-YouTube lag of the part the chunk finished (the
		// largest, when it finished several).
		fields = append(fields, zap.Int64("lagMs", lag.Milliseconds()))
	}
	r.log.Info("chunk relayed", fields...)
	return n, nil
}

// partsIn are the numbers of the parts that hold bytes [from, to).
func partsIn(u *upload.Upload, from, to int64) []int {
	var out []int
	for off := from; off < to; {
		p, ok := u.PartContaining(off)
		if !ok {
			break
		}
		out = append(out, p.Number)
		off = p.End
	}
	return out
}

// readNext is the number of the part after those the relay reads next:
// the complete parts of the next two chunks from the committed offset
// (the one it sends next, and the one whose pins it reads ahead). A write
// of the relay claims them (upload.Upload.YouTubeReadParts), and no
// more: a complete part further ahead may still be checked afresh if it
// changes (a browser's retried PUT) before the relay comes near it.
func readNext(u *upload.Upload, maxChunk int64) int {
	d := u.Destination(upload.YouTube)
	if d == nil {
		return 0
	}
	from := d.UploadedBytes
	n := available(u, from, 2*maxChunk)
	if n == 0 {
		return 0
	}
	p, ok := u.PartContaining(from + n - 1)
	if !ok {
		return 0
	}
	return p.Number + 1
}

// chunkTimeout bounds one chunk PUT: a minute, plus the time to send n
// bytes at 1 MiB/s, the slowest link the relay accepts.
func chunkTimeout(n int64) time.Duration {
	return time.Minute + time.Duration(n/upload.MiB)*time.Second
}

// available is how many bytes from offset from can go in the next chunk:
// contiguous complete parts, at most maxChunk, a multiple of 256 KiB unless
// the chunk ends the file.
func available(u *upload.Upload, from, maxChunk int64) int64 {
	end := from
	for end < u.Size && end-from < maxChunk {
		p, _ := u.PartContaining(end)
		if !u.Completed[p.Number] {
			break
		}
		end = p.End
	}
	n := min(end-from, maxChunk)
	if from+n < u.Size {
		n -= n % upload.ChunkAlign
	}
	return n
}

// releaseUnlessNextArrived lets go of the lease unless the first missing
// part has arrived meanwhile; then it reads the record again and goes on.
func (r *relayRun) releaseUnlessNextArrived(ctx context.Context) (bool, error) {
	u := r.u
	next := upload.Part{}
	for off := u.Destination(upload.YouTube).UploadedBytes; off < u.Size; {
		p, _ := u.PartContaining(off)
		if !u.Completed[p.Number] {
			next = p
			break
		}
		off = p.End
	}
	released, err := r.held.releaseIfMissing(ctx, r.s.store, next.Number)
	if err != nil || released {
		if released {
			r.log.Debug("waiting for the next part", zap.Int("part", next.Number))
		}
		return released, err
	}
	fresh, err := r.s.store.Get(ctx, u.AtomID, u.ID)
	if err != nil {
		return false, err
	}
	r.u = fresh
	return false, nil
}

// committed records YouTube's committed offset with the running SHA-256's
// state there (and the video, once done: its digest is then the SHA-256 of
// every byte YouTube has, which must be the file's when the start request
// named it). It returns the largest part-to-YouTube lag of the parts whose
// last byte YouTube committed now, or -1 when none (or none whose creation
// is known).
func (r *relayRun) committed(ctx context.Context, p youtube.Progress, state []byte) (time.Duration, error) {
	size := r.u.Size
	from := r.u.Destination(upload.YouTube).UploadedBytes
	var digest, mismatch string
	if p.Done {
		var err error
		if digest, err = digestOf(state); err != nil {
			return -1, err
		}
		if want := r.u.SHA256; want != "" && digest != want {
			mismatch = fmt.Sprintf("the video YouTube received does not match the file: its SHA-256 is %s, the file's is %s", digest, want)
		}
	}
	err := r.update(ctx, func(d *upload.Destination) {
		if p.Committed > d.UploadedBytes || p.Done {
			d.Advance()
		}
		d.Unpark()
		d.UploadedBytes = p.Committed
		d.HashState, d.HashedBytes = state, p.Committed
		d.Progress = float64(p.Committed) / float64(size) * 100
		_ = d.MoveTo(upload.DestUpload)
		if p.Done {
			d.UploadedBytes, d.VideoID, d.Session, d.SHA256 = size, p.VideoID, "", digest
			_ = d.MoveTo(upload.DestTranscoding)
			d.Progress = 0
			if mismatch != "" {
				d.Fail(mismatch)
			}
		}
	})
	if err != nil {
		return -1, err
	}
	now := time.Now() // S3's clock, not the steps' (tests move theirs)
	r.s.metrics.Committed(p.Committed - from)
	lag := r.partsRelayed(from, p.Committed, now)
	switch {
	case mismatch != "":
		r.log.Error("destination failed", zap.String("videoId", p.VideoID), zap.String("status", string(upload.DestFailed)), zap.String("error", mismatch))
	case p.Done:
		fields := []zap.Field{zap.String("videoId", p.VideoID), zap.String("status", string(upload.DestTranscoding)),
			zap.Int64("bytes", size), zap.String("sha256", digest)}
		if last, ok := r.pins.lastCreated(); ok {
			// From the last part landing in S3 (of those this turn read,
			// which is the last of all unless a writer that had relayed it
			// was interrupted before the end) to YouTube having it all.
			r.s.metrics.YouTubeComplete(now.Sub(last))
			fields = append(fields, zap.Int64("sinceLastPartMs", now.Sub(last).Milliseconds()))
		}
		r.log.Info("YouTube upload complete", fields...)
	}
	return lag, nil
}

// partsRelayed observes the lag of each part whose last byte YouTube
// committed with the offset moving from from to to: now less when S3
// created it. It returns the largest, or -1 when there is none.
func (r *relayRun) partsRelayed(from, to int64, now time.Time) time.Duration {
	lag := time.Duration(-1)
	for off := from; off < to; {
		p, ok := r.u.PartContaining(off)
		if !ok {
			break
		}
		if p.End <= to {
			if created, ok := r.pins.createdAt(p.Number); ok {
				r.s.metrics.PartRelayed(now.Sub(created))
				lag = max(lag, now.Sub(created))
			}
		}
		off = p.End
	}
	return lag
}

// update changes the YouTube destination while holding the lease, and
// keeps the fresh record (with the parts completed since).
func (r *relayRun) update(ctx context.Context, fn func(*upload.Destination)) error {
	u, err := r.s.store.UpdateHolding(ctx, r.held.lease, upload.Settled(r.s.now, func(u *upload.Upload) error {
		if d := u.Destination(upload.YouTube); d != nil && !u.Status.Terminal() && !d.Status.Terminal() {
			fn(d)
			if !d.Status.Terminal() && !d.Parked(r.s.now()) {
				// Claim the parts read next in the same write: their
				// reads then need no claim of their own. (A parked or
				// failed relay reads nothing soon.)
				u.YouTubeReadParts = max(u.YouTubeReadParts, readNext(u, r.s.maxChunkBytes))
			}
		}
		return nil
	}))
	if err != nil {
		return err
	}
	r.u = u
	return nil
}

// fail fails the YouTube destination with a readable reason.
func (r *relayRun) fail(ctx context.Context, reason string) error {
	if err := r.update(ctx, func(d *upload.Destination) { d.Fail(reason) }); err != nil {
		return err
	}
	r.log.Error("destination failed", zap.String("status", string(upload.DestFailed)), zap.String("error", reason))
	return nil
}
