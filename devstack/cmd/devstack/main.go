// Command devstack is the local stack's helper: "setup" creates the bucket,
// queues, table and notification; "serve" runs the MinIO → SQS event bridge
// and, when asked, the YouTube and atom API stand-ins on loopback.
// It is started by scripts/stack; the service never needs it in AWS.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"atomuploads/atomapi/atomapitest"
	"atomuploads/devstack"
	"atomuploads/youtube/youtubetest"
)

func main() { os.Exit(run()) }

// run is main, returning the exit code so that deferred calls run.
func run() int {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: devstack setup|serve [flags]")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "setup":
		err = setup(ctx, os.Args[2:])
	case "serve":
		err = serve(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (setup or serve)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		return 1
	}
	return 0
}

func setup(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("setup", flag.ExitOnError)
	var r devstack.Resources
	fs.StringVar(&r.Bucket, "bucket", "atom-uploads-dev", "upload bucket; its queue gets the same name")
	fs.StringVar(&r.OutputBucket, "output-bucket", "atom-uploads-dev-outputs", "transcode output bucket")
	fs.StringVar(&r.Table, "table", "atom-uploads-dev", "progress table")
	fs.IntVar(&r.MaxReceiveCount, "max-receive", 5, "receives before a message goes to the dead-letter queue")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := devstack.AWSConfig(ctx)
	if err != nil {
		return err
	}
	clients, _ := devstack.NewClients(cfg)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := devstack.Setup(ctx, clients, r)
	if err != nil {
		return err
	}
	fmt.Printf("QUEUE_URL=%s\nDLQ_URL=%s\n", out.QueueURL, out.DLQURL)
	return nil
}

func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	bridgeAddr := fs.String("bridge", "127.0.0.1:9100", "listen address of the MinIO → SQS bridge; empty: none")
	ytAddr := fs.String("youtube", "", "listen address of the YouTube stand-in; empty: none")
	var ytOpts youtubetest.Options
	fs.StringVar(&ytOpts.ClientID, "youtube-client-id", "dev-client", "OAuth2 client id the YouTube stand-in accepts")
	fs.StringVar(&ytOpts.ClientSecret, "youtube-client-secret", "dev-client-secret", "OAuth2 client secret it accepts")
	fs.StringVar(&ytOpts.RefreshToken, "youtube-refresh-token", "dev-refresh-token", "refresh token it accepts")
	fs.IntVar(&ytOpts.ProcessingSteps, "youtube-processing-steps", 3, "videos.list polls a video reports processing")
	atomAddr := fs.String("atomapi", "", "listen address of the atom API stand-in; empty: none")
	var atomOpts atomapitest.Options
	fs.StringVar(&atomOpts.HMACSecret, "atomapi-hmac-secret", "dev-hmac-secret", "HMAC secret the atom API stand-in accepts")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := zap.NewProduction()
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	cfg, err := devstack.AWSConfig(ctx)
	if err != nil {
		return err
	}
	clients, _ := devstack.NewClients(cfg)
	var servers []*http.Server
	add := func(addr string, h http.Handler) {
		if addr != "" {
			servers = append(servers, &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second})
		}
	}
	add(*bridgeAddr, &devstack.Bridge{SQS: clients.SQS, Region: cfg.Region, Log: log})
	add(*ytAddr, youtubetest.New(ytOpts))
	add(*atomAddr, atomapitest.New(atomOpts))
	if len(servers) == 0 {
		return errors.New("nothing to serve: give -bridge, -youtube or -atomapi")
	}
	g, ctx := errgroup.WithContext(ctx)
	for _, srv := range servers {
		g.Go(func() error {
			log.Info("devstack listening", zap.String("addr", srv.Addr))
			if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve %s: %w", srv.Addr, err)
			}
			return nil
		})
	}
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		for _, srv := range servers {
			_ = srv.Shutdown(sctx)
		}
		return nil
	})
	return g.Wait()
}
