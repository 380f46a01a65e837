package transcode

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// makeSource renders a test video of the given size, frame rate and
// length, with a tone unless silent, and returns the MP4 bytes.
func makeSource(t testing.TB, width, height, fps int, seconds string, withAudio bool) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "source.mp4")
	args := []string{"-nostdin", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=%d:duration=%s", width, height, fps, seconds)}
	if withAudio {
		args = append(args, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration="+seconds, "-c:a", "aac")
	}
	args = append(args, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", out)
	if msg, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("make test video: %v: %s", err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rotated returns the video with a display matrix that turns it a quarter
// (as phones record portrait video: landscape pictures, turned on display).
func rotated(t testing.TB, video []byte) []byte {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.mp4"), filepath.Join(dir, "out.mov")
	if err := os.WriteFile(in, video, 0o644); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command("ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", in,
		"-c", "copy", "-metadata:s:v:0", "rotate=90", out).CombinedOutput(); err != nil {
		t.Fatalf("rotate test video: %v: %s", err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// publicRead lets anyone GET the bucket's objects over HTTP, as a CDN in
// front of the output bucket does: the outputs are then read the way a
// player reads them, by relative URLs from the master playlist.
func publicRead(t testing.TB, c *s3.Client, bucket string) string {
	t.Helper()
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["*"]},`+
		`"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::%s/*"]}]}`, bucket)
	if _, err := c.PutBucketPolicy(context.Background(), &s3.PutBucketPolicyInput{Bucket: aws.String(bucket), Policy: aws.String(policy)}); err != nil {
		t.Fatalf("put bucket policy: %v", err)
	}
	return strings.TrimSuffix(os.Getenv("AWS_ENDPOINT_URL_S3"), "/") + "/" + bucket + "/"
}

// httpGet fetches a URL without credentials.
func httpGet(t testing.TB, url string) (http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	return resp.Header, body
}

// httpProbe is ffprobe reading a URL over HTTP only.
type httpProbe struct {
	Streams []struct {
		CodecName    string `json:"codec_name"`
		CodecType    string `json:"codec_type"`
		Width        int    `json:"width"`
		Height       int    `json:"height"`
		AvgFrameRate string `json:"avg_frame_rate"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

func probeURL(t testing.TB, url string) httpProbe {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-protocol_whitelist", "http,tcp",
		"-show_entries", "format=duration:stream=codec_name,codec_type,width,height,avg_frame_rate", "-of", "json", url).Output()
	if err != nil {
		var stderr string
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("ffprobe %s: %v: %s", url, err, stderr)
	}
	var p httpProbe
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("ffprobe %s: %v", url, err)
	}
	return p
}

// play decodes every stream of url with ffmpeg as an HTTP client; any
// error fails the test.
func play(t testing.TB, url string) {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-xerror", "-protocol_whitelist", "http,tcp",
		"-i", url, "-map", "0", "-f", "null", "-").CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("ffmpeg playing %s: %v: %s", url, err, out)
	}
}

func frameRate(s string) float64 {
	num, den, ok := ratio(s)
	if !ok || den == 0 {
		return 0
	}
	return float64(num) / float64(den)
}

// topLevelBoxes lists the types of an MP4's first boxes.
func topLevelBoxes(b []byte) []string {
	var types []string
	for len(b) >= 8 {
		size := uint64(binary.BigEndian.Uint32(b))
		typ := string(b[4:8])
		if size == 1 && len(b) >= 16 {
			size = binary.BigEndian.Uint64(b[8:])
		}
		types = append(types, typ)
		if size < 8 || size > uint64(len(b)) {
			break
		}
		b = b[size:]
	}
	return types
}

