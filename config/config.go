// Package config loads the service configuration: the defaults in
// config.yaml (embedded in the binary, every key documented there), then an
// optional operator file, then environment variables. Every key can be
// overridden by UPLOADS_ + its path in upper snake case (youtube.apiBaseUrl →
// UPLOADS_YOUTUBE_API_BASE_URL). Secrets come only from the environment: a
// secret in a file is a configuration error.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"
)

// Secret is a value that must never be printed: its String and MarshalText
// redact it, so logging a Config cannot leak it.
type Secret string

// String redacts the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// MarshalText redacts the secret.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the secret's value, for the one place that uses it.
func (s Secret) Reveal() string { return string(s) }

// Config is every setting of the service. Defaults and their documentation
// are in config.yaml at the top of the repository.
type Config struct {
	HTTP          HTTP          `yaml:"http"`
	ShutdownGrace time.Duration `yaml:"shutdownGrace"`
	Log           Log           `yaml:"log"`
	AWS           AWS           `yaml:"aws"`
	Uploads       Uploads       `yaml:"uploads"`
	Table         Table         `yaml:"table"`
	Queue         Queue         `yaml:"queue"`
	Worker        Worker        `yaml:"worker"`
	YouTube       YouTube       `yaml:"youtube"`
	AtomAPI       AtomAPI       `yaml:"atomApi"`
	Transcode     Transcode     `yaml:"transcode"`
	API           API           `yaml:"api"`
}

// HTTP configures the API server.
type HTTP struct {
	Addr              string        `yaml:"addr"`
	ReadHeaderTimeout time.Duration `yaml:"readHeaderTimeout"`
	RequestTimeout    time.Duration `yaml:"requestTimeout"`
	MaxBodyBytes      int64         `yaml:"maxBodyBytes"`
}

// Log configures the JSON logger.
type Log struct {
	Level string `yaml:"level"`
}

// AWS holds the SDK settings that are not taken from the SDK's own
// environment variables.
type AWS struct {
	Region         string `yaml:"region"`
	S3UsePathStyle bool   `yaml:"s3UsePathStyle"`
}

// Uploads configures the bucket, the parts plan and the browser's
// temporary credentials.
type Uploads struct {
	Bucket              string        `yaml:"bucket"`
	PartSize            int64         `yaml:"partSize"`
	CredentialsRoleARN  string        `yaml:"credentialsRoleArn"`
	CredentialsDuration time.Duration `yaml:"credentialsDuration"`
}

// Table configures the DynamoDB progress table.
type Table struct {
	Name      string        `yaml:"name"`
	Retention time.Duration `yaml:"retention"`
}

// Queue configures the SQS queue of S3 events.
type Queue struct {
	URL string `yaml:"url"`
}

// Worker configures the SQS consumer pool and its steps.
type Worker struct {
	Concurrency           int           `yaml:"concurrency"`
	VisibilityTimeout     time.Duration `yaml:"visibilityTimeout"`
	ReceiveWait           time.Duration `yaml:"receiveWait"`
	LeaseTTL              time.Duration `yaml:"leaseTtl"`
	ReassemblyParallelism int           `yaml:"reassemblyParallelism"`
	PollInterval          time.Duration `yaml:"pollInterval"`
	MaxAttempts           int           `yaml:"maxAttempts"`
	MaxTranscodeAttempts  int           `yaml:"maxTranscodeAttempts"`
	MaxReceiveCount       int           `yaml:"maxReceiveCount"`
}

// YouTube configures the YouTube Data API client.
type YouTube struct {
	Enabled        bool          `yaml:"enabled"`
	APIBaseURL     string        `yaml:"apiBaseUrl"`
	TokenURL       string        `yaml:"tokenUrl"`
	ClientID       string        `yaml:"clientId"`
	ClientSecret   Secret        `yaml:"clientSecret"`
	RefreshToken   Secret        `yaml:"refreshToken"`
	MaxChunkBytes  int64         `yaml:"maxChunkBytes"`
	RequestTimeout time.Duration `yaml:"requestTimeout"`
}

// AtomAPI configures the media tool's atom API, which receives the YouTube
// asset.
type AtomAPI struct {
	BaseURL     string        `yaml:"baseUrl"`
	HMACSecret  Secret        `yaml:"hmacSecret"`
	Token       Secret        `yaml:"token"`
	MaxAttempts int           `yaml:"maxAttempts"`
	Timeout     time.Duration `yaml:"timeout"`
}

// Transcode configures the s3Bucket destination's transcoding.
type Transcode struct {
	Backend      string       `yaml:"backend"`
	OutputBucket string       `yaml:"outputBucket"`
	MediaConvert MediaConvert `yaml:"mediaConvert"`
	FFmpeg       FFmpeg       `yaml:"ffmpeg"`
}

