package youtube_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"atomuploads/upload"
	"atomuploads/youtube"
	"atomuploads/youtube/youtubetest"
)

const (
	clientID     = "client-id.apps.example"
	clientSecret = "s3cret-client"
	refreshToken = "1//s3cret-refresh"
	align        = youtubetest.ChunkAlign
)

var meta = upload.YouTubeMetadata{
	Title:         "Match highlights",
	Description:   "All the goals",
	Tags:          []string{"football", "highlights"},
	CategoryID:    "17",
	PrivacyStatus: "unlisted",
}

// env is a client talking to a stand-in over real HTTP.
type env struct {
	c   *youtube.Client
	srv *youtubetest.Server
	hs  *httptest.Server
}

// newEnv starts a stand-in (optionally behind wrap) and a client for it;
// edit changes the client's config.
func newEnv(t testing.TB, opts youtubetest.Options, wrap func(http.Handler) http.Handler, edit func(*youtube.Config)) *env {
	t.Helper()
	opts.ClientID, opts.ClientSecret, opts.RefreshToken = clientID, clientSecret, refreshToken
	srv := youtubetest.New(opts)
	var h http.Handler = srv
	if wrap != nil {
		h = wrap(srv)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	cfg := youtube.Config{
		APIBaseURL:     hs.URL, // no trailing slash: New adds it
		TokenURL:       hs.URL + "/token",
		ClientID:       clientID,
		ClientSecret:   clientSecret,
		RefreshToken:   refreshToken,
		RequestTimeout: 10 * time.Second,
		BaseDelay:      time.Millisecond,
	}
	if edit != nil {
		edit(&cfg)
	}
	c, err := youtube.New(cfg, hs.Client())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &env{c: c, srv: srv, hs: hs}
}

// relay uploads data through a session the way the worker does: chunks of
// at most chunk bytes from the offset YouTube reports, asking for the
// offset after a temporary failure. It returns the final progress and the
// number of PutChunk calls.
func relay(t testing.TB, e *env, uri string, data []byte, chunk int64) (youtube.Progress, int) {
	t.Helper()
	ctx := context.Background()
	total := int64(len(data))
	p, err := e.c.Offset(ctx, uri, total)
	if err != nil {
		t.Fatalf("Offset: %v", err)
	}
	calls := 0
	for !p.Done {
		if calls++; calls > 1000 {
			t.Fatalf("relay did not finish in 1000 chunks")
		}
		end := min(p.Committed+chunk, total)
		next, err := e.c.PutChunk(ctx, uri, bytes.NewReader(data[p.Committed:end]), p.Committed, end-p.Committed, total)
		if err != nil {
			if !youtube.IsTemporary(err) {
				t.Fatalf("PutChunk: %v (permanent)", err)
			}
			if next, err = e.c.Offset(ctx, uri, total); err != nil {
				t.Fatalf("Offset after %v", err)
			}
		}
		if next.Committed < p.Committed || next.Committed%align != 0 && !next.Done {
			t.Fatalf("committed went from %d to %d", p.Committed, next.Committed)
		}
		p = next
	}
	return p, calls
}

func testData(n int, seed uint64) []byte {
	b := make([]byte, n)
	rng := mrand.New(mrand.NewPCG(seed, seed))
	for i := 0; i < n; i += 8 {
		v := rng.Uint64()
		for j := i; j < min(i+8, n); j++ {
			b[j] = byte(v >> (8 * (j - i)))
		}
	}
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// checkSecretFree fails if err's text holds a secret or a session URI.
func checkSecretFree(t testing.TB, e *env, err error) {
	t.Helper()
	msg := err.Error()
	for _, secret := range []string{clientSecret, refreshToken, "ya29.", "upload_id"} {
		if strings.Contains(msg, secret) {
			t.Errorf("error %q holds %q", msg, secret)
		}
	}
	for _, s := range e.srv.Sessions() {
		if strings.Contains(msg, s.UploadID) {
			t.Errorf("error %q holds a session's upload id", msg)
		}
	}
}

// lastSession is the stand-in's upload id of the newest session.
func lastSession(t testing.TB, e *env) string {
	t.Helper()
	ss := e.srv.Sessions()
	if len(ss) == 0 {
		t.Fatal("no session")
	}
	return ss[len(ss)-1].UploadID
}

func TestUploadInChunks(t *testing.T) {
	e := newEnv(t, youtubetest.Options{}, nil, nil)
	ctx := context.Background()
	data := testData(5*align+777, 1)
	uri, err := e.c.StartSession(ctx, meta, int64(len(data)), "video/mp4")
	if err != nil {
		t.Fatalf("StartSession: %v", err)
	}
	p, calls := relay(t, e, uri, data, 2*align)
	if calls != 3 {
		t.Errorf("PutChunk calls = %d, want 3", calls)
	}
	if p.Committed != int64(len(data)) || p.VideoID == "" {
		t.Fatalf("progress = %+v, want done with %d bytes and a video id", p, len(data))
	}
	v, ok := e.srv.Video(p.VideoID)
	if !ok {
		t.Fatalf("video %s not on the server", p.VideoID)
	}
	if v.SHA256 != sha(data) || v.Size != int64(len(data)) {
		t.Errorf("video size %d sha256 %s, want %d %s", v.Size, v.SHA256, len(data), sha(data))
	}
	if v.Title != meta.Title || v.Description != meta.Description || strings.Join(v.Tags, ",") != "football,highlights" ||
		v.CategoryID != meta.CategoryID || v.PrivacyStatus != meta.PrivacyStatus || v.ContentType != "video/mp4" {
		t.Errorf("video metadata = %+v, want %+v as video/mp4", v, meta)
	}
	// Asking again after completion returns the video again.
	again, err := e.c.Offset(ctx, uri, int64(len(data)))
	if err != nil || again != p {
		t.Errorf("Offset after completion = %+v, %v, want %+v", again, err, p)
	}
	if viol := e.srv.Violations(); len(viol) != 0 {
		t.Errorf("violations = %q, want none", viol)
	}
	if got := e.srv.Requests()[youtubetest.KindToken]; got != 1 {
		t.Errorf("token requests = %d, want 1 (the token is reused)", got)
	}
}

// patternReader yields n bytes of a repeating pseudo-random block, counting
// what it yields, without holding more than the block.
type patternReader struct {
	block []byte
	off   int64
	n     int64
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.n-r.off)]
	for i := 0; i < len(p); {
		i += copy(p[i:], r.block[(r.off+int64(i))%int64(len(r.block)):])
	}
	r.off += int64(len(p))
	return len(p), nil
}

