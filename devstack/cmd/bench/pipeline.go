package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	yt "google.golang.org/api/youtube/v3"

	"atomuploads/store"
	"atomuploads/upload"
	"atomuploads/worker"
	"atomuploads/youtube/youtubetest"
)

// pipelined is one run of (a): a browser puts size bytes in parts at rate
// MB/s while an in-process worker relays them; the time from the last
// part in S3 to the video complete on YouTube. Then the naive path: the
// whole file after the last part, through google.golang.org/api's own
// resumable Media upload, reading the parts in order. It also counts the
// worker's AWS calls for the upload, its follow-ups (YouTube's processing,
// polled every 2 s instead of 30 s so that the run ends sooner; the calls
// are the same) included, per GiB. The worker long-polls for 1 s, not 20 s:
// kumo does not end a long poll when a delayed message becomes visible
// (SQS does), so each delayed follow-up would wait out the poll; messages
// sent now (S3's events) end a poll at once either way.
func (b *bench) pipelined(ctx context.Context, size int64, rate float64) (obs, error) {
	r, c, err := b.resources(ctx, "bench-a")
	if err != nil {
		return nil, err
	}
	defer b.cleanup(r, c)
	db := store.New(b.clients.DynamoDB, r.Table, 0)
	name := title("a")
	u, err := b.newUpload(ctx, db, r.Bucket, size, name)
	if err != nil {
		return nil, err
	}
	w := b.startWorker(r, c, func(cfg *worker.Config, pcfg *worker.PoolConfig) {
		cfg.PollInterval, pcfg.WaitTime = b.f.followUpPoll, time.Second
	})
	defer w.stop()
	type result struct {
		v    youtubetest.Video
		done time.Time
		err  error
	}
	watch := make(chan result, 1)
	go func() { // watches from the start: the video may be done before the browser returns
		v, done, err := b.videoDone(ctx, name, 30*time.Minute)
		watch <- result{v, done, err}
	}()
	h := sha256.New()
	last, err := b.putParts(ctx, r.Bucket, u, func(n int) []byte { return partData(1, u, n) }, rate, time.Now(), h)
	if err != nil {
		return nil, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	res := <-watch
	if res.err != nil {
		return nil, res.err
	}
	if res.v.SHA256 != sum {
		return nil, fmt.Errorf("(a) pipelined video sha256 %s, want %s", res.v.SHA256, sum)
	}
	pipelined := res.done.Sub(last)
	// The tail in two: the last part's event (S3 → queue → worker, which
	// checks it and marks it complete), then the relay of what is left.
	var marked time.Time
	for _, f := range w.logs.fields("part complete") {
		if n, _ := f["part"].(int64); int(n) == u.PartCount()-1 {
			marked, _ = f["_time"].(time.Time)
		}
	}
	if err := settled(ctx, db, u, 5*time.Minute); err != nil {
		return nil, err
	}
	counts := w.calls.snapshot()
	w.stop()

	naive, err := b.naive(ctx, r.Bucket, u, sum)
	if err != nil {
		return nil, err
	}
	o := obs{"pipelined": pipelined.Seconds(), "naive": naive.Seconds(), "sooner": naive.Seconds() / pipelined.Seconds()}
	if !marked.IsZero() {
		o["event"], o["relay"] = marked.Sub(last).Seconds(), res.done.Sub(marked).Seconds()
	}
	gib := float64(size) / (1 << 30)
	for op, n := range counts {
		o["calls."+op] = float64(n) / gib
	}
	return o, nil
}

// naive sends the upload's parts, read in order from S3, through the
// library's resumable Media upload, and returns how long it took.
func (b *bench) naive(ctx context.Context, bucket string, u *upload.Upload, sum string) (time.Duration, error) {
	conf := &oauth2.Config{ClientID: clientID, ClientSecret: clientSecret, Endpoint: oauth2.Endpoint{TokenURL: b.ytURL + "/token"}}
	svc, err := yt.NewService(ctx, option.WithEndpoint(b.ytURL+"/"), option.WithHTTPClient(conf.Client(ctx, &oauth2.Token{RefreshToken: refreshToken})))
	if err != nil {
		return 0, err
	}
	// The library sends a file no longer than one chunk in one request
	// (uploadType=multipart), which the stand-in does not take: tiny
	// files go in smaller chunks.
	chunk := maxChunk
	if u.Size <= maxChunk {
		chunk = 4 << 20
	}
	start := time.Now()
	body := &sequentialParts{ctx: ctx, s3: b.clients.S3, bucket: bucket, u: u}
	out, err := svc.Videos.Insert([]string{"snippet", "status"}, &yt.Video{
		Snippet: &yt.VideoSnippet{Title: "bench naive"}, Status: &yt.VideoStatus{PrivacyStatus: "private"},
	}).Media(body, googleapi.ChunkSize(chunk), googleapi.ContentType("video/mp4")).Context(ctx).Do()
	if err != nil {
		return 0, fmt.Errorf("(a) naive upload: %w", err)
	}
	naive := time.Since(start)
	if nv, ok := b.yt.Video(out.Id); !ok || nv.SHA256 != sum {
		return 0, fmt.Errorf("(a) naive video is not byte-exact")
	}
	return naive, nil
}
