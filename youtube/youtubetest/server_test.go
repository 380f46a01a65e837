package youtubetest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestTokenEndpoint(t *testing.T) {
	f := newFixture(t, Options{})
	good := url.Values{
		"grant_type":    {"refresh_token"},
		"client_id":     {testClientID},
		"client_secret": {testClientSecret},
		"refresh_token": {testRefreshToken},
	}
	with := func(k, v string) url.Values {
		form := url.Values{}
		for key, vals := range good {
			form[key] = vals
		}
		form.Set(k, v)
		return form
	}
	tests := []struct {
		name       string
		form       url.Values
		basic      bool
		wantStatus int
	}{
		{"valid", good, false, http.StatusOK},
		{"client credentials in basic auth", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {testRefreshToken}}, true, http.StatusOK},
		{"wrong refresh token", with("refresh_token", "1//other"), false, http.StatusBadRequest},
		{"wrong client secret", with("client_secret", "nope"), false, http.StatusBadRequest},
		{"wrong client id", with("client_id", "nope"), false, http.StatusBadRequest},
		{"wrong grant", with("grant_type", "authorization_code"), false, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, f.hs.URL+"/token", strings.NewReader(tt.form.Encode()))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.basic {
				req.SetBasicAuth(testClientID, testClientSecret)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d (%v)", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantStatus != http.StatusOK {
				if got := body["error"]; got != "invalid_grant" {
					t.Errorf("error = %v, want invalid_grant", got)
				}
				return
			}
			if body["access_token"] == "" || body["token_type"] != "Bearer" || body["expires_in"] != float64(3600) {
				t.Errorf("token response = %v, want a Bearer token expiring in 3600s", body)
			}
		})
	}
}

func TestEveryAPIRouteNeedsAValidToken(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	f := newFixture(t, Options{TokenTTL: time.Minute, Now: clock})
	uri := f.initiate(t, 10)
	routes := []struct {
		method, target string
		headers        map[string]string
	}{
		{http.MethodPost, f.hs.URL + "/upload/youtube/v3/videos?uploadType=resumable&part=snippet", map[string]string{"Content-Type": "application/json"}},
		{http.MethodPut, uri, map[string]string{"Content-Range": "bytes */10"}},
		{http.MethodDelete, uri, nil},
		{http.MethodGet, f.hs.URL + "/youtube/v3/videos?part=status&id=x", nil},
	}
	check := func(t *testing.T, auth string) {
		t.Helper()
		for _, rt := range routes {
			h := map[string]string{"Authorization": auth}
			for k, v := range rt.headers {
				h[k] = v
			}
			r := f.do(t, rt.method, rt.target, nil, 0, h)
			if r.status != http.StatusUnauthorized {
				t.Errorf("%s %s with Authorization %q: status %d, want 401", rt.method, rt.target, auth, r.status)
				continue
			}
			if got := reason(t, r); got != "authError" {
				t.Errorf("reason = %q, want authError", got)
			}
		}
	}
	t.Run("no token", func(t *testing.T) { check(t, "") })
	t.Run("unknown token", func(t *testing.T) { check(t, "Bearer ya29.forged") })
	t.Run("expired token", func(t *testing.T) {
		mu.Lock()
		now = now.Add(time.Minute)
		mu.Unlock()
		check(t, "Bearer "+f.token)
	})
	t.Run("revoked token", func(t *testing.T) {
		f.token = f.fetchToken(t)
		if r := f.put(t, uri, "bytes */10", nil); r.status != http.StatusPermanentRedirect {
			t.Fatalf("fresh token: status %d, want 308", r.status)
		}
		f.srv.RevokeTokens()
		check(t, "Bearer "+f.token)
	})
	if got := f.srv.Requests()[KindUnauthorized]; got != 4*len(routes) {
		t.Errorf("unauthorized requests = %d, want %d", got, 4*len(routes))
	}
	if v := f.srv.Violations(); len(v) != 0 {
		t.Errorf("violations = %q, want none", v)
	}
}

