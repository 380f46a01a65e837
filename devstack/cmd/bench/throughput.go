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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"atomuploads/store"
	"atomuploads/upload"
)

// relayThroughput is one run of (b): relay throughput S3 → YouTube
// stand-in of an upload already in S3, and a plain loopback copy of the
// same bytes. The relay is timed alone: the parts are put with the
// bucket's event notification off, then pinned and marked complete as
// their events would have (those are (d)'s measurement, and handled
// during the relay they would compete with it for the same two cores),
// and the worker is sent the relay.
func (b *bench) relayThroughput(ctx context.Context, run int) (obs, error) {
	r, c, err := b.resources(ctx, "bench-b")
	if err != nil {
		return nil, err
	}
	defer b.cleanup(r, c)
	if _, err := b.clients.S3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(r.Bucket), NotificationConfiguration: &s3types.NotificationConfiguration{},
	}); err != nil {
		return nil, err
	}
	db := store.New(b.clients.DynamoDB, r.Table, 0)
	name := title("b")
	u, err := b.newUpload(ctx, db, r.Bucket, b.f.throughput, name)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	if _, err := b.putParts(ctx, r.Bucket, u, func(n int) []byte { return partData(2, u, n) }, 0, time.Now(), h); err != nil {
		return nil, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	// Every part pinned and complete, and the original already assembled:
	// on the local stack a reassembly (server-side in AWS) would compete
	// with the relay for the same two cores and disk.
	for n := range u.PartCount() {
		head, err := b.clients.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(r.Bucket), Key: aws.String(u.PartKey(n))})
		if err != nil {
			return nil, err
		}
		p, _ := u.Part(n)
		if _, err := db.PinPart(ctx, u.AtomID, u.ID, upload.PartPin{Part: n, ETag: aws.ToString(head.ETag), Size: p.Size()}); err != nil {
			return nil, err
		}
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
	o := obs{}
	cpu := startCPU()
	start := time.Now()
	w := b.startWorker(r, c, nil)
	defer w.stop()
	msg := fmt.Sprintf(`{"atomUploads":{"kind":"relay","atomId":%q,"uploadId":%q}}`, u.AtomID, u.ID)
	if _, err := b.clients.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(c.QueueURL), MessageBody: aws.String(msg)}); err != nil {
		stopProfile()
		return nil, err
	}
	v, done, err := b.videoDone(ctx, name, 10*time.Minute)
	stopProfile()
	for k, v := range cpu.stop(nil) {
		o["relay."+k] = v
	}
	if err != nil {
		return nil, err
	}
	if v.SHA256 != sum {
		return nil, fmt.Errorf("(b) video sha256 %s, want %s", v.SHA256, sum)
	}
	w.stop()
	relay := float64(u.Size) / done.Sub(start).Seconds() / 1e6

	plain, err := b.plainCopy(ctx, r.Bucket, u, sum, false, o, "plain.")
	if err != nil {
		return nil, err
	}
	hashed, err := b.plainCopy(ctx, r.Bucket, u, sum, true, o, "hashed.")
	if err != nil {
		return nil, err
	}
	o["hashed"], o["ratioHashed"] = hashed, relay/hashed
	o["relay"], o["plain"], o["ratio"] = relay, plain, relay/plain
	return o, nil
}

// plainCopy is (b)'s baseline, in MB/s: the same bytes, GET from S3, PUT to
// a loopback server that only hashes them (as the stand-in does), one
// request per 64 MiB as the relay sends them; hashed also keeps a SHA-256
// of the bytes sent, in line, as the relay does of what YouTube committed.
// Where the CPU went goes into o under prefix.
func (b *bench) plainCopy(ctx context.Context, bucket string, u *upload.Upload, sum string, hashed bool, o obs, prefix string) (float64, error) {
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
	cpu := startCPU()
	start := time.Now()
	var body io.Reader = &sequentialParts{ctx: ctx, s3: b.clients.S3, bucket: bucket, u: u}
	own := sha256.New()
	if hashed {
		body = io.TeeReader(body, own)
	}
	for left := u.Size; left > 0; left -= maxChunk {
		n := min(left, maxChunk)
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, srv.URL, io.LimitReader(body, n))
		if err != nil {
			return 0, err
		}
		req.ContentLength = n
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, fmt.Errorf("(b) plain copy: %w", err)
		}
		res.Body.Close()
	}
	rate := float64(u.Size) / time.Since(start).Seconds() / 1e6
	for k, v := range cpu.stop(nil) {
		o[prefix+k] = v
	}
	if got := hex.EncodeToString(sink.Sum(nil)); got != sum {
		return 0, fmt.Errorf("(b) plain copy delivered %s, want %s", got, sum)
	}
	if got := hex.EncodeToString(own.Sum(nil)); hashed && got != sum {
		return 0, fmt.Errorf("(b) plain copy hashed %s, want %s", got, sum)
	}
	return rate, nil
}
