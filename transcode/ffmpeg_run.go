package transcode

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
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
	"golang.org/x/sync/errgroup"

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
		job := Job{Outputs: outputs}
		update = func(r *jobRecord) {
			r.State = StateComplete
			r.Percent = 100
			r.Outputs = job.Keys()
			r.Files = outputs
			r.Playback = MasterKey(rec.AtomID, rec.UploadID)
		}
		fields = append(fields, zap.Strings("outputs", job.Keys()))
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

// transcode downloads the source, probes it, encodes its ladder, packages
// the outputs and uploads them. It returns the outputs and the size of the
// input. The job's temp directory is always removed.
func (f *FFmpeg) transcode(ctx context.Context, j *ffJob, rec jobRecord) ([]Output, int64, error) {
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
	ladder, err := Ladder(f.cfg.Renditions, info.Source)
	if err != nil {
		return nil, size, badInput("%s", err.Error())
	}
	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(filepath.Join(out, HLSDir), 0o755); err != nil {
		return nil, size, &jobError{reason: "cannot create a temporary directory", retryable: true, cause: err}
	}
	if err := f.encode(ctx, input, out, info, ladder, func(p float64) { j.setPercent(p * 0.95) }); err != nil {
		return nil, size, err
	}
	files, err := f.pack(ctx, out, info.Source, ladder)
	if err != nil {
		return nil, size, err
	}
	prefix := OutputPrefix(rec.AtomID, rec.UploadID)
	if err := f.uploadAll(ctx, out, prefix); err != nil {
		return nil, size, infraFailure("cannot write the outputs", err)
	}
	for i := range files {
		files[i].Key = prefix + files[i].Key
	}
	return files, size, nil
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
	Format inputFormat // the accepted demuxer that reads it
	Source Source      // its first video stream as displayed, and whether it has sound
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
	args = append(args, "-show_entries",
		"format=format_name,duration:stream=codec_type,width,height,sample_aspect_ratio,avg_frame_rate:stream_side_data=rotation",
		"-of", "json")
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
	var probe probeOutput
	if err := json.Unmarshal([]byte(stdout.String()), &probe); err != nil {
		return mediaInfo{}, badInput("input is not a video: ffprobe output is unreadable")
	}
	// The whitelist already kept ffprobe to these demuxers; this check does
	// not depend on it.
	format, ok := acceptedFormat(probe.Format.FormatName)
	if !ok {
		return mediaInfo{}, notAContainer(lookalikeOf(input), fmt.Errorf("ffprobe found the format %q", probe.Format.FormatName))
	}
	src, ok := probe.source()
	if !ok {
		return mediaInfo{}, badInput("input is not a video: it has no video stream")
	}
	return mediaInfo{Format: format, Source: src}, nil
}

// probeOutput is the JSON ffprobe writes for probe's -show_entries.
type probeOutput struct {
	Streams []struct {
		CodecType    string `json:"codec_type"`
		Width        int    `json:"width"`
		Height       int    `json:"height"`
		SAR          string `json:"sample_aspect_ratio"`
		AvgFrameRate string `json:"avg_frame_rate"`
		SideData     []struct {
			Rotation float64 `json:"rotation"`
		} `json:"side_data_list"`
	} `json:"streams"`
	Format struct {
		FormatName string `json:"format_name"`
		Duration   string `json:"duration"`
	} `json:"format"`
}

// source describes the first video stream as ffmpeg displays it (and
// scales it): its pixel aspect ratio applied, and turned by its rotation,
// which ffmpeg applies when it decodes.
func (p probeOutput) source() (Source, bool) {
	var src Source
	found := false
	for _, s := range p.Streams {
		switch {
		case s.CodecType == "audio":
			src.HasAudio = true
		case s.CodecType == "video" && !found:
			found = true
			src.Width, src.Height = s.Width, s.Height
			if num, den, ok := ratio(s.SAR); ok && num > 0 && den > 0 && num != den {
				src.Width = int(math.Round(float64(s.Width) * float64(num) / float64(den)))
			}
			for _, sd := range s.SideData {
				if r := math.Mod(math.Abs(sd.Rotation), 180); r > 45 && r < 135 {
					src.Width, src.Height = src.Height, src.Width
				}
			}
			if num, den, ok := ratio(s.AvgFrameRate); ok && num > 0 && den > 0 {
				src.FrameRate = float64(num) / float64(den)
			}
		}
	}
	if d, err := strconv.ParseFloat(p.Format.Duration, 64); err == nil && d > 0 {
		src.Duration = d
	}
	return src, found
}

