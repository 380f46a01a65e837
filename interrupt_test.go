package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"atomuploads/devstack/stacktest"
	"atomuploads/youtube/youtubetest"
)

// TestRelayInterruptedTenTimes is an hour-long relay's life on ECS in
// miniature: one upload whose relay is interrupted ten times at random
// moments while it is relaying (SIGKILL as an OOM kill or a lost host
// sends it, SIGTERM as a deployment or a scale-in sends it, or both across
// two instances), the interrupted process started again each time. The
// queue moves a message to the DLQ after 5 receives; the upload must
// complete byte-exact in one YouTube session with one asset addition all
// the same, because interruptions after progress cost the work nothing.
func TestRelayInterruptedTenTimes(t *testing.T) {
	for _, c := range []struct {
		name      string
		instances int
		signals   []syscall.Signal
	}{
		{"SIGKILL", 1, []syscall.Signal{syscall.SIGKILL}},
		{"SIGTERM", 1, []syscall.Signal{syscall.SIGTERM}},
		{"mixed across two instances", 2, []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			interruptRun(t, c.instances, c.signals)
		})
	}
}

func interruptRun(t *testing.T, instances int, signals []syscall.Signal) {
	const interruptions = 10
	st := stacktest.New(t, stacktest.Options{MaxReceiveCount: 5})
	// 96 chunks of 1 MiB, each answered after 400 ms: a relay of 40 s at
	// least, long enough to be interrupted ten times while it works (a
	// SIGTERM lets it go on for the second of grace its work gets, about
	// six chunks a cycle).
	yt, ytURL, atom, atomURL := newStandIns(t, youtubetest.Options{Slow: 400 * time.Millisecond})
	env := serviceEnv(t, st, ytURL, atomURL)
	env["UPLOADS_YOUTUBE_MAX_CHUNK_BYTES"] = "1048576"
	env["UPLOADS_LOG_LEVEL"] = "info"
	envs := []map[string]string{env}
	for i := 1; i < instances; i++ {
		e := map[string]string{}
		for k, v := range env {
			e[k] = v
		}
		e["UPLOADS_HTTP_ADDR"] = freeAddr(t)
		envs = append(envs, e)
	}
	base := "http://" + env["UPLOADS_HTTP_ADDR"] + "/api2/atom/interrupt-atom/uploads"
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	var (
		mu   sync.Mutex
		svcs []*service // every process started, for the asset check and the logs
	)
	start := func(i int) *service {
		s := startService(t, envs[i])
		s.waitHealthy(t)
		mu.Lock()
		svcs = append(svcs, s)
		mu.Unlock()
		return s
	}
	running := make([]*service, instances)
	for i := range running {
		running[i] = start(i)
	}

	const size = 96<<20 + 12345
	file := make([]byte, size)
	_, _ = rand.Read(file)
	sum := sha256.Sum256(file)
	rec, code, err := apiCall(ctx, "POST", base, map[string]any{
		"filename": "interrupt.mp4", "size": size, "contentType": "video/mp4", "sha256": hex.EncodeToString(sum[:]),
		"destinations": []map[string]any{{"type": "youtube", "title": "Interrupted ten times"}},
	})
	if err != nil || code != http.StatusCreated {
		t.Fatalf("start upload: %d %v", code, err)
	}
	if err := browserPut(ctx, st, rec, file, mrand.Perm(len(rec.Parts))); err != nil {
		t.Fatal(err)
	}

	committed := func() int64 {
		var n int64
		for _, s := range yt.Sessions() {
			n = max(n, s.Committed)
		}
		return n
	}
	var kinds []string
	for k := range interruptions {
		// Wait until the relay is at work again (YouTube took more bytes
		// since the last interruption), then interrupt it somewhere in
		// the middle of what it is doing.
		from := committed()
		for committed() <= from {
			if committed() >= size || ctx.Err() != nil {
				t.Fatalf("the relay ended or stalled after %d interruptions (committed %d of %d)", k, committed(), size)
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(time.Duration(mrand.IntN(300)) * time.Millisecond)
		i := mrand.IntN(instances)
		sig := signals[mrand.IntN(len(signals))]
		_ = running[i].cmd.Process.Signal(sig)
		<-running[i].done
		kinds = append(kinds, fmt.Sprintf("%s@%d", strings.TrimPrefix(sig.String(), "signal "), committed()))
		running[i] = start(i)
	}

	var videoID, digest string
	for videoID == "" {
		got, _, err := apiCall(ctx, "GET", base+"/"+rec.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		d := got.Destinations[0]
		if d.Status == "failed" || got.Status == "failed" {
			t.Fatalf("upload %s, youtube %s: %s %s", got.Status, d.Status, got.Error, d.Error)
		}
		videoID, digest = d.Details.VideoID, d.Details.SHA256
		if ctx.Err() != nil {
			t.Fatalf("not done after the interruptions %v: youtube %s at %d bytes", kinds, d.Status, committed())
		}
		time.Sleep(100 * time.Millisecond)
	}
	v, ok := yt.Video(videoID)
	if !ok {
		t.Fatalf("the stand-in has no video %s", videoID)
	}
	if v.SHA256 != hex.EncodeToString(sum[:]) || v.Size != size {
		t.Errorf("video %d bytes %s, want %d bytes %x", v.Size, v.SHA256, size, sum)
	}
	// The running SHA-256 lived through every interruption: the digest
	// the service proves is the file's.
	if digest != v.SHA256 {
		t.Errorf("the service's digest %q, want the file's %s", digest, v.SHA256)
	}
	if viol := yt.Violations(); len(viol) > 0 {
		t.Errorf("protocol violations: %v", viol)
	}
	sessions := 0
	for _, s := range yt.Sessions() {
		if s.Committed > 0 {
			sessions++
		}
	}
	if sessions != 1 || v.Sessions != 1 {
		t.Errorf("%d sessions got bytes (video from %d), want 1", sessions, v.Sessions)
	}
	// One asset addition across all of it, once some process recorded it.
	for !anyLogs(&mu, svcs, `"msg":"asset added to atom"`, `"msg":"asset found on the atom already"`) {
		if ctx.Err() != nil {
			t.Fatalf("the asset was never recorded; %d asset calls", len(atom.Calls("interrupt-atom")))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := len(atom.Calls("interrupt-atom")); n != 1 {
		t.Errorf("%d asset calls, want 1", n)
	}
	if anyLogs(&mu, svcs, `"msg":"gave up"`, `"msg":"failed work from the dead-letter queue"`) {
		t.Error("some work was given up")
	}
	t.Logf("interruptions survived: %d (%s); %d bytes byte-exact in %d session; %d asset call",
		interruptions, strings.Join(kinds, " "), v.Size, sessions, len(atom.Calls("interrupt-atom")))
}

// anyLogs reports whether any of the processes logged any of the texts.
func anyLogs(mu *sync.Mutex, svcs []*service, texts ...string) bool {
	mu.Lock()
	defer mu.Unlock()
	for _, s := range svcs {
		out := s.out.String()
		for _, text := range texts {
			if strings.Contains(out, text) {
				return true
			}
		}
	}
	return false
}
