package youtubetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

const (
	testClientID     = "client-id.apps.example"
	testClientSecret = "client-secret"
	testRefreshToken = "1//refresh-token"
)

// fixture is a Server behind a real HTTP server, with an access token.
type fixture struct {
	srv   *Server
	hs    *httptest.Server
	token string
}

func newFixture(t testing.TB, opts Options) *fixture {
	t.Helper()
	opts.ClientID, opts.ClientSecret, opts.RefreshToken = testClientID, testClientSecret, testRefreshToken
	srv := New(opts)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	f := &fixture{srv: srv, hs: hs}
	f.token = f.fetchToken(t)
	return f
}

func (f *fixture) fetchToken(t testing.TB) string {
	t.Helper()
	resp, err := http.PostForm(f.hs.URL+"/token", url.Values{
		"grant_type":    {"refresh_token"},
		"client_id":     {testClientID},
		"client_secret": {testClientSecret},
		"refresh_token": {testRefreshToken},
	})
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("token: status %d, decode error %v", resp.StatusCode, err)
	}
	return tok.AccessToken
}

// reply is a response read in full.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request with the fixture's token (unless the headers set
// Authorization) and reads the reply.
func (f *fixture) do(t testing.TB, method, target string, body io.Reader, length int64, headers map[string]string) reply {
	t.Helper()
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	if body != nil {
		req.ContentLength = length
	}
	req.Header.Set("Authorization", "Bearer "+f.token)
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: read body: %v", method, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

const metaJSON = `{"snippet":{"title":"A clip","description":"d","tags":["a","b"],"categoryId":"25"},"status":{"privacyStatus":"private"}}`

// initiate starts a session for size bytes and returns its URI.
func (f *fixture) initiate(t testing.TB, size int64) string {
	t.Helper()
	r := f.do(t, http.MethodPost, f.hs.URL+"/upload/youtube/v3/videos?uploadType=resumable&part=snippet,status",
		strings.NewReader(metaJSON), int64(len(metaJSON)), map[string]string{
			"Content-Type":            "application/json; charset=UTF-8",
			"X-Upload-Content-Length": fmt.Sprint(size),
			"X-Upload-Content-Type":   "video/mp4",
		})
	if r.status != http.StatusOK {
		t.Fatalf("initiate: status %d, want 200: %s", r.status, r.body)
	}
	loc := r.header.Get("Location")
	if UploadID(loc) == "" {
		t.Fatalf("initiate: Location %q has no upload_id", loc)
	}
	return loc
}

// put sends a chunk (or a status query when data is nil) with the given
// Content-Range.
func (f *fixture) put(t testing.TB, uri, contentRange string, data []byte) reply {
	t.Helper()
	var body io.Reader
	if data != nil {
		body = bytes.NewReader(data)
	}
	return f.do(t, http.MethodPut, uri, body, int64(len(data)), map[string]string{"Content-Range": contentRange})
}

// chunk sends data[start:end] of a file of len(data) bytes.
func (f *fixture) chunk(t testing.TB, uri string, data []byte, start, end int64) reply {
	t.Helper()
	return f.put(t, uri, fmt.Sprintf("bytes %d-%d/%d", start, end-1, len(data)), data[start:end])
}

// committed parses a 308 reply's Range; -1 if the reply is not a 308.
func committed(t testing.TB, r reply) int64 {
	t.Helper()
	if r.status != http.StatusPermanentRedirect && r.header.Get("X-Http-Status-Code-Override") != "308" {
		return -1
	}
	h := r.header.Get("Range")
	if h == "" {
		return 0
	}
	var last int64
	if _, err := fmt.Sscanf(h, "bytes=0-%d", &last); err != nil {
		t.Fatalf("Range %q: %v", h, err)
	}
	return last + 1
}

// videoID decodes the id of a video resource reply.
func videoID(t testing.TB, r reply) string {
	t.Helper()
	var v struct {
		Kind string `json:"kind"`
		ID   string `json:"id"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("video resource %s: %v", r.body, err)
	}
	if v.Kind != "youtube#video" || len(v.ID) != 11 {
		t.Fatalf("video resource kind %q id %q, want youtube#video with an 11-character id", v.Kind, v.ID)
	}
	return v.ID
}

// reason decodes errors[0].reason of a Google error reply.
func reason(t testing.TB, r reply) string {
	t.Helper()
	var e googleError
	if err := json.Unmarshal(r.body, &e); err != nil || len(e.Error.Errors) == 0 {
		t.Fatalf("error body %s is not a Google error", r.body)
	}
	if e.Error.Code != r.status {
		t.Fatalf("error body code %d, want the status %d", e.Error.Code, r.status)
	}
	return e.Error.Errors[0].Reason
}

// testData returns n deterministic pseudo-random bytes.
func testData(n int, seed uint64) []byte {
	b := make([]byte, n)
	rng := mrand.New(mrand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// upload sends data through the documented protocol like a careful client:
// chunks of chunkSize from the committed offset, asking for the status
// after a failure. It returns the video id and the number of chunk
// requests sent.
func (f *fixture) upload(t testing.TB, data []byte, chunkSize int64) (string, int) {
	t.Helper()
	uri := f.initiate(t, int64(len(data)))
	total := int64(len(data))
	var off int64
	requests := 0
	for range 1000 {
		end := min(off+chunkSize, total)
		requests++
		r := f.chunk(t, uri, data, off, end)
		switch r.status {
		case http.StatusOK:
			return videoID(t, r), requests
		case http.StatusServiceUnavailable:
			q := f.put(t, uri, fmt.Sprintf("bytes */%d", total), nil)
			if off = committed(t, q); off < 0 {
				t.Fatalf("status query after 503: status %d, want 308", q.status)
			}
		default:
			if off = committed(t, r); off < 0 {
				t.Fatalf("chunk %d-%d: status %d: %s", off, end, r.status, r.body)
			}
		}
	}
	t.Fatalf("upload did not finish in 1000 requests")
	return "", 0
}

// waitFor polls cond until it holds, failing the test after a generous
// timeout.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