func TestInitiate(t *testing.T) {
	f := newFixture(t, Options{})
	const base = "/upload/youtube/v3/videos?uploadType=resumable&part=snippet,status"
	tests := []struct {
		name          string
		query         string
		length        string
		contentType   string
		body          string
		wantStatus    int
		wantReason    string
		wantViolation bool
	}{
		{name: "valid", query: base, length: "1000", body: metaJSON, wantStatus: 200},
		{name: "length unknown (Go client library)", query: base, body: metaJSON, wantStatus: 200},
		{name: "256 GB", query: base, length: fmt.Sprint(int64(MaxFileSize)), body: metaJSON, wantStatus: 200},
		{name: "above 256 GiB", query: base, length: fmt.Sprint(int64(MaxFileSize) + 1), body: metaJSON, wantStatus: 400, wantReason: "invalidValue", wantViolation: true},
		{name: "zero length", query: base, length: "0", body: metaJSON, wantStatus: 400, wantReason: "invalidValue", wantViolation: true},
		{name: "negative length", query: base, length: "-5", body: metaJSON, wantStatus: 400, wantReason: "invalidValue", wantViolation: true},
		{name: "length not a number", query: base, length: "12kB", body: metaJSON, wantStatus: 400, wantReason: "invalidValue", wantViolation: true},
		{name: "length with a plus", query: base, length: "+12", body: metaJSON, wantStatus: 400, wantReason: "invalidValue", wantViolation: true},
		{name: "not JSON", query: base, length: "10", contentType: "text/plain", body: metaJSON, wantStatus: 400, wantReason: "badContent", wantViolation: true},
		{name: "unparsable body", query: base, length: "10", body: `{"snippet":`, wantStatus: 400, wantReason: "parseError", wantViolation: true},
		{name: "no title", query: base, length: "10", body: `{"snippet":{"description":"x"}}`, wantStatus: 400, wantReason: "invalidTitle"},
		{name: "no snippet", query: base, length: "10", body: `{"status":{"privacyStatus":"private"}}`, wantStatus: 400, wantReason: "invalidTitle"},
		{name: "101-character title", query: base, length: "10", body: `{"snippet":{"title":"` + strings.Repeat("é", 101) + `"}}`, wantStatus: 400, wantReason: "invalidTitle"},
		{name: "100-character title", query: base, length: "10", body: `{"snippet":{"title":"` + strings.Repeat("é", 100) + `"}}`, wantStatus: 200},
		{name: "angle brackets in title", query: base, length: "10", body: `{"snippet":{"title":"<b>x</b>"}}`, wantStatus: 400, wantReason: "invalidTitle"},
		{name: "bad privacy", query: base, length: "10", body: `{"snippet":{"title":"x"},"status":{"privacyStatus":"secret"}}`, wantStatus: 400, wantReason: "invalidVideoMetadata"},
		{name: "bad category", query: base, length: "10", body: `{"snippet":{"title":"x","categoryId":"music"}}`, wantStatus: 400, wantReason: "invalidCategoryId"},
		{name: "multipart", query: "/upload/youtube/v3/videos?uploadType=multipart&part=snippet", length: "10", body: metaJSON, wantStatus: 400, wantReason: "invalidParameter"},
		{name: "no part", query: "/upload/youtube/v3/videos?uploadType=resumable", length: "10", body: metaJSON, wantStatus: 400, wantReason: "invalidParameter"},
		{name: "unknown part", query: "/upload/youtube/v3/videos?uploadType=resumable&part=snippet,bogus", length: "10", body: metaJSON, wantStatus: 400, wantReason: "invalidParameter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(f.srv.Violations())
			ct := tt.contentType
			if ct == "" {
				ct = "application/json; charset=UTF-8"
			}
			r := f.do(t, http.MethodPost, f.hs.URL+tt.query, strings.NewReader(tt.body), int64(len(tt.body)), map[string]string{
				"Content-Type":            ct,
				"X-Upload-Content-Length": tt.length,
				"X-Upload-Content-Type":   "video/mp4",
			})
			if r.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			if tt.wantStatus == 200 {
				loc, err := url.Parse(r.header.Get("Location"))
				if err != nil || loc.Scheme != "http" || loc.Host != strings.TrimPrefix(f.hs.URL, "http://") ||
					loc.Path != "/upload/youtube/v3/videos" || loc.Query().Get("uploadType") != "resumable" || loc.Query().Get("upload_id") == "" {
					t.Errorf("Location = %q, want %s/upload/youtube/v3/videos?uploadType=resumable&upload_id=…", r.header.Get("Location"), f.hs.URL)
				}
			} else if got := reason(t, r); got != tt.wantReason {
				t.Errorf("reason = %q, want %q", got, tt.wantReason)
			}
			if got := len(f.srv.Violations()) - before; got != map[bool]int{true: 1}[tt.wantViolation] {
				t.Errorf("new violations = %d, want %d (%q)", got, map[bool]int{true: 1}[tt.wantViolation], f.srv.Violations())
			}
		})
	}
}

