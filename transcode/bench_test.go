package transcode

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// benchSeconds is the length of the benchmark's source.
const benchSeconds = 10

// BenchmarkFFmpegEncode1080p is what the ffmpeg backend costs: a 1080p25
// source with sound, through the default ladder (1080p, 720p, 360p, the
// audio, the poster) on the default preset, then the MP4 copied out of the
// 1080p segments and the master playlist written. Transfers to and from S3
// are not counted. It reports video-s/s, seconds of video transcoded per
// second of wall time (above 1 is faster than real time):
//
//	go test -run '^$' -bench FFmpegEncode1080p -benchtime 3x ./transcode/
//
// The source is ffmpeg's testsrc2 pattern with moving grain added, a rough
// stand-in for camera footage (a clean pattern encodes much faster).
func BenchmarkFFmpegEncode1080p(b *testing.B) {
	dir := b.TempDir()
	input := filepath.Join(dir, "input")
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=1920x1080:rate=25:duration=%d", benchSeconds),
		"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=440:sample_rate=48000:duration=%d", benchSeconds),
		"-vf", "noise=alls=12:allf=t", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "12", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-f", "mp4", input).CombinedOutput()
	if err != nil {
		b.Fatalf("make the source: %v: %s", err, out)
	}
	f, err := NewFFmpeg(nil, FFmpegConfig{DestinationBucket: "unused"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	info, err := f.probe(ctx, input)
	if err != nil {
		b.Fatal(err)
	}
	ladder, err := Ladder(f.cfg.Renditions, info.Source)
	if err != nil {
		b.Fatal(err)
	}
	var before syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &before); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		work := filepath.Join(dir, "out")
		if err := os.MkdirAll(filepath.Join(work, HLSDir), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := f.encode(ctx, input, work, info, ladder, func(float64) {}); err != nil {
			b.Fatal(err)
		}
		if _, err := f.pack(ctx, work, info.Source, ladder); err != nil {
			b.Fatal(err)
		}
		if err := os.RemoveAll(work); err != nil {
			b.Fatal(err)
		}
	}
	var after syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &after); err != nil {
		b.Fatal(err)
	}
	cpu := func(r syscall.Rusage) float64 {
		return time.Duration(r.Utime.Nano() + r.Stime.Nano()).Seconds()
	}
	video := info.Source.Duration * float64(b.N)
	b.ReportMetric(video/b.Elapsed().Seconds(), "video-s/s")
	b.ReportMetric((cpu(after)-cpu(before))/video, "cpu-s/video-s")
}