// ratio parses "a:b" or "a/b".
func ratio(s string) (int, int, bool) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		a, b, ok = strings.Cut(s, "/")
	}
	if !ok {
		return 0, 0, false
	}
	num, err1 := strconv.Atoi(a)
	den, err2 := strconv.Atoi(b)
	return num, den, err1 == nil && err2 == nil
}

// hlsArgs are the options of one ffmpeg HLS output: fMP4 segments of
// SegmentSeconds, a VOD media playlist hls/master_<name>.m3u8 in dir.
func hlsArgs(dir, name string) []string {
	base := MasterName + "_" + name
	return []string{"-f", "hls", "-hls_time", strconv.Itoa(SegmentSeconds), "-hls_playlist_type", "vod",
		"-hls_segment_type", "fmp4", "-hls_flags", "independent_segments",
		"-hls_fmp4_init_filename", base + "_init.mp4",
		"-hls_segment_filename", filepath.Join(dir, HLSDir, base+"_%05d.m4s"),
		filepath.Join(dir, HLSDir, base+".m3u8")}
}

// ffmpegArgs builds one ffmpeg run that reads the input with the demuxer
// ffprobe found (and no other, from no other file) and writes, into dir,
// one HLS media playlist with its segments per rung of the ladder, one for
// the sound (when the source has some) and the poster. Each output has its
// own encoder; the input is decoded once.
func (f *FFmpeg) ffmpegArgs(input, dir string, info mediaInfo, ladder []Encoding) []string {
	args := []string{"-nostdin", "-hide_banner", "-loglevel", "error", "-nostats",
		"-progress", "pipe:1", "-y"}
	args = append(args, inputArgs(input, info.Format)...)
	for _, e := range ladder {
		args = append(args,
			"-map", "0:v:0", "-an",
			"-vf", fmt.Sprintf("scale=%d:%d,setsar=1", e.Width, e.Height),
			"-c:v", "libx264", "-preset", f.cfg.Preset, "-crf", "23",
			"-maxrate", strconv.Itoa(e.VideoBitrate), "-bufsize", strconv.Itoa(2*e.VideoBitrate),
			"-pix_fmt", "yuv420p",
			// Never more frames than the source has; a keyframe every
			// GOPSeconds of output time in every variant, so that their
			// segments start at the same instants.
			"-fps_mode", "vfr",
			"-force_key_frames", fmt.Sprintf("expr:gte(t,n_forced*%d)", GOPSeconds))
		args = append(args, hlsArgs(dir, e.Name)...)
	}
	if info.Source.HasAudio {
		args = append(args, "-map", "0:a:0", "-vn",
			"-c:a", "aac", "-b:a", strconv.Itoa(audioBitrate(ladder)), "-ac", "2")
		args = append(args, hlsArgs(dir, AudioName)...)
	}
	top := ladder[0]
	args = append(args,
		"-map", "0:v:0",
		"-ss", strconv.FormatFloat(info.Source.Duration/10, 'f', 3, 64),
		"-vf", fmt.Sprintf("scale=%d:%d,setsar=1", top.Width, top.Height),
		"-frames:v", "1", "-update", "1", "-q:v", "3",
		filepath.Join(dir, PosterFile))
	return args
}

