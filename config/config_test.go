package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func defaults(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// minimalEnv is what an operator must add to the defaults.
func minimalEnv() []string {
	return []string{
		"UPLOADS_QUEUE_URL=http://127.0.0.1:4566/000000000000/q",
		"UPLOADS_UPLOADS_CREDENTIALS_ROLE_ARN=arn:aws:iam::123456789012:role/upload",
		"UPLOADS_YOUTUBE_CLIENT_ID=client",
		"UPLOADS_YOUTUBE_CLIENT_SECRET=client-secret",
		"UPLOADS_YOUTUBE_REFRESH_TOKEN=refresh-token",
		"UPLOADS_API_TOKENS=0123456789abcdef, fedcba9876543210",
		"PATH=/usr/bin",
	}
}

func TestLoadDefaultsWithEnv(t *testing.T) {
	c, err := Load(defaults(t), "", minimalEnv())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got, want := c.HTTP.Addr, ":8080"; got != want {
		t.Errorf("http.addr = %q, want %q", got, want)
	}
	if got, want := c.ShutdownGrace, 25*time.Second; got != want {
		t.Errorf("shutdownGrace = %s, want %s", got, want)
	}
	if got, want := len(c.API.Tokens), 2; got != want {
		t.Errorf("api.tokens has %d tokens, want %d", got, want)
	}
	if got, want := c.YouTube.RefreshToken.Reveal(), "refresh-token"; got != want {
		t.Errorf("refresh token = %q, want %q", got, want)
	}
}

func TestEnvOverridesEveryKind(t *testing.T) {
	env := append(minimalEnv(),
		"UPLOADS_HTTP_ADDR=127.0.0.1:9999",
		"UPLOADS_SHUTDOWN_GRACE=7s",
		"UPLOADS_AWS_S3_USE_PATH_STYLE=true",
		"UPLOADS_UPLOADS_PART_SIZE=5242880",
		"UPLOADS_WORKER_CONCURRENCY=3",
		"UPLOADS_YOUTUBE_API_BASE_URL=http://127.0.0.1:9200/",
		"UPLOADS_TRANSCODE_FFMPEG_CONCURRENCY=2",
	)
	c, err := Load(defaults(t), "", env)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.HTTP.Addr != "127.0.0.1:9999" || c.ShutdownGrace != 7*time.Second || !c.AWS.S3UsePathStyle ||
		c.Uploads.PartSize != 5242880 || c.Worker.Concurrency != 3 ||
		c.YouTube.APIBaseURL != "http://127.0.0.1:9200/" || c.Transcode.FFmpeg.Concurrency != 2 {
		t.Errorf("overrides not applied: %+v", c)
	}
}

func TestBadConfigListsEveryProblemInOneError(t *testing.T) {
	env := []string{
		"UPLOADS_HTTP_ADDR=",
		"UPLOADS_SHUTDOWN_GRACE=forever",
		"UPLOADS_UPLOADS_PART_SIZE=1000",
		"UPLOADS_WORKER_CONCURRENCY=0",
		"UPLOADS_WORKER_VISIBILITY_TIMEOUT=30s", // less than twice the 20s lease
		"UPLOADS_TRANSCODE_BACKEND=handbrake",
		"UPLOADS_API_TOKENS=short",
		"UPLOADS_NO_SUCH_KEY=1",
	}
	_, err := Load(defaults(t), "", env)
	if err == nil {
		t.Fatal("Load accepted a bad configuration")
	}
	msg := err.Error()
	for _, want := range []string{
		"UPLOADS_HTTP_ADDR",                    // empty
		"UPLOADS_SHUTDOWN_GRACE",               // not a duration
		"UPLOADS_UPLOADS_PART_SIZE",            // not 256 KiB aligned, below 5 MiB
		"UPLOADS_WORKER_CONCURRENCY",           // out of range
		"UPLOADS_WORKER_VISIBILITY_TIMEOUT",    // a dead handler's message would beat its lease
		"UPLOADS_TRANSCODE_BACKEND",            // unknown backend
		"UPLOADS_API_TOKENS",                   // too short
		"UPLOADS_NO_SUCH_KEY",                  // unknown variable
		"UPLOADS_QUEUE_URL",                    // required, missing
		"UPLOADS_UPLOADS_CREDENTIALS_ROLE_ARN", // required, missing
		"UPLOADS_YOUTUBE_REFRESH_TOKEN",        // required while YouTube is enabled
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not name %s:\n%s", want, msg)
		}
	}
	if got := strings.Count(msg, "\n") + 1; got < 10 {
		t.Errorf("got %d problems, want at least 10, one per line:\n%s", got, msg)
	}
}

