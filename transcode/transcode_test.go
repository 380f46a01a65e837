package transcode

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	mctypes "github.com/aws/aws-sdk-go-v2/service/mediaconvert/types"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"atomuploads/upload"
)

func TestSpecValidate(t *testing.T) {
	good := Spec{AtomID: "atom-1", UploadID: "01JABCDEFGHJKMNPQRSTVWXYZ0", SourceBucket: "b", SourceKey: "uploads/atom-1/01JABCDEFGHJKMNPQRSTVWXYZ0/full", Token: "01JABCDEFGHJKMNPQRSTVWXYZ0-1"}
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate(good) = %v, want nil", err)
	}
	bad := Spec{AtomID: "../x", UploadID: "", Token: strings.Repeat("t", 65)}
	err := bad.Validate()
	if upload.ErrorCode(err) != upload.EINVALID {
		t.Fatalf("Validate(bad) = %v, want an %s error", err, upload.EINVALID)
	}
	for _, want := range []string{"atomId", "uploadId", "source bucket", "source key", "token"} {
		if !strings.Contains(upload.ErrorMessage(err), want) {
			t.Errorf("Validate(bad) message %q does not mention %s", upload.ErrorMessage(err), want)
		}
	}
}

func TestConfigValidateListsEveryProblem(t *testing.T) {
	bad := []Rendition{
		{Name: "poster", Height: 101, VideoBitrate: 1},
		{Name: "a", Height: 144, VideoBitrate: 100000, AudioBitrate: 1},
		{Name: "a", Height: 144, VideoBitrate: 100000},
		{Name: "audio", Height: 200, VideoBitrate: 100000},
	}
	tests := []struct {
		name string
		err  error
		want []string
	}{
		{"mediaconvert", MediaConvertConfig{Queue: "Default", Endpoint: "ftp://x", Renditions: bad}.Validate(),
			[]string{"roleArn", "queue", "endpoint", "destinationBucket", "renditions[0].name", "renditions[0].height",
				"renditions[0].videoBitrate", "renditions[1].audioBitrate", `renditions[2].name "a" is used twice`,
				"renditions[2].height 144 is used twice", `renditions[3].name "audio" must be`}},
		{"ffmpeg", FFmpegConfig{FFmpegPath: "/nonexistent/ffmpeg", Concurrency: 65, TempDir: "/nonexistent",
			StaleAfter: time.Second, Preset: "warp", Renditions: bad}.Validate(),
			[]string{"ffmpegPath", "destinationBucket", "concurrency", "tempDir", "staleAfter", "preset",
				"renditions[0].name", "renditions[1].audioBitrate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				t.Fatal("Validate = nil, want the problems")
			}
			for _, w := range tt.want {
				if !strings.Contains(tt.err.Error(), w) {
					t.Errorf("Validate error does not mention %q:\n%v", w, tt.err)
				}
			}
		})
	}
	good := MediaConvertConfig{RoleARN: "arn:aws:iam::123456789012:role/MC", DestinationBucket: "b"}
	if err := good.Validate(); err != nil {
		t.Errorf("MediaConvertConfig.Validate(minimal) = %v, want nil", err)
	}
	if err := (FFmpegConfig{DestinationBucket: "b"}).Validate(); err != nil {
		t.Errorf("FFmpegConfig.Validate(minimal) = %v, want nil", err)
	}
}

func TestFFmpegDefaults(t *testing.T) {
	c := FFmpegConfig{DestinationBucket: "b"}.withDefaults()
	if c.FFmpegPath != "ffmpeg" || c.FFprobePath != "ffprobe" || c.Concurrency != 1 || c.Preset != "veryfast" ||
		c.HeartbeatInterval != 5*time.Second || c.StaleAfter != time.Minute {
		t.Errorf("defaults = %+v, want ffmpeg, ffprobe, 1, veryfast, 5s, 1m", c)
	}
	var names []string
	for _, r := range c.Renditions {
		names = append(names, r.Name)
	}
	if want := []string{"1080p", "720p", "360p"}; !slices.Equal(names, want) {
		t.Errorf("default renditions = %v, want %v", names, want)
	}
}