func TestPutChunkStreams(t *testing.T) {
	const size = 64 << 20
	e := newEnv(t, youtubetest.Options{}, nil, nil)
	ctx := context.Background()
	block := testData(1<<20+7, 2)
	want := sha256.New()
	if _, err := io.Copy(want, &patternReader{block: block, n: size}); err != nil {
		t.Fatal(err)
	}
	uri, err := e.c.StartSession(ctx, meta, size, "video/mp4")
	if err != nil {
		t.Fatalf("StartSession: %v", err)
	}
	src := &patternReader{block: block, n: size}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	p, err := e.c.PutChunk(ctx, uri, src, 0, size, size)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatalf("PutChunk: %v", err)
	}
	if !p.Done {
		t.Fatalf("progress = %+v, want done", p)
	}
	if src.off != size {
		t.Errorf("bytes read from the source = %d, want %d", src.off, size)
	}
	// Everything allocated during the call, client and stand-in together,
	// garbage included: far below the chunk's size if nothing buffers it.
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d bytes while sending %d", alloc, size)
	if alloc > 8<<20 {
		t.Errorf("allocated %d bytes while sending a %d-byte chunk, want under 8 MiB", alloc, size)
	}
	if v, _ := e.srv.Video(p.VideoID); v.SHA256 != hex.EncodeToString(want.Sum(nil)) {
		t.Errorf("sha256 = %s, want %x", v.SHA256, want.Sum(nil))
	}
}

