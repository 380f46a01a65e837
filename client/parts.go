package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"golang.org/x/sync/errgroup"

	"atomuploads/api/rest"
)

// DefaultParallel is how many parts are in flight by default.
const DefaultParallel = 4

// PutOptions tune PutParts.
type PutOptions struct {
	// Parallel is how many parts are in flight at once (default 4).
	Parallel int
	// Parts are the numbers of the parts to put; nil: every part the
	// record does not show complete.
	Parts []int
	// Progress, when set, is told about each part put or retried, one call
	// at a time.
	Progress func(Progress)
}

// Progress is the state of PutParts after one event.
type Progress struct {
	Part    int           // the part the event is about, from 0
	Retry   bool          // the part failed and is tried again after Wait
	Attempt int           // the attempt that failed, when Retry
	Wait    time.Duration // before the next attempt, when Retry
	Err     error         // why, when Retry

	PartsDone  int   // parts in S3, those skipped included
	PartsTotal int   // parts of the upload
	BytesDone  int64 // bytes in S3, those of skipped parts included
	Size       int64 // bytes of the upload
	BytesSent  int64 // bytes sent by this PutParts call
	Elapsed    time.Duration
}

// PutParts puts the upload's parts from file straight into S3, at most
// opts.Parallel at a time, each streamed from its section of the file. It
// signs with rec.Credentials when they are fresh enough and with credentials
// refreshed through the API otherwise; the SDK refreshes them by itself
// RefreshBefore their expiry. A failed part is retried with backoff. The
// first part that fails for good cancels the others.
func (c *Client) PutParts(ctx context.Context, rec *rest.Upload, file io.ReaderAt, opts PutOptions) error {
	todo, err := partsToPut(rec, opts.Parts)
	if err != nil {
		return err
	}
	parallel := opts.Parallel
	if parallel <= 0 {
		parallel = DefaultParallel
	}
	creds := aws.NewCredentialsCache(&refresher{c: c, atomID: rec.AtomID, uploadID: rec.ID, window: c.refreshBefore(), first: rec.Credentials},
		func(o *aws.CredentialsCacheOptions) { o.ExpiryWindow = c.refreshBefore() })
	s3c := c.s3Client(rec.Region, creds)

	tr := newTracker(rec, todo, opts.Progress)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for _, n := range todo {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if err := c.putPart(gctx, s3c, creds, rec, n, file, tr); err != nil {
				return fmt.Errorf("put part %d of upload %s: %w", n, rec.ID, err)
			}
			tr.done(n)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// A cancelled ctx may have stopped the loop before any part failed.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put parts of upload %s: %w", rec.ID, err)
	}
	return nil
}

// partsToPut checks the wanted part numbers, or picks the incomplete ones.
func partsToPut(rec *rest.Upload, want []int) ([]int, error) {
	if want == nil {
		var todo []int
		for i, p := range rec.Parts {
			if !p.Complete {
				todo = append(todo, i)
			}
		}
		return todo, nil
	}
	seen := make(map[int]bool, len(want))
	for _, n := range want {
		if n < 0 || n >= len(rec.Parts) {
			return nil, fmt.Errorf("upload %s has no part %d (it has %d)", rec.ID, n, len(rec.Parts))
		}
		if seen[n] {
			return nil, fmt.Errorf("part %d is listed twice", n)
		}
		seen[n] = true
	}
	return want, nil
}

func (c *Client) refreshBefore() time.Duration {
	if c.RefreshBefore > 0 {
		return c.RefreshBefore
	}
	return defaultRefreshBefore
}

func (c *Client) s3Client(region string, creds aws.CredentialsProvider) *s3.Client {
	o := s3.Options{
		Region:       region,
		Credentials:  creds,
		UsePathStyle: c.S3PathStyle,
		// putPart retries, refreshing the credentials when S3 refuses
		// them; one attempt per call keeps the count of PUTs honest.
		Retryer: aws.NopRetryer{},
	}
	if c.S3Endpoint != "" {
		o.BaseEndpoint = aws.String(c.S3Endpoint)
	}
	if c.S3HTTPClient != nil {
		o.HTTPClient = c.S3HTTPClient
	}
	return s3.New(o)
}