func TestQuotaExceeded(t *testing.T) {
	f := newFixture(t, Options{QuotaExceeded: true})
	r := f.do(t, http.MethodPost, f.hs.URL+"/upload/youtube/v3/videos?uploadType=resumable&part=snippet",
		strings.NewReader(metaJSON), int64(len(metaJSON)), map[string]string{"Content-Type": "application/json", "X-Upload-Content-Length": "10"})
	if r.status != http.StatusForbidden {
		t.Fatalf("status = %d, want 403", r.status)
	}
	if got := reason(t, r); got != "quotaExceeded" {
		t.Errorf("reason = %q, want quotaExceeded", got)
	}
	f.srv.SetQuotaExceeded(false)
	f.initiate(t, 10)
	if got := len(f.srv.Sessions()); got != 1 {
		t.Errorf("sessions = %d, want 1", got)
	}
}

func TestChunkedUploadIsByteExact(t *testing.T) {
	f := newFixture(t, Options{})
	data := testData(2*ChunkAlign+1000, 1)
	uri := f.initiate(t, int64(len(data)))

	if got := committed(t, f.put(t, uri, fmt.Sprintf("bytes */%d", len(data)), nil)); got != 0 {
		t.Fatalf("status before any chunk: committed %d, want 0 (308 without Range)", got)
	}
	r := f.chunk(t, uri, data, 0, ChunkAlign)
	if r.status != http.StatusPermanentRedirect || r.header.Get("Range") != fmt.Sprintf("bytes=0-%d", ChunkAlign-1) {
		t.Fatalf("first chunk: status %d Range %q, want 308 bytes=0-%d", r.status, r.header.Get("Range"), ChunkAlign-1)
	}
	if got := committed(t, f.put(t, uri, fmt.Sprintf("bytes */%d", len(data)), nil)); got != ChunkAlign {
		t.Fatalf("status after one chunk: committed %d, want %d", got, ChunkAlign)
	}
	if got := committed(t, f.chunk(t, uri, data, ChunkAlign, 2*ChunkAlign)); got != 2*ChunkAlign {
		t.Fatalf("second chunk: committed %d, want %d", got, 2*ChunkAlign)
	}
	r = f.chunk(t, uri, data, 2*ChunkAlign, int64(len(data)))
	if r.status != http.StatusOK {
		t.Fatalf("last chunk: status %d, want 200: %s", r.status, r.body)
	}
	id := videoID(t, r)
	var res struct {
		Snippet struct{ Title string } `json:"snippet"`
		Status  struct {
			UploadStatus, PrivacyStatus string
		} `json:"status"`
	}
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatal(err)
	}
	if res.Snippet.Title != "A clip" || res.Status.UploadStatus != "uploaded" || res.Status.PrivacyStatus != "private" {
		t.Errorf("video = %s, want title A clip, uploadStatus uploaded, privacy private", r.body)
	}

	// The status of a complete upload is the video again.
	if r := f.put(t, uri, fmt.Sprintf("bytes */%d", len(data)), nil); r.status != http.StatusOK || videoID(t, r) != id {
		t.Errorf("status after completion: %d %s, want 200 with video %s", r.status, r.body, id)
	}

	v, ok := f.srv.Video(id)
	if !ok {
		t.Fatalf("Video(%s) not found", id)
	}
	want := Video{
		ID: id, Title: "A clip", Description: "d", Tags: []string{"a", "b"}, CategoryID: "25", PrivacyStatus: "private",
		ContentType: "video/mp4", Size: int64(len(data)), SHA256: sha(data), Sessions: 1,
		Chunks: []Chunk{{0, ChunkAlign}, {ChunkAlign, ChunkAlign}, {2 * ChunkAlign, 1000}},
	}
	if fmt.Sprint(v) != fmt.Sprint(want) {
		t.Errorf("video = %+v, want %+v", v, want)
	}
	if got := f.srv.BytesReceived(); got != int64(len(data)) {
		t.Errorf("bytes received = %d, want %d", got, len(data))
	}
	if got := f.srv.Sessions(); len(got) != 1 || got[0].State != SessionComplete || got[0].VideoID != id || got[0].Committed != int64(len(data)) {
		t.Errorf("sessions = %+v, want one complete session of video %s", got, id)
	}
	if got := f.srv.Requests(); got[KindChunk] != 3 || got[KindStatus] != 3 || got[KindInitiate] != 1 {
		t.Errorf("requests = %v, want 3 chunks, 3 status queries, 1 initiation", got)
	}
	if v := f.srv.Violations(); len(v) != 0 {
		t.Errorf("violations = %q, want none", v)
	}
}

