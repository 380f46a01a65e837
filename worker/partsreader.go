package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"atomuploads/upload"
)

// partsGetter reads part objects.
type partsGetter interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// partsReader streams bytes [off, end) of the file from the part objects,
// one ranged GET at a time, so memory does not grow with the chunk. It is
// safe for the HTTP transport to keep reading it in its own goroutine
// after the request returned, while the relay closes it.
type partsReader struct {
	// ctx bounds the GETs that Read starts: an io.Reader has no context
	// of its own, and this one lives only as long as one PutChunk.
	ctx    context.Context //nolint:containedctx // an io.Reader has no context of its own: this one bounds the GETs Read starts
	s3     partsGetter
	bucket string
	u      *upload.Upload
	// pins, when set, makes every GET conditional on the part's pinned
	// ETag (If-Match).
	pins *pinCache

	mu     sync.Mutex
	off    int64
	end    int64
	cur    io.ReadCloser
	curEnd int64 // file offset where cur ends
	closed bool
	err    error // the S3 error that broke the stream, if any
}

func (r *partsReader) Read(b []byte) (int, error) {
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return 0, errors.New("read after close")
		}
		if r.off >= r.end {
			r.mu.Unlock()
			return 0, io.EOF
		}
		if r.cur == nil {
			if err := r.open(); err != nil {
				r.err = err
				r.mu.Unlock()
				return 0, err
			}
		}
		cur, want := r.cur, min(int64(len(b)), r.curEnd-r.off)
		r.mu.Unlock()

		n, err := cur.Read(b[:want]) // outside the lock: Close may interrupt it

		r.mu.Lock()
		r.off += int64(n)
		if err == io.EOF || r.off == r.curEnd {
			cur.Close()
			if r.cur == cur {
				r.cur = nil
			}
			if err == io.EOF && r.off < r.curEnd {
				r.err = fmt.Errorf("part ended at byte %d of the file, before %d", r.off, r.curEnd)
				err = io.ErrUnexpectedEOF
			} else {
				err = nil
			}
		}
		if err != nil && r.err == nil && !r.closed {
			r.err = err
		}
		r.mu.Unlock()
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// open starts the ranged GET of the part holding off; r.mu is held.
func (r *partsReader) open() error {
	p, ok := r.u.PartContaining(r.off)
	if !ok {
		return fmt.Errorf("offset %d is outside the file", r.off)
	}
	to := min(r.end, p.End)
	in := &s3.GetObjectInput{
		Bucket: aws.String(r.bucket),
		Key:    aws.String(r.u.PartKey(p.Number)),
		Range:  aws.String(fmt.Sprintf("bytes=%d-%d", r.off-p.Start, to-p.Start-1)),
	}
	if r.pins != nil {
		etag, err := r.pins.etag(r.ctx, p.Number)
		if err != nil {
			return fmt.Errorf("claim part %d: %w", p.Number, err)
		}
		if etag != "" {
			in.IfMatch = aws.String(etag)
		}
	}
	out, err := r.s3.GetObject(r.ctx, in)
	if changedError(err) {
		return &upload.PartChangedError{Part: p.Number, ReadBy: upload.ReaderYouTube}
	}
	if err != nil {
		return fmt.Errorf("read part %d: %w", p.Number, err)
	}
	r.cur, r.curEnd = out.Body, to
	return nil
}

// Close releases the S3 body in hand; a read in progress fails.
func (r *partsReader) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.cur != nil {
		r.cur.Close()
		r.cur = nil
	}
}

// Err is the S3 error that broke the stream, if any.
func (r *partsReader) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}