// putPart puts one part, trying up to Attempts times.
func (c *Client) putPart(ctx context.Context, s3c *s3.Client, creds *aws.CredentialsCache, rec *rest.Upload, n int, file io.ReaderAt, tr *tracker) error {
	p := rec.Parts[n]
	attempts := c.Attempts
	if attempts <= 0 {
		attempts = defaultAttempts
	}
	wait := c.RetryBackoff
	if wait <= 0 {
		wait = defaultRetryBackoff
	}
	for attempt := 1; ; attempt++ {
		_, err := s3c.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(rec.Bucket),
			Key:    aws.String(p.Key),
			// A section of the file, read as it is sent: memory does not
			// grow with the part or the file.
			Body:          io.NewSectionReader(file, p.Start, p.Size()),
			ContentLength: aws.Int64(p.Size()),
			// S3 verifies the part's SHA-256 on the PUT, and the service
			// pins the part by it.
			ChecksumAlgorithm: s3types.ChecksumAlgorithmSha256,
		})
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt >= attempts || !retryable(err) {
			return err
		}
		if refused(err) {
			// Expired or otherwise refused credentials: get new ones.
			creds.Invalidate()
		}
		tr.retry(n, attempt, wait, err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait *= 2
	}
}

// retryable is false when the API refused new credentials (the upload takes
// no more parts, or the token is wrong): trying again cannot help.
func retryable(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.StatusCode >= 500 || ae.StatusCode == http.StatusTooManyRequests
	}
	return true
}

// refused reports whether S3 refused, or may have refused, the request's
// credentials: a 403, or no answer at all, as S3 may refuse a bad signature
// by closing the connection before the body is sent.
func refused(err error) bool {
	var send *smithyhttp.RequestSendError
	if errors.As(err, &send) {
		return true
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil && re.Response.Response != nil &&
		re.HTTPStatusCode() == http.StatusForbidden {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ExpiredToken", "InvalidAccessKeyId", "InvalidToken", "TokenRefreshRequired":
			return true
		}
	}
	return false
}

// refresher is the credentials provider behind the SDK's cache: the
// credentials the upload started with first, then fresh ones from the API.
type refresher struct {
	c        *Client
	atomID   string
	uploadID string
	window   time.Duration

	mu    sync.Mutex
	first *rest.Credentials // used once, if not about to expire
}

// Retrieve implements aws.CredentialsProvider.
func (r *refresher) Retrieve(ctx context.Context) (aws.Credentials, error) {
	r.mu.Lock()
	first := r.first
	r.first = nil
	r.mu.Unlock()
	var cr rest.Credentials
	if first != nil && time.Until(first.Expires()) > r.window {
		cr = *first
	} else {
		var err error
		// The cache calls with a context that is never cancelled; the API
		// client's timeout bounds the call.
		if cr, err = r.c.Credentials(ctx, r.atomID, r.uploadID); err != nil {
			return aws.Credentials{}, err
		}
	}
	return aws.Credentials{
		AccessKeyID:     cr.AccessKeyID,
		SecretAccessKey: cr.SecretAccessKey,
		SessionToken:    cr.SessionToken,
		Source:          "atom-uploads API",
		CanExpire:       true,
		Expires:         cr.Expires(),
	}, nil
}

// tracker counts what PutParts has done and reports it, one call at a time.
type tracker struct {
	mu       sync.Mutex
	rec      *rest.Upload
	report   func(Progress)
	start    time.Time
	p        Progress
	finished []bool
}

func newTracker(rec *rest.Upload, todo []int, report func(Progress)) *tracker {
	t := &tracker{rec: rec, report: report, start: time.Now(), finished: make([]bool, len(rec.Parts))}
	t.p.PartsTotal, t.p.Size = len(rec.Parts), rec.Size
	pending := make(map[int]bool, len(todo))
	for _, n := range todo {
		pending[n] = true
	}
	for i, p := range rec.Parts {
		if !pending[i] && p.Complete {
			t.finished[i] = true
			t.p.PartsDone++
			t.p.BytesDone += p.Size()
		}
	}
	return t
}

func (t *tracker) done(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	size := t.rec.Parts[n].Size()
	if !t.finished[n] {
		t.finished[n] = true
		t.p.PartsDone++
		t.p.BytesDone += size
	}
	t.p.BytesSent += size
	t.emit(Progress{Part: n})
}

func (t *tracker) retry(n, attempt int, wait time.Duration, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.emit(Progress{Part: n, Retry: true, Attempt: attempt, Wait: wait, Err: err})
}

// emit reports ev with the counters filled in; t.mu is held.
func (t *tracker) emit(ev Progress) {
	if t.report == nil {
		return
	}
	ev.PartsDone, ev.PartsTotal = t.p.PartsDone, t.p.PartsTotal
	ev.BytesDone, ev.Size, ev.BytesSent = t.p.BytesDone, t.p.Size, t.p.BytesSent
	ev.Elapsed = time.Since(t.start)
	t.report(ev)
}
