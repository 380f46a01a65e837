package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"atomuploads/store"
	"atomuploads/transcode"
	"atomuploads/upload"
	"atomuploads/youtube"
)

// Store is the progress table as the worker uses it.
type Store interface {
	Get(ctx context.Context, atomID, id string) (*upload.Upload, error)
	Update(ctx context.Context, atomID, id string, fn func(*upload.Upload) error) (*upload.Upload, error)
	UpdateHolding(ctx context.Context, atomID, id string, h store.Holding, fn func(*upload.Upload) error) (*upload.Upload, error)
	CompletePart(ctx context.Context, atomID, id string, n int) (*upload.Upload, error)
	Acquire(ctx context.Context, atomID, id, lease, owner string, ttl time.Duration) (u *upload.Upload, takenOver bool, err error)
	Renew(ctx context.Context, atomID, id, lease, owner string, ttl time.Duration) error
	Release(ctx context.Context, atomID, id, lease, owner string, unlessComplete int) (bool, error)
	Abandon(ctx context.Context, atomID, id, lease, owner string) error
}

// S3API is what the worker needs of S3.
type S3API interface {
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPartCopy(ctx context.Context, in *s3.UploadPartCopyInput, optFns ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
}

// YouTube is the YouTube Data API as the relay uses it.
type YouTube interface {
	StartSession(ctx context.Context, meta upload.YouTubeMetadata, size int64, contentType string) (string, error)
	PutChunk(ctx context.Context, sessionURI string, body io.Reader, start, n, total int64) (youtube.Progress, error)
	Offset(ctx context.Context, sessionURI string, total int64) (youtube.Progress, error)
	Processing(ctx context.Context, videoID string) (youtube.Processing, error)
	Cancel(ctx context.Context, session string) error
}

// Transcoder runs the s3Bucket destination's transcode jobs.
type Transcoder interface {
	Start(ctx context.Context, spec transcode.Spec) (string, error)
	Job(ctx context.Context, jobID string) (transcode.Job, error)
}

// AtomAPI adds the YouTube video to the media atom. AddAsset adds it
// only when the atom does not have it yet, and reports whether it did.
type AtomAPI interface {
	AddAsset(ctx context.Context, atomID, videoURL string) (added bool, err error)
}

// Sender sends the service's own follow-up messages to the queue.
type Sender interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// Config configures the steps.
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

// Steps handles the queue's messages. YouTube, the transcoder and the atom
// API may be nil when the service runs without them.
type Steps struct {
	cfg   Config
	store Store
	sqs   Sender
	s3    S3API
	yt    YouTube
	tc    Transcoder
	atom  AtomAPI
	log   *zap.Logger
	locks keyedLocks
	turns atomic.Int64
}

// NewSteps returns the handler of the worker pool.
func NewSteps(cfg Config, st Store, sender Sender, s3c S3API, yt YouTube, tc Transcoder, atom AtomAPI, log *zap.Logger) *Steps {
	return &Steps{cfg: cfg, store: st, sqs: sender, s3: s3c, yt: yt, tc: tc, atom: atom, log: log}
}

// schedule sends one of the service's own messages, to be handled after
// delay (at most SQS's 15 minutes). Handlers schedule the next step before
// they record the current one, so that a crash in between leaves a
// duplicate (which the steps tolerate), never a gap.
func (h *Steps) schedule(ctx context.Context, t task, delay time.Duration) error {
	_, err := h.sqs.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:     aws.String(h.cfg.QueueURL),
		MessageBody:  aws.String(t.body()),
		DelaySeconds: int32(min(delay, 15*time.Minute) / time.Second),
	})
	if err != nil {
		return fmt.Errorf("schedule %s of %s: %w", t.Kind, t.UploadID, err)
	}
	return nil
}

