package worker

import (
	"context"
	"errors"
	"fmt"
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
	marks    int // of ClaimParts
	marked   int
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

// ClaimParts counts the relay's marks and keeps the highest.
func (c *claimCounter) ClaimParts(_ context.Context, _, _ string, through int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.marks++
	c.marked = max(c.marked, through)
	return nil
}

// Pins reads each part of the run as ClaimPart does, counting a run; a
// failure of any part fails the run. Reading a part above the mark is a
// defect of the cache.
func (c *claimCounter) Pins(ctx context.Context, atomID, id string, from, to int) (map[int]upload.PartPin, error) {
	c.mu.Lock()
	c.runs++
	if to > c.marked {
		c.mu.Unlock()
		return nil, fmt.Errorf("read parts %d-%d before they were claimed (mark %d)", from, to-1, c.marked)
	}
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

// The relay's cache claims every part complete so far with one mark, and
// reads a chunk's pins in one run, each part once; a part read before its
// run reads a run of its own (and marks again only past the mark); a
// failed run is forgotten, so the next read reads again.
func TestPinCacheInOrderClaimsRuns(t *testing.T) {
	store := &claimCounter{claims: map[int]int{}, failOnce: map[int]bool{9: true}}
	c := &pinCache{store: store, atomID: "a", id: "u", reader: upload.ReaderYouTube, inOrder: true}
	ctx := context.Background()
	c.readAhead(8)
	c.prefetch(ctx, []int{4, 5, 6, 7})
	c.prefetch(ctx, []int{4, 5})
	for _, n := range []int{4, 5, 6, 7, 5} {
		if e, err := c.etag(ctx, n); err != nil || e != "etag-"+string(rune('0'+n)) {
			t.Errorf("part %d: etag %q, %v", n, e, err)
		}
	}
	if e, err := c.etag(ctx, 3); err != nil || e != "" {
		t.Errorf("part 3 (never pinned): etag %q, %v; want none", e, err)
	}
	if _, err := c.etag(ctx, 9); err == nil {
		t.Error("part 9's failed claim: no error")
	}
	if e, err := c.etag(ctx, 9); err != nil || e != "etag-9" {
		t.Errorf("part 9 after a failed claim: etag %q, %v; want etag-9", e, err)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if store.runs != 4 {
		t.Errorf("%d runs of reads, want 4 (parts 4-7, part 3, part 9 twice)", store.runs)
	}
	if store.marks != 2 || store.marked != 10 {
		t.Errorf("%d marks, up to %d; want 2 (parts 0-7 at once, then 8-9 for part 9), up to 10", store.marks, store.marked)
	}
	for _, n := range []int{3, 4, 5, 6, 7} {
		if store.claims[n] != 1 {
			t.Errorf("part %d claimed %d times, want once", n, store.claims[n])
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
