package transcode

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.uber.org/zap"

	"atomuploads/metrics"
	"atomuploads/upload"
)

// jobError is why a job failed: a readable reason for the state object and
// whether a new attempt may succeed.
type jobError struct {
	reason    string
	retryable bool
	cause     error
}

func (e *jobError) Error() string {
	if e.cause == nil {
		return e.reason
	}
	return e.reason + ": " + e.cause.Error()
}

func (e *jobError) Unwrap() error { return e.cause }

// badInput is a failure caused by the input: retrying will not help.
func badInput(format string, args ...any) error {
	return &jobError{reason: fmt.Sprintf(format, args...)}
}

// infraFailure is a failure of this worker or its dependencies: a new
// attempt may succeed. The reason carries only the domain message.
func infraFailure(what string, err error) error {
	return &jobError{reason: what + ": " + upload.ErrorMessage(err), retryable: true, cause: err}
}

// runJob transcodes one job and records the outcome. Failures end in the
// job's state object and the log, not in an error.
func (f *FFmpeg) runJob(ctx context.Context, j *ffJob) {
	start := f.now()
	j.mu.Lock()
	rec := j.rec
	j.mu.Unlock()
	log := f.log.With(
		zap.String("jobId", rec.ID),
		zap.String("atomId", rec.AtomID),
		zap.String("uploadId", rec.UploadID),
		zap.String("destination", string(upload.S3Bucket)),
	)
	// A failed write here is retried by the heartbeats.
	_ = f.save(ctx, j, func(r *jobRecord) {
		r.State = StateProgressing
		r.StartedAt = start.UTC()
		r.Percent = 0
	})
	log.Info("transcode job started", zap.String("source", "s3://"+rec.SourceBucket+"/"+rec.SourceKey))
	f.cfg.Metrics.FFmpegStarted()

	outputs, size, err := f.transcode(ctx, j, rec)
	f.cfg.Metrics.FFmpegFinished(ffmpegOutcome(ctx, err), f.now().Sub(start))
	var (
		update func(*jobRecord)
		fields = []zap.Field{zap.Int64("bytes", size)}
	)
	switch {
	case err == nil:
		update = func(r *jobRecord) {
			r.State = StateComplete
			r.Percent = 100
			r.Outputs = outputs
		}
		fields = append(fields, zap.Strings("outputs", outputs))
	case ctx.Err() != nil:
		// This worker is stopping: the job is lost, and a new attempt may
		// run it elsewhere.
		update = func(r *jobRecord) {
			r.State = StateError
			r.Error = errLost
			r.Retryable = true
		}
		fields = append(fields, zap.String("error", errLost), zap.Bool("retryable", true))
	default:
		je := &jobError{reason: "transcode failed", retryable: true, cause: err}
		errors.As(err, &je)
		update = func(r *jobRecord) {
			r.State = StateError
			r.Error = je.reason
			r.Retryable = je.retryable
		}
		fields = append(fields, zap.String("error", je.reason), zap.Bool("retryable", je.retryable), zap.NamedError("cause", err))
	}
	werr := f.finish(ctx, j, func(r *jobRecord) {
		update(r)
		r.InputBytes = size
	})
	fields = append(fields, zap.Int64("durationMs", f.now().Sub(start).Milliseconds()))
	if werr != nil {
		// The heartbeats retry the write while Run runs.
		fields = append(fields, zap.NamedError("stateWriteError", werr))
	}
	if err == nil {
		log.Info("transcode job completed", fields...)
	} else {
		log.Warn("transcode job failed", fields...)
	}
}

// ffmpegOutcome is a run's outcome, for the metrics.
func ffmpegOutcome(ctx context.Context, err error) string {
	switch {
	case err == nil:
		return metrics.TranscodeComplete
	case ctx.Err() != nil:
		return metrics.TranscodeLost
	}
	return metrics.TranscodeFailed
}

