package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"atomuploads/devstack"
	"atomuploads/transcode"
	"atomuploads/upload"
)

// testVideo makes a 3 s H.264/AAC video with ffmpeg's lavfi sources; the
// noise makes it about 11 MB, so it is sent in three parts.
func testVideo(t testing.TB) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "source.mp4")
	out, err := exec.Command("ffmpeg", "-v", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=3",
		"-f", "lavfi", "-i", "sine=frequency=440:duration=3",
		"-vf", "noise=alls=60:allf=t", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0",
		"-c:a", "aac", "-shortest", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startFFmpeg runs the ffmpeg transcoder (one 144p rendition and a poster)
// into the test's output bucket until the test ends.
func (e *env) startFFmpeg(t testing.TB) *transcode.FFmpeg {
	t.Helper()
	ff, err := transcode.NewFFmpeg(e.st.S3, transcode.FFmpegConfig{
		DestinationBucket: e.st.OutputBucket,
		Renditions:        []transcode.Rendition{{Name: "144p", Height: 144, VideoBitrate: 200_000}},
		Preset:            "ultrafast",
		HeartbeatInterval: time.Second,
		Logger:            e.log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := ff.Run(ctx); err != nil {
			t.Errorf("ffmpeg runner: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return ff
}

type probe struct {
	Streams []struct {
		CodecName string `json:"codec_name"`
		CodecType string `json:"codec_type"`
		Height    int    `json:"height"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

// ffprobe downloads an output and asks ffprobe what it is.
func (e *env) ffprobe(t testing.TB, key string) probe {
	t.Helper()
	out, err := e.st.S3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(e.st.OutputBucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get output %s: %v", key, err)
	}
	defer out.Body.Close()
	path := filepath.Join(t.TempDir(), filepath.Base(key))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, out.Body); err != nil {
		t.Fatal(err)
	}
	f.Close()
	raw, err := exec.Command("ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-show_format", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", key, err)
	}
	var p probe
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func (e *env) sendFullEvent(t testing.TB, u *upload.Upload) {
	t.Helper()
	body := fmt.Sprintf(`{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":%q,"eventName":"ObjectCreated:CompleteMultipartUpload","s3":{"bucket":{"name":%q},"object":{"key":%q,"size":%d}}}]}`,
		e.st.AWS.Region, e.st.Bucket, devstack.EncodeKey(u.FullKey()), u.Size)
	if _, err := e.st.SQS.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(e.st.QueueURL), MessageBody: aws.String(body)}); err != nil {
		t.Fatal(err)
	}
}

func TestVideoThroughTheWholeS3BucketPipeline(t *testing.T) {
	e := newEnv(t)
	video := testVideo(t)
	ff := e.startFFmpeg(t)
	e.startWorker(t, workerOpts{tc: ff})
	u := e.newUpload(t, int64(len(video)))
	if u.PartCount() < 2 {
		t.Fatalf("the test video is %d bytes: one part, want several", len(video))
	}
	for _, n := range []int{1, 2, 0} {
		e.putPart(t, u, video, n)
	}
	// SQS may deliver the full event more than once: two more copies.
	waitFor(t, 60*time.Second, "the transcode to start", func() bool { return e.get(t, u).Destination(upload.S3Bucket).JobID != "" })
	e.sendFullEvent(t, u)
	e.sendFullEvent(t, u)

	waitFor(t, 120*time.Second, "the upload to complete", func() bool { return e.get(t, u).Status.Terminal() })
	got := e.get(t, u)
	d := got.Destination(upload.S3Bucket)
	if got.Status != upload.StatusComplete || d.Status != upload.DestComplete || d.Progress != 100 {
		t.Fatalf("upload %s, destination %s %.0f%% %q; want complete", got.Status, d.Status, d.Progress, d.Error)
	}
	prefix := u.AtomID + "/" + u.ID + "/"
	want := []string{prefix + "hls/master.m3u8", prefix + "hls/master_144p.m3u8", prefix + "hls/master_audio.m3u8",
		prefix + "144p.mp4", prefix + "poster.0000000.jpg"}
	if strings.Join(d.Outputs, ",") != strings.Join(want, ",") {
		t.Errorf("outputs = %v, want %v", d.Outputs, want)
	}
	// The record describes them and names the master playlist.
	if d.Playback != prefix+"hls/master.m3u8" {
		t.Errorf("playback = %q, want the master playlist", d.Playback)
	}
	if len(d.Files) != len(want) || d.Files[1].Kind != "hlsVideo" || d.Files[1].Width != 192 || d.Files[1].Height != 144 ||
		d.Files[1].Bitrate <= 0 || d.Files[3].Kind != "mp4" || d.Files[4].Kind != "poster" {
		t.Errorf("files = %+v, want the outputs described", d.Files)
	}
	p := e.ffprobe(t, prefix+"144p.mp4")
	var video0 bool
	for _, s := range p.Streams {
		if s.CodecType == "video" {
			video0 = s.CodecName == "h264" && s.Height == 144
		}
	}
	dur, _ := strconv.ParseFloat(p.Format.Duration, 64)
	if !video0 || dur < 2.7 || dur > 3.3 {
		t.Errorf("ffprobe of the rendition: %+v, want h264 144p of about 3 s", p)
	}
	if n := len(e.logs.With(t, "transcode started")); n != 1 {
		t.Errorf("%d transcode starts for three full events, want 1", n)
	}
	jobs, err := e.st.S3.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(e.st.OutputBucket), Prefix: aws.String(transcode.StatePrefix)})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs.Contents) != 1 {
		t.Errorf("%d transcode jobs, want 1", len(jobs.Contents))
	}
}

func TestNonVideoFailsTheDestinationReadably(t *testing.T) {
	e := newEnv(t)
	ff := e.startFFmpeg(t)
	e.startWorker(t, workerOpts{tc: ff})
	notVideo := []byte(strings.Repeat("this is a text file, not a video\n", 1000))
	u := e.newUpload(t, int64(len(notVideo)))
	e.putPart(t, u, notVideo, 0)
	waitFor(t, 60*time.Second, "the upload to finish", func() bool { return e.get(t, u).Status.Terminal() })
	got := e.get(t, u)
	d := got.Destination(upload.S3Bucket)
	if got.Status != upload.StatusFailed || d.Status != upload.DestFailed || !strings.Contains(d.Error, "not a video") {
		t.Errorf("upload %s, destination %s %q; want failed saying the input is not a video", got.Status, d.Status, d.Error)
	}
	if !strings.Contains(got.Error, "s3Bucket: transcode failed") {
		t.Errorf("upload error = %q, want it to name the destination", got.Error)
	}
}
