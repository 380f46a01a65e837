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
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap"
	"golang.org/x/oauth2"
	"golang.org/x/sync/errgroup"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	yt "google.golang.org/api/youtube/v3"

	"atomuploads/devstack"
	"atomuploads/store"
	"atomuploads/upload"
	"atomuploads/worker"
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

func main() {
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
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if f.service == "" {
		fmt.Fprintln(os.Stderr, "bench: -service PATH is required (scripts/bench builds it)")
		os.Exit(2)
	}
	ctx := context.Background()
	b, err := newBench(ctx, f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	defer b.close()
	rows, err := b.run(ctx)
	for _, r := range rows {
		fmt.Println(r)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
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

// resources makes a fresh bucket, queue and table.
func (b *bench) resources(ctx context.Context, name string) (devstack.Resources, devstack.Created, error) {
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	r := devstack.Resources{Bucket: name + "-" + hex.EncodeToString(suffix), Table: name + "-" + hex.EncodeToString(suffix)}
	c, err := devstack.Setup(ctx, b.clients, r)
	return r, c, err
}

// part returns the bytes of part n of a synthetic file: pseudo-random,
// reproducible from the seed.
func part(seed uint64, u *upload.Upload, n int) []byte {
	p, _ := u.Part(n)
	buf := make([]byte, p.Size())
	rng := mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(n), byte(n >> 8), byte(n >> 16)})
	_, _ = rng.Read(buf)
	return buf
}

// putParts puts every part in order, at most rate MB/s if rate > 0, and
// returns the sha256 of the file and when the last part was in.
func (b *bench) putParts(ctx context.Context, bucket string, u *upload.Upload, seed uint64, rate float64) (string, time.Time, error) {
	h := sha256.New()
	start := time.Now()
	var sent int64
	for n := range u.PartCount() {
		data := part(seed, u, n)
		h.Write(data)
		if _, err := b.clients.S3.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(u.PartKey(n)), Body: bytes.NewReader(data),
		}); err != nil {
			return "", time.Time{}, fmt.Errorf("put part %d: %w", n, err)
		}
		sent += int64(len(data))
		if n == u.PartCount()-1 {
			break // the last part is in: no pacing after it
		}
		if rate > 0 {
			due := start.Add(time.Duration(float64(sent) / (rate * 1e6) * float64(time.Second)))
			time.Sleep(time.Until(due))
		}
	}
	return hex.EncodeToString(h.Sum(nil)), time.Now(), nil
}

func (b *bench) newUpload(ctx context.Context, db *store.Store, bucket string, size int64, title string) (*upload.Upload, error) {
	id, err := upload.NewID(time.Now(), rand.Reader)
	if err != nil {
		return nil, err
	}
	u, err := upload.New(upload.StartRequest{
		Filename: "bench.mp4", Size: size, ContentType: "video/mp4",
		Destinations: []upload.DestinationRequest{{Type: upload.YouTube, YouTube: upload.YouTubeMetadata{Title: title}}},
	}, "bench", id, time.Now(), b.aws.Region, bucket, b.f.partSize)
	if err != nil {
		return nil, err
	}
	return u, db.Create(ctx, u)
}

// worker runs one in-process worker instance until stop is called.
func (b *bench) worker(r devstack.Resources, c devstack.Created, db *store.Store) (stop func()) {
	steps := worker.NewSteps(worker.Config{
		QueueURL: c.QueueURL, Bucket: r.Bucket, Owner: "bench", LeaseTTL: 20 * time.Second, PollInterval: time.Minute,
		ReassemblyParallelism: 8, MaxChunkBytes: maxChunk, MaxTranscodeAttempts: 3, MaxAttempts: 20, MaxReceiveCount: 5,
	}, db, b.clients.SQS, b.clients.S3, b.client, nil, nil, benchLog())
	pool := worker.NewPool(b.clients.SQS, worker.PoolConfig{QueueURL: c.QueueURL, Concurrency: 16, Visibility: time.Minute, WaitTime: time.Second}, steps, zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = pool.Run(ctx, 5*time.Second)
	}()
	return func() { cancel(); wg.Wait() }
}