func TestWholeFileWithoutContentRange(t *testing.T) {
	f := newFixture(t, Options{})
	data := testData(1000, 2)
	uri := f.initiate(t, int64(len(data)))
	r := f.do(t, http.MethodPut, uri, strings.NewReader(string(data)), int64(len(data)), nil)
	if r.status != http.StatusOK {
		t.Fatalf("status = %d, want 200: %s", r.status, r.body)
	}
	if v, _ := f.srv.Video(videoID(t, r)); v.SHA256 != sha(data) {
		t.Errorf("sha256 = %s, want %s", v.SHA256, sha(data))
	}
}

func TestViolationsAreDetected(t *testing.T) {
	data := testData(3*ChunkAlign, 3)
	total := len(data)
	tests := []struct {
		name  string
		send  func(t *testing.T, f *fixture, uri string) reply
		setup int64 // bytes committed first, in 256 KiB chunks
	}{
		{name: "gap", send: func(t *testing.T, f *fixture, uri string) reply {
			return f.chunk(t, uri, data, ChunkAlign, 2*ChunkAlign)
		}},
		{name: "overlap", setup: 2 * ChunkAlign, send: func(t *testing.T, f *fixture, uri string) reply {
			return f.chunk(t, uri, data, ChunkAlign, 3*ChunkAlign)
		}},
		{name: "resend of a committed chunk", setup: ChunkAlign, send: func(t *testing.T, f *fixture, uri string) reply {
			return f.chunk(t, uri, data, 0, ChunkAlign)
		}},
		{name: "chunk not a multiple of 256 KiB", send: func(t *testing.T, f *fixture, uri string) reply {
			return f.chunk(t, uri, data, 0, ChunkAlign+1)
		}},
		{name: "small chunk", send: func(t *testing.T, f *fixture, uri string) reply {
			return f.chunk(t, uri, data, 0, 1000)
		}},
		{name: "total differs from the declared length", send: func(t *testing.T, f *fixture, uri string) reply {
			return f.put(t, uri, fmt.Sprintf("bytes 0-%d/%d", ChunkAlign-1, total+1), data[:ChunkAlign])
		}},
		{name: "status query with another total", send: func(t *testing.T, f *fixture, uri string) reply {
			return f.put(t, uri, fmt.Sprintf("bytes */%d", total-1), nil)
		}},
		{name: "range beyond the total", send: func(t *testing.T, f *fixture, uri string) reply {
			return f.put(t, uri, fmt.Sprintf("bytes 0-%d/%d", total, total), data)
		}},
		{name: "Content-Length differs from the range", send: func(t *testing.T, f *fixture, uri string) reply {
			return f.put(t, uri, fmt.Sprintf("bytes 0-%d/%d", ChunkAlign-1, total), data[:ChunkAlign-1])
		}},
		{name: "malformed Content-Range", send: func(t *testing.T, f *fixture, uri string) reply {
			return f.put(t, uri, fmt.Sprintf("bytes=0-%d/%d", ChunkAlign-1, total), data[:ChunkAlign])
		}},
		{name: "reversed range", send: func(t *testing.T, f *fixture, uri string) reply {
			return f.put(t, uri, fmt.Sprintf("bytes 10-0/%d", total), data[:11])
		}},
		{name: "status query with a body", send: func(t *testing.T, f *fixture, uri string) reply {
			return f.put(t, uri, fmt.Sprintf("bytes */%d", total), data[:10])
		}},
		{name: "chunk after completion", setup: int64(total), send: func(t *testing.T, f *fixture, uri string) reply {
			return f.chunk(t, uri, data, int64(total)-ChunkAlign, int64(total))
		}},
		{name: "chunked transfer encoding", send: func(t *testing.T, f *fixture, uri string) reply {
			return f.do(t, http.MethodPut, uri, io.MultiReader(strings.NewReader(string(data[:ChunkAlign]))), -1,
				map[string]string{"Content-Range": fmt.Sprintf("bytes 0-%d/%d", ChunkAlign-1, total)})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // each refused body closes its connection, which takes a moment
			f := newFixture(t, Options{})
			uri := f.initiate(t, int64(total))
			for off := int64(0); off < tt.setup; off += ChunkAlign {
				if r := f.chunk(t, uri, data, off, off+ChunkAlign); r.status != http.StatusPermanentRedirect && r.status != http.StatusOK {
					t.Fatalf("setup chunk at %d: status %d", off, r.status)
				}
			}
			r := tt.send(t, f, uri)
			if r.status != http.StatusBadRequest {
				t.Errorf("status = %d, want 400: %s", r.status, r.body)
			}
			if v := f.srv.Violations(); len(v) != 1 {
				t.Errorf("violations = %q, want exactly one", v)
			}
			if s := f.srv.Sessions(); s[0].Committed != tt.setup {
				t.Errorf("committed = %d, want %d (unchanged by the violation)", s[0].Committed, tt.setup)
			}
			if got := f.srv.BytesReceived(); got != tt.setup {
				t.Errorf("bytes received = %d, want %d: a refused chunk's body is not read", got, tt.setup)
			}
		})
	}
}

