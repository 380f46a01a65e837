package transcode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"atomuploads/upload"
)

var testRenditions = []Rendition{
	{Name: "240p", Height: 240, VideoBitrate: 400_000, AudioBitrate: 64_000},
	{Name: "144p", Height: 144, VideoBitrate: 200_000, AudioBitrate: 48_000},
}

// ffEnv is one test's S3 buckets and the settings of its transcoders.
type ffEnv struct {
	s3     *s3.Client
	src    string // source bucket
	dest   string // destination bucket
	tmp    string // TempDir of the transcoders
	logs   *observer.ObservedLogs
	logger *zap.Logger
}

func newFFEnv(t *testing.T) *ffEnv {
	t.Helper()
	c := requireS3(t)
	tmp := filepath.Join(t.TempDir(), "work")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	return &ffEnv{s3: c, src: newBucket(t, c), dest: newBucket(t, c), tmp: tmp, logs: logs, logger: zap.New(core)}
}

// transcoder returns an ffmpeg backend on the env's buckets; change adjusts
// its config.
func (e *ffEnv) transcoder(t testing.TB, change func(*FFmpegConfig)) *FFmpeg {
	t.Helper()
	cfg := FFmpegConfig{
		DestinationBucket: e.dest,
		Renditions:        testRenditions,
		TempDir:           e.tmp,
		HeartbeatInterval: 200 * time.Millisecond,
		Preset:            "ultrafast",
		Logger:            e.logger,
	}
	if change != nil {
		change(&cfg)
	}
	f, err := NewFFmpeg(e.s3, cfg)
	if err != nil {
		t.Fatalf("NewFFmpeg: %v", err)
	}
	return f
}

// spec is the transcode of upload uploadID of the test atom.
func (e *ffEnv) spec(uploadID, token string) Spec {
	const atomID = "a"
	return Spec{AtomID: atomID, UploadID: uploadID, SourceBucket: e.src, SourceKey: upload.FullKey(atomID, uploadID), Token: token}
}

// run runs f.Run until the test ends and checks that it returns nil.
func run(t testing.TB, f *FFmpeg) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	})
}

// countExecs counts the processes f starts, by binary name.
func countExecs(f *FFmpeg) func(name string) int {
	var mu sync.Mutex
	n := map[string]int{}
	f.onExec = func(name string) {
		mu.Lock()
		n[name]++
		mu.Unlock()
	}
	return func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		return n[name]
	}
}

// waitJob polls Job until the job is complete or failed.
func waitJob(t testing.TB, f *FFmpeg, id string) Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		job, err := f.Job(ctx, id)
		if err != nil {
			t.Fatalf("Job(%s): %v", id, err)
		}
		if job.State.Terminal() {
			return job
		}
		select {
		case <-ctx.Done():
			t.Fatalf("job %s still %s at %.0f%% after 60s, want it to finish", id, job.State, job.Percent)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func assertTempEmpty(t testing.TB, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("temp dir holds %v after the jobs, want it empty", names)
	}
}

