package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap"

	"atomuploads/store"
	"atomuploads/upload"
	"atomuploads/youtube"
)

// Bounds of one relay run's retries of temporary YouTube or S3 failures
// before it hands over to a delayed relay message.
const (
	relayRetries   = 5
	relayBaseDelay = 500 * time.Millisecond
)

// relay streams the upload's parts to its YouTube resumable session, in
// order, for as long as the next bytes are in S3. One writer at a time: a
// per-upload lock in this process and the youtube lease in the table.
//
// No lost wake-up: a turn that finds the next part missing releases the
// lease only while that part is still missing (Store.Release), and lets go
// of the in-process lock only if no other goroutine asked for it meanwhile
// (keyedLocks), so a part completed during a turn is always relayed. A
// message that finds the lease held elsewhere is dropped, because the
// holder will see its part, unless it is a redelivery: its first handler
// may have died holding the lease, so it comes back once that lease has
// expired (the pool's visibility outlasts twice the lease for the same
// reason).
func (h *Steps) relay(ctx context.Context, atomID, id string, failures int, redelivered bool) Result {
	if !h.locks.lockOrFlag(id) {
		return Result{}
	}
	for {
		res := h.relayTurn(ctx, atomID, id, failures, redelivered)
		if res.Err != nil || ctx.Err() != nil {
			h.locks.unlock(id) // the retried message relays what was flagged
			return res
		}
		if !h.locks.unlockUnlessFlagged(id) {
			return res
		}
		failures, redelivered = 0, false
	}
}

// relayTurn is one holder's turn: acquire the lease, relay, let go of it.
func (h *Steps) relayTurn(ctx context.Context, atomID, id string, failures int, redelivered bool) Result {
	owner := h.holder()
	u, takenOver, err := h.store.Acquire(ctx, atomID, id, store.LeaseYouTube, owner, h.cfg.LeaseTTL)
	if errors.Is(err, store.ErrLeaseHeld) {
		if redelivered {
			if err := h.schedule(ctx, task{Kind: kindRelay, AtomID: atomID, UploadID: id, Failures: failures}, h.cfg.LeaseTTL+time.Second); err != nil {
				return Result{Err: err}
			}
		}
		return Result{}
	}
	if err != nil {
		return Result{Err: err}
	}
	r := &relayRun{
		h: h,
		u: u,
		// A holder that released the lease recorded YouTube's last answer;
		// one whose lease expired may have sent more than it recorded.
		synced: !takenOver,
		hold:   store.Holding{Lease: store.LeaseYouTube, Owner: owner, TTL: h.cfg.LeaseTTL},
		log:    h.log.With(zap.String("atomId", atomID), zap.String("uploadId", id), zap.String("destination", string(upload.YouTube))),
	}
	var released bool
	err = h.renewing(ctx, u, store.LeaseYouTube, owner, func(ctx context.Context) error {
		var err error
		released, err = r.run(ctx)
		return err
	})
	if !released {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
		defer cancel()
		var rerr error
		if err != nil {
			// After an error the record may lag behind YouTube (a chunk
			// whose answer was lost): the next holder must ask.
			rerr = h.store.Abandon(rctx, atomID, id, store.LeaseYouTube, owner)
		} else {
			_, rerr = h.store.Release(rctx, atomID, id, store.LeaseYouTube, owner, store.NoPart)
		}
		if rerr != nil {
			r.log.Warn("let go of the youtube lease", zap.Error(rerr))
		}
	}
	var tmp *temporaryError
	switch {
	case errors.As(err, &tmp) && ctx.Err() == nil:
		return h.relayLater(ctx, r, failures+1, tmp.err)
	case err != nil:
		return Result{Err: err}
	}
	if d := r.u.Destination(upload.YouTube); d != nil && d.VideoID != "" {
		if err := h.schedule(ctx, task{Kind: kindYouTubePoll, AtomID: atomID, UploadID: id}, h.cfg.PollInterval); err != nil {
			return Result{Err: err}
		}
		if err := h.addAsset(ctx, r.u); err != nil && !errors.Is(err, errAssetBusy) {
			r.log.Warn("add asset to atom failed; the next poll tries again", zap.String("videoId", d.VideoID), zap.Error(err))
		}
	}
	return Result{}
}

