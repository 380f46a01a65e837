// Command atom-uploads takes large video uploads for media atoms into S3 in
// parts, relays them to YouTube while they are still uploading, reassembles
// the original and transcodes it, and reports progress over REST. One
// process runs the API and the queue worker together.
//
//	atom-uploads [-config FILE]        serve (the default)
//	atom-uploads healthcheck [-url U]  exit 0 when the local server answers /healthcheck with 200
//	atom-uploads upload --atom ID …    upload a video as the media tool does (client package; -h for flags)
//	atom-uploads version
//
// main only wires: configuration, logger, AWS clients, packages, and the
// errgroup that runs them until SIGTERM.
package main

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/mediaconvert"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/logging"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"

	"atomuploads/api"
	"atomuploads/atomapi"
	"atomuploads/client"
	"atomuploads/config"
	"atomuploads/credentials"
	"atomuploads/metrics"
	"atomuploads/store"
	"atomuploads/transcode"
	"atomuploads/web"
	"atomuploads/worker"
	"atomuploads/youtube"
)

//go:embed config.yaml
var defaultConfig []byte

// version is set at build time: -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "healthcheck":
			return healthcheck(args[1:])
		case "upload":
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// A second Ctrl-C kills the process as usual.
			context.AfterFunc(ctx, stop)
			return client.Main(ctx, args[1:], os.Stdout, os.Stderr)
		case "version":
			fmt.Println(version)
			return 0
		case "serve":
			args = args[1:]
		}
	}
	fs := flag.NewFlagSet("atom-uploads", flag.ContinueOnError)
	path := fs.String("config", os.Getenv(config.EnvPrefix+"CONFIG"), "operator configuration file laid over the defaults (env UPLOADS_CONFIG)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(defaultConfig, *path, os.Environ())
	if err != nil {
		fmt.Fprintf(os.Stderr, "atom-uploads: invalid configuration:\n  - %s\n", strings.ReplaceAll(err.Error(), "\n", "\n  - "))
		return 2
	}
	log, err := newLogger(cfg.Log.Level)
	if err != nil {
		fmt.Fprintln(os.Stderr, "atom-uploads:", err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("stopped", zap.Error(err))
		return 1
	}
	log.Info("stopped")
	return 0
}

func newLogger(level string) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.EncoderConfig.TimeKey = "time"
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	zc.DisableStacktrace = true
	return zc.Build(zap.Fields(zap.String("service", "atom-uploads"), zap.String("version", version)))
}