// transcode downloads the source, probes it, runs ffmpeg and uploads the
// outputs. It returns the output keys and the size of the input. The job's
// temp directory is always removed.
func (f *FFmpeg) transcode(ctx context.Context, j *ffJob, rec jobRecord) ([]string, int64, error) {
	dir, err := os.MkdirTemp(f.cfg.TempDir, "transcode-")
	if err != nil {
		return nil, 0, &jobError{reason: "cannot create a temporary directory", retryable: true, cause: err}
	}
	defer os.RemoveAll(dir)

	input := filepath.Join(dir, "input")
	size, err := f.download(ctx, rec.SourceBucket, rec.SourceKey, input)
	if err != nil {
		return nil, size, err
	}
	info, err := f.probe(ctx, input)
	if err != nil {
		return nil, size, err
	}
	files, err := f.encode(ctx, input, dir, info, j.setPercent)
	if err != nil {
		return nil, size, err
	}
	prefix := OutputPrefix(rec.AtomID, rec.UploadID)
	keys := make([]string, 0, len(files))
	for _, name := range files {
		key := prefix + name
		if err := f.upload(ctx, filepath.Join(dir, name), key); err != nil {
			return nil, size, infraFailure("cannot write the outputs", err)
		}
		keys = append(keys, key)
	}
	return keys, size, nil
}

// download streams the object into a new file at path and returns its size.
func (f *FFmpeg) download(ctx context.Context, bucket, key, path string) (int64, error) {
	out, err := f.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		err = s3Error(err, bucket, key)
		if upload.ErrorCode(err) == upload.ENOTFOUND {
			return 0, badInput("the source s3://%s/%s does not exist", bucket, key)
		}
		return 0, infraFailure("cannot read the source", err)
	}
	defer out.Body.Close()
	file, err := os.Create(path)
	if err != nil {
		return 0, &jobError{reason: "cannot write a temporary file", retryable: true, cause: err}
	}
	n, err := io.Copy(file, out.Body)
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, &jobError{reason: "cannot download the source", retryable: true, cause: err}
	}
	return n, nil
}

// mediaInfo is what ffprobe tells about the input.
type mediaInfo struct {
	Format   inputFormat // the accepted demuxer that reads it
	Duration float64     // seconds; 0 when unknown
}

func (f *FFmpeg) command(ctx context.Context, path string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.WaitDelay = 10 * time.Second // bounds the wait for pipes after a kill
	f.onExec(filepath.Base(path))
	return cmd
}