// relayLater schedules another turn after a backoff, or fails the
// destination once YouTube has refused for too long.
func (h *Steps) relayLater(ctx context.Context, r *relayRun, failures int, cause error) Result {
	if failures > h.cfg.MaxAttempts {
		return h.failDestination(ctx, r.log, r.u, upload.YouTube, fmt.Sprintf("YouTube did not take the upload after %d attempts: %v", failures, cause))
	}
	delay := min(time.Duration(failures)*30*time.Second, 15*time.Minute)
	if err := h.schedule(ctx, task{Kind: kindRelay, AtomID: r.u.AtomID, UploadID: r.u.ID, Failures: failures}, delay); err != nil {
		return Result{Err: err}
	}
	r.log.Warn("relay paused; it resumes later", zap.Int("failures", failures), zap.Duration("retryIn", delay), zap.Error(cause))
	return Result{}
}

// temporaryError is a failure that retrying later may cure.
type temporaryError struct{ err error }

func (e *temporaryError) Error() string { return e.err.Error() }
func (e *temporaryError) Unwrap() error { return e.err }

// relayRun is one holder's turn at the upload.
type relayRun struct {
	h      *Steps
	u      *upload.Upload
	hold   store.Holding
	log    *zap.Logger
	synced bool // the recorded committed offset is YouTube's: asked, or left by a clean release
}

// run relays until the next part is missing (released is then true), the
// upload is done, or an error.
func (r *relayRun) run(ctx context.Context) (released bool, err error) {
	retries := 0
	for {
		if err := context.Cause(ctx); err != nil {
			return false, err
		}
		u := r.u
		d := u.Destination(upload.YouTube)
		if d == nil || d.Status.Terminal() || d.VideoID != "" || u.Status.Terminal() {
			return false, nil
		}
		var step error
		switch {
		case d.Session == "":
			step = r.startSession(ctx)
		case !r.synced:
			step = r.sync(ctx)
		default:
			var n int64
			n, step = r.sendNext(ctx)
			if step == nil && n == 0 {
				released, err := r.releaseUnlessNextArrived(ctx)
				if err != nil || released {
					return released, err
				}
			}
		}
		if step == nil {
			retries = 0
			continue
		}
		var perm *permanentError
		switch {
		case errors.Is(step, store.ErrLeaseLost):
			return false, step // another writer has the upload: not one more byte from here
		case errors.As(step, &perm):
			return false, r.fail(ctx, perm.reason)
		case errors.Is(step, youtube.ErrSessionGone):
			r.log.Warn("YouTube session gone; starting a new one from byte 0", zap.Int64("bytes", d.UploadedBytes))
			if err := r.update(ctx, func(d *upload.Destination) { d.Session, d.UploadedBytes, d.Progress = "", 0, 0 }); err != nil {
				return false, err
			}
		case context.Cause(ctx) != nil:
			return false, context.Cause(ctx)
		default:
			retries++
			if retries > relayRetries {
				return false, &temporaryError{step}
			}
			r.log.Warn("relay step failed; retrying", zap.Int("attempt", retries), zap.Error(step))
			r.synced = false // ask YouTube where it stands before sending again
			backoff := relayBaseDelay << (retries - 1)
			sleep(ctx, backoff/2+rand.N(backoff/2+1))
		}
	}
}

// permanentError is a refusal no retry can cure.
type permanentError struct{ reason string }

func (e *permanentError) Error() string { return e.reason }

// classify wraps a YouTube error that retrying cannot cure.
func classify(err error) error {
	var ye *youtube.Error
	if errors.As(err, &ye) && !ye.Temporary {
		return &permanentError{reason: "YouTube refused the upload: " + ye.Error()}
	}
	return err
}