// serve wires the packages and runs the API and the worker until ctx ends,
// then shuts down within cfg.ShutdownGrace.
func serve(ctx context.Context, cfg config.Config, log *zap.Logger) error {
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx,
		awsconfig.WithRegion(regionOr(cfg.AWS.Region)),
		awsconfig.WithLogger(sdkLogger{log}))
	if err != nil {
		return fmt.Errorf("AWS configuration: %w", err)
	}
	// Metrics on the service's own registry; every AWS call counts, and
	// tells the health detail when each service last answered well.
	m := metrics.New(version)
	awsCfg.APIOptions = append(awsCfg.APIOptions, metrics.AWSMiddleware(m))
	m.Health().Expect(metrics.DepSQSReceive, metrics.DepDynamoDB, metrics.DepS3, metrics.DepSTS)
	s3c := s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.UsePathStyle = cfg.AWS.S3UsePathStyle })
	db := store.New(dynamodb.NewFromConfig(awsCfg), cfg.Table.Name, cfg.Table.Retention)
	issuer := credentials.NewIssuer(sts.NewFromConfig(awsCfg), cfg.Uploads.CredentialsRoleARN, cfg.Uploads.Bucket, cfg.Uploads.CredentialsDuration)

	// nil interfaces, not typed nil pointers, for what is switched off.
	var (
		yt       worker.YouTube
		sessions api.SessionCanceller
		atom     worker.AtomAPI
		tc       worker.Transcoder
		ffmpeg   *transcode.FFmpeg
	)
	if cfg.YouTube.Enabled {
		c, err := youtube.New(youtube.Config{
			APIBaseURL:     cfg.YouTube.APIBaseURL,
			TokenURL:       cfg.YouTube.TokenURL,
			ClientID:       cfg.YouTube.ClientID,
			ClientSecret:   cfg.YouTube.ClientSecret.Reveal(),
			RefreshToken:   cfg.YouTube.RefreshToken.Reveal(),
			RequestTimeout: cfg.YouTube.RequestTimeout,
		}, &http.Client{Transport: metrics.Transport(m, youTubeDependency(cfg.YouTube.TokenURL), nil)})
		if err != nil {
			return fmt.Errorf("YouTube client: %w", err)
		}
		yt, sessions = c, c
		m.Health().Expect(metrics.DepYouTube, metrics.DepYouTubeToken)
	}
	if cfg.AtomAPI.BaseURL != "" {
		atom = atomapi.New(atomapi.Config{
			BaseURL:     cfg.AtomAPI.BaseURL,
			HMACSecret:  cfg.AtomAPI.HMACSecret.Reveal(),
			Token:       cfg.AtomAPI.Token.Reveal(),
			Timeout:     cfg.AtomAPI.Timeout,
			MaxAttempts: cfg.AtomAPI.MaxAttempts,
		}, &http.Client{Transport: metrics.Transport(m, func(*http.Request) string { return metrics.DepAtomAPI }, nil)})
		m.Health().Expect(metrics.DepAtomAPI)
	}
	switch cfg.Transcode.Backend {
	case "mediaconvert":
		mc := transcode.MediaConvertConfig{
			RoleARN:           cfg.Transcode.MediaConvert.RoleARN,
			Queue:             cfg.Transcode.MediaConvert.QueueARN,
			Endpoint:          cfg.Transcode.MediaConvert.Endpoint,
			DestinationBucket: cfg.Transcode.OutputBucket,
			PosterFrame:       true,
		}
		m, err := transcode.NewMediaConvert(mediaconvert.NewFromConfig(awsCfg, mc.ClientOptions), mc)
		if err != nil {
			return fmt.Errorf("MediaConvert: %w", err)
		}
		tc = m
	case "ffmpeg":
		ffmpeg, err = transcode.NewFFmpeg(s3c, transcode.FFmpegConfig{
			FFmpegPath:        cfg.Transcode.FFmpeg.Path,
			FFprobePath:       cfg.Transcode.FFmpeg.FFprobePath,
			DestinationBucket: cfg.Transcode.OutputBucket,
			Concurrency:       cfg.Transcode.FFmpeg.Concurrency,
			TempDir:           cfg.Transcode.FFmpeg.TempDir,
			Preset:            cfg.Transcode.FFmpeg.Preset,
			Logger:            log,
			Metrics:           m,
		})
		if err != nil {
			return fmt.Errorf("ffmpeg transcoder: %w", err)
		}
		tc = ffmpeg
	}

	tokens := make([]string, len(cfg.API.Tokens))
	for i, t := range cfg.API.Tokens {
		tokens[i] = t.Reveal()
	}
	sqsc := sqs.NewFromConfig(awsCfg)
	// The uploads page PUTs to the S3 endpoint the service uses (the local
	// stack's, or AWS's own when none is set).
	page, err := web.New(web.Config{
		S3Endpoint:  aws.ToString(s3c.Options().BaseEndpoint),
		S3PathStyle: cfg.AWS.S3UsePathStyle,
		YouTube:     cfg.YouTube.Enabled,
		SelfHosted:  tc != nil,
	})
	if err != nil {
		return fmt.Errorf("uploads page: %w", err)
	}
	apiServer := api.New(api.Config{
		Tokens:         tokens,
		Region:         awsCfg.Region,
		Bucket:         cfg.Uploads.Bucket,
		PartSize:       cfg.Uploads.PartSize,
		MaxBodyBytes:   cfg.HTTP.MaxBodyBytes,
		RequestTimeout: cfg.HTTP.RequestTimeout,
		YouTube:        cfg.YouTube.Enabled,
		Transcode:      tc != nil,
		Page:           page,
		Metrics:        m,
	}, db, issuer, sessions, log, api.WithRetry(worker.NewDriver(worker.SweepConfig{
		QueueURL: cfg.Queue.URL, MaxChunkBytes: cfg.YouTube.MaxChunkBytes,
		YouTube: yt != nil, Transcode: tc != nil, AtomAPI: atom != nil,
	}, sqsc, log), s3c, cfg.Uploads.Bucket))
	httpServer := api.NewHTTP(apiServer, api.Listener{
		Addr:              cfg.HTTP.Addr,
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		WriteTimeout:      cfg.HTTP.WriteTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		MaxConnections:    cfg.HTTP.MaxConnections,
		DrainDelay:        min(2*time.Second, cfg.ShutdownGrace/5),
	}, log)
	owner := instanceID()
	dispatcher := worker.New(worker.Config{
		QueueURL:              cfg.Queue.URL,
		Bucket:                cfg.Uploads.Bucket,
		Owner:                 owner,
		LeaseTTL:              cfg.Worker.LeaseTTL,
		PollInterval:          cfg.Worker.PollInterval,
		ReassemblyParallelism: cfg.Worker.ReassemblyParallelism,
		MaxChunkBytes:         cfg.YouTube.MaxChunkBytes,
		MaxTranscodeAttempts:  cfg.Worker.MaxTranscodeAttempts,
		MaxAttempts:           cfg.Worker.MaxAttempts,
		MaxReceiveCount:       cfg.Worker.MaxReceiveCount,
		DeadLetterURL:         cfg.Queue.DeadLetterURL,
		RetryBackoff:          cfg.Worker.RetryBackoff,
		MaxRetryDelay:         cfg.Worker.StrandedAfter / 2,
		RequirePartChecksums:  cfg.Uploads.RequirePartChecksums,
		Park: worker.ParkConfig{
			DailyUploadLimit:   cfg.YouTube.DailyUploadLimit,
			UploadLimitRetry:   cfg.YouTube.UploadLimitRetry,
			UploadLimitHorizon: cfg.YouTube.UploadLimitHorizon,
			CredentialsRetry:   cfg.YouTube.CredentialsRetry,
			Jitter:             cfg.YouTube.ParkJitter,
			MaxHop:             min(15*time.Minute, cfg.Worker.StrandedAfter/2),
		},
	}, worker.Deps{Store: db, Queue: sqsc, S3: s3c, YouTube: yt, Transcoder: tc, AtomAPI: atom, Log: log, Metrics: m})
	if yt != nil {
		m.Health().AddCheck("youtubeCredentials", func() (bool, time.Time, string) {
			since, refused := dispatcher.YouTubeCredentialsRefused()
			return refused, since, "YouTube refuses the service's credentials (the refresh token or the OAuth client): every YouTube relay is parked until they are fixed"
		})
	}
	pool := worker.NewPool(sqsc, worker.PoolConfig{
		QueueURL:      cfg.Queue.URL,
		DeadLetterURL: cfg.Queue.DeadLetterURL,
		Concurrency:   cfg.Worker.Concurrency,
		Visibility:    cfg.Worker.VisibilityTimeout,
		WaitTime:      cfg.Worker.ReceiveWait,
		Metrics:       m,
	}, dispatcher, log)

	sweeper := worker.NewSweeper(worker.SweepConfig{
		Owner:         owner,
		Interval:      cfg.Worker.SweepInterval,
		LeaseTTL:      cfg.Worker.LeaseTTL,
		QueueURL:      cfg.Queue.URL,
		DeadLetterURL: cfg.Queue.DeadLetterURL,
		StrandedAfter: cfg.Worker.StrandedAfter,
		MaxChunkBytes: cfg.YouTube.MaxChunkBytes,
		YouTube:       yt != nil,
		Transcode:     tc != nil,
		AtomAPI:       atom != nil,
		Metrics:       m,

		Bucket:           cfg.Uploads.Bucket,
		AbandonAfter:     cfg.Uploads.AbandonAfter,
		DeletePartsAfter: cfg.Uploads.DeletePartsAfter,
	}, db, sqsc, s3c, yt, log)

	// Work in flight gets the grace less a few seconds for the bookkeeping
	// that hands back unfinished messages and lets go of leases; the API
	// gets the whole grace. Transcodes in progress may finish within the
	// work grace; then they are killed, reported lost, and restarted by
	// another instance.
	workGrace := max(cfg.ShutdownGrace-5*time.Second, time.Second)
	parts := []part{{"worker pool", pool, workGrace}, {"sweeper", sweeper, workGrace}, {"API", httpServer, cfg.ShutdownGrace}}
	if ffmpeg != nil {
		parts = append([]part{{"ffmpeg runner", ffmpeg.Runner(), workGrace}}, parts...)
	}
	failed := httpServer.Err()
	var metricsServer *metrics.Server
	if cfg.Metrics.Addr != "" {
		// Up first, so that it reports the start; it serves through the
		// drain delay, so that the drain is seen.
		metricsServer = metrics.NewServer(m, metrics.ServerConfig{
			Addr: cfg.Metrics.Addr, ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout, Linger: min(2*time.Second, cfg.ShutdownGrace/5),
		}, log)
		parts = append([]part{{"metrics", metricsServer, cfg.ShutdownGrace}}, parts...)
		failed = firstOf(httpServer.Err(), metricsServer.Err())
	}
	return runParts(ctx, log, parts, failed, func() {
		fields := []zap.Field{zap.Stringer("addr", httpServer.Addr()), zap.String("queue", cfg.Queue.URL),
			zap.String("bucket", cfg.Uploads.Bucket), zap.String("table", cfg.Table.Name),
			zap.Bool("youtube", yt != nil), zap.String("transcode", cfg.Transcode.Backend)}
		if metricsServer != nil {
			fields = append(fields, zap.Stringer("metricsAddr", metricsServer.Addr()))
		}
		log.Info("started", fields...)
	}, cfg.ShutdownGrace)
}

