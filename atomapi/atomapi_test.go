package atomapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"atomuploads/atomapi"
	"atomuploads/atomapi/atomapitest"
	"atomuploads/upload"
)

const (
	secret   = "hmac-s3cret"
	token    = "bearer-s3cret"
	videoURL = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
)

// newEnv starts a stand-in (optionally behind wrap) and a client for it.
func newEnv(t testing.TB, opts atomapitest.Options, cfg atomapi.Config, wrap func(http.Handler) http.Handler) (*atomapi.Client, *atomapitest.Server, *httptest.Server) {
	t.Helper()
	srv := atomapitest.New(opts)
	var h http.Handler = srv
	if wrap != nil {
		h = wrap(srv)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	cfg.BaseURL = hs.URL + "/"
	if cfg.BaseDelay == 0 {
		cfg.BaseDelay = time.Millisecond
	}
	return atomapi.New(cfg, hs.Client()), srv, hs
}

// checkSecretFree fails if err's text holds a secret.
func checkSecretFree(t testing.TB, err error) {
	t.Helper()
	for _, s := range []string{secret, token, "wrong-secret", "wrong-token"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q holds a secret", err)
		}
	}
}

func TestAddAssetWithHMAC(t *testing.T) {
	c, srv, _ := newEnv(t, atomapitest.Options{HMACSecret: secret}, atomapi.Config{HMACSecret: secret}, nil)
	if added, err := c.AddAsset(context.Background(), "atom-1", videoURL); err != nil || !added {
		t.Fatalf("AddAsset = %v, %v, want added", added, err)
	}
	calls := srv.Calls("atom-1")
	if len(calls) != 1 {
		t.Fatalf("calls = %d, want 1", len(calls))
	}
	if got := calls[0]; got.URI != videoURL || got.Auth != "hmac" || got.Service != atomapi.ServiceName {
		t.Errorf("call = %+v, want %s signed with HMAC by %s", got, videoURL, atomapi.ServiceName)
	}
	if got := srv.CallCount(); got != 1 {
		t.Errorf("call count = %d, want 1", got)
	}
	if got := srv.Rejected(); len(got) != 0 {
		t.Errorf("the stand-in refused %q (the read of the atom is signed too)", got)
	}
}

func TestAddAssetWithBearerToken(t *testing.T) {
	c, srv, _ := newEnv(t, atomapitest.Options{Token: token}, atomapi.Config{Token: token}, nil)
	if _, err := c.AddAsset(context.Background(), "atom-1", videoURL); err != nil {
		t.Fatalf("AddAsset: %v", err)
	}
	if calls := srv.Calls("atom-1"); len(calls) != 1 || calls[0].Auth != "bearer" {
		t.Errorf("calls = %+v, want one with a bearer token", calls)
	}
}

func TestAuthenticationFailuresArePermanent(t *testing.T) {
	tests := []struct {
		name string
		opts atomapitest.Options
		cfg  atomapi.Config
	}{
		{"wrong secret", atomapitest.Options{HMACSecret: secret}, atomapi.Config{HMACSecret: "wrong-secret"}},
		{"date too far ahead of the server", atomapitest.Options{HMACSecret: secret, Now: func() time.Time { return time.Now().Add(-6 * time.Minute) }}, atomapi.Config{HMACSecret: secret}},
		{"date too far behind the server", atomapitest.Options{HMACSecret: secret, Now: func() time.Time { return time.Now().Add(6 * time.Minute) }}, atomapi.Config{HMACSecret: secret}},
		{"wrong token", atomapitest.Options{Token: token}, atomapi.Config{Token: "wrong-token"}},
		{"no credentials", atomapitest.Options{Token: token}, atomapi.Config{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, srv, _ := newEnv(t, tt.opts, tt.cfg, nil)
			_, err := c.AddAsset(context.Background(), "atom-1", videoURL)
			var e *atomapi.Error
			if !errors.As(err, &e) || e.Status != http.StatusUnauthorized || e.Temporary || atomapi.IsTemporary(err) {
				t.Fatalf("AddAsset = %v, want a permanent 401", err)
			}
			if !strings.Contains(err.Error(), "atom API answered 401 Unauthorized") {
				t.Errorf("message %q does not say what the atom API answered", err)
			}
			checkSecretFree(t, err)
			if got := srv.Requests(); got != 1 {
				t.Errorf("requests = %d, want 1 (no retry)", got)
			}
			if got := srv.CallCount(); got != 0 {
				t.Errorf("calls = %d, want 0", got)
			}
		})
	}
}

