package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"atomuploads/client"
	"atomuploads/devstack/stacktest"
	"atomuploads/youtube/youtubetest"
)

// TestEndToEnd runs the whole pipeline: the local stack, the service (with
// the ffmpeg transcoder), the YouTube and atom API stand-ins, and the
// upload client putting a generated video to both destinations.
func TestEndToEnd(t *testing.T) {
	st := stacktest.New(t)
	yt, ytURL, atom, atomURL := newStandIns(t, youtubetest.Options{ProcessingSteps: 2})
	env := serviceEnv(t, st, ytURL, atomURL)
	env["UPLOADS_TRANSCODE_BACKEND"] = "ffmpeg"
	env["UPLOADS_TRANSCODE_OUTPUT_BUCKET"] = st.OutputBucket
	env["UPLOADS_TRANSCODE_FFMPEG_PRESET"] = "ultrafast"
	env["UPLOADS_LOG_LEVEL"] = "info"
	svc := startService(t, env)
	svc.waitHealthy(t)

	// A 4 s video with sound; the noise makes it about 15 MB: 3 parts.
	video := filepath.Join(t.TempDir(), "clip.mp4")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=4",
		"-f", "lavfi", "-i", "sine=frequency=440:duration=4",
		"-vf", "noise=alls=60:allf=t", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0",
		"-c:a", "aac", "-shortest", video).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, out)
	}
	data, err := os.ReadFile(video)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)

	ctx := testCtx(t, 4*time.Minute)
	var stdout, stderr bytes.Buffer
	code := client.Main(ctx, []string{
		"--api", "http://" + svc.addr, "--token", "test-token-0123456789",
		"--s3-endpoint", os.Getenv("AWS_ENDPOINT_URL_S3"),
		"--atom", "e2e-atom", "--youtube-title", "End to end", "--youtube-tags", "news,test", "--s3",
		"--poll", "500ms", video,
	}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("upload exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	t.Logf("client:\n%s", stdout.String())
	if strings.Contains(stdout.String()+stderr.String(), "test-token-0123456789") {
		t.Error("the client printed the API token")
	}

	// The record says complete, for both destinations.
	uploads := listUploads(t, ctx, "http://"+svc.addr+"/api2/atom/e2e-atom/uploads")
	if len(uploads) != 1 {
		t.Fatalf("%d uploads, want 1", len(uploads))
	}
	u := uploads[0]
	if u.Status != "complete" {
		t.Errorf("upload status %s %q, want complete", u.Status, u.Error)
	}
	var videoID, playback string
	var outputs, kinds []string
	for _, d := range u.Destinations {
		if d.Status != "complete" {
			t.Errorf("%s destination %s %q, want complete", d.Type, d.Status, d.Error)
		}
		switch d.Type {
		case "youtube":
			videoID = d.Details.VideoID
		case "s3Bucket":
			playback = d.Details.Playback
			for _, o := range d.Details.Outputs {
				outputs, kinds = append(outputs, o.Key), append(kinds, o.Kind)
			}
		}
	}

	// YouTube got the file byte-exact, in one session, by the protocol.
	v, ok := yt.Video(videoID)
	if !ok {
		t.Fatalf("the stand-in has no video %q", videoID)
	}
	if v.SHA256 != hex.EncodeToString(sum[:]) || v.Title != "End to end" || len(v.Tags) != 2 || v.Sessions != 1 {
		t.Errorf("video = %+v, want the file's sha256 %x with its metadata, one session", v, sum)
	}
	if viol := yt.Violations(); len(viol) > 0 {
		t.Errorf("protocol violations: %v", viol)
	}
	if calls := atom.Calls("e2e-atom"); len(calls) != 1 || calls[0].URI != "https://www.youtube.com/watch?v="+videoID {
		t.Errorf("atom API calls = %+v, want one with the video", calls)
	}

	// The transcoded outputs are in the output bucket: the 320x240 clip is
	// below the default ladder, so it gets one rendition at its own size.
	prefix := "e2e-atom/" + u.ID + "/"
	want := []string{prefix + "hls/master.m3u8", prefix + "hls/master_240p.m3u8", prefix + "hls/master_audio.m3u8",
		prefix + "240p.mp4", prefix + "poster.0000000.jpg"}
	if strings.Join(outputs, ",") != strings.Join(want, ",") {
		t.Errorf("outputs = %v, want %v", outputs, want)
	}
	if got, want := strings.Join(kinds, ","), "hls,hlsVideo,hlsAudio,mp4,poster"; got != want {
		t.Errorf("kinds of the outputs = %s, want %s", got, want)
	}
	if playback != want[0] {
		t.Errorf("playback = %q, want %s", playback, want[0])
	}
	for _, key := range want {
		head, err := st.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(st.OutputBucket), Key: aws.String(key)})
		if err != nil || aws.ToInt64(head.ContentLength) == 0 {
			t.Errorf("output %s: %v", key, err)
		}
	}

	// The service's log lines of each state change carry the ids.
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(svc.out.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l map[string]any
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		msg, _ := l["msg"].(string)
		switch msg {
		case "part complete", "reassembled", "chunk relayed", "YouTube upload complete", "transcode started",
			"transcode complete", "YouTube processing complete", "asset added to atom":
			seen[msg] = true
			if l["atomId"] != "e2e-atom" || l["uploadId"] != u.ID {
				t.Errorf("log line without the ids: %s", sc.Text())
			}
		}
	}
	for _, msg := range []string{"part complete", "reassembled", "chunk relayed", "YouTube upload complete",
		"transcode started", "transcode complete", "YouTube processing complete", "asset added to atom"} {
		if !seen[msg] {
			t.Errorf("no %q log line", msg)
		}
	}
}

func listUploads(t testing.TB, ctx context.Context, url string) []record {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer test-token-0123456789")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct{ Uploads []record }
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Uploads
}