// Handle handles one message of the queue.
func (h *Steps) Handle(ctx context.Context, m Message) Result {
	msg, err := parse(m.Body)
	if err != nil {
		// Nothing a retry could fix: log it once and delete it.
		h.log.Error("ignored a message that is not an event", zap.String("messageId", m.ID), zap.String("reason", err.Error()))
		return Result{}
	}
	var res Result
	switch {
	case msg.test:
		h.log.Info("ignored s3:TestEvent", zap.String("messageId", m.ID))
	case msg.task != nil:
		res = h.task(ctx, m, *msg.task)
	default:
		for _, r := range msg.s3 {
			// On an error, retry the whole message: records done are idempotent.
			if res = h.record(ctx, m, r); res.Err != nil {
				break
			}
		}
	}
	if res.Err != nil && ctx.Err() == nil && h.cfg.MaxReceiveCount > 0 && m.ReceiveCount >= h.cfg.MaxReceiveCount {
		h.giveUp(ctx, m, msg, res.Err)
	}
	return res
}

// giveUp fails the uploads of a message on its last try: the redrive
// policy is about to move it to the dead-letter queue, and the upload must
// not look as if it were still being worked on.
func (h *Steps) giveUp(ctx context.Context, m Message, msg message, cause error) {
	detail := cause.Error()
	if len(detail) > 300 {
		detail = detail[:300] + "…"
	}
	reason := fmt.Sprintf("the service gave up after %d attempts (%s); its message is in the dead-letter queue", m.ReceiveCount, detail)
	for _, k := range msg.uploads() {
		log := h.log.With(zap.String("messageId", m.ID), zap.String("atomId", k.AtomID), zap.String("uploadId", k.UploadID))
		_, err := h.store.Update(ctx, k.AtomID, k.UploadID, func(u *upload.Upload) error {
			u.Fail(reason, time.Now())
			return nil
		})
		if err != nil {
			log.Error("could not mark the upload failed", zap.Error(err))
			continue
		}
		log.Error("upload failed", zap.String("status", string(upload.StatusFailed)), zap.String("error", reason))
	}
}

// record handles one S3 event record.
func (h *Steps) record(ctx context.Context, m Message, r s3Record) Result {
	log := h.log.With(zap.String("messageId", m.ID), zap.String("bucket", r.S3.Bucket.Name))
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
	if r.S3.Bucket.Name != h.cfg.Bucket {
		log.Warn("ignored an event of another bucket")
		return Result{}
	}
	k, err := upload.ParseKey(key)
	if err != nil {
		log.Warn("ignored a key outside the upload layout", zap.String("reason", upload.ErrorMessage(err)))
		return Result{}
	}
	log = log.With(zap.String("atomId", k.AtomID), zap.String("uploadId", k.UploadID))
	u, err := h.store.Get(ctx, k.AtomID, k.UploadID)
	switch {
	case upload.ErrorCode(err) == upload.ENOTFOUND:
		log.Warn("ignored an event of an unknown upload")
		return Result{}
	case err != nil:
		return Result{Err: err}
	case u.Status == upload.StatusCancelled || u.Status == upload.StatusFailed:
		log.Info("ignored an event of a finished upload", zap.String("status", string(u.Status)))
		return Result{}
	}
	if k.Kind == upload.KeyFull {
		return h.full(ctx, log, u)
	}
	return h.part(ctx, log.With(zap.Int("part", k.Part)), m, u, k.Part)
}

// part marks part n complete once its size matches the plan, then relays
// and, when every part is in, reassembles.
func (h *Steps) part(ctx context.Context, log *zap.Logger, m Message, u *upload.Upload, n int) Result {
	p, ok := u.Part(n)
	if !ok {
		return h.reject(ctx, log, u, fmt.Sprintf("part %d is not in the plan: the file has %d parts (0–%d)", n, u.PartCount(), u.PartCount()-1))
	}
	head, err := h.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &h.cfg.Bucket, Key: strPtr(u.PartKey(n))})
	if err != nil {
		if isNotFound(err) {
			log.Warn("ignored an event of a part that is no longer in S3")
			return Result{}
		}
		return Result{Err: fmt.Errorf("head part %d of %s: %w", n, u.ID, err)}
	}
	if size := deref(head.ContentLength); size != p.Size() {
		return h.reject(ctx, log, u, fmt.Sprintf("part %d is %d bytes but the plan expects %d (bytes %d–%d of the file); start a new upload",
			n, size, p.Size(), p.Start, p.End))
	}
	if !u.Completed[n] {
		u, err = h.store.CompletePart(ctx, u.AtomID, u.ID, n)
		if upload.ErrorCode(err) == upload.ECONFLICT {
			log.Info("ignored a part of a finished upload")
			return Result{}
		}
		if err != nil {
			return Result{Err: err}
		}
		log.Info("part complete", zap.Int64("bytes", p.Size()), zap.Int("complete", len(u.Completed)), zap.Int("parts", u.PartCount()))
	}
	// Reassembly and relay side by side: the last part must reach YouTube
	// without waiting for the copy, and the copy (needed by the transcode)
	// must not wait for a relay that may still have the whole file to send.
	var (
		g   errgroup.Group
		res Result
	)
	if u.AllPartsComplete() && !u.Assembled {
		g.Go(func() error { return h.reassemble(ctx, log, u) })
	}
	g.Go(func() error {
		res = h.youTubeNext(ctx, u, 0, m.ReceiveCount > 1)
		return nil
	})
	if err := g.Wait(); err != nil {
		return Result{Err: err} // the relay's progress is durable; the retry finds it
	}
	return res
}

