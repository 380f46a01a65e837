package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"atomuploads/store"
	"atomuploads/upload"
)

// relayThroughput is one run of (b): relay throughput S3 → YouTube
// stand-in of an upload already in S3, and a plain loopback copy of the
// same bytes.
func (b *bench) relayThroughput(ctx context.Context, run int) (obs, error) {
	r, c, err := b.resources(ctx, "bench-b")
	if err != nil {
		return nil, err
	}
	defer b.cleanup(r, c)
	db := store.New(b.clients.DynamoDB, r.Table, 0)
	name := title("b")
	u, err := b.newUpload(ctx, db, r.Bucket, b.f.throughput, name)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	// Events queue up; no worker yet.
	if _, err := b.putParts(ctx, r.Bucket, u, func(n int) []byte { return partData(2, u, n) }, 0, time.Now(), h); err != nil {
		return nil, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	// Every part complete and the original already assembled: on the
	// local stack a reassembly (server-side in AWS) would compete with
	// the relay for the same two cores and disk.
	for n := range u.PartCount() {
		if _, err := db.CompletePart(ctx, u.AtomID, u.ID, n); err != nil {
			return nil, err
		}
	}
	if _, err := db.Update(ctx, u.AtomID, u.ID, func(u *upload.Upload) error { u.Assembled = true; return nil }); err != nil {
		return nil, err
	}
	stopProfile, err := b.profile(fmt.Sprintf("b-service-run%d", run+1))
	if err != nil {
		return nil, err
	}
	start := time.Now()
	w := b.startWorker(r, c, nil)
	defer w.stop()
	v, done, err := b.videoDone(ctx, name, 10*time.Minute)
	stopProfile()
	if err != nil {
		return nil, err
	}
	if v.SHA256 != sum {
		return nil, fmt.Errorf("(b) video sha256 %s, want %s", v.SHA256, sum)
	}
	w.stop()
	relay := float64(u.Size) / done.Sub(start).Seconds() / 1e6

	// The plain copy: the same bytes, GET from S3, PUT to a loopback
	// server that only hashes them (as the stand-in does), one request per
	// 64 MiB as the relay sends them.
	var (
		mu   sync.Mutex
		sink = sha256.New()
	)
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
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
			return nil, err
		}
		req.ContentLength = n
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("(b) plain copy: %w", err)
		}
		res.Body.Close()
	}
	plain := float64(u.Size) / time.Since(start).Seconds() / 1e6
	if got := hex.EncodeToString(sink.Sum(nil)); got != sum {
		return nil, fmt.Errorf("(b) plain copy delivered %s, want %s", got, sum)
	}
	return obs{"relay": relay, "plain": plain, "ratio": relay / plain}, nil
}
