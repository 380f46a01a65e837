package youtubetest

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The bucket's arithmetic, on a clock that only moves when told: a burst
// passes at once, then bytes wait their share of the rate, and idle time
// refills the bucket up to the burst, never more.
func TestLinkBucketPacesToTheRate(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := &link{now: func() time.Time { return now }}
	l.set(1<<20, 0) // 1 MiB/s

	if d := l.reserve(linkBurst); d != 0 {
		t.Fatalf("the first burst waits %s, want 0", d)
	}
	if d, want := l.reserve(512<<10), 500*time.Millisecond; d != want {
		t.Fatalf("512 KiB beyond the burst waits %s, want %s", d, want)
	}
	if d, want := l.reserve(512<<10), time.Second; d != want {
		t.Fatalf("the next 512 KiB waits %s, want %s (queued behind the first)", d, want)
	}
	now = now.Add(time.Hour)
	if d := l.reserve(linkBurst); d != 0 {
		t.Fatalf("after an idle hour a burst waits %s, want 0", d)
	}
	if d, want := l.reserve(1<<20), time.Second; d != want {
		t.Fatalf("a MiB after the burst waits %s, want %s: idle time must not save up more than the burst", d, want)
	}
	if got, want := l.passed, int64(2*linkBurst+2<<20); got != want {
		t.Fatalf("%d bytes passed, want %d", got, want)
	}
}

// Without a cap the link is loopback: nothing waits, bodies are not wrapped.
func TestLinkUnsetLeavesRequestsAlone(t *testing.T) {
	var l link
	if d := l.reserve(1 << 30); d != 0 {
		t.Fatalf("an unlimited link waits %s", d)
	}
	l.set(0, 0)
	r := httptest.NewRequest("PUT", "/upload/youtube/v3/videos", strings.NewReader("body"))
	body := r.Body
	if !l.through(r) {
		t.Fatal("through refused a request on an unlimited link")
	}
	if r.Body != body {
		t.Fatal("an unlimited link wrapped the body")
	}
	l.set(1<<20, 0)
	if !l.through(r) || r.Body == body {
		t.Fatal("a capped link must pace the body")
	}
}
