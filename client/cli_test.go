package client

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestUsageErrors(t *testing.T) {
	file := writeFake(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.mp4")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"--api", "http://127.0.0.1:1", "--token", testToken}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no atom", append(base, "--s3", file), "--atom is required: pass the id of the media atom"},
		{"bad atom", append(base, "--atom", "a/b", "--s3", file), `--atom "a/b" is not an atom id`},
		{"no destination", append(base, "--atom", testAtom, file), "name at least one destination: --youtube-title TITLE (YouTube) and/or --s3"},
		{"missing file", append(base, "--atom", testAtom, "--s3", filepath.Join(dir, "nope.mp4")), "nope.mp4 does not exist: name the video file to upload"},
		{"directory", append(base, "--atom", testAtom, "--s3", dir), "is not a regular file"},
		{"empty file", append(base, "--atom", testAtom, "--s3", empty), "empty.mp4 is empty"},
		{"no file", append(base, "--atom", testAtom, "--s3"), "name the video FILE to upload"},
		{"two files", append(base, "--atom", testAtom, "--s3", file, file), "name one FILE, not 2"},
		{"no token", []string{"--atom", testAtom, "--s3", file}, "--token is required: pass the API's bearer token, or set ATOM_UPLOADS_TOKEN"},
		{"bad api", []string{"--api", "127.0.0.1:8080", "--token", "x", "--atom", testAtom, "--s3", file}, "is not an http(s) URL"},
		{"youtube flag without title", append(base, "--atom", testAtom, "--s3", "--youtube-tags", "a,b", file), "--youtube-tags applies to a YouTube destination: add --youtube-title"},
		{"empty title", append(base, "--atom", testAtom, "--youtube-title", " ", file), "--youtube-title must not be empty"},
		{"bad privacy", append(base, "--atom", testAtom, "--youtube-title", "T", "--youtube-privacy", "secret", file), "must be private, unlisted or public"},
		{"bad category", append(base, "--atom", testAtom, "--youtube-title", "T", "--youtube-category", "news", file), "must be a YouTube category number"},
		{"bad parallel", append(base, "--atom", testAtom, "--s3", "--parallel", "0", file), "--parallel must be from 1 to 64"},
		{"bad resume", append(base, "--atom", testAtom, "--resume", "abc", file), `--resume "abc" is not an upload id`},
		{"unknown flag", append(base, "--atom", testAtom, "--s3", "--colour", file), "flag provided but not defined: -colour"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr, options{getenv: noEnv})
			if code != exitUsage {
				t.Errorf("exit = %d, want %d", code, exitUsage)
			}
			if got := stderr.String(); !strings.Contains(got, tt.want) || !strings.Contains(got, "atom-uploads upload -h") {
				t.Errorf("stderr = %q, want %q and a pointer to -h", got, tt.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", &stdout)
			}
		})
	}
}

func TestFlagsAfterFileAndEnvDefaults(t *testing.T) {
	env := map[string]string{EnvAPI: "http://api.example:9", EnvToken: "tok", EnvS3Endpoint: "http://127.0.0.1:9000"}
	s, err := parseArgs([]string{"clip.mp4", "--atom", testAtom, "--youtube-title", "T", "--youtube-tags", " a, b ,,", "--s3"},
		func(k string) string { return env[k] }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if s.file != "clip.mp4" || s.api != env[EnvAPI] || s.token != "tok" || s.s3Endpoint != env[EnvS3Endpoint] || !s.s3PathStyle {
		t.Errorf("settings = file %q api %q endpoint %q path-style %v, want the file and the environment's defaults",
			s.file, s.api, s.s3Endpoint, s.s3PathStyle)
	}
	if len(s.destinations) != 2 || s.destinations[0].Type != YouTube || strings.Join(s.destinations[0].Tags, "|") != "a|b" ||
		s.destinations[0].PrivacyStatus != "private" || s.destinations[1].Type != S3Bucket {
		t.Errorf("destinations = %+v, want youtube (tags a, b; private) and s3Bucket", s.destinations)
	}
	if s.parallel != DefaultParallel || s.poll != DefaultPoll || s.noFollow {
		t.Errorf("parallel %d poll %s no-follow %v, want the defaults", s.parallel, s.poll, s.noFollow)
	}

	s, err = parseArgs([]string{"--atom", testAtom, "--s3", "--s3-path-style=false", "f"}, func(k string) string { return env[k] }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if s.s3PathStyle {
		t.Error("s3PathStyle = true, want the explicit false")
	}
	s, err = parseArgs([]string{"--token", "t", "--atom", testAtom, "--s3", "f"}, noEnv, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if s.api != defaultAPI || s.s3Endpoint != "" || s.s3PathStyle {
		t.Errorf("api %q endpoint %q path-style %v, want %s, AWS, virtual-hosted", s.api, s.s3Endpoint, s.s3PathStyle, defaultAPI)
	}
}

func TestHelpNeverShowsTheToken(t *testing.T) {
	const secret = "secret-token-from-env"
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-h"}, &stdout, &stderr, options{getenv: func(k string) string {
		if k == EnvToken {
			return secret
		}
		return ""
	}})
	if code != 0 {
		t.Errorf("exit = %d, want 0", code)
	}
	got := stderr.String()
	if !strings.Contains(got, "Usage: atom-uploads upload --atom ID") || !strings.Contains(got, "-youtube-title") {
		t.Errorf("help = %q, want the usage and the flags", got)
	}
	if strings.Contains(got, secret) {
		t.Errorf("help shows the token: %q", got)
	}
}

func TestContentType(t *testing.T) {
	for name, want := range map[string]string{
		"clip.mp4": "video/mp4", "CLIP.MOV": "video/quicktime", "a.webm": "video/webm",
		"notes.txt": "application/octet-stream", "raw": "application/octet-stream",
	} {
		if got := contentType(name); got != want {
			t.Errorf("contentType(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestProgressOnTerminalIsOneRedrawnLine(t *testing.T) {
	var out bytes.Buffer
	p := &progressPrinter{w: &out, tty: true}
	p.update(Progress{Part: 1, PartsDone: 1, PartsTotal: 3, BytesDone: 5 << 20, Size: 12 << 20, BytesSent: 5 << 20, Elapsed: time.Second})
	p.update(Progress{Part: 0, Retry: true, Attempt: 1, Wait: time.Second, Err: errors.New("boom"),
		PartsDone: 1, PartsTotal: 3, BytesDone: 5 << 20, Size: 12 << 20})
	p.update(Progress{Part: 0, PartsDone: 3, PartsTotal: 3, BytesDone: 12 << 20, Size: 12 << 20, BytesSent: 12 << 20, Elapsed: 2 * time.Second})
	p.finish()
	got := out.String()
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != 2 || !strings.HasSuffix(got, "\n") {
		t.Fatalf("output = %q, want the retry line and the bar's line, each ending in a newline", got)
	}
	if !strings.Contains(lines[0], "part 1/3 failed (attempt 1): boom; retrying in 1s") {
		t.Errorf("retry line = %q", lines[0])
	}
	last := lines[1][strings.LastIndex(lines[1], "\r")+1:]
	if want := "[" + strings.Repeat("=", barWidth) + "] 100.0%  12.0 MiB / 12.0 MiB  3/3 parts  6.0 MiB/s"; strings.TrimRight(last, " ") != want {
		t.Errorf("last bar = %q, want %q", last, want)
	}
	if strings.Contains(got, "uploaded (") {
		t.Errorf("output = %q, want no plain lines on a terminal", got)
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 12<<20 + 3: "12.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