// probe checks that the input is in an accepted container (inputFormats)
// and has a video stream, and reads its demuxer and duration. ffprobe may
// open only the input file, with only the accepted demuxers.
func (f *FFmpeg) probe(ctx context.Context, input string) (mediaInfo, error) {
	args := append([]string{"-v", "error"}, inputArgs(input, inputFormat{})...)
	args = append(args, "-show_entries", "format=format_name,duration:stream=codec_type", "-of", "json")
	cmd := f.command(ctx, f.cfg.FFprobePath, args...)
	var stdout strings.Builder
	stderr := &tailBuffer{max: 4096}
	cmd.Stdout = &stdout
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return mediaInfo{}, ctx.Err()
		}
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			return mediaInfo{}, &jobError{reason: "cannot run ffprobe", retryable: true, cause: err}
		}
		// A demuxer outside the whitelist, or a list that no accepted
		// demuxer reads: ffprobe's words go to the log only.
		what := lookalikeOf(input)
		if what != "" || strings.Contains(stderr.String(), "not on whitelist") {
			return mediaInfo{}, notAContainer(what, fmt.Errorf("ffprobe: %s", strings.TrimSpace(stderr.String())))
		}
		return mediaInfo{}, badInput("input is not a video: ffprobe: %s", toolMessage(stderr.String(), inputURL(input), true))
	}
	var probe struct {
		Streams []struct {
			CodecType string `json:"codec_type"`
		} `json:"streams"`
		Format struct {
			FormatName string `json:"format_name"`
			Duration   string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal([]byte(stdout.String()), &probe); err != nil {
		return mediaInfo{}, badInput("input is not a video: ffprobe output is unreadable")
	}
	// The whitelist already kept ffprobe to these demuxers; this check does
	// not depend on it.
	format, ok := acceptedFormat(probe.Format.FormatName)
	if !ok {
		return mediaInfo{}, notAContainer(lookalikeOf(input), fmt.Errorf("ffprobe found the format %q", probe.Format.FormatName))
	}
	hasVideo := false
	for _, s := range probe.Streams {
		hasVideo = hasVideo || s.CodecType == "video"
	}
	if !hasVideo {
		return mediaInfo{}, badInput("input is not a video: it has no video stream")
	}
	d, err := strconv.ParseFloat(probe.Format.Duration, 64)
	if err != nil || d < 0 {
		d = 0
	}
	return mediaInfo{Format: format, Duration: d}, nil
}

// ffmpegArgs builds one ffmpeg run that reads the input with the demuxer
// ffprobe found (and no other, from no other file) and writes every
// rendition and the poster into dir, and returns the output file names in
// order.
func (f *FFmpeg) ffmpegArgs(input, dir string, info mediaInfo) ([]string, []string) {
	args := []string{"-nostdin", "-hide_banner", "-loglevel", "error", "-nostats",
		"-progress", "pipe:1", "-y"}
	args = append(args, inputArgs(input, info.Format)...)
	var names []string
	tallest := 0
	for _, r := range f.cfg.Renditions {
		tallest = max(tallest, r.Height)
		name := r.Name + ".mp4"
		names = append(names, name)
		args = append(args,
			"-map", "0:v:0", "-map", "0:a:0?", // audio only if the input has some
			"-vf", fmt.Sprintf("scale=-2:%d", r.Height),
			"-c:v", "libx264", "-preset", f.cfg.Preset, "-crf", "23",
			"-maxrate", strconv.Itoa(r.VideoBitrate), "-bufsize", strconv.Itoa(2*r.VideoBitrate),
			"-pix_fmt", "yuv420p",
			"-c:a", "aac", "-b:a", strconv.Itoa(r.audioBitrate()), "-ac", "2",
			"-movflags", "+faststart",
			filepath.Join(dir, name))
	}
	poster := PosterName + ".jpg"
	names = append(names, poster)
	args = append(args,
		"-map", "0:v:0",
		"-ss", strconv.FormatFloat(info.Duration/10, 'f', 3, 64),
		"-vf", fmt.Sprintf("scale=-2:%d", tallest),
		"-frames:v", "1", "-update", "1", "-q:v", "3",
		filepath.Join(dir, poster))
	return args, names
}

// encode runs ffmpeg, reporting progress (0..99) as it goes, and returns the
// names of the files it wrote in dir.
func (f *FFmpeg) encode(ctx context.Context, input, dir string, info mediaInfo, progress func(float64)) ([]string, error) {
	if _, ok := acceptedFormat(info.Format.name); !ok {
		// Never let ffmpeg choose the demuxer.
		return nil, notAContainer("", fmt.Errorf("no accepted demuxer for the input: %q", info.Format.name))
	}
	args, names := f.ffmpegArgs(input, dir, info)
	cmd := f.command(ctx, f.cfg.FFmpegPath, args...)
	stderr := &tailBuffer{max: 4096}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, &jobError{reason: "cannot run ffmpeg", retryable: true, cause: err}
	}
	if err := cmd.Start(); err != nil {
		return nil, &jobError{reason: "cannot run ffmpeg", retryable: true, cause: err}
	}
	readProgress(stdout, info.Duration, progress)
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, badInput("ffmpeg failed: %s", toolMessage(stderr.String(), inputURL(input), false))
	}
	for _, name := range names {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Size() == 0 {
			return nil, badInput("ffmpeg wrote no %s", name)
		}
	}
	return names, nil
}