func (r *relayRun) startSession(ctx context.Context) error {
	d := r.u.Destination(upload.YouTube)
	session, err := r.h.yt.StartSession(ctx, *d.Meta, r.u.Size, r.u.ContentType)
	if err != nil {
		return classify(fmt.Errorf("start YouTube session: %w", err))
	}
	if err := r.update(ctx, func(d *upload.Destination) {
		d.Session, d.UploadedBytes, d.Progress = session, 0, 0
		_ = d.MoveTo(upload.DestUpload)
	}); err != nil {
		return err
	}
	if d := r.u.Destination(upload.YouTube); d == nil || d.Session != session {
		// Cancelled meanwhile: the API could not abort a session it never
		// saw, so abort it here.
		if err := r.h.yt.Cancel(ctx, session); err != nil {
			r.log.Warn("abort the YouTube session of a cancelled upload", zap.Error(err))
		}
		return nil
	}
	r.synced = true
	r.log.Info("YouTube session started", zap.String("status", string(upload.DestUpload)), zap.Int64("bytes", r.u.Size))
	return nil
}

// sync asks YouTube for the committed offset and records it.
func (r *relayRun) sync(ctx context.Context) error {
	d := r.u.Destination(upload.YouTube)
	p, err := r.h.yt.Offset(ctx, d.Session, r.u.Size)
	if err != nil {
		return classify(fmt.Errorf("ask YouTube for the committed offset: %w", err))
	}
	r.synced = true
	if p.Committed != d.UploadedBytes || p.Done {
		r.log.Info("resuming at YouTube's committed offset", zap.Int64("bytes", p.Committed), zap.Int64("recorded", d.UploadedBytes))
		return r.committed(ctx, p)
	}
	return nil
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
	n := r.available(from)
	if n == 0 {
		return 0, nil
	}
	start := time.Now()
	// A stalled connection must not hold the upload forever while the
	// lease keeps being renewed.
	cctx, cancel := context.WithTimeout(ctx, chunkTimeout(n))
	defer cancel()
	body := &partsReader{ctx: cctx, s3: r.h.s3, bucket: r.h.cfg.Bucket, u: u, off: from, end: from + n}
	p, err := r.h.yt.PutChunk(cctx, d.Session, body, from, n, u.Size)
	body.Close()
	if err != nil {
		if berr := body.Err(); berr != nil {
			err = errors.Join(err, berr)
		}
		return n, classify(fmt.Errorf("put bytes %d-%d: %w", from, from+n-1, err))
	}
	if err := r.committed(ctx, p); err != nil {
		return n, err
	}
	r.log.Info("chunk relayed", zap.Int("part", int(from/u.PartSize)), zap.Int64("bytes", n),
		zap.Int64("committed", p.Committed), zap.Int64("durationMs", time.Since(start).Milliseconds()))
	return n, nil
}

// chunkTimeout bounds one chunk PUT: a minute, plus the time to send n
// bytes at 1 MiB/s, the slowest link the relay accepts.
func chunkTimeout(n int64) time.Duration {
	return time.Minute + time.Duration(n/upload.MiB)*time.Second
}

// available is how many bytes from offset from can go in the next chunk:
// contiguous complete parts, at most MaxChunkBytes, a multiple of 256 KiB
// unless the chunk ends the file.
func (r *relayRun) available(from int64) int64 {
	u := r.u
	end := from
	for end < u.Size && end-from < r.h.cfg.MaxChunkBytes {
		p, _ := u.PartContaining(end)
		if !u.Completed[p.Number] {
			break
		}
		end = p.End
	}
	n := min(end-from, r.h.cfg.MaxChunkBytes)
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
	released, err := r.h.store.Release(ctx, u.AtomID, u.ID, store.LeaseYouTube, r.hold.Owner, next.Number)
	if err != nil || released {
		if released {
			r.log.Debug("waiting for the next part", zap.Int("part", next.Number))
		}
		return released, err
	}
	fresh, err := r.h.store.Get(ctx, u.AtomID, u.ID)
	if err != nil {
		return false, err
	}
	r.u = fresh
	return false, nil
}

