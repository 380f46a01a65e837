package worker

import (
	"context"
	"errors"
	"sync"
	"testing"

	"atomuploads/upload"
)

// claimCounter is a pinStore that counts claims by part and fails the
// first claim of the parts in failOnce.
type claimCounter struct {
	mu       sync.Mutex
	claims   map[int]int
	failOnce map[int]bool
	runs     int // of Pins
}

func (c *claimCounter) PinPart(context.Context, string, string, upload.PartPin) (string, error) {
	return upload.PinNew, nil
}

func (c *claimCounter) ClaimPart(_ context.Context, _, _ string, n int, _ string) (upload.PartPin, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.claims[n]++
	if c.failOnce[n] {
		delete(c.failOnce, n)
		return upload.PartPin{}, errors.New("table unavailable")
	}
	if n == 3 {
		return upload.PartPin{}, upload.Errorf(upload.ENOTFOUND, "never pinned")
	}
	return upload.PartPin{Part: n, ETag: "etag-" + string(rune('0'+n))}, nil
}

// Pins reads each part of the run as ClaimPart does, counting a run; a
// failure of any part fails the run.
func (c *claimCounter) Pins(ctx context.Context, atomID, id string, from, to int) (map[int]upload.PartPin, error) {
	c.mu.Lock()
	c.runs++
	c.mu.Unlock()
	pins := map[int]upload.PartPin{}
	for n := from; n < to; n++ {
		p, err := c.ClaimPart(ctx, atomID, id, n, upload.ReaderYouTube)
		switch {
		case upload.ErrorCode(err) == upload.ENOTFOUND:
		case err != nil:
			return nil, err
		default:
			pins[n] = p
		}
	}
	return pins, nil
}

// The relay's cache reads the pins of a chunk's parts below the mark in
// one run, each part once, and claims a part above the mark on its own;
// a failed run is forgotten, so the next read reads again.
func TestPinCacheInOrderReadsRunsBelowTheMark(t *testing.T) {
	store := &claimCounter{claims: map[int]int{}, failOnce: map[int]bool{7: true}}
	c := &pinCache{store: store, atomID: "a", id: "u", reader: upload.ReaderYouTube, inOrder: true}
	ctx := context.Background()
	c.mark(8)
	c.prefetch(ctx, []int{0, 1, 2, 3})
	c.prefetch(ctx, []int{0, 1, 8, 9})
	for _, n := range []int{0, 1, 2, 8, 9, 1} {
		if e, err := c.etag(ctx, n); err != nil || e != "etag-"+string(rune('0'+n)) {
			t.Errorf("part %d: etag %q, %v", n, e, err)
		}
	}
	if e, err := c.etag(ctx, 3); err != nil || e != "" {
		t.Errorf("part 3 (never pinned): etag %q, %v; want none", e, err)
	}
	if _, err := c.etag(ctx, 7); err == nil {
		t.Error("part 7's failed read: no error")
	}
	if e, err := c.etag(ctx, 7); err != nil || e != "etag-7" {
		t.Errorf("part 7 after a failed read: etag %q, %v; want etag-7", e, err)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if store.runs != 3 {
		t.Errorf("%d runs of reads, want 3 (parts 0-3, then part 7 twice)", store.runs)
	}
	for _, n := range []int{0, 1, 2, 3, 8, 9} {
		if store.claims[n] != 1 {
			t.Errorf("part %d read or claimed %d times, want once", n, store.claims[n])
		}
	}
}

// A chunk's parts are claimed once each, whether by prefetch or by the
// reads; a failed claim is not kept, so the next read claims again.
func TestPinCachePrefetchClaimsOnceAndForgetsFailures(t *testing.T) {
	store := &claimCounter{claims: map[int]int{}, failOnce: map[int]bool{2: true}}
	c := &pinCache{store: store, atomID: "a", id: "u", reader: upload.ReaderYouTube}
	ctx := context.Background()
	c.prefetch(ctx, []int{0, 1, 2, 3})
	c.prefetch(ctx, []int{0, 1})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, n := range []int{0, 1, 3} {
				if _, err := c.etag(ctx, n); err != nil {
					t.Errorf("part %d: %v", n, err)
				}
			}
		}()
	}
	wg.Wait()
	if e, err := c.etag(ctx, 1); err != nil || e != "etag-1" {
		t.Errorf("part 1: etag %q, %v; want etag-1", e, err)
	}
	if e, err := c.etag(ctx, 3); err != nil || e != "" {
		t.Errorf("part 3 (never pinned): etag %q, %v; want none", e, err)
	}
	// Part 2's prefetched claim fails: a read that waited for it sees the
	// failure, and a read after it is forgotten claims again.
	if _, err := c.etag(ctx, 2); err != nil {
		if e, err := c.etag(ctx, 2); err != nil || e != "etag-2" {
			t.Errorf("part 2 after a failed claim: etag %q, %v; want etag-2", e, err)
		}
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	for _, n := range []int{0, 1, 3} {
		if store.claims[n] != 1 {
			t.Errorf("part %d claimed %d times, want once", n, store.claims[n])
		}
	}
	if store.claims[2] != 2 {
		t.Errorf("part 2 claimed %d times, want twice (a failure, then again)", store.claims[2])
	}
}

// ctxClaims is a pinStore whose claims fail with their context's error
// when it has ended, as the SDK's do.
type ctxClaims struct{ claimCounter }

func (c *ctxClaims) ClaimPart(ctx context.Context, atomID, id string, n int, reader string) (upload.PartPin, error) {
	if err := ctx.Err(); err != nil {
		return upload.PartPin{}, err
	}
	return c.claimCounter.ClaimPart(ctx, atomID, id, n, reader)
}

// A prefetch's claim that ended with the prefetching chunk's context does
// not fail a reader whose own context is alive: it claims again.
func TestPinCacheReaderOutlivesAPrefetchContext(t *testing.T) {
	store := &ctxClaims{claimCounter{claims: map[int]int{}, failOnce: map[int]bool{}}}
	c := &pinCache{store: store, atomID: "a", id: "u", reader: upload.ReaderYouTube}
	dead, cancel := context.WithCancel(context.Background())
	cancel()
	// As a prefetch racing its chunk's end: the claim is in the map when
	// the reader comes, and ends with the dead context.
	call := &claimCall{done: make(chan struct{})}
	c.claims = map[int]*claimCall{0: call}
	go c.claim(dead, 0, call)
	if e, err := c.etag(context.Background(), 0); err != nil || e != "etag-0" {
		t.Errorf("etag = %q, %v; want etag-0 from a claim of the reader's own", e, err)
	}
}