// encode runs ffmpeg, reporting progress (0..99) as it goes.
func (f *FFmpeg) encode(ctx context.Context, input, dir string, info mediaInfo, ladder []Encoding, progress func(float64)) error {
	if _, ok := acceptedFormat(info.Format.name); !ok {
		// Never let ffmpeg choose the demuxer.
		return notAContainer("", fmt.Errorf("no accepted demuxer for the input: %q", info.Format.name))
	}
	cmd := f.command(ctx, f.cfg.FFmpegPath, f.ffmpegArgs(input, dir, info, ladder)...)
	stderr := &tailBuffer{max: 4096}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return &jobError{reason: "cannot run ffmpeg", retryable: true, cause: err}
	}
	if err := cmd.Start(); err != nil {
		return &jobError{reason: "cannot run ffmpeg", retryable: true, cause: err}
	}
	readProgress(stdout, info.Source.Duration, progress)
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return badInput("ffmpeg failed: %s", toolMessage(stderr.String(), inputURL(input), false))
	}
	if st, err := os.Stat(filepath.Join(dir, PosterFile)); err != nil || st.Size() == 0 {
		return badInput("ffmpeg wrote no poster")
	}
	return nil
}

// pack completes the HLS package ffmpeg wrote into dir: it measures every
// media playlist's segments, writes the master playlist, and makes the
// progressive MP4 of the highest rung from that rung's segments and the
// sound's (a copy, not another encode). It returns the outputs, keyed
// relative to dir, in the order of Job.Outputs.
func (f *FFmpeg) pack(ctx context.Context, dir string, src Source, ladder []Encoding) ([]Output, error) {
	hls := filepath.Join(dir, HLSDir)
	read := func(name string) (mediaPlaylist, rates, error) {
		file, err := os.Open(filepath.Join(hls, mediaPlaylistName(name)))
		if err != nil {
			return mediaPlaylist{}, rates{}, badInput("ffmpeg wrote no playlist for %s", name)
		}
		defer file.Close()
		pl, err := parseMediaPlaylist(file)
		if err != nil {
			return pl, rates{}, badInput("ffmpeg wrote a bad playlist for %s: %v", name, err)
		}
		r, err := measure(hls, pl)
		if err != nil {
			return pl, r, badInput("ffmpeg wrote a bad playlist for %s: %v", name, err)
		}
		return pl, r, nil
	}
	var (
		audio    mediaPlaylist
		audioR   rates
		audioURI string
		outputs  = []Output{{Key: HLSDir + MasterName + ".m3u8", Kind: KindHLS}}
		variants []variant
		topPL    mediaPlaylist
	)
	if src.HasAudio {
		var err error
		if audio, audioR, err = read(AudioName); err != nil {
			return nil, err
		}
		audioURI = mediaPlaylistName(AudioName)
	}
	for i, e := range ladder {
		pl, r, err := read(e.Name)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			topPL = pl
		}
		init, err := os.ReadFile(filepath.Join(hls, pl.Init))
		if err != nil {
			return nil, badInput("ffmpeg wrote no init segment for %s", e.Name)
		}
		codecs, err := avcCodec(init)
		if err != nil {
			return nil, badInput("ffmpeg wrote a bad init segment for %s: %v", e.Name, err)
		}
		if src.HasAudio {
			codecs += "," + aacLC
		}
		v := variant{URI: mediaPlaylistName(e.Name), Width: e.Width, Height: e.Height,
			Bandwidth: r.Peak + audioR.Peak, Average: r.Average + audioR.Average, Codecs: codecs}
		variants = append(variants, v)
		outputs = append(outputs, Output{Key: HLSDir + v.URI, Kind: KindHLSVideo, Width: e.Width, Height: e.Height, Bitrate: v.Bandwidth})
	}
	if src.HasAudio {
		outputs = append(outputs, Output{Key: HLSDir + audioURI, Kind: KindHLSAudio, Bitrate: audioR.Average})
	}
	if err := os.WriteFile(filepath.Join(hls, MasterName+".m3u8"), masterPlaylist(variants, audioURI, src.FrameRate), 0o644); err != nil {
		return nil, &jobError{reason: "cannot write a temporary file", retryable: true, cause: err}
	}

	top := ladder[0]
	mp4 := top.Name + ".mp4"
	if err := f.remuxMP4(ctx, dir, topPL, audio, src.HasAudio, mp4); err != nil {
		return nil, err
	}
	st, err := os.Stat(filepath.Join(dir, mp4))
	if err != nil {
		return nil, badInput("ffmpeg wrote no %s", mp4)
	}
	var seconds float64
	for _, s := range topPL.Segments {
		seconds += s.Duration
	}
	bitrate := 0
	if seconds > 0 {
		bitrate = int(float64(st.Size()*8) / seconds)
	}
	outputs = append(outputs,
		Output{Key: mp4, Kind: KindMP4, Width: top.Width, Height: top.Height, Bitrate: bitrate},
		Output{Key: PosterFile, Kind: KindPoster, Width: top.Width, Height: top.Height})
	return outputs, nil
}

