package worker

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"math/rand/v2"
	"sync"
	"testing"
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
