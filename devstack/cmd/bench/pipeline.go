package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	yt "google.golang.org/api/youtube/v3"

	"atomuploads/store"
	"atomuploads/youtube/youtubetest"
)

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