func TestResumeAfterFailureMidChunk(t *testing.T) {
	// With every chunk failing, the stand-in answers 503 before reading the
	// body or after reading (and committing) part of it; the client must
	// learn where to go on from Offset.
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			e := newEnv(t, youtubetest.Options{FailRate: 1, Seed: seed}, nil, nil)
			ctx := context.Background()
			data := testData(12*align+5, 3)
			total := int64(len(data))
			uri, err := e.c.StartSession(ctx, meta, total, "")
			if err != nil {
				t.Fatalf("StartSession: %v", err)
			}
			_, err = e.c.PutChunk(ctx, uri, bytes.NewReader(data[:8*align]), 0, 8*align, total)
			if err == nil {
				t.Fatalf("PutChunk succeeded, want an injected failure")
			}
			if !youtube.IsTemporary(err) {
				t.Errorf("IsTemporary(%v) = false, want true", err)
			}
			checkSecretFree(t, e, err)
			if want := fmt.Sprintf("PUT chunk bytes 0-%d/%d: ", 8*align-1, total); !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q, want it to start with %q", err, want)
			}
			e.srv.SetFailRate(0)
			p, err := e.c.Offset(ctx, uri, total)
			if err != nil {
				t.Fatalf("Offset: %v", err)
			}
			if p.Committed%align != 0 || p.Committed >= 8*align {
				t.Errorf("committed after the failure = %d, want a 256 KiB multiple below %d", p.Committed, 8*align)
			}
			done, _ := relay(t, e, uri, data, 8*align)
			if v, _ := e.srv.Video(done.VideoID); v.SHA256 != sha(data) {
				t.Errorf("sha256 = %s, want %s", v.SHA256, sha(data))
			}
			if viol := e.srv.Violations(); len(viol) != 0 {
				t.Errorf("violations = %q, want none", viol)
			}
		})
	}
}

func TestFaultsStayByteExact(t *testing.T) {
	e := newEnv(t, youtubetest.Options{FailRate: 0.3, ShortCommitRate: 0.3, Seed: 99}, nil, nil)
	data := testData(30*align+1, 4)
	uri, err := e.c.StartSession(context.Background(), meta, int64(len(data)), "video/mp4")
	if err != nil {
		t.Fatalf("StartSession: %v", err)
	}
	p, calls := relay(t, e, uri, data, 4*align)
	if calls <= 8 {
		t.Errorf("PutChunk calls = %d, want more than the 8 a fault-free upload takes", calls)
	}
	if v, _ := e.srv.Video(p.VideoID); v.SHA256 != sha(data) || v.Sessions != 1 {
		t.Errorf("video sha256 %s sessions %d, want %s in 1 session", v.SHA256, v.Sessions, sha(data))
	}
	if viol := e.srv.Violations(); len(viol) != 0 {
		t.Errorf("violations = %q, want none", viol)
	}
}

// failingReader yields n bytes, then fails with err.
type failingReader struct {
	n   int
	err error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, r.err
	}
	k := min(len(p), r.n)
	r.n -= k
	return k, nil
}

func TestChunkSourceFailureIsTheCallers(t *testing.T) {
	e := newEnv(t, youtubetest.Options{}, nil, nil)
	ctx := context.Background()
	data := testData(2*align, 9)
	total := int64(len(data))
	uri, err := e.c.StartSession(ctx, meta, total, "video/mp4")
	if err != nil {
		t.Fatalf("StartSession: %v", err)
	}
	s3err := errors.New("S3 connection reset")
	for i, tt := range []struct {
		name string
		r    io.Reader
		want error
	}{
		{"reader fails", &failingReader{n: 1000, err: s3err}, s3err},
		{"reader ends early", bytes.NewReader(data[:1000]), io.ErrUnexpectedEOF},
	} {
		_, err := e.c.PutChunk(ctx, uri, tt.r, 0, align, total)
		var ye *youtube.Error
		if !errors.Is(err, tt.want) || errors.As(err, &ye) {
			t.Errorf("%s: PutChunk = %v, want %v and no *youtube.Error", tt.name, err, tt.want)
		}
		if err != nil {
			checkSecretFree(t, e, err)
		}
		// The stand-in may still be reading the broken request after the
		// client gave up; the next one must not overlap it (one writer).
		waitChunksDone(t, e, i+1)
	}
	// Nothing was committed: the upload goes on from byte 0.
	p, _ := relay(t, e, uri, data, align)
	if v, _ := e.srv.Video(p.VideoID); v.SHA256 != sha(data) {
		t.Errorf("sha256 = %s, want %s", v.SHA256, sha(data))
	}
	if viol := e.srv.Violations(); len(viol) != 0 {
		t.Errorf("violations = %q, want none", viol)
	}
}

