// Package config loads the service configuration: the defaults in
// config.yaml (embedded in the binary, every key documented there), then an
// optional operator file, then environment variables. Every key can be
// overridden by UPLOADS_ + its path in upper snake case (youtube.apiBaseUrl →
// UPLOADS_YOUTUBE_API_BASE_URL). Secrets come only from the environment: a
// secret in a file is a configuration error.
package config

import (
	"reflect"
	"strings"
	"time"
)

// EnvPrefix starts every environment override.
const EnvPrefix = "UPLOADS_"

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
	Metrics       Metrics       `yaml:"metrics"`
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
	ReadTimeout       time.Duration `yaml:"readTimeout"`
	WriteTimeout      time.Duration `yaml:"writeTimeout"`
	IdleTimeout       time.Duration `yaml:"idleTimeout"`
	RequestTimeout    time.Duration `yaml:"requestTimeout"`
	MaxBodyBytes      int64         `yaml:"maxBodyBytes"`
	MaxConnections    int           `yaml:"maxConnections"`
}

// Log configures the JSON logger.
type Log struct {
	Level string `yaml:"level"`
}

// Metrics configures the listener of /metrics and the health detail.
type Metrics struct {
	Addr string `yaml:"addr"` // empty: no metrics listener
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
	Bucket               string        `yaml:"bucket"`
	PartSize             int64         `yaml:"partSize"`
	CredentialsRoleARN   string        `yaml:"credentialsRoleArn"`
	CredentialsDuration  time.Duration `yaml:"credentialsDuration"`
	RequirePartChecksums bool          `yaml:"requirePartChecksums"`
	AbandonAfter         time.Duration `yaml:"abandonAfter"`
	DeletePartsAfter     time.Duration `yaml:"deletePartsAfter"`
}

// Table configures the DynamoDB progress table.
type Table struct {
	Name      string        `yaml:"name"`
	Retention time.Duration `yaml:"retention"`
}

// Queue configures the SQS queue of S3 events.
type Queue struct {
	URL           string `yaml:"url"`
	DeadLetterURL string `yaml:"deadLetterUrl"`
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
	RetryBackoff          time.Duration `yaml:"retryBackoff"`
	MaxTranscodeAttempts  int           `yaml:"maxTranscodeAttempts"`
	MaxReceiveCount       int           `yaml:"maxReceiveCount"`
	StrandedAfter         time.Duration `yaml:"strandedAfter"`
	SweepInterval         time.Duration `yaml:"sweepInterval"`
}

// YouTube configures the YouTube Data API client.
type YouTube struct {
	Enabled            bool          `yaml:"enabled"`
	APIBaseURL         string        `yaml:"apiBaseUrl"`
	TokenURL           string        `yaml:"tokenUrl"`
	ClientID           string        `yaml:"clientId"`
	ClientSecret       Secret        `yaml:"clientSecret"`
	RefreshToken       Secret        `yaml:"refreshToken"`
	MaxChunkBytes      int64         `yaml:"maxChunkBytes"`
	RequestTimeout     time.Duration `yaml:"requestTimeout"`
	DailyUploadLimit   int           `yaml:"dailyUploadLimit"`
	UploadLimitRetry   time.Duration `yaml:"uploadLimitRetry"`
	UploadLimitHorizon time.Duration `yaml:"uploadLimitHorizon"`
	CredentialsRetry   time.Duration `yaml:"credentialsRetry"`
	ParkJitter         time.Duration `yaml:"parkJitter"`
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