type probed struct {
	Streams []struct {
		CodecName string `json:"codec_name"`
		CodecType string `json:"codec_type"`
		Width     int    `json:"width"`
		Height    int    `json:"height"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

func (p probed) codecs() []string {
	var out []string
	for _, s := range p.Streams {
		out = append(out, s.CodecType+"/"+s.CodecName)
	}
	return out
}

func ffprobe(t testing.TB, data []byte) probed {
	t.Helper()
	path := filepath.Join(t.TempDir(), "probe")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries",
		"format=duration:stream=codec_name,codec_type,width,height", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	var p probed
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("ffprobe output: %v", err)
	}
	return p
}

func TestFFmpegWritesTheLayout(t *testing.T) {
	t.Parallel()
	e := newFFEnv(t)
	putObject(t, e.s3, e.src, "uploads/a/u/full", makeVideo(t, "2"))
	f := e.transcoder(t, nil)
	execs := countExecs(f)
	run(t, f)

	id, err := f.Start(context.Background(), e.spec("u", "u-1"))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if id != "ffmpeg-u-1" {
		t.Errorf("job id = %q, want %q", id, "ffmpeg-u-1")
	}
	job := waitJob(t, f, id)
	if job.State != StateComplete || job.Percent != 100 || job.Error != "" {
		t.Fatalf("job = %+v, want complete at 100%% without error", job)
	}
	if job.Playback != "a/u/hls/master.m3u8" || job.Playback != MasterKey("a", "u") {
		t.Errorf("playback = %q, want a/u/hls/master.m3u8", job.Playback)
	}
	// The 320x240 source gets both rungs of the test ladder.
	want := []Output{
		{Key: "a/u/hls/master.m3u8", Kind: KindHLS},
		{Key: "a/u/hls/master_240p.m3u8", Kind: KindHLSVideo, Width: 320, Height: 240},
		{Key: "a/u/hls/master_144p.m3u8", Kind: KindHLSVideo, Width: 192, Height: 144},
		{Key: "a/u/hls/master_audio.m3u8", Kind: KindHLSAudio},
		{Key: "a/u/240p.mp4", Kind: KindMP4, Width: 320, Height: 240},
		{Key: "a/u/poster.0000000.jpg", Kind: KindPoster, Width: 320, Height: 240},
	}
	if len(job.Outputs) != len(want) {
		t.Fatalf("outputs = %+v, want %+v", job.Outputs, want)
	}
	for i, o := range job.Outputs {
		w := want[i]
		hasRate := o.Bitrate > 0
		o.Bitrate = 0
		if o != w {
			t.Errorf("output %d = %+v, want %+v", i, o, w)
		}
		if wantRate := w.Kind != KindHLS && w.Kind != KindPoster; hasRate != wantRate {
			t.Errorf("output %s has bitrate %d, want one: %v", o.Key, job.Outputs[i].Bitrate, wantRate)
		}
	}
	// The destination holds the outputs and the segments they name; each
	// with the content type S3 serves it as.
	keys := listKeys(t, e.s3, e.dest, "a/")
	for _, k := range job.Keys() {
		if !slices.Contains(keys, k) {
			t.Errorf("destination lacks %s: %v", k, keys)
		}
	}
	for _, name := range []string{"240p", "144p", "audio"} {
		for _, k := range []string{"a/u/hls/master_" + name + "_init.mp4", "a/u/hls/master_" + name + "_00000.m4s"} {
			if !slices.Contains(keys, k) {
				t.Errorf("destination lacks %s: %v", k, keys)
			}
		}
	}
	for _, k := range keys {
		head, err := e.s3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(e.dest), Key: aws.String(k)})
		if err != nil {
			t.Fatalf("head %s: %v", k, err)
		}
		wantType := "video/mp4"
		switch {
		case strings.HasSuffix(k, ".m3u8"):
			wantType = "application/vnd.apple.mpegurl"
		case strings.HasSuffix(k, ".jpg"):
			wantType = "image/jpeg"
		}
		if got := aws.ToString(head.ContentType); got != wantType {
			t.Errorf("%s has content type %q, want %q", k, got, wantType)
		}
	}
	if got := listKeys(t, e.s3, e.dest, StatePrefix); !slices.Equal(got, []string{StateKey(id)}) {
		t.Errorf("state objects = %v, want [%s]", got, StateKey(id))
	}
	// One encode of the ladder, one copy into the MP4.
	if got := execs("ffmpeg"); got != 2 {
		t.Errorf("ffmpeg ran %d times, want 2", got)
	}
	assertTempEmpty(t, e.tmp)

	started := e.logs.FilterMessage("transcode job started").All()
	completed := e.logs.FilterMessage("transcode job completed").All()
	if len(started) != 1 || len(completed) != 1 {
		t.Fatalf("logged %d started and %d completed lines, want 1 each", len(started), len(completed))
	}
	fields := completed[0].ContextMap()
	for k, v := range map[string]any{"atomId": "a", "uploadId": "u", "destination": "s3Bucket", "jobId": id} {
		if fields[k] != v {
			t.Errorf("completed log field %s = %v, want %v", k, fields[k], v)
		}
	}
	if _, ok := fields["durationMs"]; !ok {
		t.Errorf("completed log has no durationMs field: %v", fields)
	}
	if b, _ := fields["bytes"].(int64); b <= 0 {
		t.Errorf("completed log field bytes = %v, want the input size", fields["bytes"])
	}
}

// A job completed by an older version described its outputs by key only.
func TestFFmpegReadsOlderStateObjects(t *testing.T) {
	rec := jobRecord{ID: "ffmpeg-u-1", State: StateComplete, Percent: 100, Outputs: []string{"a/u/720p.mp4", "a/u/poster.jpg"}}
	job := rec.job()
	want := []Output{{Key: "a/u/720p.mp4", Kind: KindMP4}, {Key: "a/u/poster.jpg", Kind: KindPoster}}
	if !slices.Equal(job.Outputs, want) || job.Playback != "" {
		t.Errorf("job = %+v, want outputs %+v and no playback", job, want)
	}
}

func TestFFmpegBadInputFailsForGood(t *testing.T) {
	t.Parallel()
	e := newFFEnv(t)
	f := e.transcoder(t, nil)
	run(t, f)

	audioOnly := filepath.Join(t.TempDir(), "tone.m4a")
	if msg, err := exec.Command("ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi",
		"-i", "sine=duration=1", "-c:a", "aac", audioOnly).CombinedOutput(); err != nil {
		t.Fatalf("make audio file: %v: %s", err, msg)
	}
	tone, err := os.ReadFile(audioOnly)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		body      []byte // nil: no source object
		wantError string
	}{
		{"text", bytes.Repeat([]byte("this is not a video\n"), 100), "input is not a video: ffprobe: Invalid data found when processing input"},
		{"audio-only", tone, "input is not a video: it has no video stream"},
		{"missing", nil, "the source s3://" + e.src + "/uploads/a/missing/full does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.body != nil {
				putObject(t, e.s3, e.src, upload.FullKey("a", tt.name), tt.body)
			}
			id, err := f.Start(context.Background(), e.spec(tt.name, tt.name+"-1"))
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			job := waitJob(t, f, id)
			if job.State != StateError || job.Retryable || job.Error != tt.wantError {
				t.Errorf("job = %+v, want state error, not retryable, error %q", job, tt.wantError)
			}
			if len(job.Outputs) != 0 {
				t.Errorf("outputs = %v, want none", job.Outputs)
			}
			if got := listKeys(t, e.s3, e.dest, OutputPrefix("a", tt.name)); len(got) != 0 {
				t.Errorf("destination holds %v, want nothing", got)
			}
		})
	}
	assertTempEmpty(t, e.tmp)
	if got := len(e.logs.FilterMessage("transcode job failed").All()); got != len(tests) {
		t.Errorf("logged %d failed lines, want %d", got, len(tests))
	}
}

func TestFFmpegStartIsIdempotentAcrossInstances(t *testing.T) {
	t.Parallel()
	e := newFFEnv(t)
	putObject(t, e.s3, e.src, "uploads/a/u/full", makeVideo(t, "1"))
	a := e.transcoder(t, func(c *FFmpegConfig) { c.Renditions = testRenditions[1:] })
	b := e.transcoder(t, func(c *FFmpegConfig) { c.Renditions = testRenditions[1:] })
	execsA, execsB := countExecs(a), countExecs(b)
	ctx := context.Background()
	spec := e.spec("u", "u-7")

	var ids []string
	for _, f := range []*FFmpeg{a, a, b} {
		id, err := f.Start(ctx, spec)
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		ids = append(ids, id)
	}
	if ids[0] != ids[1] || ids[0] != ids[2] {
		t.Fatalf("job ids = %v, want one id", ids)
	}
	if len(a.queue) != 1 || len(b.queue) != 0 {
		t.Fatalf("queued jobs: a %d, b %d; want a 1, b 0", len(a.queue), len(b.queue))
	}
	run(t, a)
	run(t, b)
	if job := waitJob(t, b, ids[0]); job.State != StateComplete {
		t.Fatalf("job = %+v, want complete", job)
	}
	// The same token after completion still names the same job.
	if id, err := b.Start(ctx, spec); err != nil || id != ids[0] {
		t.Errorf("Start after completion = %q, %v; want %q, nil", id, err, ids[0])
	}
	if got := execsA("ffmpeg") + execsB("ffmpeg"); got != 2 {
		t.Errorf("ffmpeg ran %d times, want 2 (one job: an encode and a copy)", got)
	}
	if got := execsB("ffprobe"); got != 0 {
		t.Errorf("instance b ran ffprobe %d times, want 0", got)
	}
}

func TestFFmpegQueuesJobsBeyondConcurrency(t *testing.T) {
	t.Parallel()
	e := newFFEnv(t)
	video := makeVideo(t, "1")
	f := e.transcoder(t, func(c *FFmpegConfig) { c.Renditions = testRenditions[1:]; c.Concurrency = 1 })
	execs := countExecs(f)
	ctx := context.Background()
	var ids []string
	for _, u := range []string{"u1", "u2", "u3"} {
		putObject(t, e.s3, e.src, upload.FullKey("a", u), video)
		id, err := f.Start(ctx, e.spec(u, u+"-1"))
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		job, err := f.Job(ctx, id)
		if err != nil || job.State != StateSubmitted || job.Percent != 0 {
			t.Errorf("before Run: Job(%s) = %+v, %v; want submitted at 0%%", id, job, err)
		}
	}
	if !f.Busy() {
		t.Error("Busy() = false with three jobs waiting")
	}
	run(t, f)
	for i, id := range ids {
		job := waitJob(t, f, id)
		want := fmt.Sprintf("a/u%d/144p.mp4", i+1)
		if job.State != StateComplete || !slices.Contains(job.Keys(), want) {
			t.Errorf("job %s = %+v, want complete with %s", id, job, want)
		}
	}
	// The job leaves Busy just after its final state is written.
	for deadline := time.Now().Add(5 * time.Second); f.Busy(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Busy() = true with every job complete")
		}
	}
	if got := execs("ffmpeg"); got != 2*len(ids) {
		t.Errorf("ffmpeg ran %d times, want %d (an encode and a copy per job)", got, 2*len(ids))
	}
	assertTempEmpty(t, e.tmp)
}

func TestFFmpegLostJobs(t *testing.T) {
	t.Parallel()
	e := newFFEnv(t)
	ctx := context.Background()

	t.Run("stale heartbeat", func(t *testing.T) {
		owner := e.transcoder(t, nil) // never runs: as if it died
		id, err := owner.Start(ctx, e.spec("stale", "stale-1"))
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		reader := e.transcoder(t, nil)
		if job, err := reader.Job(ctx, id); err != nil || job.State != StateSubmitted {
			t.Errorf("fresh: Job = %+v, %v; want submitted", job, err)
		}
		reader.now = func() time.Time { return time.Now().Add(DefaultStaleAfter + time.Second) }
		job, err := reader.Job(ctx, id)
		if err != nil {
			t.Fatalf("Job: %v", err)
		}
		want := Job{ID: id, State: StateError, Error: "transcode job lost: its worker stopped", Retryable: true}
		if !jobsEqual(job, want) {
			t.Errorf("stale: Job = %+v, want %+v", job, want)
		}
	})

	t.Run("waiting when Run stops", func(t *testing.T) {
		f := e.transcoder(t, nil)
		id, err := f.Start(ctx, e.spec("waiting", "waiting-1"))
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		stopped, cancel := context.WithCancel(ctx)
		cancel()
		if err := f.Run(stopped); err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		job, err := e.transcoder(t, nil).Job(ctx, id)
		if err != nil || job.State != StateError || !job.Retryable || job.Error != errLost {
			t.Errorf("Job = %+v, %v; want a retryable %q error", job, err, errLost)
		}
		_, err = f.Start(ctx, e.spec("late", "late-1"))
		if upload.ErrorCode(err) != upload.EUNAVAILABLE {
			t.Errorf("Start after Run = %v, want an %s error", err, upload.EUNAVAILABLE)
		}
	})

	t.Run("running when Run stops", func(t *testing.T) {
		putObject(t, e.s3, e.src, "uploads/a/running/full", makeVideo(t, "1"))
		// A stand-in ffmpeg that records its pid and hangs until killed.
		dir := t.TempDir()
		pidFile := filepath.Join(dir, "pid")
		script := filepath.Join(dir, "ffmpeg")
		body := fmt.Sprintf("#!/bin/sh\necho $$ > %s.tmp\nmv %s.tmp %s\nexec sleep 600\n", pidFile, pidFile, pidFile)
		if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		f := e.transcoder(t, func(c *FFmpegConfig) { c.FFmpegPath = script })
		id, err := f.Start(ctx, e.spec("running", "running-1"))
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- f.Run(runCtx) }()
		pid := waitPID(t, pidFile)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("ffmpeg (pid %d) after Run returned: kill -0 = %v, want ESRCH", pid, err)
		}
		job, err := f.Job(ctx, id)
		if err != nil || job.State != StateError || !job.Retryable || job.Error != errLost {
			t.Errorf("Job = %+v, %v; want a retryable %q error", job, err, errLost)
		}
	})
	assertTempEmpty(t, e.tmp)
}

// waitPID waits for the stand-in ffmpeg to write its pid.
func waitPID(t testing.TB, path string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatalf("pid file: %v", err)
			}
			return pid
		}
		select {
		case <-ctx.Done():
			t.Fatal("the stand-in ffmpeg did not start within 30s")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func jobsEqual(a, b Job) bool {
	return a.ID == b.ID && a.State == b.State && a.Percent == b.Percent && slices.Equal(a.Outputs, b.Outputs) && a.Playback == b.Playback &&
		a.Error == b.Error && a.Retryable == b.Retryable
}

func TestFFmpegJobErrors(t *testing.T) {
	t.Parallel()
	e := newFFEnv(t)
	f := e.transcoder(t, nil)
	ctx := context.Background()
	if _, err := f.Job(ctx, "ffmpeg-nope-1"); upload.ErrorCode(err) != upload.ENOTFOUND {
		t.Errorf("Job(unknown) = %v, want an %s error", err, upload.ENOTFOUND)
	}
	if _, err := f.Job(ctx, "1700000000000-abcdef"); upload.ErrorCode(err) != upload.EINVALID {
		t.Errorf("Job(MediaConvert id) = %v, want an %s error", err, upload.EINVALID)
	}
	if _, err := f.Start(ctx, Spec{AtomID: "a/b", Token: "x y"}); upload.ErrorCode(err) != upload.EINVALID {
		t.Errorf("Start(bad spec) = %v, want an %s error", err, upload.EINVALID)
	}
	putObject(t, e.s3, e.dest, StateKey("ffmpeg-garbled"), []byte("{not json"))
	if _, err := f.Job(ctx, "ffmpeg-garbled"); upload.ErrorCode(err) != upload.EINTERNAL {
		t.Errorf("Job(garbled state) = %v, want an %s error", err, upload.EINTERNAL)
	}
}

func TestUploadMultipart(t *testing.T) {
	t.Parallel()
	e := newFFEnv(t)
	f := e.transcoder(t, nil)
	f.partSize = 5 << 20
	f.multipartThreshold = 0
	data := bytes.Repeat([]byte("0123456789abcdef"), (5<<20+100<<10)/16)
	path := filepath.Join(t.TempDir(), "big.mp4")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.upload(context.Background(), path, "a/u/big.mp4"); err != nil {
		t.Fatalf("upload: %v", err)
	}
	out, err := e.s3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(e.dest), Key: aws.String("a/u/big.mp4")})
	if err != nil {
		t.Fatalf("head: %v", err)
	}
	if got := aws.ToString(out.ContentType); got != "video/mp4" {
		t.Errorf("content type = %q, want video/mp4", got)
	}
	if etag := aws.ToString(out.ETag); !strings.HasSuffix(strings.Trim(etag, `"`), "-2") {
		t.Errorf("ETag = %s, want a 2-part multipart ETag", etag)
	}
	if got := getObject(t, e.s3, e.dest, "a/u/big.mp4"); !bytes.Equal(got, data) {
		t.Errorf("read back %d bytes that differ from the %d written", len(got), len(data))
	}
}