// videoDone waits until the stand-in has a video with the title.
func (b *bench) videoDone(ctx context.Context, title string, timeout time.Duration) (youtubetest.Video, time.Time, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, v := range b.yt.Videos() {
			if v.Title == title {
				return v, time.Now(), nil
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return youtubetest.Video{}, time.Time{}, fmt.Errorf("no video %q after %s", title, timeout)
}

func mb(n int64) string { return strconv.FormatInt(n>>20, 10) + " MiB" }

// (a)
func (b *bench) pipelined(ctx context.Context) (string, error) {
	r, c, err := b.resources(ctx, "bench-a")
	if err != nil {
		return "", err
	}
	db := store.New(b.clients.DynamoDB, r.Table, 0)
	u, err := b.newUpload(ctx, db, r.Bucket, b.f.pipelinedSize, "bench a pipelined")
	if err != nil {
		return "", err
	}
	stop := b.worker(r, c, db)
	defer stop()
	type result struct {
		v    youtubetest.Video
		done time.Time
		err  error
	}
	watch := make(chan result, 1)
	go func() { // watches from the start: the video may be done before the browser returns
		v, done, err := b.videoDone(ctx, "bench a pipelined", 10*time.Minute)
		watch <- result{v, done, err}
	}()
	sum, last, err := b.putParts(ctx, r.Bucket, u, 1, b.f.browserRate)
	if err != nil {
		return "", err
	}
	res := <-watch
	v, done, err := res.v, res.done, res.err
	if err != nil {
		return "", err
	}
	if v.SHA256 != sum {
		return "", fmt.Errorf("(a) pipelined video sha256 %s, want %s", v.SHA256, sum)
	}
	pipelined := done.Sub(last)

	// The naive path: everything after the last part, through the
	// library's own resumable Media upload, reading the parts in order.
	svc, err := b.library(ctx)
	if err != nil {
		return "", err
	}
	start := time.Now()
	body := &sequentialParts{ctx: ctx, s3: b.clients.S3, bucket: r.Bucket, u: u}
	out, err := svc.Videos.Insert([]string{"snippet", "status"}, &yt.Video{
		Snippet: &yt.VideoSnippet{Title: "bench a naive"}, Status: &yt.VideoStatus{PrivacyStatus: "private"},
	}).Media(body, googleapi.ChunkSize(maxChunk), googleapi.ContentType("video/mp4")).Context(ctx).Do()
	if err != nil {
		return "", fmt.Errorf("(a) naive upload: %w", err)
	}
	naive := time.Since(start)
	if nv, ok := b.yt.Video(out.Id); !ok || nv.SHA256 != sum {
		return "", fmt.Errorf("(a) naive video is not byte-exact")
	}
	return fmt.Sprintf("| (a) last part in S3 → YouTube complete, %s in %s parts, browser at %.0f MB/s | pipelined %.2f s, naive %.2f s (whole file after the last part, google.golang.org/api Media upload): **%.1f× sooner** |",
		mb(u.Size), strconv.Itoa(u.PartCount()), b.f.browserRate, pipelined.Seconds(), naive.Seconds(), naive.Seconds()/pipelined.Seconds()), nil
}

// library is the generated YouTube client on the stand-in.
func (b *bench) library(ctx context.Context) (*yt.Service, error) {
	conf := &oauth2.Config{ClientID: clientID, ClientSecret: clientSecret, Endpoint: oauth2.Endpoint{TokenURL: b.ytURL + "/token"}}
	return yt.NewService(ctx, option.WithEndpoint(b.ytURL+"/"), option.WithHTTPClient(conf.Client(ctx, &oauth2.Token{RefreshToken: refreshToken})))
}

// sequentialParts reads an upload's parts from S3, one after the other.
type sequentialParts struct {
	ctx    context.Context // bounds the GETs Read starts; io.Reader has no context
	s3     *s3.Client
	bucket string
	u      *upload.Upload
	next   int
	cur    io.ReadCloser
}

func (p *sequentialParts) Read(buf []byte) (int, error) {
	for {
		if p.cur == nil {
			if p.next == p.u.PartCount() {
				return 0, io.EOF
			}
			out, err := p.s3.GetObject(p.ctx, &s3.GetObjectInput{Bucket: aws.String(p.bucket), Key: aws.String(p.u.PartKey(p.next))})
			if err != nil {
				return 0, err
			}
			p.cur, p.next = out.Body, p.next+1
		}
		n, err := p.cur.Read(buf)
		if err == io.EOF {
			p.cur.Close()
			p.cur = nil
			err = nil
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// (b)
func (b *bench) relayThroughput(ctx context.Context) (string, error) {
	r, c, err := b.resources(ctx, "bench-b")
	if err != nil {
		return "", err
	}
	db := store.New(b.clients.DynamoDB, r.Table, 0)
	u, err := b.newUpload(ctx, db, r.Bucket, b.f.throughput, "bench b")
	if err != nil {
		return "", err
	}
	sum, _, err := b.putParts(ctx, r.Bucket, u, 2, 0) // events queue up; no worker yet
	if err != nil {
		return "", err
	}
	// Every part complete and the original already assembled: on the
	// local stack a reassembly (server-side in AWS) would compete with
	// the relay for the same two cores and disk.
	for n := range u.PartCount() {
		if _, err := db.CompletePart(ctx, u.AtomID, u.ID, n); err != nil {
			return "", err
		}
	}
	if _, err := db.Update(ctx, u.AtomID, u.ID, func(u *upload.Upload) error { u.Assembled = true; return nil }); err != nil {
		return "", err
	}
	start := time.Now()
	stop := b.worker(r, c, db)
	defer stop()
	v, done, err := b.videoDone(ctx, "bench b", 10*time.Minute)
	if err != nil {
		return "", err
	}
	if v.SHA256 != sum {
		return "", fmt.Errorf("(b) video sha256 %s, want %s", v.SHA256, sum)
	}
	relay := float64(u.Size) / done.Sub(start).Seconds() / 1e6

	// The plain copy: the same bytes, GET from S3, PUT to a loopback
	// server that only hashes them (as the stand-in does), one request per
	// 64 MiB as the relay sends them.
	var (
		mu   sync.Mutex
		sink = sha256.New()
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		_, _ = io.Copy(sink, r.Body)
	}))
	defer srv.Close()
	start = time.Now()
	body := &sequentialParts{ctx: ctx, s3: b.clients.S3, bucket: r.Bucket, u: u}
	for left := u.Size; left > 0; left -= maxChunk {
		n := min(left, maxChunk)
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, srv.URL, io.LimitReader(body, n))
		if err != nil {
			return "", err
		}
		req.ContentLength = n
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", fmt.Errorf("(b) plain copy: %w", err)
		}
		res.Body.Close()
	}
	plain := float64(u.Size) / time.Since(start).Seconds() / 1e6
	if got := hex.EncodeToString(sink.Sum(nil)); got != sum {
		return "", fmt.Errorf("(b) plain copy delivered %s, want %s", got, sum)
	}
	return fmt.Sprintf("| (b) relay throughput S3 → YouTube stand-in, %s already in S3 (and already reassembled) | relay %.0f MB/s, plain loopback copy %.0f MB/s: **%.2f** of a plain copy |",
		mb(u.Size), relay, plain, relay/plain), nil
}

// (c)
func (b *bench) peakRSS(ctx context.Context) (string, error) {
	r, c, err := b.resources(ctx, "bench-c")
	if err != nil {
		return "", err
	}
	db := store.New(b.clients.DynamoDB, r.Table, 0)
	u, err := b.newUpload(ctx, db, r.Bucket, b.f.rssSize, "bench c")
	if err != nil {
		return "", err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(b.f.service)
	cmd.Env = append(os.Environ(),
		"UPLOADS_HTTP_ADDR="+addr, "UPLOADS_API_TOKENS=bench-token-0123456789",
		"UPLOADS_AWS_S3_USE_PATH_STYLE=true", "UPLOADS_UPLOADS_BUCKET="+r.Bucket,
		"UPLOADS_UPLOADS_CREDENTIALS_ROLE_ARN=arn:aws:iam::000000000000:role/bench",
		"UPLOADS_TABLE_NAME="+r.Table, "UPLOADS_QUEUE_URL="+c.QueueURL,
		"UPLOADS_YOUTUBE_API_BASE_URL="+b.ytURL+"/", "UPLOADS_YOUTUBE_TOKEN_URL="+b.ytURL+"/token",
		"UPLOADS_YOUTUBE_CLIENT_ID="+clientID, "UPLOADS_YOUTUBE_CLIENT_SECRET="+clientSecret,
		"UPLOADS_YOUTUBE_REFRESH_TOKEN="+refreshToken, "UPLOADS_LOG_LEVEL=warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	time.Sleep(2 * time.Second)
	idle, _ := rss(cmd.Process.Pid, "VmRSS")

	var peak int64
	done := make(chan struct{})
	var sampler errgroup.Group
	sampler.Go(func() error {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return nil
			case <-t.C:
				if v, err := rss(cmd.Process.Pid, "VmRSS"); err == nil && v > peak {
					peak = v
				}
			}
		}
	})
	sum, _, err := b.putParts(ctx, r.Bucket, u, 3, 0)
	var v youtubetest.Video
	if err == nil {
		v, _, err = b.videoDone(ctx, "bench c", 15*time.Minute)
	}
	close(done)
	_ = sampler.Wait()
	if err != nil {
		return "", err
	}
	if v.SHA256 != sum {
		return "", fmt.Errorf("(c) video sha256 %s, want %s", v.SHA256, sum)
	}
	hwm, err := rss(cmd.Process.Pid, "VmHWM")
	if err != nil {
		return "", err
	}
	peak = max(peak, hwm)
	return fmt.Sprintf("| (c) peak RSS of a service process relaying %s (pipelined, %s chunks) | **%.0f MiB** peak (VmHWM), %.0f MiB idle before the upload |",
		mb(u.Size), mb(maxChunk), float64(peak)/1024, float64(idle)/1024), nil
}

// rss reads a memory line (in KiB) of /proc/<pid>/status.
func rss(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// (d)
func (b *bench) eventsPerSecond(ctx context.Context) (string, error) {
	r, c, err := b.resources(ctx, "bench-d")
	if err != nil {
		return "", err
	}
	db := store.New(b.clients.DynamoDB, r.Table, 0)
	var us []*upload.Upload
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for range b.f.events {
		id, err := upload.NewID(time.Now(), rand.Reader)
		if err != nil {
			return "", err
		}
		u, err := upload.New(upload.StartRequest{Filename: "e.mp4", Size: 1024, Destinations: []upload.DestinationRequest{{Type: upload.S3Bucket}}},
			"bench", id, time.Now(), b.aws.Region, r.Bucket, b.f.partSize)
		if err != nil {
			return "", err
		}
		us = append(us, u)
		g.Go(func() error {
			if err := db.Create(gctx, u); err != nil {
				return err
			}
			_, err := b.clients.S3.PutObject(gctx, &s3.PutObjectInput{Bucket: aws.String(r.Bucket), Key: aws.String(u.PartKey(0)), Body: bytes.NewReader(make([]byte, 1024))})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return "", err
	}
	time.Sleep(2 * time.Second) // the bridge puts the events on the queue
	start := time.Now()
	stop := b.worker(r, c, db)
	defer stop()
	for _, u := range us {
		for {
			got, err := db.Get(ctx, u.AtomID, u.ID)
			if err != nil {
				return "", err
			}
			if got.Assembled {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	elapsed := time.Since(start)
	return fmt.Sprintf("| (d) S3 events through one worker (16 at once): part event (HeadObject, conditional ADD, one-part reassembly) | **%.0f part events/s** (%d uploads in %.1f s) |",
		float64(len(us))/elapsed.Seconds(), len(us), elapsed.Seconds()), nil
}

// benchLog is the in-process worker's logger: silent unless BENCH_LOG is set.
func benchLog() *zap.Logger {
	if os.Getenv("BENCH_LOG") == "" {
		return zap.NewNop()
	}
	l, _ := zap.NewProduction()
	return l
}