// TestLifecycleDurations: expiry and clean-up default to a day each, 0
// switches them off, and a negative duration is refused, named.
func TestLifecycleDurations(t *testing.T) {
	c, err := Load(defaults(t), "", minimalEnv())
	if err != nil {
		t.Fatal(err)
	}
	if c.Uploads.AbandonAfter != 24*time.Hour || c.Uploads.DeletePartsAfter != 24*time.Hour {
		t.Errorf("abandonAfter %s, deletePartsAfter %s; want 24h each", c.Uploads.AbandonAfter, c.Uploads.DeletePartsAfter)
	}
	c, err = Load(defaults(t), "", append(minimalEnv(), "UPLOADS_UPLOADS_ABANDON_AFTER=0", "UPLOADS_UPLOADS_DELETE_PARTS_AFTER=0s"))
	if err != nil || c.Uploads.AbandonAfter != 0 || c.Uploads.DeletePartsAfter != 0 {
		t.Errorf("0 and 0s: %+v, %v; want both off", c.Uploads, err)
	}
	_, err = Load(defaults(t), "", append(minimalEnv(), "UPLOADS_UPLOADS_ABANDON_AFTER=-1h", "UPLOADS_UPLOADS_DELETE_PARTS_AFTER=-1s"))
	for _, want := range []string{"UPLOADS_UPLOADS_ABANDON_AFTER", "UPLOADS_UPLOADS_DELETE_PARTS_AFTER"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("negative durations: %v, want an error naming %s", err, want)
		}
	}
}

func TestSecretInFileIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ops.yaml")
	if err := os.WriteFile(path, []byte("youtube:\n  refreshToken: abc\nworker:\n  concurrency: 4\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(defaults(t), path, minimalEnv())
	if err == nil || !strings.Contains(err.Error(), "youtube.refreshToken is a secret") {
		t.Fatalf("Load error = %v, want a secret-in-file error", err)
	}
	if strings.Contains(err.Error(), "abc") {
		t.Errorf("error shows the secret: %v", err)
	}
}

func TestFileOverlaysDefaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ops.yaml")
	if err := os.WriteFile(path, []byte("worker:\n  concurrency: 4\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(defaults(t), path, minimalEnv())
	if err != nil {
		t.Fatal(err)
	}
	if c.Worker.Concurrency != 4 || c.Worker.LeaseTTL != 20*time.Second {
		t.Errorf("got concurrency %d lease %s, want 4 and the default 20s", c.Worker.Concurrency, c.Worker.LeaseTTL)
	}
	if err := os.WriteFile(path, []byte("worker:\n  concurency: 4\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(defaults(t), path, minimalEnv()); err == nil {
		t.Error("a misspelt key was accepted")
	}
}

// TestConfigYAMLDocumentsEveryKey keeps config.yaml complete: every key of
// Config has its default there, and every secret is named in its comments.
func TestConfigYAMLDocumentsEveryKey(t *testing.T) {
	raw := defaults(t)
	var tree map[string]any
	if err := yaml.Unmarshal(raw, &tree); err != nil {
		t.Fatal(err)
	}
	for _, key := range Keys() {
		if IsSecret(key) {
			if !strings.Contains(string(raw), EnvName(key)) {
				t.Errorf("secret %s: config.yaml does not mention %s", key, EnvName(key))
			}
			continue
		}
		var node any = tree
		for _, part := range strings.Split(key, ".") {
			m, ok := node.(map[string]any)
			if !ok {
				break
			}
			node, ok = m[part]
			if !ok {
				t.Errorf("config.yaml has no default for %s", key)
				break
			}
		}
	}
}

func TestEnvName(t *testing.T) {
	for key, want := range map[string]string{
		"http.addr":                      "UPLOADS_HTTP_ADDR",
		"youtube.apiBaseUrl":             "UPLOADS_YOUTUBE_API_BASE_URL",
		"aws.s3UsePathStyle":             "UPLOADS_AWS_S3_USE_PATH_STYLE",
		"worker.leaseTtl":                "UPLOADS_WORKER_LEASE_TTL",
		"atomApi.hmacSecret":             "UPLOADS_ATOM_API_HMAC_SECRET",
		"transcode.mediaConvert.roleArn": "UPLOADS_TRANSCODE_MEDIA_CONVERT_ROLE_ARN",
	} {
		if got := EnvName(key); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestSecretRedacts(t *testing.T) {
	s := Secret("hunter2")
	if got := s.String(); got != "[redacted]" {
		t.Errorf("String() = %q, want [redacted]", got)
	}
	b, _ := s.MarshalText()
	if string(b) != "[redacted]" {
		t.Errorf("MarshalText() = %q, want [redacted]", b)
	}
}

// TestREADMEDocumentsEveryKey keeps the README's configuration reference
// complete.
func TestREADMEDocumentsEveryKey(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range Keys() {
		row := "| `" + key + "` | `" + EnvName(key) + "` |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("README.md has no configuration row starting %s", row)
		}
	}
}

func TestReceiveWait(t *testing.T) {
	for _, tt := range []struct {
		value string
		ok    bool
	}{
		{"1s", true}, {"20s", true}, {"0s", false}, {"21s", false}, {"1500ms", false},
	} {
		c, err := Load(defaults(t), "", append(minimalEnv(), "UPLOADS_WORKER_RECEIVE_WAIT="+tt.value))
		if got := err == nil; got != tt.ok {
			t.Errorf("receiveWait %s: error %v, want ok=%v", tt.value, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "UPLOADS_WORKER_RECEIVE_WAIT") {
			t.Errorf("receiveWait %s: error %q does not name the variable", tt.value, err)
		}
		if err == nil && c.Worker.ReceiveWait.String() != tt.value {
			t.Errorf("receiveWait %s: loaded %s", tt.value, c.Worker.ReceiveWait)
		}
	}
	c, err := Load(defaults(t), "", minimalEnv())
	if err != nil || c.Worker.ReceiveWait != 20*time.Second {
		t.Errorf("default receiveWait = %s (%v), want 20s, SQS's maximum", c.Worker.ReceiveWait, err)
	}
}

func TestHTTPServerLimits(t *testing.T) {
	c, err := Load(defaults(t), "", minimalEnv())
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.ReadTimeout != 30*time.Second || c.HTTP.WriteTimeout != 2*time.Minute || c.HTTP.IdleTimeout != 75*time.Second || c.HTTP.MaxConnections != 512 {
		t.Errorf("defaults: read %s write %s idle %s connections %d", c.HTTP.ReadTimeout, c.HTTP.WriteTimeout, c.HTTP.IdleTimeout, c.HTTP.MaxConnections)
	}
	for _, tt := range []struct {
		env  []string
		want string
	}{
		{[]string{"UPLOADS_HTTP_READ_TIMEOUT=5s"}, "UPLOADS_HTTP_READ_TIMEOUT"},      // below the 10s header timeout
		{[]string{"UPLOADS_HTTP_WRITE_TIMEOUT=10s"}, "UPLOADS_HTTP_WRITE_TIMEOUT"},   // below the 30s request timeout
		{[]string{"UPLOADS_HTTP_IDLE_TIMEOUT=0s"}, "UPLOADS_HTTP_IDLE_TIMEOUT"},      // never closing idle connections
		{[]string{"UPLOADS_HTTP_MAX_CONNECTIONS=0"}, "UPLOADS_HTTP_MAX_CONNECTIONS"}, // no connection at all
		{[]string{"UPLOADS_HTTP_MAX_CONNECTIONS=many"}, "UPLOADS_HTTP_MAX_CONNECTIONS"},
	} {
		if _, err := Load(defaults(t), "", append(minimalEnv(), tt.env...)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want one naming %s", tt.env, err, tt.want)
		}
	}
	c, err = Load(defaults(t), "", append(minimalEnv(), "UPLOADS_HTTP_READ_TIMEOUT=1m", "UPLOADS_HTTP_WRITE_TIMEOUT=10m",
		"UPLOADS_HTTP_IDLE_TIMEOUT=5s", "UPLOADS_HTTP_MAX_CONNECTIONS=20"))
	if err != nil || c.HTTP.ReadTimeout != time.Minute || c.HTTP.WriteTimeout != 10*time.Minute || c.HTTP.IdleTimeout != 5*time.Second || c.HTTP.MaxConnections != 20 {
		t.Errorf("overrides: %+v %v", c.HTTP, err)
	}
}

// TestMetricsAddr: /metrics listens on :9090 unless told otherwise, not
// at all when the address is empty, and never on the API's address.
func TestMetricsAddr(t *testing.T) {
	c, err := Load(defaults(t), "", minimalEnv())
	if err != nil || c.Metrics.Addr != ":9090" {
		t.Fatalf("metrics.addr = %q, %v; want :9090 by default", c.Metrics.Addr, err)
	}
	c, err = Load(defaults(t), "", append(minimalEnv(), "UPLOADS_METRICS_ADDR="))
	if err != nil || c.Metrics.Addr != "" {
		t.Errorf("UPLOADS_METRICS_ADDR empty: %q, %v; want no listener", c.Metrics.Addr, err)
	}
	for _, bad := range []string{"9090", ":8080"} {
		_, err := Load(defaults(t), "", append(minimalEnv(), "UPLOADS_METRICS_ADDR="+bad))
		if err == nil || !strings.Contains(err.Error(), "UPLOADS_METRICS_ADDR") {
			t.Errorf("UPLOADS_METRICS_ADDR=%s: %v, want it refused", bad, err)
		}
	}
}