// MediaConvert configures the AWS Elemental MediaConvert backend.
type MediaConvert struct {
	RoleARN  string `yaml:"roleArn"`
	QueueARN string `yaml:"queueArn"`
	Endpoint string `yaml:"endpoint"`
}

// FFmpeg configures the local ffmpeg backend.
type FFmpeg struct {
	Path        string `yaml:"path"`
	FFprobePath string `yaml:"ffprobePath"`
	Concurrency int    `yaml:"concurrency"`
	Preset      string `yaml:"preset"`
	TempDir     string `yaml:"tempDir"`
}

// API configures authentication of the REST API.
type API struct {
	Tokens []Secret `yaml:"tokens"`
}

// EnvPrefix starts every environment override.
const EnvPrefix = "UPLOADS_"

// Load reads the defaults (the embedded config.yaml), then the file at path
// if path is not empty, then every UPLOADS_ variable of env (os.Environ
// form), and validates the result. All problems are reported at once.
func Load(defaults []byte, path string, env []string) (Config, error) {
	var c Config
	var problems []error
	if err := decode(bytes.NewReader(defaults), &c); err != nil {
		return c, fmt.Errorf("embedded config.yaml: %w", err)
	}
	for _, name := range secretsSet(reflect.ValueOf(c), "") {
		problems = append(problems, fmt.Errorf("%s is a secret: set it in the environment (%s), not in config.yaml", name, EnvName(name)))
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("config file: %w", err)
		}
		var fromFile Config
		if err := decode(bytes.NewReader(data), &fromFile); err != nil {
			return c, fmt.Errorf("config file %s: %w", path, err)
		}
		for _, name := range secretsSet(reflect.ValueOf(fromFile), "") {
			problems = append(problems, fmt.Errorf("%s is a secret: set it in the environment (%s), not in %s", name, EnvName(name), path))
		}
		if err := decode(bytes.NewReader(data), &c); err != nil {
			return c, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	problems = append(problems, applyEnv(&c, env)...)
	if err := c.Validate(); err != nil {
		problems = append(problems, err)
	}
	return c, errors.Join(problems...)
}

func decode(r io.Reader, c *Config) error {
	d := yaml.NewDecoder(r)
	d.KnownFields(true)
	if err := d.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// secretsSet lists the key paths of non-empty secrets in v.
func secretsSet(v reflect.Value, prefix string) []string {
	var out []string
	walk(v, prefix, func(key string, f reflect.Value) {
		switch x := f.Interface().(type) {
		case Secret:
			if x != "" {
				out = append(out, key)
			}
		case []Secret:
			if len(x) > 0 {
				out = append(out, key)
			}
		}
	})
	return out
}

// walk calls fn for every leaf field of the struct v with its key path.
func walk(v reflect.Value, prefix string, fn func(key string, f reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := strings.Split(sf.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		key := tag
		if prefix != "" {
			key = prefix + "." + tag
		}
		f := v.Field(i)
		if f.Kind() == reflect.Struct && sf.Type != reflect.TypeOf(time.Time{}) {
			walk(f, key, fn)
			continue
		}
		fn(key, f)
	}
}

// Keys returns every key path of the configuration, in declaration order.
func Keys() []string {
	var keys []string
	walk(reflect.ValueOf(Config{}), "", func(key string, _ reflect.Value) { keys = append(keys, key) })
	return keys
}

// IsSecret reports whether the key holds a secret (environment only).
func IsSecret(key string) bool {
	secret := false
	walk(reflect.ValueOf(Config{}), "", func(k string, f reflect.Value) {
		if k == key {
			switch f.Interface().(type) {
			case Secret, []Secret:
				secret = true
			}
		}
	})
	return secret
}

// EnvName is the environment variable that overrides a key path.
func EnvName(key string) string {
	var b strings.Builder
	b.WriteString(EnvPrefix)
	for i, part := range strings.Split(key, ".") {
		if i > 0 {
			b.WriteByte('_')
		}
		b.WriteString(upperSnake(part))
	}
	return b.String()
}

// upperSnake turns camelCase (with acronyms: apiBaseUrl, s3UsePathStyle,
// leaseTtl) into API_BASE_URL, S3_USE_PATH_STYLE, LEASE_TTL.
func upperSnake(s string) string {
	var b strings.Builder
	r := []rune(s)
	for i, c := range r {
		if i > 0 && unicode.IsUpper(c) && (unicode.IsLower(r[i-1]) || unicode.IsDigit(r[i-1]) ||
			(i+1 < len(r) && unicode.IsLower(r[i+1]))) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(c))
	}
	return b.String()
}

// applyEnv sets every field whose UPLOADS_ variable is in env.
func applyEnv(c *Config, env []string) []error {
	vars := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, EnvPrefix) {
			vars[k] = v
		}
	}
	var problems []error
	known := map[string]bool{}
	walk(reflect.ValueOf(c).Elem(), "", func(key string, f reflect.Value) {
		name := EnvName(key)
		known[name] = true
		raw, ok := vars[name]
		if !ok {
			return
		}
		if err := setField(f, raw); err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", name, err))
		}
	})
	var unknown []string
	for k := range vars {
		if !known[k] && k != EnvPrefix+"CONFIG" {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		problems = append(problems, fmt.Errorf("%s is not a configuration key (see config.yaml)", k))
	}
	return problems
}