// waitChunksDone waits until the stand-in has handled n chunk requests and
// is reading none.
func waitChunksDone(t testing.TB, e *env, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); e.srv.Requests()[youtubetest.KindChunk] < n || e.srv.Sessions()[0].Receiving; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the stand-in has not handled %d chunk requests", n)
		}
	}
}

func TestSessionGone(t *testing.T) {
	e := newEnv(t, youtubetest.Options{}, nil, nil)
	ctx := context.Background()
	data := testData(3*align, 5)
	total := int64(len(data))
	uri, err := e.c.StartSession(ctx, meta, total, "video/mp4")
	if err != nil {
		t.Fatalf("StartSession: %v", err)
	}
	if _, err := e.c.PutChunk(ctx, uri, bytes.NewReader(data[:align]), 0, align, total); err != nil {
		t.Fatalf("PutChunk: %v", err)
	}
	e.srv.ExpireSession(lastSession(t, e))

	_, err = e.c.PutChunk(ctx, uri, bytes.NewReader(data[align:2*align]), align, align, total)
	if !errors.Is(err, youtube.ErrSessionGone) || youtube.IsTemporary(err) {
		t.Errorf("PutChunk on an expired session: %v, want ErrSessionGone, not temporary", err)
	}
	if err != nil {
		checkSecretFree(t, e, err)
	}
	if _, err := e.c.Offset(ctx, uri, total); !errors.Is(err, youtube.ErrSessionGone) {
		t.Errorf("Offset on an expired session: %v, want ErrSessionGone", err)
	}

	// Start again from byte 0 in a new session.
	uri2, err := e.c.StartSession(ctx, meta, total, "video/mp4")
	if err != nil {
		t.Fatalf("StartSession: %v", err)
	}
	p, _ := relay(t, e, uri2, data, align)
	if v, _ := e.srv.Video(p.VideoID); v.SHA256 != sha(data) || v.Sessions != 2 {
		t.Errorf("video sha256 %s sessions %d, want %s in 2 sessions", v.SHA256, v.Sessions, sha(data))
	}
	if viol := e.srv.Violations(); len(viol) != 0 {
		t.Errorf("violations = %q, want none", viol)
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t, youtubetest.Options{}, nil, nil)
	ctx := context.Background()
	uri, err := e.c.StartSession(ctx, meta, 10, "video/mp4")
	if err != nil {
		t.Fatalf("StartSession: %v", err)
	}
	if err := e.c.Cancel(ctx, uri); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if _, err := e.c.Offset(ctx, uri, 10); !errors.Is(err, youtube.ErrSessionGone) {
		t.Errorf("Offset after Cancel: %v, want ErrSessionGone", err)
	}
	if err := e.c.Cancel(ctx, uri); err != nil {
		t.Errorf("second Cancel: %v, want nil (already gone)", err)
	}
	if s := e.srv.Sessions(); s[0].State != youtubetest.SessionCancelled {
		t.Errorf("session state = %q, want %q", s[0].State, youtubetest.SessionCancelled)
	}
}

func TestQuotaExceededIsPermanent(t *testing.T) {
	e := newEnv(t, youtubetest.Options{QuotaExceeded: true}, nil, nil)
	_, err := e.c.StartSession(context.Background(), meta, 10, "video/mp4")
	var ye *youtube.Error
	if !errors.As(err, &ye) {
		t.Fatalf("StartSession error = %v, want a *youtube.Error", err)
	}
	if ye.Status != http.StatusForbidden || ye.Reason != "quotaExceeded" || ye.Temporary || youtube.IsTemporary(err) {
		t.Errorf("error = %+v, want permanent 403 quotaExceeded", ye)
	}
	if want := "start session: YouTube answered 403 quotaExceeded: The request cannot be completed because you have exceeded your quota."; err.Error() != want {
		t.Errorf("message = %q, want %q", err, want)
	}
	checkSecretFree(t, e, err)
}