func TestSkewWithinFiveMinutesIsAccepted(t *testing.T) {
	c, srv, _ := newEnv(t, atomapitest.Options{HMACSecret: secret, Now: func() time.Time { return time.Now().Add(4 * time.Minute) }},
		atomapi.Config{HMACSecret: secret}, nil)
	if _, err := c.AddAsset(context.Background(), "atom-1", videoURL); err != nil {
		t.Fatalf("AddAsset: %v", err)
	}
	if got := srv.CallCount(); got != 1 {
		t.Errorf("calls = %d, want 1", got)
	}
}

func TestRetriesTemporaryFailures(t *testing.T) {
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusInternalServerError, http.StatusTooManyRequests} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			c, srv, _ := newEnv(t, atomapitest.Options{HMACSecret: secret}, atomapi.Config{HMACSecret: secret}, nil)
			srv.FailNextWith(2, status)
			if _, err := c.AddAsset(context.Background(), "atom-1", videoURL); err != nil {
				t.Fatalf("AddAsset: %v", err)
			}
			// Two failed reads of the atom, then a read and the addition.
			if got := srv.Requests(); got != 4 {
				t.Errorf("requests = %d, want 4", got)
			}
			if got := len(srv.Calls("atom-1")); got != 1 {
				t.Errorf("calls = %d, want 1", got)
			}
		})
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	c, srv, _ := newEnv(t, atomapitest.Options{HMACSecret: secret}, atomapi.Config{HMACSecret: secret, MaxAttempts: 3}, nil)
	srv.FailNext(10)
	_, err := c.AddAsset(context.Background(), "atom-1", videoURL)
	if !atomapi.IsTemporary(err) || !strings.Contains(err.Error(), "3 attempts") || !strings.Contains(err.Error(), "503") {
		t.Errorf("AddAsset = %v, want a temporary 503 error after 3 attempts", err)
	}
	if got := srv.Requests(); got != 3 {
		t.Errorf("requests = %d, want 3", got)
	}
}

func TestClientErrorsArePermanent(t *testing.T) {
	tests := []struct {
		name, atom, uri string
		wantStatus      int
		wantText        string
		wantRequests    int
	}{
		{"unknown atom", "nosuchatom", videoURL, http.StatusNotFound, "atom nosuchatom does not exist", 1},
		{"video id the API refuses", "atom-1", "https://www.youtube.com/watch?v=short", http.StatusBadRequest, "is not a YouTube watch URL", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, srv, _ := newEnv(t, atomapitest.Options{HMACSecret: secret, Atoms: []string{"atom-1"}}, atomapi.Config{HMACSecret: secret}, nil)
			_, err := c.AddAsset(context.Background(), tt.atom, tt.uri)
			var e *atomapi.Error
			if !errors.As(err, &e) || e.Status != tt.wantStatus || e.Temporary {
				t.Fatalf("AddAsset = %v, want a permanent %d", err, tt.wantStatus)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("message %q does not contain %q", err, tt.wantText)
			}
			if got := srv.Requests(); got != tt.wantRequests {
				t.Errorf("requests = %d, want %d (no retry)", got, tt.wantRequests)
			}
		})
	}
}

