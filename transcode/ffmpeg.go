package transcode

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"atomuploads/metrics"
	"atomuploads/upload"
)

// S3API is the part of the S3 client the ffmpeg backend uses; *s3.Client
// implements it.
type S3API interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(ctx context.Context, in *s3.UploadPartInput, optFns ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
}

// FFmpegConfig configures the ffmpeg backend. Zero values mean the
// documented defaults.
type FFmpegConfig struct {
	// FFmpegPath is the ffmpeg binary, a path or a name looked up in PATH.
	// Default "ffmpeg".
	FFmpegPath string
	// FFprobePath is the ffprobe binary. Default "ffprobe".
	FFprobePath string
	// DestinationBucket receives the outputs and the job state objects.
	// Required.
	DestinationBucket string
	// Renditions are the MP4 outputs. Default DefaultRenditions().
	Renditions []Rendition
	// Concurrency is the number of jobs this process transcodes at once;
	// further jobs wait, submitted. Default 1, at most 64.
	Concurrency int
	// TempDir holds each running job's input and outputs, removed when the
	// job ends. It needs room for the original plus every output. Default
	// "" (os.TempDir()).
	TempDir string
	// HeartbeatInterval is how often the state object of each waiting or
	// running job is rewritten (with its progress). Default 5s.
	HeartbeatInterval time.Duration
	// StaleAfter is how old a waiting or running job's heartbeat may get
	// before Job reports the job lost (StateError, Retryable). It must be
	// more than twice HeartbeatInterval plus the instances' clock skew.
	// Default 1m.
	StaleAfter time.Duration
	// Preset is the x264 preset. Default "veryfast".
	Preset string
	// Logger receives one line per job state change (started, completed,
	// failed). Default nil: no logs.
	Logger *zap.Logger
	// Metrics counts the jobs running and their durations. Default nil:
	// nothing is counted.
	Metrics *metrics.Metrics
}

// FFmpeg defaults.
const (
	DefaultHeartbeatInterval = 5 * time.Second
	DefaultStaleAfter        = time.Minute
	DefaultPreset            = "veryfast"
)

var x264Presets = []string{"ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"}

func (c FFmpegConfig) withDefaults() FFmpegConfig {
	if c.FFmpegPath == "" {
		c.FFmpegPath = "ffmpeg"
	}
	if c.FFprobePath == "" {
		c.FFprobePath = "ffprobe"
	}
	if c.Concurrency == 0 {
		c.Concurrency = 1
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.StaleAfter == 0 {
		c.StaleAfter = DefaultStaleAfter
	}
	if c.Preset == "" {
		c.Preset = DefaultPreset
	}
	c.Renditions = renditionsOrDefault(c.Renditions)
	return c
}

// Validate reports every problem of the configuration, with defaults
// applied; it also checks that the binaries and the temp dir exist.
func (c FFmpegConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	for _, bin := range []struct{ key, path string }{{"ffmpegPath", c.FFmpegPath}, {"ffprobePath", c.FFprobePath}} {
		if _, err := exec.LookPath(bin.path); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", bin.key, bin.path, err))
		}
	}
	if c.DestinationBucket == "" {
		errs = append(errs, fmt.Errorf("destinationBucket is required"))
	}
	if c.Concurrency < 1 || c.Concurrency > 64 {
		errs = append(errs, fmt.Errorf("concurrency must be 1-64, got %d", c.Concurrency))
	}
	if c.TempDir != "" {
		if st, err := os.Stat(c.TempDir); err != nil || !st.IsDir() {
			errs = append(errs, fmt.Errorf("tempDir %q must be an existing directory", c.TempDir))
		}
	}
	if c.HeartbeatInterval < 0 {
		errs = append(errs, fmt.Errorf("heartbeatInterval must be positive, got %s", c.HeartbeatInterval))
	}
	if c.StaleAfter <= 2*c.HeartbeatInterval {
		errs = append(errs, fmt.Errorf("staleAfter (%s) must be more than twice heartbeatInterval (%s)", c.StaleAfter, c.HeartbeatInterval))
	}
	if !slices.Contains(x264Presets, c.Preset) {
		errs = append(errs, fmt.Errorf("preset %q must be one of %v", c.Preset, x264Presets))
	}
	errs = append(errs, validateRenditions(c.Renditions)...)
	return joinProblems("ffmpeg config", errs)
}

// JobIDPrefix starts every ffmpeg job id: the id is JobIDPrefix + token.
const JobIDPrefix = "ffmpeg-"

// StatePrefix is where, in the destination bucket, the ffmpeg backend keeps
// one JSON state object per job: .transcode-jobs/<jobID>.json. It is
// created (conditionally) by Start and rewritten by the instance running
// the job every HeartbeatInterval and at each state change.
const StatePrefix = ".transcode-jobs/"