func TestBadMetadataIsPermanent(t *testing.T) {
	e := newEnv(t, youtubetest.Options{}, nil, nil)
	bad := meta
	bad.Title = "<b>bold</b>"
	_, err := e.c.StartSession(context.Background(), bad, 10, "video/mp4")
	var ye *youtube.Error
	if !errors.As(err, &ye) || ye.Status != http.StatusBadRequest || ye.Reason != "invalidTitle" || ye.Temporary {
		t.Errorf("StartSession error = %v, want permanent 400 invalidTitle", err)
	}
}

func TestTokenEndpoint(t *testing.T) {
	t.Run("rejected refresh token is permanent", func(t *testing.T) {
		e := newEnv(t, youtubetest.Options{}, nil, func(c *youtube.Config) { c.RefreshToken = "1//revoked" })
		_, err := e.c.StartSession(context.Background(), meta, 10, "video/mp4")
		var ye *youtube.Error
		if !errors.As(err, &ye) {
			t.Fatalf("error = %v, want a *youtube.Error", err)
		}
		if ye.Temporary || ye.Status != http.StatusBadRequest || ye.Reason != "invalid_grant" {
			t.Errorf("error = %+v, want permanent 400 invalid_grant", ye)
		}
		if !strings.HasPrefix(ye.Message, "YouTube refresh token rejected: ") {
			t.Errorf("message = %q, want it to start with %q", ye.Message, "YouTube refresh token rejected: ")
		}
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) {
			t.Errorf("errors.As(%v, *oauth2.RetrieveError) = false, want true", err)
		}
		if strings.Contains(err.Error(), "1//revoked") {
			t.Errorf("error %q holds the refresh token", err)
		}
		checkSecretFree(t, e, err)
		if got := len(e.srv.Sessions()); got != 0 {
			t.Errorf("sessions = %d, want 0", got)
		}
	})
	t.Run("token endpoint trouble is temporary", func(t *testing.T) {
		e := newEnv(t, youtubetest.Options{}, nil, nil)
		e.srv.FailTokenNext(1)
		_, err := e.c.StartSession(context.Background(), meta, 10, "video/mp4")
		var ye *youtube.Error
		if !errors.As(err, &ye) || !ye.Temporary || ye.Status != http.StatusServiceUnavailable {
			t.Fatalf("error = %v, want temporary 503", err)
		}
		if _, err := e.c.StartSession(context.Background(), meta, 10, "video/mp4"); err != nil {
			t.Errorf("StartSession after the token endpoint recovered: %v", err)
		}
	})
	t.Run("revoked access token is refreshed", func(t *testing.T) {
		e := newEnv(t, youtubetest.Options{}, nil, nil)
		ctx := context.Background()
		data := testData(2*align, 6)
		uri, err := e.c.StartSession(ctx, meta, int64(len(data)), "video/mp4")
		if err != nil {
			t.Fatalf("StartSession: %v", err)
		}
		e.srv.RevokeTokens()
		// A chunk cannot be sent twice: the 401 is temporary and the next
		// call gets a new token.
		_, err = e.c.PutChunk(ctx, uri, bytes.NewReader(data[:align]), 0, align, int64(len(data)))
		var ye *youtube.Error
		if !errors.As(err, &ye) || ye.Status != http.StatusUnauthorized || !ye.Temporary {
			t.Fatalf("PutChunk with a revoked token: %v, want a temporary 401", err)
		}
		p, _ := relay(t, e, uri, data, align)
		if !p.Done {
			t.Fatalf("progress = %+v, want done", p)
		}
		// Other calls are sent again at once with a new token.
		e.srv.RevokeTokens()
		if _, err := e.c.Processing(ctx, p.VideoID); err != nil {
			t.Errorf("Processing with a revoked token: %v, want a retry with a new one", err)
		}
		e.srv.RevokeTokens()
		if _, err := e.c.StartSession(ctx, meta, 10, "video/mp4"); err != nil {
			t.Errorf("StartSession with a revoked token: %v, want a retry with a new one", err)
		}
		if got := e.srv.Requests()[youtubetest.KindToken]; got != 4 {
			t.Errorf("token requests = %d, want 4", got)
		}
	})
}