func TestOneWriterAtATime(t *testing.T) {
	f := newFixture(t, Options{})
	data := testData(2*ChunkAlign, 4)
	uri := f.initiate(t, int64(len(data)))

	// The first chunk's body is held back, so the server is mid-chunk.
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.CloseWithError(io.ErrClosedPipe) }) // before the server closes
	first := make(chan reply, 1)
	go func() {
		first <- f.do(t, http.MethodPut, uri, pr, ChunkAlign, map[string]string{"Content-Range": fmt.Sprintf("bytes 0-%d/%d", ChunkAlign-1, len(data))})
	}()
	waitFor(t, "the first chunk to reach the server", func() bool { return f.srv.Requests()[KindChunk] == 1 })

	if r := f.chunk(t, uri, data, 0, ChunkAlign); r.status != http.StatusBadRequest {
		t.Errorf("second writer: status %d, want 400", r.status)
	}
	if v := f.srv.Violations(); len(v) != 1 || !strings.Contains(v[0], "more than one writer") {
		t.Errorf("violations = %q, want one about more than one writer", v)
	}
	// A status query while a chunk is in flight is fine.
	if got := committed(t, f.put(t, uri, fmt.Sprintf("bytes */%d", len(data)), nil)); got != 0 {
		t.Errorf("status mid-chunk: committed %d, want 0", got)
	}
	if _, err := pw.Write(data[:ChunkAlign]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if got := committed(t, <-first); got != ChunkAlign {
		t.Errorf("first chunk: committed %d, want %d", got, ChunkAlign)
	}
	if got := len(f.srv.Violations()); got != 1 {
		t.Errorf("violations = %d, want 1", got)
	}
}

func TestClientGoneMidChunkCommitsNothing(t *testing.T) {
	f := newFixture(t, Options{})
	data := testData(2*ChunkAlign, 5)
	uri := f.initiate(t, int64(len(data)))
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.CloseWithError(io.ErrClosedPipe) })
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, uri, pr)
	req.ContentLength = ChunkAlign
	req.Header.Set("Authorization", "Bearer "+f.token)
	req.Header.Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", ChunkAlign-1, len(data)))
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	if _, err := pw.Write(data[:1000]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the server to read part of the chunk", func() bool { return f.srv.Requests()[KindChunk] == 1 })
	cancel()
	pw.CloseWithError(context.Canceled)
	if err := <-done; err == nil {
		t.Fatalf("cancelled request succeeded, want an error")
	}
	waitFor(t, "the server to give up the chunk", func() bool { return !f.srv.Sessions()[0].Receiving })
	if got := committed(t, f.put(t, uri, fmt.Sprintf("bytes */%d", len(data)), nil)); got != 0 {
		t.Errorf("committed after the client went away = %d, want 0", got)
	}
	if _, n := f.upload(t, data, ChunkAlign); n != 2 {
		t.Errorf("chunks after restart = %d, want 2", n)
	}
	if v := f.srv.Violations(); len(v) != 0 {
		t.Errorf("violations = %q, want none", v)
	}
}