// StateKey is the key of a job's state object in the destination bucket.
func StateKey(jobID string) string { return StatePrefix + jobID + ".json" }

var jobIDPattern = regexp.MustCompile(`^` + JobIDPrefix + `[A-Za-z0-9_-]{1,64}$`)

// Readable reasons of lost jobs.
const (
	errLost = "transcode job lost: its worker stopped"
)

// jobRecord is the JSON state object of a job.
type jobRecord struct {
	ID           string  `json:"id"`
	AtomID       string  `json:"atomId"`
	UploadID     string  `json:"uploadId"`
	SourceBucket string  `json:"sourceBucket"`
	SourceKey    string  `json:"sourceKey"`
	State        State   `json:"state"`
	Percent      float64 `json:"percent"`
	// Outputs are the output keys (the only description of the outputs
	// in state objects of older versions); Files describe them, Playback
	// is the master playlist's key.
	Outputs    []string  `json:"outputs,omitempty"`
	Files      []Output  `json:"files,omitempty"`
	Playback   string    `json:"playback,omitempty"`
	Error      string    `json:"error,omitempty"`
	Retryable  bool      `json:"retryable,omitempty"`
	Owner      string    `json:"owner"`
	CreatedAt  time.Time `json:"createdAt"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	// HeartbeatAt is when the owner last wrote the object (its clock).
	HeartbeatAt time.Time `json:"heartbeatAt"`
	InputBytes  int64     `json:"inputBytes,omitempty"`
}

func (r *jobRecord) job() Job {
	files := slices.Clone(r.Files)
	if len(files) == 0 {
		for _, key := range r.Outputs {
			files = append(files, Output{Key: key, Kind: kindOfKey(key)})
		}
	}
	return Job{
		ID:        r.ID,
		State:     r.State,
		Percent:   r.Percent,
		Outputs:   files,
		Playback:  r.Playback,
		Error:     r.Error,
		Retryable: r.Retryable,
	}
}

// kindOfKey is the kind of an output known only by its key (state objects
// of older versions).
func kindOfKey(key string) OutputKind {
	switch path.Ext(key) {
	case ".m3u8":
		return KindHLS
	case ".jpg":
		return KindPoster
	}
	return KindMP4
}

// ffJob is a job this process owns: waiting in the queue or running.
type ffJob struct {
	writeMu sync.Mutex // serialises writes of the state object
	final   bool       // a terminal state was written; guarded by writeMu

	mu  sync.Mutex
	rec jobRecord // guarded by mu
}

func (j *ffJob) setPercent(p float64) {
	j.mu.Lock()
	j.rec.Percent = p
	j.mu.Unlock()
}

// FFmpeg is the ffmpeg backend: Start records and queues a job, Run
// transcodes queued jobs, Job reads any job's state object, whichever
// instance owns it.
type FFmpeg struct {
	s3    S3API
	cfg   FFmpegConfig
	log   *zap.Logger
	owner string

	// Replaced by tests.
	now                func() time.Time
	onExec             func(name string)
	partSize           int64
	multipartThreshold int64

	wake chan struct{} // a job was queued

	mu      sync.Mutex
	queue   []*ffJob          // waiting, oldest first
	live    map[string]*ffJob // waiting or running, or whose final write failed
	running bool              // Run is running
	stopped bool              // Run has returned
	idle    chan struct{}     // closed when live becomes empty; replaced when a job is added

	cancelRun context.CancelFunc // Start's: ends Run
	ran       chan struct{}      // closed when Start's Run has returned
}

// NewFFmpeg returns the ffmpeg backend, or the configuration's problems.
func NewFFmpeg(client S3API, cfg FFmpegConfig) (*FFmpeg, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &FFmpeg{
		s3:                 client,
		cfg:                cfg,
		log:                log,
		owner:              fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:])),
		now:                time.Now,
		onExec:             func(string) {},
		partSize:           64 << 20,
		multipartThreshold: 512 << 20,
		wake:               make(chan struct{}, 1),
		live:               map[string]*ffJob{},
		idle:               closedChan(),
	}, nil
}

// Start records the job (state submitted) and queues it for Run. The job id
// is JobIDPrefix + spec.Token; the state object is created with
// If-None-Match "*", so when it already exists, on any instance, Start
// returns the same id and starts nothing.
func (f *FFmpeg) Start(ctx context.Context, spec Spec) (string, error) {
	if err := spec.Validate(); err != nil {
		return "", fmt.Errorf("start transcode %s/%s: %w", spec.AtomID, spec.UploadID, err)
	}
	id := JobIDPrefix + spec.Token
	f.mu.Lock()
	stopped := f.stopped
	f.mu.Unlock()
	if stopped {
		return "", fmt.Errorf("start transcode %s: %w", id, upload.Errorf(upload.EUNAVAILABLE, "the transcoder is shutting down; try again"))
	}
	now := f.now().UTC()
	j := &ffJob{rec: jobRecord{
		ID:           id,
		AtomID:       spec.AtomID,
		UploadID:     spec.UploadID,
		SourceBucket: spec.SourceBucket,
		SourceKey:    spec.SourceKey,
		State:        StateSubmitted,
		Owner:        f.owner,
		CreatedAt:    now,
		HeartbeatAt:  now,
	}}
	body, err := json.Marshal(&j.rec)
	if err != nil {
		return "", fmt.Errorf("start transcode %s: %w", id, err)
	}
	key := StateKey(id)
	_, err = f.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket:      aws.String(f.cfg.DestinationBucket),
		Key:         aws.String(key),
		Body:        bytes.NewReader(body),
		ContentType: aws.String("application/json"),
		IfNoneMatch: aws.String("*"),
	})
	if isPreconditionFailed(err) {
		return id, nil // the job exists: same token, same job
	}
	if err != nil {
		return "", fmt.Errorf("start transcode %s: %w", id, s3Error(err, f.cfg.DestinationBucket, key))
	}

	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		// Run returned while the object was written: nothing will run the
		// job, so say so now rather than when its heartbeat is stale.
		f.finishLost(ctx, j)
		return id, nil
	}
	f.queue = append(f.queue, j)
	if len(f.live) == 0 {
		f.idle = make(chan struct{})
	}
	f.live[id] = j
	f.mu.Unlock()
	f.signal()
	return id, nil
}

// Job reads the job's state object. A waiting or running job whose
// heartbeat is older than StaleAfter is reported lost: StateError,
// Retryable.
func (f *FFmpeg) Job(ctx context.Context, jobID string) (Job, error) {
	if !jobIDPattern.MatchString(jobID) {
		return Job{}, fmt.Errorf("get transcode job %q: %w", jobID, upload.Errorf(upload.EINVALID, "%q is not an ffmpeg transcode job id", jobID))
	}
	key := StateKey(jobID)
	out, err := f.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(f.cfg.DestinationBucket), Key: aws.String(key)})
	if err != nil {
		err = s3Error(err, f.cfg.DestinationBucket, key)
		if upload.ErrorCode(err) == upload.ENOTFOUND {
			err = domainError(upload.Errorf(upload.ENOTFOUND, "transcode job %s not found", jobID), err)
		}
		return Job{}, fmt.Errorf("get transcode job %s: %w", jobID, err)
	}
	defer out.Body.Close()
	var rec jobRecord
	if err := json.NewDecoder(io.LimitReader(out.Body, 1<<20)).Decode(&rec); err != nil {
		return Job{}, fmt.Errorf("get transcode job %s: %w", jobID,
			domainError(upload.Errorf(upload.EINTERNAL, "transcode job %s has an unreadable state object", jobID), err))
	}
	job := rec.job()
	job.ID = jobID
	if !job.State.Terminal() && f.now().Sub(rec.HeartbeatAt) > f.cfg.StaleAfter {
		job.State = StateError
		job.Error = errLost
		job.Retryable = true
	}
	return job, nil
}

// Run transcodes queued jobs, Concurrency at a time, and keeps the
// heartbeats of this process's jobs until ctx is done. Then it kills
// running ffmpeg processes, waits for them, marks their jobs and the
// waiting ones lost (Retryable) and returns nil. Run may be called once.
func (f *FFmpeg) Run(ctx context.Context) error {
	f.mu.Lock()
	if f.running || f.stopped {
		f.mu.Unlock()
		return fmt.Errorf("transcode: Run called twice")
	}
	f.running = true
	f.mu.Unlock()

	var g errgroup.Group
	for range f.cfg.Concurrency {
		g.Go(func() error { f.runner(ctx); return nil })
	}
	g.Go(func() error { f.heartbeats(ctx); return nil })
	_ = g.Wait()

	f.mu.Lock()
	f.stopped = true
	waiting := f.queue
	f.queue = nil
	f.mu.Unlock()
	for _, j := range waiting {
		f.finishLost(ctx, j)
	}
	return nil
}

// Busy reports whether this process has a job waiting or running: Stop
// gives such jobs its grace before it cancels Run.
func (f *FFmpeg) Busy() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.live) > 0
}

func (f *FFmpeg) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// next takes the oldest waiting job, or nil.
func (f *FFmpeg) next() *ffJob {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queue) == 0 {
		return nil
	}
	j := f.queue[0]
	f.queue[0] = nil
	f.queue = f.queue[1:]
	if len(f.queue) > 0 {
		f.signal() // wake another idle runner
	}
	return j
}

func (f *FFmpeg) runner(ctx context.Context) {
	for ctx.Err() == nil {
		j := f.next()
		if j == nil {
			select {
			case <-ctx.Done():
				return
			case <-f.wake:
			}
			continue
		}
		f.runJob(ctx, j)
	}
}

// heartbeats rewrites the state object of every live job each
// HeartbeatInterval. A failed write is left to the next beat; if writes
// keep failing the job goes stale and readers report it lost.
func (f *FFmpeg) heartbeats(ctx context.Context) {
	t := time.NewTicker(f.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f.mu.Lock()
		jobs := make([]*ffJob, 0, len(f.live))
		for _, j := range f.live {
			jobs = append(jobs, j)
		}
		f.mu.Unlock()
		for _, j := range jobs {
			if err := f.save(ctx, j, nil); err == nil {
				f.forgetIfFinal(j)
			}
		}
	}
}

// save applies update to the job's record and writes it, stamped with a
// fresh heartbeat. Once a terminal state is written nothing more is.
func (f *FFmpeg) save(ctx context.Context, j *ffJob, update func(*jobRecord)) error {
	j.writeMu.Lock()
	defer j.writeMu.Unlock()
	if j.final {
		return nil
	}
	j.mu.Lock()
	if update != nil {
		update(&j.rec)
	}
	j.rec.HeartbeatAt = f.now().UTC()
	terminal := j.rec.State.Terminal()
	body, err := json.Marshal(&j.rec)
	id := j.rec.ID
	j.mu.Unlock()
	if err != nil {
		return err
	}
	key := StateKey(id)
	if _, err := f.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket:      aws.String(f.cfg.DestinationBucket),
		Key:         aws.String(key),
		Body:        bytes.NewReader(body),
		ContentType: aws.String("application/json"),
	}); err != nil {
		return s3Error(err, f.cfg.DestinationBucket, key)
	}
	j.final = terminal
	return nil
}

// finish writes the job's terminal state even when ctx is cancelled (a
// stopping worker must still say what became of its jobs), then forgets
// the job. If the write fails the job stays live and the heartbeats retry
// it while Run runs.
func (f *FFmpeg) finish(ctx context.Context, j *ffJob, update func(*jobRecord)) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	err := f.save(ctx, j, func(r *jobRecord) {
		update(r)
		r.FinishedAt = f.now().UTC()
	})
	if err == nil {
		f.forgetIfFinal(j)
	}
	return err
}

func (f *FFmpeg) finishLost(ctx context.Context, j *ffJob) {
	_ = f.finish(ctx, j, func(r *jobRecord) {
		r.State = StateError
		r.Error = errLost
		r.Retryable = true
	})
}

func (f *FFmpeg) forgetIfFinal(j *ffJob) {
	j.writeMu.Lock()
	final := j.final
	j.writeMu.Unlock()
	if !final {
		return
	}
	j.mu.Lock()
	id := j.rec.ID
	j.mu.Unlock()
	f.mu.Lock()
	if f.live[id] == j {
		delete(f.live, id)
		if len(f.live) == 0 {
			close(f.idle)
		}
	}
	f.mu.Unlock()
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// Runner is the lifecycle of the FFmpeg backend's job runner, with the
// Start/Stop shape of the service's other components.
type Runner struct{ f *FFmpeg }

// Runner returns the backend's job runner.
func (f *FFmpeg) Runner() Runner { return Runner{f} }

// Start runs the jobs in the background (FFmpeg.Run) and returns at once.
func (r Runner) Start(ctx context.Context) error {
	f := r.f
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f.mu.Lock()
	if f.cancelRun != nil {
		f.mu.Unlock()
		cancel()
		return fmt.Errorf("transcode: Start called twice")
	}
	f.cancelRun, f.ran = cancel, make(chan struct{})
	ran := f.ran
	f.mu.Unlock()
	go func() {
		defer close(ran)
		defer func() {
			if p := recover(); p != nil {
				f.log.Error("recovered from a panic", zap.String("in", "ffmpeg runner"), zap.Any("panic", p))
			}
		}()
		_ = f.Run(runCtx)
	}()
	return nil
}

// Stop lets the jobs waiting or running in this process finish until ctx
// is done, then kills what is still running and marks it lost (another
// instance starts it again), and returns once Run has returned.
func (r Runner) Stop(ctx context.Context) error {
	f := r.f
	f.mu.Lock()
	cancel, ran, idle := f.cancelRun, f.ran, f.idle
	f.mu.Unlock()
	if cancel == nil {
		return nil
	}
	select {
	case <-idle:
	case <-ctx.Done():
	}
	cancel()
	<-ran
	return nil
}
