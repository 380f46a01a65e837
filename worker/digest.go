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

// pinCache claims the parts a reader reads, once each, and keeps their
// ETags: one part at a time (store.ClaimPart: a write each), or, for the
// relay (inOrder), the parts below the mark its own record writes raise
// (upload.Upload.YouTubeReadParts, see marked) with one query of a
// chunk's pins (store.Pins). It is used from the transport's goroutine
// too.
type pinCache struct {
	store      pinStore
	atomID, id string
	reader     string
	// inOrder: the reader reads the file in order (the relay), so a claim
	// of parts [0, n) is a claim of every part it read or will read next.
	inOrder bool
	mu      sync.Mutex
	claims  map[int]*claimCall // by part: done, or in flight
	// marked: parts [0, marked) are claimed by a mark already written
	// (inOrder); a part above it is claimed on its own.
	marked int
}

// mark tells an inOrder cache that parts [0, n) are claimed by a mark
// written in the table.
func (c *pinCache) mark(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.marked = max(c.marked, n)
}

// covered reports whether part n is below the mark (inOrder).
func (c *pinCache) covered(n int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inOrder && n < c.marked
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
		if c.covered(n) {
			c.claimRun(ctx, map[int]*claimCall{n: call})
		} else {
			c.claim(ctx, n, call)
		}
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

// claimRun reads the pins of calls' parts, all below the mark, in one
// store.Pins, and ends every call with its part's pin (none: a part never
// pinned, read as it is) or the error; a failed read is forgotten, so that
// a later read reads again.
func (c *pinCache) claimRun(ctx context.Context, calls map[int]*claimCall) {
	from, to := -1, 0
	for n := range calls {
		if from < 0 || n < from {
			from = n
		}
		to = max(to, n+1)
	}
	pins, err := c.pins(ctx, from, to)
	if err != nil {
		c.mu.Lock()
		for n, call := range calls {
			if c.claims[n] == call {
				delete(c.claims, n)
			}
		}
		c.mu.Unlock()
	}
	for n, call := range calls {
		if err != nil {
			call.err = err
		} else if pin, ok := pins[n]; ok {
			call.etag, call.created = pin.ETag, pin.CreatedAt
		}
		close(call.done)
	}
}

// pins asks the store for the pins of parts [from, to); a panic in the
// call is its error.
func (c *pinCache) pins(ctx context.Context, from, to int) (pins map[int]upload.PartPin, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("read the pins of parts %d-%d: panic: %v", from, to-1, r)
		}
	}()
	return c.store.Pins(ctx, c.atomID, c.id, from, to)
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
	run := map[int]*claimCall{}
	for _, n := range parts {
		if _, ok := c.claims[n]; ok {
			continue
		}
		call := &claimCall{done: make(chan struct{})}
		if c.claims == nil {
			c.claims = map[int]*claimCall{}
		}
		c.claims[n] = call
		if c.inOrder && n < c.marked {
			run[n] = call
			continue
		}
		go c.claim(ctx, n, call)
	}
	if len(run) > 0 {
		go c.claimRun(ctx, run)
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

// hashBehind feeds a runningHash from a goroutine of its own, so that the
// relay's send path (read from S3, write to YouTube) does not wait for
// SHA-256, which on loopback costs as much CPU as the rest of the path: it
// copies what it is given into one of a few fixed buffers and hands each
// full one to the hasher. Its memory is those buffers, whatever the chunk
// size; a writer ahead of the hasher by all of them waits. Write and close
// may be called from different goroutines (the HTTP transport's, the
// relay's); a Write after close is refused.
type hashBehind struct {
	h     *runningHash
	free  chan []byte // buffers not in use
	queue chan []byte // buffers to hash, in order; room for every buffer
	done  chan struct{}

	mu     sync.Mutex
	cur    []byte // the buffer being filled, if any
	closed bool
	failed error // a panic of the hasher: its state is not to be trusted
}

// Each relay's hasher holds hashBuffers × hashBufferBytes at most.
const (
	hashBuffers     = 4
	hashBufferBytes = 64 << 10
)

// newHashBehind starts a hasher that writes into h. The caller must close
// it, then read h.
func newHashBehind(h *runningHash) *hashBehind {
	b := &hashBehind{h: h, free: make(chan []byte, hashBuffers), queue: make(chan []byte, hashBuffers), done: make(chan struct{})}
	for range hashBuffers {
		b.free <- make([]byte, 0, hashBufferBytes)
	}
	go b.hash()
	return b
}

// hash is the hasher's goroutine: it ends when the queue is closed and
// drained.
func (b *hashBehind) hash() {
	defer close(b.done)
	for buf := range b.queue {
		if b.failed == nil { // only this goroutine writes failed before done
			b.failed = b.write(buf)
		}
		b.free <- buf[:0]
	}
}

// write hashes buf; a panic is its error.
func (b *hashBehind) write(buf []byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in the relay's SHA-256: %v", p)
		}
	}()
	_, _ = b.h.Write(buf)
	return nil
}

var errHashClosed = errors.New("the relay's SHA-256 takes no more bytes")

// Write copies p into the hasher's buffers, handing each full one over.
func (b *hashBehind) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return n - len(p), errHashClosed
		}
		if b.cur == nil {
			b.mu.Unlock()
			buf := <-b.free // the hasher always gives buffers back
			b.mu.Lock()
			if b.closed {
				b.free <- buf
				b.mu.Unlock()
				return n - len(p), errHashClosed
			}
			b.cur = buf
		}
		k := copy(b.cur[len(b.cur):cap(b.cur)], p)
		b.cur = b.cur[:len(b.cur)+k]
		p = p[k:]
		if len(b.cur) == cap(b.cur) {
			b.queue <- b.cur // never blocks: the queue has room for every buffer
			b.cur = nil
		}
		b.mu.Unlock()
	}
	return n, nil
}

// close hands over what is left, waits until all of it is hashed, and
// reports whether the hash can be trusted.
func (b *hashBehind) close() error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		if len(b.cur) > 0 {
			b.queue <- b.cur
		}
		b.cur = nil
		close(b.queue)
	}
	b.mu.Unlock()
	<-b.done
	return b.failed
}