// youTubeNext is the YouTube destination's next step: relay while the
// video is not on YouTube, then follow its processing. A message that comes
// back after a crash thereby picks up whichever step was lost.
func (h *Steps) youTubeNext(ctx context.Context, u *upload.Upload, failures int, redelivered bool) Result {
	d := u.Destination(upload.YouTube)
	switch {
	case d == nil || h.yt == nil || u.Status == upload.StatusCancelled || u.Status == upload.StatusFailed:
		return Result{}
	case d.VideoID == "" && !d.Status.Terminal():
		return h.relay(ctx, u.AtomID, u.ID, failures, redelivered)
	case d.VideoID != "" && (!d.Status.Terminal() || !d.AssetAdded):
		// Polls cut duplicate chains (polledRecently), so an extra one is cheap.
		if err := h.schedule(ctx, task{Kind: kindYouTubePoll, AtomID: u.AtomID, UploadID: u.ID}, h.cfg.PollInterval); err != nil {
			return Result{Err: err}
		}
	}
	return Result{}
}

// reject fails the upload for bad input; the message is done.
func (h *Steps) reject(ctx context.Context, log *zap.Logger, u *upload.Upload, reason string) Result {
	_, err := h.store.Update(ctx, u.AtomID, u.ID, func(u *upload.Upload) error {
		u.Fail(reason, time.Now())
		return nil
	})
	if err != nil {
		return Result{Err: err}
	}
	log.Error("upload failed", zap.String("status", string(upload.StatusFailed)), zap.String("error", reason))
	return Result{}
}

// holder names one turn of this instance at a lease: two goroutines of one
// process must not both hold a lease, so the owner is unique per turn.
func (h *Steps) holder() string {
	return fmt.Sprintf("%s#%d", h.cfg.Owner, h.turns.Add(1))
}

// keyedLocks are the in-process per-upload locks of the YouTube writer.
// A goroutine that finds the lock held flags the key instead of waiting;
// the holder sees the flag when it lets go and runs once more, so a part
// completed after the holder's last look is never left behind.
type keyedLocks struct {
	mu      sync.Mutex
	held    map[string]bool
	flagged map[string]bool
}

// lockOrFlag takes the lock of key and reports true, or, when another
// goroutine holds it, flags the key and reports false.
func (l *keyedLocks) lockOrFlag(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[key] {
		if l.flagged == nil {
			l.flagged = map[string]bool{}
		}
		l.flagged[key] = true
		return false
	}
	if l.held == nil {
		l.held = map[string]bool{}
	}
	l.held[key] = true
	return true
}

// unlockUnlessFlagged releases the lock of key, unless the key was flagged
// while it was held: then it clears the flag, keeps the lock and reports
// true, and the holder must run again.
func (l *keyedLocks) unlockUnlessFlagged(key string) (again bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.flagged[key] {
		delete(l.flagged, key)
		return true
	}
	delete(l.held, key)
	return false
}

// unlock releases the lock of key and clears its flag.
func (l *keyedLocks) unlock(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.held, key)
	delete(l.flagged, key)
}

func strPtr(s string) *string { return &s }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func isNotFound(err error) bool {
	var (
		nf *s3types.NotFound
		nk *s3types.NoSuchKey
	)
	return errors.As(err, &nf) || errors.As(err, &nk)
}
