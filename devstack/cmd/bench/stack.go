package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	mrand "math/rand/v2"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"golang.org/x/sync/errgroup"

	"atomuploads/devstack"
	"atomuploads/store"
	"atomuploads/upload"
	"atomuploads/youtube/youtubetest"
)

// resources makes a fresh bucket, queue and table.
func (b *bench) resources(ctx context.Context, name string) (devstack.Resources, devstack.Created, error) {
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	r := devstack.Resources{Bucket: name + "-" + hex.EncodeToString(suffix), Table: name + "-" + hex.EncodeToString(suffix)}
	c, err := devstack.Setup(ctx, b.clients, r)
	return r, c, err
}

// cleanup deletes what resources made and everything in it, so that a
// whole run does not fill the disk.
func (b *bench) cleanup(r devstack.Resources, c devstack.Created) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_ = b.emptyBucket(ctx, r.Bucket)
	_, _ = b.clients.S3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(r.Bucket)})
	for _, q := range []string{c.QueueURL, c.DLQURL} {
		if q != "" {
			_, _ = b.clients.SQS.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(q)})
		}
	}
	if r.Table != "" {
		_, _ = b.clients.DynamoDB.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(r.Table)})
	}
}

// emptyBucket deletes every object and unfinished multipart upload.
func (b *bench) emptyBucket(ctx context.Context, bucket string) error {
	p := s3.NewListObjectsV2Paginator(b.clients.S3, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		if len(page.Contents) == 0 {
			continue
		}
		ids := make([]s3types.ObjectIdentifier, 0, len(page.Contents))
		for _, o := range page.Contents {
			ids = append(ids, s3types.ObjectIdentifier{Key: o.Key})
		}
		if _, err := b.clients.S3.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(bucket), Delete: &s3types.Delete{Objects: ids, Quiet: aws.Bool(true)}}); err != nil {
			return err
		}
	}
	mpus, err := b.clients.S3.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		return err
	}
	for _, m := range mpus.Uploads {
		_, _ = b.clients.S3.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(bucket), Key: m.Key, UploadId: m.UploadId})
	}
	return nil
}

// partData returns the bytes of part n of a synthetic file: pseudo-random,
// reproducible from the seed.
func partData(seed uint64, u *upload.Upload, n int) []byte {
	p, _ := u.Part(n)
	buf := make([]byte, p.Size())
	rng := mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(n), byte(n >> 8), byte(n >> 16)})
	_, _ = rng.Read(buf)
	return buf
}

// putParts puts every part in order with the bytes data gives, at most
// rate MB/s (paced from start) if rate > 0, writing them to h if it is not
// nil, and the time each part was in to times if it is not nil; it returns
// when the last part was in.
func (b *bench) putParts(ctx context.Context, bucket string, u *upload.Upload, data func(n int) []byte, rate float64, start time.Time, h hash.Hash, times ...[]time.Time) (time.Time, error) {
	var sent int64
	for n := range u.PartCount() {
		if rate > 0 {
			due := start.Add(time.Duration(float64(sent) / (rate * 1e6) * float64(time.Second)))
			time.Sleep(time.Until(due))
		}
		buf := data(n)
		if h != nil {
			h.Write(buf)
		}
		if _, err := b.clients.S3.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(u.PartKey(n)), Body: bytes.NewReader(buf),
		}); err != nil {
			return time.Time{}, fmt.Errorf("put part %d: %w", n, err)
		}
		if len(times) > 0 {
			times[0][n] = time.Now()
		}
		sent += int64(len(buf))
	}
	return time.Now(), nil
}

// copyParts creates parts by server-side copies of one seed object (which
// must be as long as each part), 16 at a time.
func (b *bench) copyParts(ctx context.Context, bucket, seedKey string, keys []string) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, k := range keys {
		g.Go(func() error {
			_, err := b.clients.S3.CopyObject(gctx, &s3.CopyObjectInput{
				Bucket: aws.String(bucket), Key: aws.String(k), CopySource: aws.String(bucket + "/" + seedKey),
			})
			return err
		})
	}
	return g.Wait()
}

// newUpload records a YouTube upload of size bytes in b.f.partSize parts.
func (b *bench) newUpload(ctx context.Context, db *store.Store, bucket string, size int64, title string) (*upload.Upload, error) {
	return b.newUploadOf(ctx, db, bucket, size, b.f.partSize, upload.DestinationRequest{Type: upload.YouTube, YouTube: upload.YouTubeMetadata{Title: title}})
}

func (b *bench) newUploadOf(ctx context.Context, db *store.Store, bucket string, size, partSize int64, dests ...upload.DestinationRequest) (*upload.Upload, error) {
	id, err := upload.NewID(time.Now(), rand.Reader)
	if err != nil {
		return nil, err
	}
	u, err := upload.New(upload.StartRequest{Filename: "bench.mp4", Size: size, ContentType: "video/mp4", Destinations: dests},
		"bench", id, time.Now(), b.aws.Region, bucket, partSize)
	if err != nil {
		return nil, err
	}
	return u, db.Create(ctx, u)
}

// title makes a unique video title.
func title(what string) string {
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	return "bench " + what + " " + hex.EncodeToString(suffix)
}

// videoDone waits until the stand-in has a video with the title.
func (b *bench) videoDone(ctx context.Context, title string, timeout time.Duration) (youtubetest.Video, time.Time, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, v := range b.yt.Videos() {
			if v.Title == title {
				return v, time.Now(), nil
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return youtubetest.Video{}, time.Time{}, fmt.Errorf("no video %q after %s", title, timeout)
}

// settled waits until the upload's record is terminal (its follow-ups are
// done), for at most timeout.
func settled(ctx context.Context, db *store.Store, u *upload.Upload, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		got, err := db.Get(ctx, u.AtomID, u.ID)
		if err != nil {
			return err
		}
		if got.Status.Terminal() {
			if got.Status != upload.StatusComplete {
				return fmt.Errorf("upload %s ended %s: %s", u.ID, got.Status, got.Error)
			}
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return errors.New("the upload's follow-ups did not finish in time")
}

// queueHolds waits until the queue holds at least n messages (the bridge
// forwards S3's events asynchronously).
func (b *bench) queueHolds(ctx context.Context, queueURL string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := b.clients.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl: aws.String(queueURL), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages},
		})
		if err != nil {
			return err
		}
		got, _ := strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)])
		if got >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the queue holds %d messages after %s, want %d", got, timeout, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func mb(n int64) string {
	if n >= 1<<30 && n%(1<<30) == 0 {
		return strconv.FormatInt(n>>30, 10) + " GiB"
	}
	return strconv.FormatInt(n>>20, 10) + " MiB"
}

// sequentialParts reads an upload's parts from S3, one after the other.
type sequentialParts struct {
	ctx    context.Context //nolint:containedctx // an io.Reader has no context of its own: this one bounds the GETs Read starts
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
