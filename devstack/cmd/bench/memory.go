package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"atomuploads/store"
	"atomuploads/upload"
)

// (4) memory as work grows: peak RSS of one service process with n relays
// in flight at once. Each upload is twice memChunk long and only its first
// memChunk bytes are put, so each relay has exactly one chunk of memChunk
// (64 MiB: youtube.maxChunkBytes) to send and no reassembly starts; the
// parts after the first are put first, and the first ones last, all
// together, so the n relays start together and each sends its whole chunk
// in one PUT, at the link cap shared by all. A relay that buffered its
// chunk would hold memChunk bytes; one that streams holds its buffers.
// The process runs with 48 messages at once (the default is 16), so that
// 32 relays fit.
func (b *bench) memory(ctx context.Context, relays int) (obs, error) {
	r, c, err := b.resources(ctx, "bench-m")
	if err != nil {
		return nil, err
	}
	defer b.cleanup(r, c)
	b.yt.SetLink(b.f.linkRate*1e6, b.f.linkRTT)
	defer b.yt.SetLink(0, 0)
	db := store.New(b.clients.DynamoDB, r.Table, 0)
	s, err := b.startService(ctx, fmt.Sprintf("mem%d", relays), r, c, "UPLOADS_WORKER_CONCURRENCY=48")
	if err != nil {
		return nil, err
	}
	defer s.kill()
	time.Sleep(time.Second)
	o := obs{"idle": s.rssNow()}

	run := title("m")
	var uploads []*upload.Upload
	for i := range relays {
		u, err := b.newUpload(ctx, db, r.Bucket, 2*b.f.memChunk, fmt.Sprintf("%s %02d", run, i))
		if err != nil {
			return nil, err
		}
		uploads = append(uploads, u)
	}
	per := int(b.f.memChunk / b.f.partSize) // parts in the chunk
	seed := make([]byte, b.f.partSize)
	_, _ = rand.Read(seed)
	if _, err := b.clients.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(r.Bucket), Key: aws.String("seed/part"), Body: bytes.NewReader(seed)}); err != nil {
		return nil, err
	}
	var rest, first []string
	for _, u := range uploads {
		first = append(first, u.PartKey(0))
		for n := 1; n < per; n++ {
			rest = append(rest, u.PartKey(n))
		}
	}
	if err := b.copyParts(ctx, r.Bucket, "seed/part", rest); err != nil {
		return nil, err
	}
	// The service marks them complete; its relays find part 0 missing.
	for _, u := range uploads {
		for {
			got, err := db.Get(ctx, u.AtomID, u.ID)
			if err != nil {
				return nil, err
			}
			if len(got.Completed) == per-1 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	o["before"] = s.peakRSS()
	if err := b.copyParts(ctx, r.Bucket, "seed/part", first); err != nil {
		return nil, err
	}
	// Wait for every relay to be sending, then hold while the peak is
	// sampled.
	receiving := func() int {
		n := 0
		for _, si := range b.yt.Sessions() {
			if si.Receiving && strings.HasPrefix(si.Title, run+" ") {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(2 * time.Minute)
	most := 0
	for most < relays && time.Now().Before(deadline) {
		most = max(most, receiving())
		time.Sleep(20 * time.Millisecond)
	}
	if most < relays {
		return nil, fmt.Errorf("%d of %d relays in flight at most", most, relays)
	}
	for end := time.Now().Add(b.f.memHold); time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
	}
	o["inflight"] = float64(most)
	o["peak"] = s.peakRSS()
	o["perRelay"] = (o["peak"] - o["before"]) / float64(relays)
	return o, nil
}

// relayCounts parses "1,8,32".
func relayCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("relay count %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}