// Check the heartbeats really refresh the state object of a waiting job.
func TestFFmpegHeartbeatKeepsWaitingJobsAlive(t *testing.T) {
	t.Parallel()
	e := newFFEnv(t)
	putObject(t, e.s3, e.src, "uploads/a/u/full", makeVideo(t, "1"))
	f := e.transcoder(t, nil)
	var beat atomic.Int64 // seconds the clock has been moved on
	f.now = func() time.Time { return time.Now().Add(time.Duration(beat.Load()) * time.Second) }
	ctx := context.Background()
	id, err := f.Start(ctx, e.spec("u", "u-1"))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	first := readRecord(t, e, id)
	// Hold the job in the queue: run only the heartbeats.
	hbCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); f.heartbeats(hbCtx) }()
	beat.Store(3600)
	deadline := time.Now().Add(30 * time.Second)
	for readRecord(t, e, id).HeartbeatAt.Sub(first.HeartbeatAt) < time.Hour {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatal("state object not rewritten by the heartbeats within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	if job, err := f.Job(ctx, id); err != nil || job.State != StateSubmitted {
		t.Errorf("Job = %+v, %v; want submitted", job, err)
	}
}

func readRecord(t testing.TB, e *ffEnv, id string) jobRecord {
	t.Helper()
	var rec jobRecord
	if err := json.Unmarshal(getObject(t, e.s3, e.dest, StateKey(id)), &rec); err != nil {
		t.Fatalf("state object: %v", err)
	}
	return rec
}
