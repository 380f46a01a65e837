package worker

import (
	cryptorand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"atomuploads/upload"
)

// TestHashBehind: the hasher behind the relay's send path hashes exactly
// the bytes written, in order, whatever the sizes of the writes, and its
// state is where a synchronous hash of the same stream would be.
func TestHashBehind(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	stream := make([]byte, 3*hashBuffers*hashBufferBytes+12345)
	for i := range stream {
		stream[i] = byte(rng.Uint32())
	}
	for _, tc := range []struct {
		name  string
		sizes func() int
	}{
		{"one byte and odd sizes", func() int { return 1 + rng.IntN(7000) }},
		{"whole buffers", func() int { return hashBufferBytes }},
		{"larger than all buffers", func() int { return hashBuffers*hashBufferBytes + 1 }},
	} {
		h, err := newRunningHash(nil, 100)
		if err != nil {
			t.Fatal(err)
		}
		b := newHashBehind(h)
		for p := stream; len(p) > 0; {
			k := min(tc.sizes(), len(p))
			if n, err := b.Write(p[:k]); n != k || err != nil {
				t.Fatalf("%s: Write(%d bytes) = %d, %v; want %d, nil", tc.name, k, n, err, k)
			}
			p = p[k:]
		}
		if err := b.close(); err != nil {
			t.Fatalf("%s: close: %v", tc.name, err)
		}
		state, ok := h.at(100 + int64(len(stream)))
		if !ok {
			t.Fatalf("%s: the hash is not at the end of the stream", tc.name)
		}
		got, err := digestOf(state)
		if err != nil {
			t.Fatal(err)
		}
		if want := sha256.Sum256(stream); got != hex.EncodeToString(want[:]) {
			t.Errorf("%s: hashed %s, want %s", tc.name, got, hex.EncodeToString(want[:]))
		}
	}
}

// TestHashBehindClosedWhileWritten: a close that races a writer (the HTTP
// transport may still be reading the body when the relay gives up on a
// chunk) refuses later writes and neither panics nor hangs; what was
// taken before is all hashed.
func TestHashBehindClosedWhileWritten(t *testing.T) {
	t.Parallel()
	for range 50 {
		h, err := newRunningHash(nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		b := newHashBehind(h)
		var (
			wg    sync.WaitGroup
			taken int64
		)
		wg.Go(func() {
			p := make([]byte, 10000)
			for {
				n, err := b.Write(p)
				taken += int64(n)
				if err != nil {
					if !errors.Is(err, errHashClosed) {
						t.Errorf("Write after close: %v, want errHashClosed", err)
					}
					return
				}
			}
		})
		if err := b.close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if _, ok := h.at(taken); !ok {
			h.mu.Lock()
			t.Errorf("the hash is at %d after close, but %d bytes were taken", h.off, taken)
			h.mu.Unlock()
		}
	}
}

// TestHashBehindPanic: a hasher that panics is an error of close, not a
// crash, and the writer is not left waiting.
func TestHashBehindPanic(t *testing.T) {
	t.Parallel()
	b := newHashBehind(&runningHash{h: panickyHash{sha256.New()}})
	for range 3 * hashBuffers {
		if _, err := b.Write(make([]byte, hashBufferBytes)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.close(); err == nil {
		t.Error("close after the hasher panicked = nil, want its error")
	}
}

type panickyHash struct{ hash.Hash }

func (panickyHash) Write([]byte) (int, error) { panic("boom") }

// TestReadNext: a relay's write claims the complete parts of the next two
// chunks from the committed offset, and none further ahead (a part far
// ahead may still be checked afresh if the browser PUTs it again).
func TestReadNext(t *testing.T) {
	t.Parallel()
	id, err := upload.NewID(time.Now(), cryptorand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const part = 8 * upload.MiB
	u, err := upload.New(upload.StartRequest{
		Filename: "clip.mp4", Size: 20*part + 1000, ContentType: "video/mp4",
		Destinations: []upload.DestinationRequest{{Type: upload.YouTube, YouTube: upload.YouTubeMetadata{Title: "Next"}}},
	}, "atom-next", id, time.Now(), "eu-west-1", "bucket", part)
	if err != nil {
		t.Fatal(err)
	}
	complete := func(parts ...int) {
		u.Completed = map[int]bool{}
		for _, n := range parts {
			u.Completed[n] = true
		}
	}
	d := u.Destination(upload.YouTube)
	all := make([]int, u.PartCount())
	for n := range all {
		all[n] = n
	}
	for _, tc := range []struct {
		name      string
		complete  []int
		committed int64
		maxChunk  int64
		want      int
	}{
		{"nothing complete", nil, 0, 4 * part, 0},
		{"all complete, from the start", all, 0, 4 * part, 8},
		{"all complete, from part 6", all, 6 * part, 4 * part, 14},
		{"a gap after part 2", []int{0, 1, 2, 4, 5}, 0, 4 * part, 3},
		{"near the end", all, 18 * part, 4 * part, 21},
		{"all sent", all, 20*part + 1000, 4 * part, 0},
	} {
		complete(tc.complete...)
		d.UploadedBytes = tc.committed
		if got := readNext(u, tc.maxChunk); got != tc.want {
			t.Errorf("%s: readNext = %d, want %d", tc.name, got, tc.want)
		}
	}
}