func TestFFmpegArgs(t *testing.T) {
	f := &FFmpeg{cfg: FFmpegConfig{Preset: "veryfast", Renditions: testRenditions}}
	mkv, _ := acceptedFormat("matroska,webm")
	info := mediaInfo{Format: mkv, Source: Source{Width: 320, Height: 240, HasAudio: true, Duration: 120}}
	ladder, err := Ladder(testRenditions, info.Source)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(f.ffmpegArgs("/tmp/j/input", "/tmp/j/out", info, ladder), " ")
	hls := func(name string) string {
		return "-f hls -hls_time 6 -hls_playlist_type vod -hls_segment_type fmp4 -hls_flags independent_segments " +
			"-hls_fmp4_init_filename master_" + name + "_init.mp4 -hls_segment_filename /tmp/j/out/hls/master_" + name + "_%05d.m4s " +
			"/tmp/j/out/hls/master_" + name + ".m3u8"
	}
	for _, want := range []string{
		// One input, from this file only, read by the probed demuxer only.
		"-progress pipe:1 -y -protocol_whitelist file -format_whitelist " + formatWhitelist + " -f matroska -i file:/tmp/j/input -map ",
		// One HLS output per rung, video only, keyframes every 2 s, never
		// more frames than the source has.
		"-map 0:v:0 -an -vf scale=320:240,setsar=1 -c:v libx264 -preset veryfast -crf 23 -maxrate 400000 -bufsize 800000 -pix_fmt yuv420p " +
			"-fps_mode vfr -force_key_frames expr:gte(t,n_forced*2) " + hls("240p"),
		"-map 0:v:0 -an -vf scale=192:144,setsar=1 ",
		// The sound once, at the highest rung's audio bitrate.
		"-map 0:a:0 -vn -c:a aac -b:a 64000 -ac 2 " + hls("audio"),
		// The poster at the highest rung's size.
		"-map 0:v:0 -ss 12.000 -vf scale=320:240,setsar=1 -frames:v 1 -update 1 -q:v 3 /tmp/j/out/poster.0000000.jpg",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("ffmpeg args lack %q:\n%s", want, line)
		}
	}
	if n := strings.Count(line, " -i "); n != 1 {
		t.Errorf("ffmpeg args have %d inputs, want 1:\n%s", n, line)
	}
	mov, _ := acceptedFormat("mov,mp4,m4a,3gp,3g2,mj2")
	info.Format = mov
	info.Source.HasAudio = false
	line = strings.Join(f.ffmpegArgs("/tmp/j/input", "/tmp/j/out", info, ladder), " ")
	// QuickTime's references to other files stay off.
	if want := " -f mov -enable_drefs 0 -use_absolute_path 0 -i file:/tmp/j/input "; !strings.Contains(line, want) {
		t.Errorf("ffmpeg args lack %q:\n%s", want, line)
	}
	if strings.Contains(line, "0:a:0") || strings.Contains(line, "master_audio") {
		t.Errorf("ffmpeg args for a silent source map sound:\n%s", line)
	}
}

func TestReadProgress(t *testing.T) {
	in := "frame=1\nout_time_us=N/A\nprogress=continue\nout_time_us=500000\nprogress=continue\n" +
		"out_time_us=1000000\nout_time_us=2500000\nprogress=end\n"
	var got []float64
	readProgress(strings.NewReader(in), 2, func(p float64) { got = append(got, p) })
	if want := []float64{25, 50, 99}; !slices.Equal(got, want) {
		t.Errorf("progress = %v, want %v", got, want)
	}
	got = nil
	readProgress(strings.NewReader(in), 0, func(p float64) { got = append(got, p) })
	if len(got) != 0 {
		t.Errorf("progress without a duration = %v, want none", got)
	}
}

func TestToolMessage(t *testing.T) {
	tests := []struct {
		stderr string
		last   bool
		want   string
	}{
		{"/tmp/x/input: Invalid data found when processing input\n", true, "Invalid data found when processing input"},
		{"[mp3 @ 0x55b839dc7900] Failed to read frame size: Could not seek to 6023.\n/tmp/x/input: Invalid argument\n", true, "Invalid argument"},
		{"Stream map '0:a:0' matches no streams.\nTo ignore this, add a trailing '?' to the map.\n", false, "Stream map '0:a:0' matches no streams."},
		{"\n[h264 @ 0xabc] error while decoding MB 1 2 in /tmp/x/input\n", false, "error while decoding MB 1 2 in input"},
		{"", true, "unknown error"},
	}
	for _, tt := range tests {
		if got := toolMessage(tt.stderr, "/tmp/x/input", tt.last); got != tt.want {
			t.Errorf("toolMessage(%q, last %v) = %q, want %q", tt.stderr, tt.last, got, tt.want)
		}
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 8}
	fmt.Fprint(b, "0123456789")
	fmt.Fprint(b, "ab")
	if got := b.String(); got != "456789ab" {
		t.Errorf("tail = %q, want %q", got, "456789ab")
	}
}