// committed records YouTube's committed offset (and the video, once done).
func (r *relayRun) committed(ctx context.Context, p youtube.Progress) error {
	size := r.u.Size
	err := r.update(ctx, func(d *upload.Destination) {
		d.UploadedBytes = p.Committed
		d.Progress = float64(p.Committed) / float64(size) * 100
		_ = d.MoveTo(upload.DestUpload)
		if p.Done {
			d.UploadedBytes, d.VideoID, d.Session = size, p.VideoID, ""
			_ = d.MoveTo(upload.DestTranscoding)
			d.Progress = 0
		}
	})
	if err == nil && p.Done {
		r.log.Info("YouTube upload complete", zap.String("videoId", p.VideoID), zap.String("status", string(upload.DestTranscoding)), zap.Int64("bytes", size))
	}
	return err
}

// update changes the YouTube destination while holding the lease, and
// keeps the fresh record (with the parts completed since).
func (r *relayRun) update(ctx context.Context, fn func(*upload.Destination)) error {
	u, err := r.h.store.UpdateHolding(ctx, r.u.AtomID, r.u.ID, r.hold, func(u *upload.Upload) error {
		if d := u.Destination(upload.YouTube); d != nil && !u.Status.Terminal() && !d.Status.Terminal() {
			fn(d)
		}
		return nil
	})
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

// renewing runs fn while renewing the lease at a third of its TTL; losing
// the lease cancels fn's context with store.ErrLeaseLost.
func (h *Steps) renewing(ctx context.Context, u *upload.Upload, lease, owner string, fn func(context.Context) error) error {
	ctx, stop := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.keepLease(ctx, stop, u, lease, owner)
	}()
	err := fn(ctx)
	stop(nil)
	wg.Wait()
	return err
}

// partsReader streams bytes [off, end) of the file from the part objects,
// one ranged GET at a time, so memory does not grow with the chunk. It is
// safe for the HTTP transport to keep reading it in its own goroutine
// after the request returned, while the relay closes it.
type partsReader struct {
	// ctx bounds the GETs that Read starts: an io.Reader has no context
	// of its own, and this one lives only as long as one PutChunk.
	ctx    context.Context
	s3     S3API
	bucket string
	u      *upload.Upload

	mu     sync.Mutex
	off    int64
	end    int64
	cur    io.ReadCloser
	curEnd int64 // file offset where cur ends
	closed bool
	err    error // the S3 error that broke the stream, if any
}

func (r *partsReader) Read(b []byte) (int, error) {
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return 0, errors.New("read after close")
		}
		if r.off >= r.end {
			r.mu.Unlock()
			return 0, io.EOF
		}
		if r.cur == nil {
			if err := r.open(); err != nil {
				r.err = err
				r.mu.Unlock()
				return 0, err
			}
		}
		cur, want := r.cur, min(int64(len(b)), r.curEnd-r.off)
		r.mu.Unlock()

		n, err := cur.Read(b[:want]) // outside the lock: Close may interrupt it

		r.mu.Lock()
		r.off += int64(n)
		if err == io.EOF || r.off == r.curEnd {
			cur.Close()
			if r.cur == cur {
				r.cur = nil
			}
			if err == io.EOF && r.off < r.curEnd {
				r.err = fmt.Errorf("part ended at byte %d of the file, before %d", r.off, r.curEnd)
				err = io.ErrUnexpectedEOF
			} else {
				err = nil
			}
		}
		if err != nil && r.err == nil && !r.closed {
			r.err = err
		}
		r.mu.Unlock()
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// open starts the ranged GET of the part holding off; r.mu is held.
func (r *partsReader) open() error {
	p, ok := r.u.PartContaining(r.off)
	if !ok {
		return fmt.Errorf("offset %d is outside the file", r.off)
	}
	to := min(r.end, p.End)
	out, err := r.s3.GetObject(r.ctx, &s3.GetObjectInput{
		Bucket: aws.String(r.bucket),
		Key:    aws.String(r.u.PartKey(p.Number)),
		Range:  aws.String(fmt.Sprintf("bytes=%d-%d", r.off-p.Start, to-p.Start-1)),
	})
	if err != nil {
		return fmt.Errorf("read part %d: %w", p.Number, err)
	}
	r.cur, r.curEnd = out.Body, to
	return nil
}

// Close releases the S3 body in hand; a read in progress fails.
func (r *partsReader) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.cur != nil {
		r.cur.Close()
		r.cur = nil
	}
}

// Err is the S3 error that broke the stream, if any.
func (r *partsReader) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}
