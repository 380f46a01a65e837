package youtubetest

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"
)

// The link between the client and the stand-in: by default loopback, as
// fast as the machine goes. Options.LinkRate and Options.LinkRTT (or
// SetLink) make it behave like a real one: a bandwidth cap, a token bucket
// that every request body shares (chunks of all sessions, and the Go
// library's uploads alike), and a round trip added to every request before
// it is looked at. Pacing is in real time, whatever Options.Now says.

const (
	// linkBurst is what the bucket holds when the link is idle: a chunk
	// starts at the cap, not with a burst.
	linkBurst = 256 << 10
	// linkRead is the largest read paced at once, so that concurrent
	// chunks share the link in small turns.
	linkRead = 32 << 10
)

// link is the token bucket and the round trip. Its zero value is an
// unlimited link.
type link struct {
	now func() time.Time

	mu     sync.Mutex
	rate   float64 // bytes per second; 0 means unlimited
	rtt    time.Duration
	tokens float64 // negative when bytes were let through ahead of the refill
	last   time.Time
	passed int64 // bytes paced through the cap
}

// SetLink changes Options.LinkRate (bytes per second, 0 for no cap) and
// Options.LinkRTT (0 for none). It applies to requests that start after it.
func (s *Server) SetLink(rate float64, rtt time.Duration) { s.link.set(rate, rtt) }

// LinkBytes returns how many request body bytes have crossed the link
// while it was capped: unlike BytesReceived, it grows while a chunk is
// being read, not when it ends.
func (s *Server) LinkBytes() int64 {
	s.link.mu.Lock()
	defer s.link.mu.Unlock()
	return s.link.passed
}

func (l *link) set(rate float64, rtt time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.now == nil {
		l.now = time.Now
	}
	l.rate, l.rtt = max(rate, 0), max(rtt, 0)
	l.tokens, l.last = linkBurst, l.now()
}

// reserve takes n bytes from the bucket and returns how long the caller
// must wait before they have passed the link.
func (l *link) reserve(n int) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rate <= 0 {
		return 0
	}
	l.passed += int64(n)
	now := l.now()
	l.tokens = min(linkBurst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	l.tokens -= float64(n)
	if l.tokens >= 0 {
		return 0
	}
	return time.Duration(-l.tokens / l.rate * float64(time.Second))
}

// through applies the link to a request: it waits one round trip, and
// paces the body. It reports false when the client went away meanwhile.
func (l *link) through(r *http.Request) bool {
	l.mu.Lock()
	rate, rtt := l.rate, l.rtt
	l.mu.Unlock()
	if rtt > 0 && !sleep(r.Context(), rtt) {
		return false
	}
	if rate > 0 && r.Body != nil && r.Body != http.NoBody {
		r.Body = &linkBody{ReadCloser: r.Body, l: l, ctx: r.Context()}
	}
	return true
}

// linkBody is a request body read at the link's pace.
type linkBody struct {
	io.ReadCloser
	l   *link
	ctx context.Context //nolint:containedctx // an io.Reader has no context of its own: the request's bounds the pacing
}

func (b *linkBody) Read(p []byte) (int, error) {
	if len(p) > linkRead {
		p = p[:linkRead]
	}
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		if d := b.l.reserve(n); d > 0 {
			sleep(b.ctx, d) // a client gone away fails the next read
		}
	}
	return n, err
}

// sleep waits d, or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