// remuxMP4 joins a media playlist's init segment and segments into one
// fragmented MP4 per track (their concatenation is one), then copies the
// video and the sound into a progressive MP4 with its index first
// (+faststart), named name in dir.
func (f *FFmpeg) remuxMP4(ctx context.Context, dir string, video, audio mediaPlaylist, hasAudio bool, name string) error {
	hls := filepath.Join(dir, HLSDir)
	join := func(pl mediaPlaylist, to string) error {
		out, err := os.Create(to)
		if err != nil {
			return &jobError{reason: "cannot write a temporary file", retryable: true, cause: err}
		}
		defer out.Close()
		for _, part := range append([]string{pl.Init}, segmentNames(pl)...) {
			in, err := os.Open(filepath.Join(hls, part))
			if err != nil {
				return badInput("ffmpeg wrote no %s", part)
			}
			_, err = io.Copy(out, in)
			in.Close()
			if err != nil {
				return &jobError{reason: "cannot write a temporary file", retryable: true, cause: err}
			}
		}
		return out.Close()
	}
	videoFile := filepath.Join(dir, "video.fmp4")
	if err := join(video, videoFile); err != nil {
		return err
	}
	defer os.Remove(videoFile)
	args := []string{"-nostdin", "-hide_banner", "-loglevel", "error", "-y",
		"-protocol_whitelist", protocolWhitelist, "-f", "mov", "-i", inputURL(videoFile)}
	maps := []string{"-map", "0:v:0"}
	if hasAudio {
		audioFile := filepath.Join(dir, "audio.fmp4")
		if err := join(audio, audioFile); err != nil {
			return err
		}
		defer os.Remove(audioFile)
		args = append(args, "-protocol_whitelist", protocolWhitelist, "-f", "mov", "-i", inputURL(audioFile))
		maps = append(maps, "-map", "1:a:0")
	}
	args = append(args, maps...)
	args = append(args, "-c", "copy", "-movflags", "+faststart", filepath.Join(dir, name))
	cmd := f.command(ctx, f.cfg.FFmpegPath, args...)
	stderr := &tailBuffer{max: 4096}
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &jobError{reason: "cannot make the MP4: " + toolMessage(stderr.String(), inputURL(videoFile), false), retryable: true, cause: err}
	}
	return nil
}

func segmentNames(pl mediaPlaylist) []string {
	names := make([]string, len(pl.Segments))
	for i, s := range pl.Segments {
		names[i] = s.Name
	}
	return names
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

// uploadConcurrency is how many outputs are written at once.
const uploadConcurrency = 8

// uploadAll writes every file in dir (the HLS package, the MP4, the
// poster) under prefix in the destination bucket, the master playlist
// last: a player that finds it finds everything it names.
func (f *FFmpeg) uploadAll(ctx context.Context, dir, prefix string) error {
	master := HLSDir + MasterName + ".m3u8"
	var names []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if rel = filepath.ToSlash(rel); rel != master {
			names = append(names, rel)
		}
		return nil
	})
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(uploadConcurrency)
	for _, name := range names {
		g.Go(func() error { return f.upload(gctx, filepath.Join(dir, name), prefix+name) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return f.upload(ctx, filepath.Join(dir, master), prefix+master)
}

// upload writes the file to the destination bucket, with the content type
// of its name: one PUT, or a multipart upload above the multipart
// threshold (S3 takes at most 5 GB in one PUT).
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
	contentType := ContentType(key)
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