func TestShortCommitsAndFailuresStayByteExact(t *testing.T) {
	data := testData(20*ChunkAlign+123, 6)
	for _, opts := range []Options{
		{ShortCommitRate: 0.5, Seed: 1},
		{FailRate: 0.4, Seed: 2},
		{FailRate: 0.3, ShortCommitRate: 0.3, Seed: 3},
	} {
		t.Run(fmt.Sprintf("fail %.1f short %.1f", opts.FailRate, opts.ShortCommitRate), func(t *testing.T) {
			f := newFixture(t, opts)
			id, n := f.upload(t, data, 4*ChunkAlign)
			v, _ := f.srv.Video(id)
			if v.SHA256 != sha(data) || v.Size != int64(len(data)) {
				t.Errorf("video size %d sha256 %s, want %d %s", v.Size, v.SHA256, len(data), sha(data))
			}
			if n <= 6 {
				t.Errorf("chunk requests = %d, want more than the 6 a fault-free upload takes", n)
			}
			var next int64
			for _, c := range v.Chunks {
				if c.Start != next || c.Length <= 0 || (c.Start+c.Length < v.Size && c.Length%ChunkAlign != 0) {
					t.Fatalf("chunk log %+v is not contiguous 256 KiB-aligned chunks", v.Chunks)
				}
				next += c.Length
			}
			if next != v.Size {
				t.Errorf("chunk log covers %d bytes, want %d", next, v.Size)
			}
			if f.srv.Requests()[KindInjected] == 0 && opts.FailRate > 0 {
				t.Errorf("no failure was injected")
			}
			if viol := f.srv.Violations(); len(viol) != 0 {
				t.Errorf("violations = %q, want none", viol)
			}
		})
	}
}

// faultTrace records what a server with FailRate 1 does to a series of
// 1 MiB chunks: the committed offset after each.
func faultTrace(t *testing.T, seed uint64) (offsets []int64, received int64) {
	t.Helper()
	f := newFixture(t, Options{FailRate: 1, Seed: seed})
	data := testData(64*ChunkAlign, 7)
	uri := f.initiate(t, int64(len(data)))
	var off int64
	for range 12 {
		r := f.chunk(t, uri, data, off, off+4*ChunkAlign)
		if r.status != http.StatusServiceUnavailable || reason(t, r) != "backendError" {
			t.Fatalf("status %d, want 503 backendError", r.status)
		}
		off = committed(t, f.put(t, uri, fmt.Sprintf("bytes */%d", len(data)), nil))
		if off%ChunkAlign != 0 {
			t.Fatalf("committed %d after a failure, want a multiple of 256 KiB", off)
		}
		offsets = append(offsets, off)
	}
	if v := f.srv.Violations(); len(v) != 0 {
		t.Errorf("violations = %q, want none", v)
	}
	return offsets, f.srv.BytesReceived()
}

func TestFailuresBeforeAndAfterReadingAreDeterministic(t *testing.T) {
	a, receivedA := faultTrace(t, 42)
	b, receivedB := faultTrace(t, 42)
	if !slices.Equal(a, b) || receivedA != receivedB {
		t.Errorf("same seed: offsets %v (%d bytes read) and %v (%d bytes read), want the same", a, receivedA, b, receivedB)
	}
	if receivedA == 0 {
		t.Errorf("no failure read part of the body, want some after reading")
	}
	if receivedA >= 12*4*ChunkAlign {
		t.Errorf("every failure read the whole body, want some before reading")
	}
	if a[len(a)-1] == 0 {
		t.Errorf("no failure committed a prefix, want some: %v", a)
	}
}

