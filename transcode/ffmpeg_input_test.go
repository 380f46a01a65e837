package transcode

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"atomuploads/upload"
)

// makeContainer renders a 1-second test video with a tone, of the given
// size, with the codec and muxer arguments given, and returns the file's
// bytes and the demuxer ffprobe names for it.
func makeContainer(t testing.TB, name, size string, args ...string) ([]byte, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	all := []string{"-nostdin", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=rate=25:duration=1:size=" + size,
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1"}
	all = append(append(all, args...), out)
	if msg, err := exec.Command("ffmpeg", all...).CombinedOutput(); err != nil {
		t.Fatalf("make %s: %v: %s", name, err, msg)
	}
	format, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=format_name", "-of", "csv=p=0", out).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", name, err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b, strings.Trim(strings.TrimSpace(string(format)), `"`)
}

// hostVideo writes a video file outside the transcoder's temp dir, as a
// file of the host an upload might name, and returns its path.
func hostVideo(t testing.TB) string {
	t.Helper()
	b, _ := makeContainer(t, "host.ts", "160x120", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac")
	path := filepath.Join(t.TempDir(), "private-host-file.ts")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Uploads that name other files (playlists, concat lists) or are in a
// container outside the allow-list fail for good, readably, before ffmpeg
// runs: nothing of the files they name, nor of them, reaches the outputs.
func TestFFmpegRefusesInputsOutsideTheAllowedContainers(t *testing.T) {
	t.Parallel()
	e := newFFEnv(t)
	f := e.transcoder(t, nil)
	execs := countExecs(f)
	run(t, f)

	secret := hostVideo(t)
	wmv, _ := makeContainer(t, "clip.wmv", "320x240", "-c:v", "wmv2", "-c:a", "wmav2")
	still, _ := makeContainer(t, "still.jpg", "320x240", "-frames:v", "1")
	const (
		other = "the file is not a video container this service accepts; upload the video file itself, as " + acceptedNames
		lists = "the file is not a video container this service accepts (it looks like a concat list naming other files); upload the video file itself"
	)
	tests := []struct {
		name      string
		body      []byte
		wantError string
	}{
		{"hls", fmt.Appendf(nil, "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n%s\n#EXT-X-ENDLIST\n", secret),
			"the file is not a video container this service accepts (it looks like an HLS playlist); upload the video file itself"},
		{"ffconcat", fmt.Appendf(nil, "ffconcat version 1.0\nfile '%s'\n", secret), lists},
		{"concat-list", fmt.Appendf(nil, "# clips\nfile '%s'\nfile '%s'\n", secret, secret), lists},
		{"wmv", wmv, other},
		{"still", still, "the file is not a video container this service accepts (it looks like a still image); upload the video file itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			putObject(t, e.s3, e.src, upload.FullKey("a", tt.name), tt.body)
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
			if strings.Contains(job.Error, secret) || strings.Contains(job.Error, e.tmp) {
				t.Errorf("error %q names a path of the host", job.Error)
			}
		})
	}
	// Nothing but the state objects in the destination, and no ffmpeg run:
	// no output was made from the host file or from the refused inputs.
	for _, key := range listKeys(t, e.s3, e.dest, "") {
		if !strings.HasPrefix(key, StatePrefix) {
			t.Errorf("destination holds %s, want only state objects", key)
		}
	}
	if got := execs("ffmpeg"); got != 0 {
		t.Errorf("ffmpeg ran %d times, want 0", got)
	}
	// ffprobe's own words are for ops, in the log.
	for _, entry := range e.logs.FilterMessage("transcode job failed").All() {
		fields := entry.ContextMap()
		if fields["uploadId"] == "hls" && !strings.Contains(fmt.Sprint(fields["cause"]), "not on whitelist") {
			t.Errorf("failed log of the playlist has cause %q, want ffprobe's refusal", fields["cause"])
		}
	}
	assertTempEmpty(t, e.tmp)
}

// Even when ffprobe is wrong about the input (here a stand-in that claims
// what it is told to), ffmpeg reads it only with the demuxer named, from
// the input file only, and a demuxer outside the allow-list is refused
// before ffmpeg runs.
func TestFFmpegReadsOnlyWithTheProbedDemuxer(t *testing.T) {
	t.Parallel()
	e := newFFEnv(t)
	secret := hostVideo(t)
	playlist := fmt.Appendf(nil, "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n%s\n#EXT-X-ENDLIST\n", secret)

	tests := []struct {
		name       string
		format     string // what the stand-in ffprobe claims
		wantError  string // "" : any error starting with "ffmpeg failed: "
		wantFFmpeg int
	}{
		{"claims-mpegts", "mpegts", "", 1},
		{"claims-mov", "mov,mp4,m4a,3gp,3g2,mj2", "", 1},
		{"claims-hls", "hls", "the file is not a video container this service accepts (it looks like an HLS playlist); upload the video file itself", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			probe := filepath.Join(t.TempDir(), "ffprobe")
			answer := fmt.Sprintf(`{"streams":[{"codec_type":"video","width":320,"height":240},{"codec_type":"audio"}],"format":{"format_name":%q,"duration":"1.000000"}}`, tt.format)
			if err := os.WriteFile(probe, []byte("#!/bin/sh\necho '"+answer+"'\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			f := e.transcoder(t, func(c *FFmpegConfig) { c.FFprobePath = probe })
			execs := countExecs(f)
			run(t, f)
			putObject(t, e.s3, e.src, upload.FullKey("a", tt.name), playlist)
			id, err := f.Start(context.Background(), e.spec(tt.name, tt.name+"-1"))
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			job := waitJob(t, f, id)
			if job.State != StateError || job.Retryable {
				t.Errorf("job = %+v, want state error, not retryable", job)
			}
			if tt.wantError != "" && job.Error != tt.wantError {
				t.Errorf("error = %q, want %q", job.Error, tt.wantError)
			}
			if tt.wantError == "" && !strings.HasPrefix(job.Error, "ffmpeg failed: ") {
				t.Errorf("error = %q, want an ffmpeg failure", job.Error)
			}
			if strings.Contains(job.Error, secret) {
				t.Errorf("error %q names the host file", job.Error)
			}
			if got := listKeys(t, e.s3, e.dest, OutputPrefix("a", tt.name)); len(got) != 0 {
				t.Errorf("destination holds %v, want nothing", got)
			}
			if got := execs("ffmpeg"); got != tt.wantFFmpeg {
				t.Errorf("ffmpeg ran %d times, want %d", got, tt.wantFFmpeg)
			}
		})
	}
	assertTempEmpty(t, e.tmp)
}

// Every accepted container still transcodes, each read with its own
// demuxer through the whitelists.
func TestFFmpegTranscodesEveryAcceptedContainer(t *testing.T) {
	t.Parallel()
	e := newFFEnv(t)
	f := e.transcoder(t, func(c *FFmpegConfig) { c.Renditions = testRenditions[1:]; c.Concurrency = 4 })
	run(t, f)

	h264 := []string{"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"}
	samples := []struct {
		file string
		size string
		args []string
	}{
		{"clip.mp4", "320x240", append(slices.Clone(h264), "-c:a", "aac")},
		{"clip.mov", "320x240", append(slices.Clone(h264), "-c:a", "pcm_s16le")},
		{"clip.mkv", "320x240", append(slices.Clone(h264), "-c:a", "aac")},
		{"clip.webm", "320x240", []string{"-c:v", "libvpx", "-deadline", "realtime", "-c:a", "libopus"}},
		{"clip.avi", "320x240", []string{"-c:v", "mpeg4", "-c:a", "libmp3lame"}},
		{"clip.ts", "320x240", append(slices.Clone(h264), "-c:a", "aac", "-f", "mpegts")},
		{"clip.mxf", "320x240", []string{"-c:v", "mpeg2video", "-c:a", "pcm_s16le"}},
		{"clip.vob", "320x240", []string{"-c:v", "mpeg2video", "-c:a", "mp2", "-f", "vob"}},
		{"clip.flv", "320x240", []string{"-c:v", "flv1", "-c:a", "libmp3lame", "-ar", "44100"}},
		{"clip.dv", "720x576", []string{"-c:v", "dvvideo", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le", "-ac", "2", "-f", "dv"}},
	}
	var (
		mu      sync.Mutex
		covered = map[string]bool{}
	)
	t.Run("samples", func(t *testing.T) {
		for i, s := range samples {
			t.Run(s.file, func(t *testing.T) {
				t.Parallel()
				body, format := makeContainer(t, s.file, s.size, s.args...)
				if _, ok := acceptedFormat(format); !ok {
					t.Fatalf("%s probes as %q, not an accepted container", s.file, format)
				}
				mu.Lock()
				covered[format] = true
				mu.Unlock()
				uploadID := fmt.Sprintf("c%d", i)
				putObject(t, e.s3, e.src, upload.FullKey("a", uploadID), body)
				id, err := f.Start(context.Background(), e.spec(uploadID, uploadID+"-1"))
				if err != nil {
					t.Fatalf("Start: %v", err)
				}
				job := waitJob(t, f, id)
				prefix := "a/" + uploadID + "/"
				want := []string{prefix + "hls/master.m3u8", prefix + "hls/master_144p.m3u8", prefix + "hls/master_audio.m3u8",
					prefix + "144p.mp4", prefix + "poster.0000000.jpg"}
				if job.State != StateComplete || !slices.Equal(job.Keys(), want) {
					t.Fatalf("job = %+v, want complete with %v", job, want)
				}
				p := ffprobe(t, getObject(t, e.s3, e.dest, prefix+"144p.mp4"))
				if got := p.codecs(); !slices.Equal(got, []string{"video/h264", "audio/aac"}) {
					t.Errorf("streams = %v, want video/h264 and audio/aac", got)
				}
			})
		}
	})
	for _, in := range inputFormats {
		if !covered[in.name] {
			t.Errorf("no sample of the accepted container %q", in.name)
		}
	}
	assertTempEmpty(t, e.tmp)
}

// The whitelist names exactly the accepted demuxers of the installed
// ffmpeg (libavformat matches it name by name, and a demuxer's name may
// list several), and none that reads other files.
func TestFormatWhitelistMatchesOnlyAcceptedDemuxers(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		if testing.Short() {
			t.Skip("needs ffmpeg")
		}
		t.Fatal(err)
	}
	out, err := exec.Command("ffmpeg", "-hide_banner", "-demuxers").Output()
	if err != nil {
		t.Fatalf("ffmpeg -demuxers: %v", err)
	}
	allowed := map[string]bool{}
	for name := range strings.SplitSeq(formatWhitelist, ",") {
		allowed[name] = true
	}
	installed := map[string]bool{}
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) < 2 || strings.Trim(fields[0], "DEd") != "" || !strings.Contains(fields[0], "D") {
			continue // the legend, or not a demuxer
		}
		demuxer := fields[1]
		installed[demuxer] = true
		_, accepted := acceptedFormat(demuxer)
		for name := range strings.SplitSeq(demuxer, ",") {
			if allowed[name] && !accepted {
				t.Errorf("the whitelist's %q lets the demuxer %q in", name, demuxer)
			}
		}
	}
	for _, in := range inputFormats {
		if !installed[in.name] {
			t.Errorf("accepted demuxer %q is not in the installed ffmpeg", in.name)
		}
	}
	for _, never := range []string{"hls", "dash", "concat", "image2", "image2pipe", "sdp", "rtsp", "imf", "vobsub", "webm_dash_manifest", "lavfi", "tee"} {
		if allowed[never] {
			t.Errorf("the whitelist has %q", never)
		}
	}
}

func TestLookalike(t *testing.T) {
	png := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{0}, 32)...)
	tests := []struct {
		head string
		want string
	}{
		{"#EXTM3U\n#EXTINF:10,\n/etc/passwd\n", "an HLS playlist"},
		{"\xef\xbb\xbf  #extm3u\n", "an HLS playlist"},
		{"ffconcat version 1.0\nfile 'a.mp4'\n", "a concat list naming other files"},
		{"\n# joined\nfile '/tmp/a.mp4'\n", "a concat list naming other files"},
		{`<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011">`, "a DASH manifest"},
		{"[playlist]\nFile1=/tmp/a.mp4\n", "a playlist"},
		{"v=0\no=- 0 0 IN IP4 127.0.0.1\n", "a stream description (SDP)"},
		{string(png), "a still image"},
		{"this is not a video\n", ""},
		{"filet mignon\n", ""},
		{"\x00\x00\x00\x18ftypmp42", ""},
	}
	for _, tt := range tests {
		if got := lookalike([]byte(tt.head)); got != tt.want {
			t.Errorf("lookalike(%q) = %q, want %q", tt.head, got, tt.want)
		}
	}
}