func TestOffsetRetries(t *testing.T) {
	e := newEnv(t, youtubetest.Options{}, nil, func(c *youtube.Config) { c.MaxAttempts = 3 })
	ctx := context.Background()
	uri, err := e.c.StartSession(ctx, meta, 10, "video/mp4")
	if err != nil {
		t.Fatalf("StartSession: %v", err)
	}
	e.srv.FailNext(2)
	if p, err := e.c.Offset(ctx, uri, 10); err != nil || p.Committed != 0 || p.Done {
		t.Errorf("Offset after 2 failures = %+v, %v, want 0 committed", p, err)
	}
	e.srv.FailNext(3)
	_, err = e.c.Offset(ctx, uri, 10)
	if !youtube.IsTemporary(err) || !strings.Contains(err.Error(), "3 attempts") {
		t.Errorf("Offset after 3 failures: %v, want a temporary error after 3 attempts", err)
	}
	if got := e.srv.Requests()[youtubetest.KindInjected]; got != 5 {
		t.Errorf("injected failures = %d, want 5", got)
	}
	checkSecretFree(t, e, err)

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.c.Offset(canceled, uri, 10); !errors.Is(err, context.Canceled) || youtube.IsTemporary(err) {
		t.Errorf("Offset with a cancelled context: %v, want context.Canceled, not temporary", err)
	}
}

func TestOffsetRetriesTimeouts(t *testing.T) {
	var stalls atomic.Int32
	stall := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.Header.Get("Content-Range"), "bytes */") && stalls.Add(1) == 1 {
				<-r.Context().Done() // the first status query never gets an answer
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	e := newEnv(t, youtubetest.Options{}, stall, func(c *youtube.Config) { c.RequestTimeout = 200 * time.Millisecond })
	ctx := context.Background()
	uri, err := e.c.StartSession(ctx, meta, 10, "video/mp4")
	if err != nil {
		t.Fatalf("StartSession: %v", err)
	}
	if _, err := e.c.Offset(ctx, uri, 10); err != nil {
		t.Errorf("Offset: %v, want success on the second attempt", err)
	}
	if got := stalls.Load(); got != 2 {
		t.Errorf("status queries = %d, want 2", got)
	}
}

func TestNetworkErrorsAreTemporary(t *testing.T) {
	e := newEnv(t, youtubetest.Options{}, nil, nil)
	ctx := context.Background()
	uri, err := e.c.StartSession(ctx, meta, align, "video/mp4")
	if err != nil {
		t.Fatalf("StartSession: %v", err)
	}
	e.hs.Close()
	_, err = e.c.PutChunk(ctx, uri, bytes.NewReader(make([]byte, align)), 0, align, align)
	if !youtube.IsTemporary(err) {
		t.Errorf("PutChunk to a closed server: %v, want temporary", err)
	}
	checkSecretFree(t, e, err)
	if err := e.c.Cancel(ctx, uri); !youtube.IsTemporary(err) {
		t.Errorf("Cancel on a closed server: %v, want temporary", err)
	}
}