func TestCancel(t *testing.T) {
	f := newFixture(t, Options{})
	data := testData(2*ChunkAlign, 8)
	uri := f.initiate(t, int64(len(data)))
	f.chunk(t, uri, data, 0, ChunkAlign)
	if r := f.do(t, http.MethodDelete, uri, nil, 0, nil); r.status != 499 {
		t.Fatalf("DELETE: status %d, want 499", r.status)
	}
	if r := f.chunk(t, uri, data, ChunkAlign, 2*ChunkAlign); r.status != http.StatusNotFound {
		t.Errorf("chunk after cancel: status %d, want 404", r.status)
	}
	if r := f.put(t, uri, fmt.Sprintf("bytes */%d", len(data)), nil); r.status != http.StatusNotFound {
		t.Errorf("status after cancel: status %d, want 404", r.status)
	}
	if r := f.do(t, http.MethodDelete, uri, nil, 0, nil); r.status != http.StatusNotFound {
		t.Errorf("second DELETE: status %d, want 404", r.status)
	}
	if s := f.srv.Sessions(); s[0].State != SessionCancelled {
		t.Errorf("state = %q, want %q", s[0].State, SessionCancelled)
	}
	if got := len(f.srv.Videos()); got != 0 {
		t.Errorf("videos = %d, want 0", got)
	}
}

func TestExpiry(t *testing.T) {
	t.Run("ExpireSession", func(t *testing.T) {
		f := newFixture(t, Options{})
		data := testData(2*ChunkAlign, 9)
		uri, other := f.initiate(t, int64(len(data))), f.initiate(t, int64(len(data)))
		f.chunk(t, uri, data, 0, ChunkAlign)
		if !f.srv.ExpireSession(UploadID(uri)) {
			t.Fatalf("ExpireSession found no session")
		}
		if f.srv.ExpireSession("nope") {
			t.Errorf("ExpireSession(nope) = true, want false")
		}
		if r := f.chunk(t, uri, data, ChunkAlign, 2*ChunkAlign); r.status != http.StatusNotFound {
			t.Errorf("chunk: status %d, want 404", r.status)
		}
		if r := f.put(t, uri, fmt.Sprintf("bytes */%d", len(data)), nil); r.status != http.StatusNotFound {
			t.Errorf("status query: status %d, want 404", r.status)
		}
		if got := committed(t, f.chunk(t, other, data, 0, ChunkAlign)); got != ChunkAlign {
			t.Errorf("other session: committed %d, want %d", got, ChunkAlign)
		}
		// A new session of the same file counts towards the video.
		id, _ := f.upload(t, data, ChunkAlign)
		if v, _ := f.srv.Video(id); v.Sessions != 3 {
			t.Errorf("video sessions = %d, want 3", v.Sessions)
		}
		f.srv.ExpireAllSessions()
		if r := f.chunk(t, other, data, ChunkAlign, 2*ChunkAlign); r.status != http.StatusNotFound {
			t.Errorf("after ExpireAllSessions: status %d, want 404", r.status)
		}
		if v := f.srv.Violations(); len(v) != 0 {
			t.Errorf("violations = %q, want none", v)
		}
	})
	t.Run("SessionTTL", func(t *testing.T) {
		now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		var mu sync.Mutex
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		f := newFixture(t, Options{SessionTTL: 24 * time.Hour, TokenTTL: 1000 * time.Hour, Now: clock})
		uri := f.initiate(t, 10)
		mu.Lock()
		now = now.Add(24*time.Hour - time.Second)
		mu.Unlock()
		if r := f.put(t, uri, "bytes */10", nil); r.status != http.StatusPermanentRedirect {
			t.Errorf("before the TTL: status %d, want 308", r.status)
		}
		mu.Lock()
		now = now.Add(time.Second)
		mu.Unlock()
		if r := f.put(t, uri, "bytes */10", nil); r.status != http.StatusNotFound {
			t.Errorf("at the TTL: status %d, want 404", r.status)
		}
		if s := f.srv.Sessions(); s[0].State != SessionExpired {
			t.Errorf("state = %q, want %q", s[0].State, SessionExpired)
		}
	})
}

func TestFailNext(t *testing.T) {
	f := newFixture(t, Options{})
	uri := f.initiate(t, 10)
	f.srv.FailNext(2)
	for i := range 2 {
		if r := f.put(t, uri, "bytes */10", nil); r.status != http.StatusServiceUnavailable {
			t.Errorf("request %d: status %d, want 503", i, r.status)
		}
	}
	if r := f.put(t, uri, "bytes */10", nil); r.status != http.StatusPermanentRedirect {
		t.Errorf("third request: status %d, want 308", r.status)
	}
	if got := f.srv.Requests()[KindInjected]; got != 2 {
		t.Errorf("injected = %d, want 2", got)
	}
	f.srv.FailTokenNext(1)
	resp, err := http.PostForm(f.hs.URL+"/token", url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("token: status %d, want 503", resp.StatusCode)
	}
	f.fetchToken(t)
}

