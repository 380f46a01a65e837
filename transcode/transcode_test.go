package transcode

import (
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
	}
	tests := []struct {
		name string
		err  error
		want []string
	}{
		{"mediaconvert", MediaConvertConfig{Queue: "Default", Endpoint: "ftp://x", Renditions: bad}.Validate(),
			[]string{"roleArn", "queue", "endpoint", "destinationBucket", "renditions[0].name", "renditions[0].height",
				"renditions[0].videoBitrate", "renditions[1].audioBitrate", `renditions[2].name "a" is used twice`}},
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
	args, names := f.ffmpegArgs("/tmp/j/input", "/tmp/j", mediaInfo{Format: mkv, Duration: 120})
	if want := []string{"240p.mp4", "144p.mp4", "poster.jpg"}; !slices.Equal(names, want) {
		t.Errorf("names = %v, want %v", names, want)
	}
	line := strings.Join(args, " ")
	for _, want := range []string{
		// One input, from this file only, read by the probed demuxer only.
		"-progress pipe:1 -y -protocol_whitelist file -format_whitelist " + formatWhitelist + " -f matroska -i file:/tmp/j/input -map ",
		"-map 0:v:0 -map 0:a:0? -vf scale=-2:240 -c:v libx264 -preset veryfast -crf 23 -maxrate 400000 -bufsize 800000 -pix_fmt yuv420p -c:a aac -b:a 64000 -ac 2 -movflags +faststart /tmp/j/240p.mp4",
		"-vf scale=-2:144 ",
		"-map 0:v:0 -ss 12.000 -vf scale=-2:240 -frames:v 1 -update 1 -q:v 3 /tmp/j/poster.jpg",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("ffmpeg args lack %q:\n%s", want, line)
		}
	}
	if n := strings.Count(line, " -i "); n != 1 {
		t.Errorf("ffmpeg args have %d inputs, want 1:\n%s", n, line)
	}
	mov, _ := acceptedFormat("mov,mp4,m4a,3gp,3g2,mj2")
	args, _ = f.ffmpegArgs("/tmp/j/input", "/tmp/j", mediaInfo{Format: mov, Duration: 120})
	// QuickTime's references to other files stay off.
	if line, want := strings.Join(args, " "), " -f mov -enable_drefs 0 -use_absolute_path 0 -i file:/tmp/j/input "; !strings.Contains(line, want) {
		t.Errorf("ffmpeg args lack %q:\n%s", want, line)
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
