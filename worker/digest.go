package worker

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"time"

	"github.com/aws/smithy-go"

	"atomuploads/upload"
)

// runningHash is a SHA-256 over a stream of bytes that can be saved and
// resumed (crypto/sha256 marshals its state). It keeps two states: where it
// started and where it is, whatever it hashed between, so its memory does
// not grow with the bytes hashed. YouTube usually commits a whole chunk
// (the state where the hash is); when it commits a prefix, the relay
// hashes that prefix again from the start (relayRun.hashTo). It is
// written by the HTTP transport's goroutine while the relay reads it, so
// it locks.
type runningHash struct {
	mu    sync.Mutex
	h     hash.Hash
	off   int64            // the stream offset of the next byte
	saved map[int64][]byte // the state where it started, by offset
}

// newRunningHash resumes state (nil: an empty stream) at offset at.
func newRunningHash(state []byte, at int64) (*runningHash, error) {
	h := sha256.New()
	if len(state) > 0 {
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
			return nil, fmt.Errorf("resume the relay's SHA-256: %w", err)
		}
	}
	r := &runningHash{h: h, off: at}
	r.saved = map[int64][]byte{at: r.state()}
	return r, nil
}

func (r *runningHash) state() []byte {
	b, err := r.h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic("sha256 state: " + err.Error()) // crypto/sha256 always marshals
	}
	return b
}

// Write hashes p.
func (r *runningHash) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.h.Write(p)
	r.off += int64(len(p))
	return len(p), nil
}

// at is the state at offset off, if that is where the hash started or
// where it is.
func (r *runningHash) at(off int64) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if off == r.off {
		return r.state(), true
	}
	s, ok := r.saved[off]
	return s, ok
}

// digestOf is the hex SHA-256 of a stream whose saved state is state.
func digestOf(state []byte) (string, error) {
	h, err := newRunningHash(state, 0)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.h.Sum(nil)), nil
}

// pinCache claims the parts a relay reads (store.ClaimPart), once each,
// and keeps their ETags. It is used from the transport's goroutine too.
type pinCache struct {
	store      pinStore
	atomID, id string
	reader     string
	mu         sync.Mutex
	claims     map[int]*claimCall // by part: done, or in flight
}

// claimCall is one claim of a part, which every reader of the part waits
// for; one that failed is forgotten, so that a later read claims again.
type claimCall struct {
	done chan struct{}
	etag string
	err  error
	// created is when S3 created the part, if its pin knows.
	created time.Time
}

// etag claims part n if it is not claimed yet and returns its ETag: what
// every read of it must match. A part never pinned (a record from before
// pins) has none, and is read as it is.
func (c *pinCache) etag(ctx context.Context, n int) (string, error) {
	for range 3 {
		etag, err := c.etagOnce(ctx, n)
		// A claim started for another reader (a prefetch) ended with that
		// reader's context: this reader, still alive, claims again.
		if (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) && ctx.Err() == nil {
			continue
		}
		return etag, err
	}
	return c.etagOnce(ctx, n)
}

func (c *pinCache) etagOnce(ctx context.Context, n int) (string, error) {
	c.mu.Lock()
	call, ok := c.claims[n]
	if !ok {
		call = &claimCall{done: make(chan struct{})}
		if c.claims == nil {
			c.claims = map[int]*claimCall{}
		}
		c.claims[n] = call
	}
	c.mu.Unlock()
	if !ok {
		c.claim(ctx, n, call)
	}
	select {
	case <-call.done:
		return call.etag, call.err
	case <-ctx.Done():
		return "", context.Cause(ctx)
	}
}

func (c *pinCache) claim(ctx context.Context, n int, call *claimCall) {
	pin, err := c.claimPart(ctx, n)
	switch {
	case upload.ErrorCode(err) == upload.ENOTFOUND:
		call.etag = ""
	case err != nil:
		call.err = err
		c.mu.Lock()
		delete(c.claims, n)
		c.mu.Unlock()
	default:
		call.etag, call.created = pin.ETag, pin.CreatedAt
	}
	close(call.done)
}

// claimPart asks the store for part n's pin; a panic in the call is its
// error (claims run on goroutines of their own).
func (c *pinCache) claimPart(ctx context.Context, n int) (pin upload.PartPin, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("claim part %d: panic: %v", n, r)
		}
	}()
	return c.store.ClaimPart(ctx, c.atomID, c.id, n, c.reader)
}

// prefetch starts the claims of the parts not claimed yet, each in a
// goroutine of its own, and returns at once: a chunk's parts are claimed
// while its first bytes are sent, rather than one table round trip each
// in the middle of its stream. Their results (and errors) reach the reads
// through etag; ctx bounds them.
func (c *pinCache) prefetch(ctx context.Context, parts []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range parts {
		if _, ok := c.claims[n]; ok {
			continue
		}
		call := &claimCall{done: make(chan struct{})}
		if c.claims == nil {
			c.claims = map[int]*claimCall{}
		}
		c.claims[n] = call
		go c.claim(ctx, n, call)
	}
}

// createdAt is when S3 created part n, if the part was claimed through
// the cache and its pin knows.
func (c *pinCache) createdAt(n int) (time.Time, bool) {
	c.mu.Lock()
	call, ok := c.claims[n]
	c.mu.Unlock()
	if !ok {
		return time.Time{}, false
	}
	select {
	case <-call.done:
		return call.created, !call.created.IsZero()
	default:
		return time.Time{}, false // still being claimed
	}
}

// lastCreated is the latest creation time of the parts claimed through
// the cache, if any is known.
func (c *pinCache) lastCreated() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var last time.Time
	for _, call := range c.claims {
		select {
		case <-call.done:
			if call.created.After(last) {
				last = call.created
			}
		default: // still being claimed
		}
	}
	return last, !last.IsZero()
}

// changedError reports whether err is S3 refusing a read because the
// object no longer matches its pin.
func changedError(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "PreconditionFailed"
}

// catchUp hashes bytes [from, to) of the upload, read from its parts as
// pinned, into h (which must be at from).
func catchUp(ctx context.Context, s3 partsGetter, bucket string, u *upload.Upload, pins *pinCache, h *runningHash, from, to int64) error {
	if to <= from {
		return nil
	}
	r := &partsReader{ctx: ctx, s3: s3, bucket: bucket, u: u, off: from, end: to, pins: pins}
	defer r.Close()
	if _, err := io.Copy(h, r); err != nil {
		return fmt.Errorf("hash bytes %d-%d again: %w", from, to-1, err)
	}
	return nil
}