func TestSlowAnswerKeepsTheCommit(t *testing.T) {
	f := newFixture(t, Options{Slow: time.Hour})
	data := testData(ChunkAlign, 10)
	uri := f.initiate(t, int64(len(data)))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, uri, strings.NewReader(string(data)))
	req.Header.Set("Authorization", "Bearer "+f.token)
	req.Header.Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(data)-1, len(data)))
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("slow chunk answered %d before the deadline, want a timeout", resp.StatusCode)
	}
	// The chunk was committed before the late answer: asking for the
	// status finds the video.
	f.srv.SetSlow(0)
	waitFor(t, "the chunk to be committed", func() bool { return f.srv.BytesCommitted() == int64(len(data)) })
	r := f.put(t, uri, fmt.Sprintf("bytes */%d", len(data)), nil)
	if r.status != http.StatusOK {
		t.Fatalf("status query: %d, want 200", r.status)
	}
	if v, _ := f.srv.Video(videoID(t, r)); v.SHA256 != sha(data) {
		t.Errorf("sha256 = %s, want %s", v.SHA256, sha(data))
	}
}

func TestVideosListProcessing(t *testing.T) {
	f := newFixture(t, Options{ProcessingSteps: 2})
	id, _ := f.upload(t, testData(1000, 11), ChunkAlign)
	type listed struct {
		Items []struct {
			ID     string `json:"id"`
			Status struct {
				UploadStatus  string `json:"uploadStatus"`
				FailureReason string `json:"failureReason"`
			} `json:"status"`
			ProcessingDetails struct {
				ProcessingStatus   string `json:"processingStatus"`
				ProcessingProgress struct {
					PartsTotal     string `json:"partsTotal"`
					PartsProcessed string `json:"partsProcessed"`
				} `json:"processingProgress"`
			} `json:"processingDetails"`
		} `json:"items"`
	}
	list := func(ids string) listed {
		t.Helper()
		r := f.do(t, http.MethodGet, f.hs.URL+"/youtube/v3/videos?part=status,processingDetails&id="+ids, nil, 0, nil)
		if r.status != http.StatusOK {
			t.Fatalf("list: status %d: %s", r.status, r.body)
		}
		var l listed
		if err := json.Unmarshal(r.body, &l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	var got []string
	for range 4 {
		l := list(id)
		if len(l.Items) != 1 || l.Items[0].ID != id {
			t.Fatalf("items = %+v, want video %s", l.Items, id)
		}
		it := l.Items[0]
		got = append(got, fmt.Sprintf("%s/%s %s/%s", it.Status.UploadStatus, it.ProcessingDetails.ProcessingStatus,
			it.ProcessingDetails.ProcessingProgress.PartsProcessed, it.ProcessingDetails.ProcessingProgress.PartsTotal))
	}
	want := []string{"uploaded/processing 0/2", "uploaded/processing 1/2", "processed/succeeded /", "processed/succeeded /"}
	if !slices.Equal(got, want) {
		t.Errorf("polls = %q, want %q", got, want)
	}

	r := f.do(t, http.MethodGet, f.hs.URL+"/youtube/v3/videos?part=status&id=nosuchvideo", nil, 0, nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"items":[]`) {
		t.Errorf("unknown id: %d %s, want 200 with \"items\":[]", r.status, r.body)
	}

	id2, _ := f.upload(t, testData(1000, 12), ChunkAlign)
	if !f.srv.FailProcessing(id2, "codec") {
		t.Fatalf("FailProcessing found no video")
	}
	l := list(id + "," + id2)
	if len(l.Items) != 2 || l.Items[1].Status.UploadStatus != "failed" || l.Items[1].Status.FailureReason != "codec" ||
		l.Items[1].ProcessingDetails.ProcessingStatus != "failed" {
		t.Errorf("failed video = %+v, want uploadStatus failed, failureReason codec", l.Items)
	}
	for _, q := range []string{"part=status", "id=" + id, "part=bogus&id=" + id} {
		if r := f.do(t, http.MethodGet, f.hs.URL+"/youtube/v3/videos?"+q, nil, 0, nil); r.status != http.StatusBadRequest {
			t.Errorf("list ?%s: status %d, want 400", q, r.status)
		}
	}
}