func TestS3ErrorsBecomeDomainErrors(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&s3types.NoSuchKey{Message: aws.String("gone")}, upload.ENOTFOUND},
		{&s3types.NoSuchBucket{}, upload.EINTERNAL},
		{&smithy.GenericAPIError{Code: "PreconditionFailed", Fault: smithy.FaultClient}, upload.ECONFLICT},
		{&smithy.GenericAPIError{Code: "SlowDown", Fault: smithy.FaultClient}, upload.EUNAVAILABLE},
		{&smithy.GenericAPIError{Code: "InternalError", Fault: smithy.FaultServer}, upload.EUNAVAILABLE},
		{&smithy.GenericAPIError{Code: "AccessDenied", Fault: smithy.FaultClient}, upload.EINTERNAL},
		{errors.New("dial tcp: connection refused"), upload.EUNAVAILABLE},
	}
	for _, tt := range tests {
		err := s3Error(fmt.Errorf("operation GetObject: %w", tt.err), "b", "k")
		if got := upload.ErrorCode(err); got != tt.want {
			t.Errorf("s3Error(%v) code = %s, want %s", tt.err, got, tt.want)
		}
		if !errors.Is(err, tt.err) {
			t.Errorf("s3Error(%v) = %v, want it to wrap the cause", tt.err, err)
		}
	}
	if err := s3Error(nil, "b", "k"); err != nil {
		t.Errorf("s3Error(nil) = %v, want nil", err)
	}
}

func TestMediaConvertErrorTypes(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&mctypes.BadRequestException{Message: aws.String("bad")}, upload.EINVALID},
		{&mctypes.NotFoundException{}, upload.ENOTFOUND},
		{&mctypes.ConflictException{}, upload.ECONFLICT},
		{&mctypes.ForbiddenException{}, upload.EINTERNAL},
		{&mctypes.TooManyRequestsException{}, upload.EUNAVAILABLE},
		{&mctypes.ServiceQuotaExceededException{}, upload.EUNAVAILABLE},
		{&mctypes.InternalServerErrorException{}, upload.EUNAVAILABLE},
	}
	for _, tt := range tests {
		if got := upload.ErrorCode(mediaConvertError(tt.err)); got != tt.want {
			t.Errorf("mediaConvertError(%T) code = %s, want %s", tt.err, got, tt.want)
		}
	}
}

func TestProbeSourceIsTheDisplayedPicture(t *testing.T) {
	tests := []struct {
		name string
		json string
		want Source
	}{
		{"plain", `{"streams":[{"codec_type":"video","width":1280,"height":720,"sample_aspect_ratio":"1:1","avg_frame_rate":"30000/1001"},{"codec_type":"audio"}],"format":{"duration":"12.5"}}`,
			Source{Width: 1280, Height: 720, FrameRate: 30000.0 / 1001, HasAudio: true, Duration: 12.5}},
		{"phone portrait: turned a quarter", `{"streams":[{"codec_type":"video","width":1920,"height":1080,"avg_frame_rate":"30/1","side_data_list":[{"rotation":-90}]}],"format":{}}`,
			Source{Width: 1080, Height: 1920, FrameRate: 30}},
		{"upside down stays landscape", `{"streams":[{"codec_type":"video","width":1920,"height":1080,"side_data_list":[{"rotation":180}]}],"format":{}}`,
			Source{Width: 1920, Height: 1080}},
		{"anamorphic HDV", `{"streams":[{"codec_type":"video","width":1440,"height":1080,"sample_aspect_ratio":"4:3","avg_frame_rate":"0/0"}],"format":{"duration":"N/A"}}`,
			Source{Width: 1920, Height: 1080}},
		{"the first video stream", `{"streams":[{"codec_type":"audio"},{"codec_type":"video","width":640,"height":360},{"codec_type":"video","width":1920,"height":1080}],"format":{}}`,
			Source{Width: 640, Height: 360, HasAudio: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p probeOutput
			if err := json.Unmarshal([]byte(tt.json), &p); err != nil {
				t.Fatal(err)
			}
			got, ok := p.source()
			if !ok || got != tt.want {
				t.Errorf("source = %+v, %v; want %+v", got, ok, tt.want)
			}
		})
	}
	var audioOnly probeOutput
	_ = json.Unmarshal([]byte(`{"streams":[{"codec_type":"audio"}]}`), &audioOnly)
	if _, ok := audioOnly.source(); ok {
		t.Error("source of an audio-only file: ok, want none")
	}
}