// Sources of several shapes go through the default ladder, and every
// output is checked the way players read it: over HTTP from S3, with no
// credentials, following the master playlist's relative URLs.
func TestFFmpegLadderPlaysFromS3(t *testing.T) {
	t.Parallel()
	e := newFFEnv(t)
	base := publicRead(t, e.s3, e.dest)
	f := e.transcoder(t, func(c *FFmpegConfig) { c.Renditions = nil; c.Concurrency = 2 })
	run(t, f)

	type size struct{ w, h int }
	shapes := []struct {
		name       string
		w, h, fps  int // as displayed
		seconds    float64
		audio      bool
		renditions []string
		sizes      []size
		rotate     bool // recorded as h×w, turned on display
	}{
		{"landscape", 1280, 720, 25, 2, true, []string{"720p", "360p"}, []size{{1280, 720}, {640, 360}}, false},
		// Long enough for two segments: 6 s, then the rest.
		{"small", 640, 360, 25, 8, true, []string{"360p"}, []size{{640, 360}}, false},
		{"portrait", 360, 640, 30, 2, true, []string{"360p"}, []size{{360, 640}}, false},
		// A phone's portrait clip: 1280×720 pictures with a quarter turn.
		{"phone", 720, 1280, 30, 1, true, []string{"720p", "360p"}, []size{{720, 1280}, {360, 640}}, true},
		{"fifty", 1920, 1080, 50, 1, true, []string{"1080p", "720p", "360p"}, []size{{1920, 1080}, {1280, 720}, {640, 360}}, false},
		// Below the ladder, and no sound: one rendition at its own size.
		{"silent", 320, 240, 25, 2, false, []string{"240p"}, []size{{320, 240}}, false},
	}
	ids := map[string]string{}
	for _, s := range shapes {
		seconds := strconv.FormatFloat(s.seconds, 'f', -1, 64)
		video := makeSource(t, s.w, s.h, s.fps, seconds, s.audio)
		if s.rotate {
			video = rotated(t, makeSource(t, s.h, s.w, s.fps, seconds, s.audio))
		}
		putObject(t, e.s3, e.src, "uploads/a/"+s.name+"/full", video)
		id, err := f.Start(context.Background(), e.spec(s.name, s.name+"-1"))
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		ids[s.name] = id
	}
	for _, s := range shapes {
		t.Run(s.name, func(t *testing.T) {
			job := waitJob(t, f, ids[s.name])
			if job.State != StateComplete {
				t.Fatalf("job = %+v, want complete", job)
			}
			prefix := "a/" + s.name + "/"
			wantKeys := []string{prefix + "hls/master.m3u8"}
			for _, r := range s.renditions {
				wantKeys = append(wantKeys, prefix+"hls/master_"+r+".m3u8")
			}
			if s.audio {
				wantKeys = append(wantKeys, prefix+"hls/master_audio.m3u8")
			}
			wantKeys = append(wantKeys, prefix+s.renditions[0]+".mp4", prefix+"poster.0000000.jpg")
			if got := job.Keys(); strings.Join(got, " ") != strings.Join(wantKeys, " ") {
				t.Fatalf("outputs = %v\nwant      %v", got, wantKeys)
			}
			if job.Playback != prefix+"hls/master.m3u8" {
				t.Errorf("playback = %q", job.Playback)
			}

			// The master playlist parses and names every rendition, with
			// BANDWIDTH, RESOLUTION and CODECS.
			header, master := httpGet(t, base+job.Playback)
			if ct := header.Get("Content-Type"); ct != "application/vnd.apple.mpegurl" {
				t.Errorf("master playlist served as %q", ct)
			}
			lines := strings.Split(strings.TrimSpace(string(master)), "\n")
			if lines[0] != "#EXTM3U" {
				t.Fatalf("master playlist starts with %q", lines[0])
			}
			var uris []string
			media := false
			for i, l := range lines {
				if strings.HasPrefix(l, "#EXT-X-MEDIA:") {
					media = true
					if uri, _ := attribute(strings.TrimPrefix(l, "#EXT-X-MEDIA:"), "URI"); uri != "master_audio.m3u8" {
						t.Errorf("audio rendition URI %q", uri)
					}
				}
				attrs, ok := strings.CutPrefix(l, "#EXT-X-STREAM-INF:")
				if !ok {
					continue
				}
				n := len(uris)
				if i+1 >= len(lines) || n >= len(s.renditions) {
					t.Fatalf("master playlist has more variants than %v:\n%s", s.renditions, master)
				}
				uris = append(uris, lines[i+1])
				bw, _ := attribute(attrs, "BANDWIDTH")
				res, _ := attribute(attrs, "RESOLUTION")
				codecs, _ := attribute(attrs, "CODECS")
				wantCodecs := "avc1."
				if bwN, err := strconv.Atoi(bw); err != nil || bwN <= 0 || bwN != job.Outputs[1+n].Bitrate {
					t.Errorf("variant %d BANDWIDTH %q, want the recorded bitrate %d", n, bw, job.Outputs[1+n].Bitrate)
				}
				if want := fmt.Sprintf("%dx%d", s.sizes[n].w, s.sizes[n].h); res != want {
					t.Errorf("variant %d RESOLUTION %q, want %s", n, res, want)
				}
				if !strings.HasPrefix(codecs, wantCodecs) || strings.HasSuffix(codecs, ",mp4a.40.2") != s.audio {
					t.Errorf("variant %d CODECS %q, want avc1 and AAC only if the source has sound (%v)", n, codecs, s.audio)
				}
				if lines[i+1] != "master_"+s.renditions[n]+".m3u8" {
					t.Errorf("variant %d is %q", n, lines[i+1])
				}
			}
			if len(uris) != len(s.renditions) || media != s.audio {
				t.Errorf("master playlist names %v (audio rendition: %v), want %v (%v):\n%s", uris, media, s.renditions, s.audio, master)
			}

			// ffmpeg, as a client, sees every variant: none larger than the
			// source, none at a higher frame rate; and decodes all of them.
			p := probeURL(t, base+job.Playback)
			var sizes []size
			for _, st := range p.Streams {
				if st.CodecType != "video" {
					continue
				}
				sizes = append(sizes, size{st.Width, st.Height})
				if st.Width > s.w || st.Height > s.h {
					t.Errorf("a variant is %dx%d, larger than the %dx%d source", st.Width, st.Height, s.w, s.h)
				}
				if fr := frameRate(st.AvgFrameRate); fr > float64(s.fps)+0.01 {
					t.Errorf("a variant runs at %.2f fps, above the source's %d", fr, s.fps)
				}
			}
			if fmt.Sprint(sizes) != fmt.Sprint(s.sizes) {
				t.Errorf("ffprobe of the master finds variants %v, want %v", sizes, s.sizes)
			}
			play(t, base+job.Playback)

			// Each variant's segments: about SegmentSeconds, all of the
			// source, decodable on their own.
			playlists := slices.Clone(uris)
			if s.audio {
				playlists = append(playlists, "master_audio.m3u8")
			}
			for _, uri := range playlists {
				_, body := httpGet(t, base+prefix+"hls/"+uri)
				pl, err := parseMediaPlaylist(bytes.NewReader(body))
				if err != nil {
					t.Fatalf("%s: %v", uri, err)
				}
				var total float64
				for i, seg := range pl.Segments {
					total += seg.Duration
					if seg.Duration > SegmentSeconds+0.1 || (i < len(pl.Segments)-1 && math.Abs(seg.Duration-SegmentSeconds) > 0.1) {
						t.Errorf("%s segment %d lasts %.3fs, want %ds", uri, i, seg.Duration, SegmentSeconds)
					}
				}
				if math.Abs(total-s.seconds) > 0.1 {
					t.Errorf("%s lasts %.3fs, want %.1fs", uri, total, s.seconds)
				}
				if want := int(math.Ceil(s.seconds / SegmentSeconds)); len(pl.Segments) != want {
					t.Errorf("%s has %d segments, want %d", uri, len(pl.Segments), want)
				}
				play(t, base+prefix+"hls/"+uri)
			}

			// The MP4: the highest rendition, its index first, plays.
			mp4 := base + prefix + s.renditions[0] + ".mp4"
			header, body := httpGet(t, mp4)
			if ct := header.Get("Content-Type"); ct != "video/mp4" {
				t.Errorf("MP4 served as %q", ct)
			}
			boxes := topLevelBoxes(body)
			if moov, mdat := slices.Index(boxes, "moov"), slices.Index(boxes, "mdat"); moov < 0 || mdat < 0 || moov > mdat {
				t.Errorf("MP4 boxes %v: want moov before mdat (+faststart)", boxes)
			}
			mp := probeURL(t, mp4)
			var codecs []string
			for _, st := range mp.Streams {
				codecs = append(codecs, st.CodecType+"/"+st.CodecName)
				if st.CodecType == "video" && (st.Width != s.sizes[0].w || st.Height != s.sizes[0].h) {
					t.Errorf("MP4 is %dx%d, want %dx%d", st.Width, st.Height, s.sizes[0].w, s.sizes[0].h)
				}
			}
			wantCodecs := "[video/h264]"
			if s.audio {
				wantCodecs = "[video/h264 audio/aac]"
			}
			if fmt.Sprint(codecs) != wantCodecs {
				t.Errorf("MP4 streams %v, want %s", codecs, wantCodecs)
			}
			if d, _ := strconv.ParseFloat(mp.Format.Duration, 64); math.Abs(d-s.seconds) > 0.15 {
				t.Errorf("MP4 lasts %.3fs, want %.1fs", d, s.seconds)
			}
			play(t, mp4)

			// The poster: a JPEG at the highest rendition's size.
			poster := base + prefix + "poster.0000000.jpg"
			if header, _ := httpGet(t, poster); header.Get("Content-Type") != "image/jpeg" {
				t.Errorf("poster served as %q", header.Get("Content-Type"))
			}
			pp := probeURL(t, poster)
			if len(pp.Streams) != 1 || pp.Streams[0].CodecName != "mjpeg" ||
				pp.Streams[0].Width != s.sizes[0].w || pp.Streams[0].Height != s.sizes[0].h {
				t.Errorf("poster = %+v, want one %dx%d JPEG", pp.Streams, s.sizes[0].w, s.sizes[0].h)
			}
		})
	}
	assertTempEmpty(t, e.tmp)
}
