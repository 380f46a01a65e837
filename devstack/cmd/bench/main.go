// Command bench measures the service on the local stack (scripts/bench runs
// it) and prints one table, all measured in one run:
//
//	(a) pipelined relay vs the naive path: time from the last part landing in
//	    S3 to the video being complete on YouTube, when the relay streams parts
//	    while the browser is still uploading, and when everything is sent only
//	    after the last part, through google.golang.org/api's own resumable
//	    Media upload;
//	(b) relay throughput S3 → YouTube stand-in, against a plain loopback copy
//	    of the same bytes (GET from S3, PUT to a server that discards them);
//	(c) peak RSS of a service process relaying a 2 GiB upload;
//	(d) S3 events handled per second by one worker.
//
// The YouTube stand-in runs in this process on loopback; the AWS stand-ins
// are the local stack's (AWS_ENDPOINT_URL_* from its env file).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/pprof"

	"github.com/aws/aws-sdk-go-v2/aws"

	"atomuploads/devstack"
	"atomuploads/youtube"
	"atomuploads/youtube/youtubetest"
)

const (
	clientID, clientSecret, refreshToken = "bench", "bench-secret", "bench-refresh"
	maxChunk                             = 64 << 20
)

type flags struct {
	pipelinedSize int64
	browserRate   float64 // MB/s
	throughput    int64
	rssSize       int64
	events        int
	partSize      int64
	service       string
	only          string
}

func main() { os.Exit(run()) }

// run is main, returning the exit code so that deferred calls run.
func run() int {
	var f flags
	flag.Int64Var(&f.pipelinedSize, "a-size", 512<<20, "(a) file size in bytes")
	flag.Float64Var(&f.browserRate, "a-browser-rate", 50, "(a) the browser's upload rate in MB/s")
	flag.Int64Var(&f.throughput, "b-size", 1<<30, "(b) file size in bytes")
	flag.Int64Var(&f.rssSize, "c-size", 2<<30, "(c) file size in bytes")
	flag.IntVar(&f.events, "d-uploads", 500, "(d) one-part uploads, two events each")
	flag.Int64Var(&f.partSize, "part-size", 8<<20, "part size")
	flag.StringVar(&f.service, "service", "", "(c) the atom-uploads binary to measure (required)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of this process (the in-process worker of a, b and d) to the file")
	only := flag.String("only", "abcd", "which measurements to run")
	flag.Parse()
	f.only = *only
	if *cpuProfile != "" {
		pf, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	if f.service == "" {
		fmt.Fprintln(os.Stderr, "bench: -service PATH is required (scripts/bench builds it)")
		return 2
	}
	ctx := context.Background()
	b, err := newBench(ctx, f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer b.close()
	rows, err := b.run(ctx)
	for _, r := range rows {
		fmt.Println(r)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return 0
}

type bench struct {
	f       flags
	aws     aws.Config
	clients devstack.Clients
	yt      *youtubetest.Server
	ytURL   string
	ytSrv   *httptest.Server
	client  *youtube.Client
}

func newBench(ctx context.Context, f flags) (*bench, error) {
	if os.Getenv("AWS_ENDPOINT_URL_S3") == "" {
		return nil, errors.New("no local stack: run it through scripts/bench")
	}
	cfg, err := devstack.AWSConfig(ctx)
	if err != nil {
		return nil, err
	}
	clients, _ := devstack.NewClients(cfg)
	b := &bench{f: f, aws: cfg, clients: clients}
	b.yt = youtubetest.New(youtubetest.Options{ClientID: clientID, ClientSecret: clientSecret, RefreshToken: refreshToken})
	b.ytSrv = httptest.NewServer(b.yt)
	b.ytURL = b.ytSrv.URL
	b.client, err = youtube.New(youtube.Config{
		APIBaseURL: b.ytURL + "/", TokenURL: b.ytURL + "/token",
		ClientID: clientID, ClientSecret: clientSecret, RefreshToken: refreshToken,
	}, &http.Client{})
	if err != nil {
		return nil, err
	}
	return b, nil
}

func (b *bench) close() { b.ytSrv.Close() }

func (b *bench) run(ctx context.Context) ([]string, error) {
	rows := []string{
		"| measurement | result |",
		"|---|---|",
	}
	steps := map[rune]func(context.Context) (string, error){'a': b.pipelined, 'b': b.relayThroughput, 'c': b.peakRSS, 'd': b.eventsPerSecond}
	for _, name := range b.f.only {
		step, ok := steps[name]
		if !ok {
			return rows, fmt.Errorf("no measurement %q (a, b, c or d)", name)
		}
		row, err := step(ctx)
		if err != nil {
			return rows, err
		}
		rows = append(rows, row)
		fmt.Fprintln(os.Stderr, "bench:", row)
	}
	return rows, nil
}
