package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"atomuploads/upload"
)

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
	within("http.readTimeout", c.HTTP.ReadTimeout, time.Second, 10*time.Minute)
	if c.HTTP.ReadTimeout < c.HTTP.ReadHeaderTimeout {
		bad("http.readTimeout", "%s must be at least http.readHeaderTimeout (%s): it covers the headers too", c.HTTP.ReadTimeout, c.HTTP.ReadHeaderTimeout)
	}
	within("http.writeTimeout", c.HTTP.WriteTimeout, time.Second, time.Hour)
	if c.HTTP.WriteTimeout < c.HTTP.RequestTimeout {
		bad("http.writeTimeout", "%s must be at least http.requestTimeout (%s), or answers are cut before their deadline", c.HTTP.WriteTimeout, c.HTTP.RequestTimeout)
	}
	within("http.idleTimeout", c.HTTP.IdleTimeout, time.Second, time.Hour)
	within("http.requestTimeout", c.HTTP.RequestTimeout, time.Second, 10*time.Minute)
	if c.HTTP.MaxBodyBytes < 1024 || c.HTTP.MaxBodyBytes > 10<<20 {
		bad("http.maxBodyBytes", "%d is outside 1024–10485760", c.HTTP.MaxBodyBytes)
	}
	if c.HTTP.MaxConnections < 1 || c.HTTP.MaxConnections > 100000 {
		bad("http.maxConnections", "%d is outside 1–100000", c.HTTP.MaxConnections)
	}
	if a := c.Metrics.Addr; a != "" {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			bad("metrics.addr", "%q is not a listen address such as :9090", a)
		} else if a == c.HTTP.Addr {
			bad("metrics.addr", "%q is the API's address: /metrics must listen apart from the API", a)
		}
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
	if ps := c.Uploads.PartSize; upload.ValidPartSize(ps) != nil {
		bad("uploads.partSize", "%d must be a multiple of 262144 (256 KiB) between 5 MiB and 5 GiB", ps)
	}
	if !strings.HasPrefix(c.Uploads.CredentialsRoleARN, "arn:") {
		bad("uploads.credentialsRoleArn", "%q must be the ARN of the role the browser's credentials are assumed from", c.Uploads.CredentialsRoleARN)
	}
	within("uploads.credentialsDuration", c.Uploads.CredentialsDuration, 15*time.Minute, 12*time.Hour)
	if c.Uploads.AbandonAfter < 0 {
		bad("uploads.abandonAfter", "must not be negative (0 never expires an upload)")
	}
	if c.Uploads.DeletePartsAfter < 0 {
		bad("uploads.deletePartsAfter", "must not be negative (0 keeps the parts)")
	}
	if c.Table.Name == "" {
		bad("table.name", "is required")
	}
	if c.Table.Retention < 0 {
		bad("table.retention", "must not be negative (0 keeps records forever)")
	}
	urlOK("queue.url", c.Queue.URL, true)
	urlOK("queue.deadLetterUrl", c.Queue.DeadLetterURL, false)
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
	within("worker.retryBackoff", c.Worker.RetryBackoff, 100*time.Millisecond, 15*time.Minute)
	within("worker.sweepInterval", c.Worker.SweepInterval, time.Second, time.Hour)
	if c.Worker.StrandedAfter < 2*c.Worker.VisibilityTimeout || c.Worker.StrandedAfter < 2*c.Worker.PollInterval {
		// Work whose message is merely in flight or waiting for its next
		// poll must never look stranded.
		bad("worker.strandedAfter", "%s must be at least twice worker.visibilityTimeout (%s) and twice worker.pollInterval (%s)",
			c.Worker.StrandedAfter, c.Worker.VisibilityTimeout, c.Worker.PollInterval)
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
		if n := c.YouTube.MaxChunkBytes; upload.ValidChunkSize(n) != nil {
			bad("youtube.maxChunkBytes", "%d must be a positive multiple of 262144 (256 KiB)", n)
		}
		within("youtube.requestTimeout", c.YouTube.RequestTimeout, time.Second, 10*time.Minute)
		if c.YouTube.DailyUploadLimit < 0 {
			bad("youtube.dailyUploadLimit", "%d must not be negative (0 is no limit)", c.YouTube.DailyUploadLimit)
		}
		within("youtube.uploadLimitRetry", c.YouTube.UploadLimitRetry, time.Second, 7*24*time.Hour)
		within("youtube.uploadLimitHorizon", c.YouTube.UploadLimitHorizon, time.Second, 30*24*time.Hour)
		within("youtube.credentialsRetry", c.YouTube.CredentialsRetry, time.Second, 24*time.Hour)
		within("youtube.parkJitter", c.YouTube.ParkJitter, 0, time.Hour)
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