// youTubeDependency tells the YouTube client's requests to the token
// endpoint (the refresh token at work) from those to the API.
func youTubeDependency(tokenURL string) func(*http.Request) string {
	return func(r *http.Request) string {
		if strings.HasPrefix(r.URL.String(), tokenURL) {
			return metrics.DepYouTubeToken
		}
		return metrics.DepYouTube
	}
}

// firstOf delivers the first error of either channel.
func firstOf(a, b <-chan error) <-chan error {
	out := make(chan error, 1)
	go func() {
		select {
		case err := <-a:
			out <- err
		case err := <-b:
			out <- err
		}
	}()
	return out
}

// component is a long-running part of the service: Start returns once it
// runs in the background; Stop ends it within its context's deadline.
type component interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// part is a component and the grace its Stop gets.
type part struct {
	name  string
	c     component
	grace time.Duration
}

// runParts is the service's one start and shutdown sequence: start every
// part in order, run until ctx ends (SIGTERM) or a part fails, then stop
// every started part at once, each within its grace.
func runParts(ctx context.Context, log *zap.Logger, parts []part, failed <-chan error, started func(), grace time.Duration) error {
	var running []part
	var cause error
	for _, p := range parts {
		if err := p.c.Start(ctx); err != nil {
			cause = fmt.Errorf("start %s: %w", p.name, err)
			break
		}
		running = append(running, p)
	}
	if cause == nil {
		started()
		select {
		case <-ctx.Done():
		case cause = <-failed:
		}
	}
	log.Info("stopping", zap.String("grace", grace.String()))
	var g errgroup.Group
	for _, p := range running {
		g.Go(func() error {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.grace)
			defer cancel()
			if err := p.c.Stop(sctx); err != nil {
				return fmt.Errorf("stop %s: %w", p.name, err)
			}
			return nil
		})
	}
	return errors.Join(cause, g.Wait())
}

// regionOr prefers the SDK's own AWS_REGION over the configured region.
func regionOr(configured string) string {
	if r := os.Getenv("AWS_REGION"); r != "" {
		return r
	}
	return configured
}

// instanceID names this process as a lease owner.
func instanceID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// sdkLogger sends the AWS SDK's own log lines to zap at debug level.
type sdkLogger struct{ log *zap.Logger }

func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	l.log.Debug("aws sdk", zap.String("classification", string(c)), zap.String("detail", fmt.Sprintf(format, v...)))
}

// healthcheck is the container's HEALTHCHECK: the final image has no shell
// or curl.
func healthcheck(args []string) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	// The address the server listens on, from the same configuration; a
	// configuration problem is the server's to report, not the probe's.
	cfg, _ := config.Load(defaultConfig, os.Getenv(config.EnvPrefix+"CONFIG"), os.Environ())
	addr := cfg.HTTP.Addr
	if addr == "" {
		addr = ":8080"
	}
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	url := fs.String("url", "http://"+addr+"/healthcheck", "URL to check")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, http.NoBody)
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 2
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 1
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "healthcheck:", res.Status)
		return 1
	}
	return 0
}