func TestProcessing(t *testing.T) {
	e := newEnv(t, youtubetest.Options{ProcessingSteps: 3}, nil, nil)
	ctx := context.Background()
	data := testData(1000, 7)
	uri, err := e.c.StartSession(ctx, meta, int64(len(data)), "video/mp4")
	if err != nil {
		t.Fatalf("StartSession: %v", err)
	}
	p, _ := relay(t, e, uri, data, align)
	var got []youtube.Processing
	for range 5 {
		pr, err := e.c.Processing(ctx, p.VideoID)
		if err != nil {
			t.Fatalf("Processing: %v", err)
		}
		got = append(got, pr)
	}
	want := []youtube.Processing{
		{UploadStatus: "uploaded", ProcessingStatus: "processing", PartsProcessed: 0, PartsTotal: 3, TimeLeftMs: 180_000},
		{UploadStatus: "uploaded", ProcessingStatus: "processing", PartsProcessed: 1, PartsTotal: 3, TimeLeftMs: 120_000},
		{UploadStatus: "uploaded", ProcessingStatus: "processing", PartsProcessed: 2, PartsTotal: 3, TimeLeftMs: 60_000},
		{UploadStatus: "processed", ProcessingStatus: "succeeded"},
		{UploadStatus: "processed", ProcessingStatus: "succeeded"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("polls = %+v, want %+v", got, want)
	}

	if _, err := e.c.Processing(ctx, "nosuchvideo"); !errors.Is(err, youtube.ErrVideoNotFound) {
		t.Errorf("Processing(unknown) = %v, want ErrVideoNotFound", err)
	}

	e.srv.FailProcessing(p.VideoID, "codec")
	pr, err := e.c.Processing(ctx, p.VideoID)
	if err != nil || pr.UploadStatus != "failed" || pr.FailureReason != "codec" {
		t.Errorf("failed processing = %+v, %v, want uploadStatus failed, reason codec", pr, err)
	}

	e.srv.FailNext(1)
	_, err = e.c.Processing(ctx, p.VideoID)
	var ye *youtube.Error
	if !errors.As(err, &ye) || !ye.Temporary || ye.Status != http.StatusServiceUnavailable || ye.Reason != "backendError" {
		t.Errorf("Processing on a 503: %v, want a temporary 503 backendError", err)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	_, err := youtube.New(youtube.Config{APIBaseURL: "not a url"}, nil)
	if upload.ErrorCode(err) != upload.EINVALID {
		t.Fatalf("New error = %v, want %s", err, upload.EINVALID)
	}
	for _, want := range []string{"API base URL", "client id", "client secret", "refresh token"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// BenchmarkPutChunk measures relaying one 64 MiB chunk to the stand-in over
// loopback HTTP (client and server in this process).
func BenchmarkPutChunk(b *testing.B) {
	const size = 64 << 20
	e := newEnv(b, youtubetest.Options{}, nil, nil)
	ctx := context.Background()
	block := testData(1<<20+7, 8)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		uri, err := e.c.StartSession(ctx, meta, size, "video/mp4")
		if err != nil {
			b.Fatalf("StartSession: %v", err)
		}
		p, err := e.c.PutChunk(ctx, uri, &patternReader{block: block, n: size}, 0, size, size)
		if err != nil || !p.Done {
			b.Fatalf("PutChunk = %+v, %v, want done", p, err)
		}
	}
}

// TestSessionHandleIsSealed: the handle StartSession returns hides the
// session URI (a capability stored in the progress table), and only a client
// with the same client secret can use it; any other client sees the session
// as gone and starts again.
func TestSessionHandleIsSealed(t *testing.T) {
	e := newEnv(t, youtubetest.Options{}, nil, nil)
	ctx := context.Background()
	data := testData(2*align, 9)
	handle, err := e.c.StartSession(ctx, meta, int64(len(data)), "video/mp4")
	if err != nil {
		t.Fatal(err)
	}
	id := lastSession(t, e)
	if strings.Contains(handle, id) || strings.Contains(handle, "upload_id") || strings.Contains(handle, e.hs.URL) {
		t.Errorf("handle %q shows the session URI", handle)
	}
	if _, err := e.c.PutChunk(ctx, handle, bytes.NewReader(data[:align]), 0, align, int64(len(data))); err != nil {
		t.Fatalf("PutChunk with the handle: %v", err)
	}
	rotated, err := youtube.New(youtube.Config{
		APIBaseURL: e.hs.URL, TokenURL: e.hs.URL + "/token",
		ClientID: clientID, ClientSecret: "another-secret", RefreshToken: refreshToken,
	}, e.hs.Client())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rotated.Offset(ctx, handle, int64(len(data))); !errors.Is(err, youtube.ErrSessionGone) {
		t.Errorf("Offset with another client secret: %v, want ErrSessionGone", err)
	}
	tampered := handle[:len(handle)-2] + "AA"
	if _, err := e.c.Offset(ctx, tampered, int64(len(data))); !errors.Is(err, youtube.ErrSessionGone) {
		t.Errorf("Offset with a tampered handle: %v, want ErrSessionGone", err)
	}
	if _, err := e.c.Offset(ctx, e.hs.URL+"/upload/youtube/v3/videos?uploadType=resumable&upload_id="+id, int64(len(data))); !errors.Is(err, youtube.ErrSessionGone) {
		t.Errorf("Offset with a bare URI: %v, want ErrSessionGone (only handles are accepted)", err)
	}
}