var durationType = reflect.TypeOf(time.Duration(0))

func setField(f reflect.Value, raw string) error {
	switch {
	case f.Type() == durationType:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("%q is not a duration such as 30s or 5m", raw)
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.String:
		f.SetString(raw)
	case f.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("%q is not true or false", raw)
		}
		f.SetBool(b)
	case f.Kind() == reflect.Int || f.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", raw)
		}
		f.SetInt(n)
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
		var items []string
		for _, s := range strings.Split(raw, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
		sl := reflect.MakeSlice(f.Type(), len(items), len(items))
		for i, s := range items {
			sl.Index(i).SetString(s)
		}
		f.Set(sl)
	default:
		return fmt.Errorf("unsupported type %s", f.Type())
	}
	return nil
}

// Validate reports every problem of the configuration, joined.
func (c Config) Validate() error {
	var p []error
	bad := func(key, format string, args ...any) {
		p = append(p, fmt.Errorf("%s (%s): %s", key, EnvName(key), fmt.Sprintf(format, args...)))
	}
	within := func(key string, d, lo, hi time.Duration) {
		if d < lo || d > hi {
			bad(key, "%s is outside %s–%s", d, lo, hi)
		}
	}
	urlOK := func(key, s string, required bool) {
		if s == "" {
			if required {
				bad(key, "is required")
			}
			return
		}
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(key, "%q is not an http(s) URL", s)
		}
	}
	if c.HTTP.Addr == "" {
		bad("http.addr", "is required, such as :8080")
	}
	within("http.readHeaderTimeout", c.HTTP.ReadHeaderTimeout, time.Second, 5*time.Minute)
	within("http.requestTimeout", c.HTTP.RequestTimeout, time.Second, 10*time.Minute)
	if c.HTTP.MaxBodyBytes < 1024 || c.HTTP.MaxBodyBytes > 10<<20 {
		bad("http.maxBodyBytes", "%d is outside 1024–10485760", c.HTTP.MaxBodyBytes)
	}
	within("shutdownGrace", c.ShutdownGrace, 5*time.Second, 10*time.Minute)
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q must be debug, info, warn or error", c.Log.Level)
	}
	if c.AWS.Region == "" {
		bad("aws.region", "is required, such as eu-west-1")
	}
	if c.Uploads.Bucket == "" {
		bad("uploads.bucket", "is required")
	}
	const kib, mib, gib = 1 << 10, 1 << 20, 1 << 30
	if ps := c.Uploads.PartSize; ps < 5*mib || ps > 5*gib || ps%(256*kib) != 0 {
		bad("uploads.partSize", "%d must be a multiple of 262144 (256 KiB) between 5 MiB and 5 GiB", ps)
	}
	if !strings.HasPrefix(c.Uploads.CredentialsRoleARN, "arn:") {
		bad("uploads.credentialsRoleArn", "%q must be the ARN of the role the browser's credentials are assumed from", c.Uploads.CredentialsRoleARN)
	}
	within("uploads.credentialsDuration", c.Uploads.CredentialsDuration, 15*time.Minute, 12*time.Hour)
	if c.Table.Name == "" {
		bad("table.name", "is required")
	}
	if c.Table.Retention < 0 {
		bad("table.retention", "must not be negative (0 keeps records forever)")
	}
	urlOK("queue.url", c.Queue.URL, true)
	if c.Worker.Concurrency < 1 || c.Worker.Concurrency > 1000 {
		bad("worker.concurrency", "%d is outside 1–1000", c.Worker.Concurrency)
	}
	within("worker.visibilityTimeout", c.Worker.VisibilityTimeout, 10*time.Second, 12*time.Hour)
	within("worker.receiveWait", c.Worker.ReceiveWait, time.Second, 20*time.Second)
	if c.Worker.ReceiveWait%time.Second != 0 {
		bad("worker.receiveWait", "%s is not a whole number of seconds", c.Worker.ReceiveWait)
	}
	within("worker.leaseTtl", c.Worker.LeaseTTL, 3*time.Second, time.Hour)
	if c.Worker.VisibilityTimeout < 2*c.Worker.LeaseTTL {
		// A message whose handler died comes back at least half its
		// visibility later; by then the dead handler's lease must be gone.
		bad("worker.visibilityTimeout", "%s must be at least twice worker.leaseTtl (%s)", c.Worker.VisibilityTimeout, c.Worker.LeaseTTL)
	}
	within("worker.pollInterval", c.Worker.PollInterval, time.Second, 15*time.Minute)
	if c.Worker.MaxAttempts < 1 || c.Worker.MaxAttempts > 1000 {
		bad("worker.maxAttempts", "%d is outside 1–1000", c.Worker.MaxAttempts)
	}
	if c.Worker.MaxTranscodeAttempts < 1 || c.Worker.MaxTranscodeAttempts > 10 {
		bad("worker.maxTranscodeAttempts", "%d is outside 1–10", c.Worker.MaxTranscodeAttempts)
	}
	if c.Worker.MaxReceiveCount < 1 || c.Worker.MaxReceiveCount > 1000 {
		bad("worker.maxReceiveCount", "%d is outside 1–1000", c.Worker.MaxReceiveCount)
	}
	if c.Worker.ReassemblyParallelism < 1 || c.Worker.ReassemblyParallelism > 100 {
		bad("worker.reassemblyParallelism", "%d is outside 1–100", c.Worker.ReassemblyParallelism)
	}
	if c.YouTube.Enabled {
		urlOK("youtube.apiBaseUrl", c.YouTube.APIBaseURL, true)
		urlOK("youtube.tokenUrl", c.YouTube.TokenURL, true)
		if c.YouTube.ClientID == "" {
			bad("youtube.clientId", "is required when youtube.enabled is true")
		}
		if c.YouTube.ClientSecret == "" {
			bad("youtube.clientSecret", "is required when youtube.enabled is true (environment only)")
		}
		if c.YouTube.RefreshToken == "" {
			bad("youtube.refreshToken", "is required when youtube.enabled is true (environment only)")
		}
		if n := c.YouTube.MaxChunkBytes; n < 256*kib || n%(256*kib) != 0 {
			bad("youtube.maxChunkBytes", "%d must be a positive multiple of 262144 (256 KiB)", n)
		}
		within("youtube.requestTimeout", c.YouTube.RequestTimeout, time.Second, 10*time.Minute)
	}
	urlOK("atomApi.baseUrl", c.AtomAPI.BaseURL, false)
	if c.AtomAPI.BaseURL != "" && c.AtomAPI.HMACSecret == "" && c.AtomAPI.Token == "" {
		bad("atomApi.baseUrl", "is set, so atomApi.hmacSecret or atomApi.token is required (environment only)")
	}
	if c.AtomAPI.MaxAttempts < 1 || c.AtomAPI.MaxAttempts > 20 {
		bad("atomApi.maxAttempts", "%d is outside 1–20", c.AtomAPI.MaxAttempts)
	}
	within("atomApi.timeout", c.AtomAPI.Timeout, time.Second, 5*time.Minute)
	switch c.Transcode.Backend {
	case "none":
	case "mediaconvert", "ffmpeg":
		if c.Transcode.OutputBucket == "" {
			bad("transcode.outputBucket", "is required when transcode.backend is %s", c.Transcode.Backend)
		}
		if c.Transcode.Backend == "mediaconvert" && !strings.HasPrefix(c.Transcode.MediaConvert.RoleARN, "arn:") {
			bad("transcode.mediaConvert.roleArn", "is required when transcode.backend is mediaconvert")
		}
		if c.Transcode.Backend == "ffmpeg" && (c.Transcode.FFmpeg.Concurrency < 1 || c.Transcode.FFmpeg.Concurrency > 64) {
			bad("transcode.ffmpeg.concurrency", "%d is outside 1–64", c.Transcode.FFmpeg.Concurrency)
		}
	default:
		bad("transcode.backend", "%q must be mediaconvert, ffmpeg or none", c.Transcode.Backend)
	}
	if len(c.API.Tokens) == 0 {
		bad("api.tokens", "at least one API token is required (environment only, comma-separated)")
	}
	for i, tok := range c.API.Tokens {
		if len(tok) < 16 {
			bad("api.tokens", "token %d is shorter than 16 characters", i+1)
		}
	}
	return errors.Join(p...)
}