// readProgress parses ffmpeg's -progress output (key=value lines) until EOF
// and reports out_time_us against the duration as a percentage, kept below
// 100 until the job is complete.
func readProgress(r io.Reader, duration float64, progress func(float64)) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "out_time_us=")
		if !ok || duration <= 0 {
			continue
		}
		us, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || us < 0 {
			continue
		}
		progress(min(float64(us)/(duration*1e6)*100, 99))
	}
	_, _ = io.Copy(io.Discard, r) // keep ffmpeg from blocking on a full pipe
}

var ffLogPrefix = regexp.MustCompile(`^\[[^\]]*@ 0x[0-9a-f]+\]\s*`)

// toolMessage picks one line of a tool's stderr as the readable reason:
// the last one for ffprobe (its verdict on the input), the first for ffmpeg
// (the cause; later lines are consequences). The component prefix and the
// temp path of the input, which mean nothing to users, are removed.
func toolMessage(stderr, input string, last bool) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if last {
		slices.Reverse(lines)
	}
	for _, l := range lines {
		l = strings.TrimSpace(l)
		l = ffLogPrefix.ReplaceAllString(l, "")
		l = strings.TrimPrefix(l, input+": ")
		l = strings.ReplaceAll(l, input, "input")
		if l != "" {
			if len(l) > 300 {
				l = l[:300] + "…"
			}
			return l
		}
	}
	return "unknown error"
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.buf) }

// upload writes the file to the destination bucket: one PUT, or a multipart
// upload above the multipart threshold (S3 takes at most 5 GB in one PUT).
func (f *FFmpeg) upload(ctx context.Context, path, key string) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return err
	}
	contentType := "video/mp4"
	if strings.HasSuffix(key, ".jpg") {
		contentType = "image/jpeg"
	}
	bucket := f.cfg.DestinationBucket
	if st.Size() > f.multipartThreshold {
		return f.uploadMultipart(ctx, file, st.Size(), key, contentType)
	}
	_, err = f.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(bucket),
		Key:           aws.String(key),
		Body:          file,
		ContentLength: aws.Int64(st.Size()),
		ContentType:   aws.String(contentType),
	})
	return s3Error(err, bucket, key)
}

func (f *FFmpeg) uploadMultipart(ctx context.Context, file *os.File, size int64, key, contentType string) (err error) {
	bucket := f.cfg.DestinationBucket
	created, err := f.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:            aws.String(bucket),
		Key:               aws.String(key),
		ContentType:       aws.String(contentType),
		ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32,
	})
	if err != nil {
		return s3Error(err, bucket, key)
	}
	defer func() {
		if err != nil {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			// Best effort: a bucket lifecycle rule for incomplete multipart
			// uploads catches what this misses.
			_, _ = f.s3.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
				Bucket: aws.String(bucket), Key: aws.String(key), UploadId: created.UploadId,
			})
		}
	}()
	var parts []s3types.CompletedPart
	for n, off := int32(1), int64(0); off < size; n, off = n+1, off+f.partSize {
		length := min(f.partSize, size-off)
		out, err := f.s3.UploadPart(ctx, &s3.UploadPartInput{
			Bucket:            aws.String(bucket),
			Key:               aws.String(key),
			UploadId:          created.UploadId,
			PartNumber:        aws.Int32(n),
			Body:              io.NewSectionReader(file, off, length),
			ContentLength:     aws.Int64(length),
			ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32,
		})
		if err != nil {
			return s3Error(err, bucket, key)
		}
		parts = append(parts, s3types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32})
	}
	_, err = f.s3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(bucket),
		Key:             aws.String(key),
		UploadId:        created.UploadId,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts},
	})
	return s3Error(err, bucket, key)
}