func TestNetworkErrorsAreRetriedThenTemporary(t *testing.T) {
	c, srv, hs := newEnv(t, atomapitest.Options{HMACSecret: secret}, atomapi.Config{HMACSecret: secret, MaxAttempts: 2}, nil)
	hs.Close()
	_, err := c.AddAsset(context.Background(), "atom-1", videoURL)
	if !atomapi.IsTemporary(err) || !strings.Contains(err.Error(), "2 attempts") {
		t.Errorf("AddAsset to a closed server = %v, want temporary after 2 attempts", err)
	}
	if got := srv.Requests(); got != 0 {
		t.Errorf("requests = %d, want 0", got)
	}
}

func TestAttemptTimeoutIsRetried(t *testing.T) {
	var seen atomic.Int32
	hang := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if seen.Add(1) == 1 {
				// The first attempt never gets an answer. (Reading the body
				// lets the server notice when the client hangs up.)
				_, _ = io.Copy(io.Discard, r.Body)
				<-r.Context().Done()
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	c, srv, _ := newEnv(t, atomapitest.Options{HMACSecret: secret}, atomapi.Config{HMACSecret: secret, Timeout: 100 * time.Millisecond}, hang)
	if _, err := c.AddAsset(context.Background(), "atom-1", videoURL); err != nil {
		t.Fatalf("AddAsset: %v", err)
	}
	if got, calls := seen.Load(), srv.CallCount(); got != 3 || calls != 1 {
		t.Errorf("requests = %d, calls = %d, want 3 (a lost read, a read, the addition) and 1", got, calls)
	}
}

// TestLostAnswerIsNotAddedAgain: the atom API takes the asset but its
// answer never arrives. The retry reads the atom, finds the video and adds
// nothing: media-atom-maker would otherwise add a second asset version.
func TestLostAnswerIsNotAddedAgain(t *testing.T) {
	var posts atomic.Int32
	loseFirstAnswer := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && posts.Add(1) == 1 {
				next.ServeHTTP(httptest.NewRecorder(), r) // taken, answer dropped
				<-r.Context().Done()
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	c, srv, _ := newEnv(t, atomapitest.Options{HMACSecret: secret}, atomapi.Config{HMACSecret: secret, Timeout: 100 * time.Millisecond}, loseFirstAnswer)
	added, err := c.AddAsset(context.Background(), "atom-1", videoURL)
	if err != nil || added {
		t.Errorf("AddAsset = %v, %v, want nil and not added by the retry", added, err)
	}
	if got := len(srv.Calls("atom-1")); got != 1 {
		t.Errorf("asset additions = %d, want 1", got)
	}
	if got := posts.Load(); got != 1 {
		t.Errorf("POSTs = %d, want 1", got)
	}
}

// TestAtomWithTheVideoAlready: an atom that has the video (added by an
// earlier caller) gets no second asset; other assets do not count.
func TestAtomWithTheVideoAlready(t *testing.T) {
	c, srv, _ := newEnv(t, atomapitest.Options{Token: token}, atomapi.Config{Token: token}, nil)
	const other = "https://www.youtube.com/watch?v=aaaaaaaaaaa"
	if added, err := c.AddAsset(context.Background(), "atom-1", other); err != nil || !added {
		t.Fatalf("AddAsset(other) = %v, %v, want added", added, err)
	}
	for i, want := range []bool{true, false, false} {
		added, err := c.AddAsset(context.Background(), "atom-1", videoURL)
		if err != nil || added != want {
			t.Errorf("AddAsset #%d = %v, %v, want %v", i+1, added, err, want)
		}
	}
	if got := len(srv.Calls("atom-1")); got != 2 {
		t.Errorf("asset additions = %d, want 2 (one per video)", got)
	}
}

func TestContextEndsTheRetries(t *testing.T) {
	c, srv, _ := newEnv(t, atomapitest.Options{HMACSecret: secret}, atomapi.Config{HMACSecret: secret, BaseDelay: time.Hour}, nil)
	srv.FailNext(1)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.AddAsset(ctx, "atom-1", videoURL)
	if !errors.Is(err, context.DeadlineExceeded) || atomapi.IsTemporary(err) {
		t.Errorf("AddAsset = %v, want the context's deadline error", err)
	}
	if got := srv.Requests(); got != 1 {
		t.Errorf("requests = %d, want 1", got)
	}
}

func TestInvalidArguments(t *testing.T) {
	c := atomapi.New(atomapi.Config{BaseURL: "http://127.0.0.1:1"}, nil)
	for _, tt := range []struct{ atom, uri string }{
		{"", videoURL}, {"../etc", videoURL}, {"atom-1", ""},
		{"atom-1", "https://example.com/video"}, {"atom-1", "https://www.youtube.com/watch"},
		{"atom-1", "http://www.youtube.com/watch?v=dQw4w9WgXcQ"},
	} {
		if _, err := c.AddAsset(context.Background(), tt.atom, tt.uri); upload.ErrorCode(err) != upload.EINVALID {
			t.Errorf("AddAsset(%q, %q) = %v, want %s", tt.atom, tt.uri, err, upload.EINVALID)
		}
	}
	noBase := atomapi.New(atomapi.Config{}, nil)
	if _, err := noBase.AddAsset(context.Background(), "atom-1", videoURL); upload.ErrorCode(err) != upload.EINVALID {
		t.Errorf("AddAsset without a base URL = %v, want %s", err, upload.EINVALID)
	}
}

func TestConcurrentCallsAreEachRecordedOnce(t *testing.T) {
	c, srv, _ := newEnv(t, atomapitest.Options{HMACSecret: secret}, atomapi.Config{HMACSecret: secret}, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			_, err := c.AddAsset(context.Background(), fmt.Sprintf("atom-%d", i), videoURL)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("AddAsset: %v", err)
		}
	}
	for i := range 20 {
		if got := len(srv.Calls(fmt.Sprintf("atom-%d", i))); got != 1 {
			t.Errorf("calls for atom-%d = %d, want 1", i, got)
		}
	}
}

// TestRefusedAdditionIsSentAgain: a POST answered 503 without being taken
// is sent again after a read that finds nothing.
func TestRefusedAdditionIsSentAgain(t *testing.T) {
	var posts atomic.Int32
	refuseFirstPost := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && posts.Add(1) == 1 {
				http.Error(w, `{"message":"busy"}`, http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	c, srv, _ := newEnv(t, atomapitest.Options{Token: token}, atomapi.Config{Token: token}, refuseFirstPost)
	added, err := c.AddAsset(context.Background(), "atom-1", videoURL)
	if err != nil || !added {
		t.Fatalf("AddAsset = %v, %v, want added", added, err)
	}
	if got, calls := posts.Load(), len(srv.Calls("atom-1")); got != 2 || calls != 1 {
		t.Errorf("POSTs = %d, asset additions = %d, want 2 and 1", got, calls)
	}
}

// TestOversizedAtomIsSaidSo: an atom bigger than the client reads is an
// error that says so, not a JSON error.
func TestOversizedAtomIsSaidSo(t *testing.T) {
	huge := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"id":"atom-1","assets":[],"description":"`+strings.Repeat("x", 5<<20)+`"}`)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	c, srv, _ := newEnv(t, atomapitest.Options{Token: token}, atomapi.Config{Token: token}, huge)
	_, err := c.AddAsset(context.Background(), "atom-1", videoURL)
	if err == nil || !strings.Contains(err.Error(), "over 4 MiB") || atomapi.IsTemporary(err) {
		t.Errorf("AddAsset = %v, want a permanent error saying the answer is over 4 MiB", err)
	}
	if got := srv.CallCount(); got != 0 {
		t.Errorf("asset additions = %d, want 0", got)
	}
}
