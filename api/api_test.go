package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"gopkg.in/yaml.v3"

	"atomuploads/api"
	"atomuploads/credentials"
	"atomuploads/devstack/stacktest"
	"atomuploads/store"
	"atomuploads/upload"
)

const token = "test-token-0123456789"

// fakeSessions records aborted YouTube sessions (the API's only use of YouTube).
type fakeSessions struct {
	mu       sync.Mutex
	canceled []string
}

func (f *fakeSessions) Cancel(_ context.Context, uri string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.canceled = append(f.canceled, uri)
	return nil
}

type harness struct {
	url      string
	stack    *stacktest.Stack
	store    *store.Store
	logs     *stacktest.Logs
	sessions *fakeSessions
	srv      *api.Server
	driver   *fakeDriver
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	st := stacktest.New(t)
	log, logs := stacktest.NewLogger(t)
	s := store.New(st.DynamoDB, st.Table, time.Hour)
	sessions := &fakeSessions{}
	driver := &fakeDriver{}
	srv := api.New(api.Config{
		Tokens:         []string{"another-token-000000", token},
		Region:         st.AWS.Region,
		Bucket:         st.Bucket,
		PartSize:       8 * upload.MiB,
		MaxBodyBytes:   64 << 10,
		RequestTimeout: 10 * time.Second,
		YouTube:        true,
		Transcode:      true,
	}, s, credentials.NewIssuer(st.STS, "arn:aws:iam::000000000000:role/upload", st.Bucket, time.Hour), sessions, log,
		api.WithRetry(driver, st.S3, st.Bucket))
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &harness{url: hs.URL, stack: st, store: s, logs: logs, sessions: sessions, srv: srv, driver: driver}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (h *harness) do(t testing.TB, method, path, auth string, body any) response {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, h.url+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

type record struct {
	ID           string `json:"id"`
	AtomID       string `json:"atomId"`
	Filename     string `json:"filename"`
	Size         int64  `json:"size"`
	ContentType  string `json:"contentType"`
	Status       string `json:"status"`
	CreatedAt    string `json:"createdAt"`
	UpdatedAt    string `json:"updatedAt"`
	Region       string `json:"region"`
	Bucket       string `json:"bucket"`
	Destinations []struct {
		Type     string         `json:"type"`
		Status   string         `json:"status"`
		Progress float64        `json:"progress"`
		Details  map[string]any `json:"details"`
		Error    string         `json:"error"`
	} `json:"destinations"`
	Parts []struct {
		Start    int64  `json:"start"`
		End      int64  `json:"end"`
		Key      string `json:"key"`
		Complete bool   `json:"complete"`
	} `json:"parts"`
	Credentials *struct {
		AccessID     string `json:"temporaryAccessId"`
		SecretKey    string `json:"temporarySecretKey"`
		SessionToken string `json:"sessionToken"`
		Expiry       int64  `json:"expiry"`
	} `json:"credentials"`
}

func decode[T any](t testing.TB, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return v
}

func startBody(size int64) map[string]any {
	return map[string]any{
		"filename": "clip.mp4", "size": size, "contentType": "video/mp4",
		"destinations": []map[string]any{
			{"type": "youtube", "title": "A clip", "description": "d", "tags": []string{"news"}, "categoryId": "25", "privacyStatus": "private"},
			{"type": "s3Bucket"},
		},
	}
}

func TestStartGetListRefreshCancel(t *testing.T) {
	h := newHarness(t)
	const size = 24617583
	res := h.do(t, "POST", "/api2/atom/atom-1/uploads", token, startBody(size))
	if res.status != http.StatusCreated {
		t.Fatalf("start: got %d %s, want 201", res.status, res.body)
	}
	started := decode[record](t, res)
	if started.AtomID != "atom-1" || started.Filename != "clip.mp4" || started.Size != size || started.Status != "uploading" ||
		started.Bucket != h.stack.Bucket || started.Region != h.stack.AWS.Region || started.CreatedAt == "" {
		t.Errorf("started record = %+v", started)
	}
	if loc := res.header.Get("Location"); loc != "/api2/atom/atom-1/uploads/"+started.ID {
		t.Errorf("Location = %q, want the upload's URL", loc)
	}
	if c := started.Credentials; c == nil || c.AccessID == "" || c.SecretKey == "" || c.SessionToken == "" || c.Expiry < time.Now().Add(50*time.Minute).Unix() {
		t.Fatalf("credentials = %+v, want a full set valid for about an hour", c)
	}
	// 24617583 bytes in 8 MiB parts: 3 parts, the last one short; end exclusive.
	if len(started.Parts) != 3 || started.Parts[0].Start != 0 || started.Parts[0].End != 8388608 ||
		started.Parts[2].End != size || started.Parts[1].Key != "uploads/atom-1/"+started.ID+"/parts/1" || started.Parts[0].Complete {
		t.Errorf("parts = %+v", started.Parts)
	}
	if len(started.Destinations) != 2 || started.Destinations[0].Type != "youtube" || started.Destinations[0].Status != "waiting" ||
		started.Destinations[1].Type != "s3Bucket" || started.Destinations[1].Progress != 0 {
		t.Errorf("destinations = %+v", started.Destinations)
	}

	got := h.do(t, "GET", "/api2/atom/atom-1/uploads/"+started.ID, token, nil)
	if got.status != 200 {
		t.Fatalf("get: %d %s", got.status, got.body)
	}
	if g := decode[record](t, got); g.ID != started.ID || g.Credentials != nil || strings.Contains(string(got.body), "credentials") {
		t.Errorf("get = %s, want the record without credentials", got.body)
	}

	second := decode[record](t, h.do(t, "POST", "/api2/atom/atom-1/uploads", token, startBody(1)))
	h.do(t, "POST", "/api2/atom/atom-2/uploads", token, startBody(1))
	list := decode[struct{ Uploads []record }](t, h.do(t, "GET", "/api2/atom/atom-1/uploads", token, nil))
	if len(list.Uploads) != 2 || list.Uploads[0].ID != second.ID || list.Uploads[1].ID != started.ID {
		t.Errorf("list = %+v, want [%s %s] (newest first, this atom only)", list.Uploads, second.ID, started.ID)
	}
	for _, u := range list.Uploads {
		if u.Credentials != nil {
			t.Error("list shows credentials")
		}
	}

	ref := h.do(t, "POST", "/api2/atom/atom-1/uploads/"+started.ID+"/credentials", token, nil)
	fresh := decode[record](t, ref)
	if ref.status != 200 || fresh.Credentials == nil || fresh.Credentials.SessionToken == started.Credentials.SessionToken {
		t.Errorf("refresh: %d %s, want new credentials", ref.status, ref.body)
	}

	// The worker stores a session URI; cancelling aborts it.
	if _, err := h.store.Update(context.Background(), "atom-1", started.ID, func(u *upload.Upload) error {
		u.Destination(upload.YouTube).Session = "https://upload.example/session/1"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	del := h.do(t, "DELETE", "/api2/atom/atom-1/uploads/"+started.ID, token, nil)
	cancelled := decode[record](t, del)
	if del.status != 200 || cancelled.Status != "cancelled" || cancelled.Destinations[0].Status != "failed" || cancelled.Destinations[0].Error != "cancelled" {
		t.Errorf("cancel: %d %s", del.status, del.body)
	}
	if !slices.Equal(h.sessions.canceled, []string{"https://upload.example/session/1"}) {
		t.Errorf("aborted sessions = %v, want the upload's", h.sessions.canceled)
	}
	if again := h.do(t, "DELETE", "/api2/atom/atom-1/uploads/"+started.ID, token, nil); again.status != http.StatusConflict {
		t.Errorf("cancel twice: %d %s, want 409", again.status, again.body)
	}
	if r := h.do(t, "POST", "/api2/atom/atom-1/uploads/"+started.ID+"/credentials", token, nil); r.status != http.StatusConflict {
		t.Errorf("credentials for a cancelled upload: %d %s, want 409", r.status, r.body)
	}
	if strings.Contains(h.logs.String(), "upload.example/session") {
		t.Error("a log line shows the YouTube session URI")
	}
}

// TestAnExpiredUploadGetsNoCredentials: once an upload has expired, the
// refresh route refuses it credentials with 409 and the reason; the record
// shows the expiry, and it cannot be cancelled any more.
func TestAnExpiredUploadGetsNoCredentials(t *testing.T) {
	h := newHarness(t)
	started := decode[record](t, h.do(t, "POST", "/api2/atom/atom-1/uploads", token, startBody(24617583)))
	if _, err := h.store.Update(context.Background(), "atom-1", started.ID, func(u *upload.Upload) error {
		return u.Expire(u.CreatedAt.Add(25*time.Hour), 24*time.Hour)
	}); err != nil {
		t.Fatal(err)
	}
	r := h.do(t, "POST", "/api2/atom/atom-1/uploads/"+started.ID+"/credentials", token, nil)
	msg := decode[struct{ Message string }](t, r).Message
	if r.status != http.StatusConflict || !strings.Contains(msg, "has expired (upload abandoned: no part arrived for 24h)") || !strings.Contains(msg, "no credentials") {
		t.Errorf("credentials for an expired upload: %d %q, want 409 saying it expired and why", r.status, msg)
	}
	got := decode[struct {
		record
		Error string `json:"error"`
	}](t, h.do(t, "GET", "/api2/atom/atom-1/uploads/"+started.ID, token, nil))
	if got.Status != "expired" || got.Error != "upload abandoned: no part arrived for 24h" || got.Destinations[0].Status != "failed" || got.Destinations[0].Error != got.Error {
		t.Errorf("expired record = %+v", got)
	}
	if r := h.do(t, "DELETE", "/api2/atom/atom-1/uploads/"+started.ID, token, nil); r.status != http.StatusConflict {
		t.Errorf("cancel an expired upload: %d %s, want 409", r.status, r.body)
	}
}

// TestOpenAPIListsEveryStatus: the contract's status enum is the domain's.
func TestOpenAPIListsEveryStatus(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas struct {
				Upload struct {
					Properties struct {
						Status struct {
							Enum []string `yaml:"enum"`
						} `yaml:"status"`
					} `yaml:"properties"`
				} `yaml:"Upload"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	b, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, s := range upload.Statuses {
		want = append(want, string(s))
	}
	if got := doc.Components.Schemas.Upload.Properties.Status.Enum; !slices.Equal(got, want) {
		t.Errorf("openapi.yaml's upload statuses %v, want %v", got, want)
	}
}

func TestAuthentication(t *testing.T) {
	h := newHarness(t)
	for _, path := range []string{"/api2/atom/atom-1/uploads", "/api2/openapi.yaml", "/api2/atom/atom-1/uploads/01JZ4Q7V9X8Y6W5T3S2R1P0N9M"} {
		for _, auth := range []string{"", "wrong-token-0123456789", token + "x"} {
			if r := h.do(t, "GET", path, auth, nil); r.status != http.StatusUnauthorized || !strings.Contains(string(r.body), "message") {
				t.Errorf("GET %s with %q: %d %s, want 401 with a message", path, auth, r.status, r.body)
			}
		}
	}
	if r := h.do(t, "GET", "/healthcheck", "", nil); r.status != 200 {
		t.Errorf("healthcheck without a token: %d, want 200", r.status)
	}
	h.srv.Drain()
	if r := h.do(t, "GET", "/healthcheck", "", nil); r.status != http.StatusServiceUnavailable {
		t.Errorf("healthcheck while draining: %d, want 503", r.status)
	}
}

func TestNotFoundAndAnotherAtomsUpload(t *testing.T) {
	h := newHarness(t)
	u := decode[record](t, h.do(t, "POST", "/api2/atom/atom-1/uploads", token, startBody(100)))
	for _, path := range []string{
		"/api2/atom/atom-2/uploads/" + u.ID,
		"/api2/atom/atom-1/uploads/01JZ4Q7V9X8Y6W5T3S2R1P0N9M",
	} {
		if r := h.do(t, "GET", path, token, nil); r.status != http.StatusNotFound {
			t.Errorf("GET %s: %d %s, want 404", path, r.status, r.body)
		}
		if r := h.do(t, "DELETE", path, token, nil); r.status != http.StatusNotFound {
			t.Errorf("DELETE %s: %d %s, want 404", path, r.status, r.body)
		}
	}
}

func TestBadRequestsSayWhatToFix(t *testing.T) {
	h := newHarness(t)
	withDest := func(d ...map[string]any) map[string]any {
		b := startBody(1000)
		b["destinations"] = d
		return b
	}
	yt := func(kv ...any) map[string]any {
		m := map[string]any{"type": "youtube", "title": "ok"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	with := func(k string, v any) map[string]any {
		b := startBody(1000)
		b[k] = v
		return b
	}
	tests := []struct {
		name string
		path string
		body any
		code int
		want string
	}{
		{"size zero", "/api2/atom/a/uploads", with("size", 0), 400, "size must be at least 1 byte"},
		{"size negative", "/api2/atom/a/uploads", with("size", -5), 400, "size must be at least 1 byte"},
		{"size above ceiling", "/api2/atom/a/uploads", with("size", upload.MaxFileSize+1), 400, "256 GB"},
		{"size not a number", "/api2/atom/a/uploads", with("size", "big"), 400, `field "size" must be a int64`},
		{"no filename", "/api2/atom/a/uploads", with("filename", ""), 400, "filename is required"},
		{"not video", "/api2/atom/a/uploads", with("contentType", "text/html"), 400, "must be video/*"},
		{"no destinations", "/api2/atom/a/uploads", withDest(), 400, "destinations must name at least one"},
		{"unknown destination", "/api2/atom/a/uploads", withDest(map[string]any{"type": "vimeo"}), 400, `"vimeo" is unknown`},
		{"missing title", "/api2/atom/a/uploads", withDest(yt("title", "")), 400, "title is required"},
		{"long title", "/api2/atom/a/uploads", withDest(yt("title", strings.Repeat("t", 101))), 400, "at most 100 characters, got 101"},
		{"title with <", "/api2/atom/a/uploads", withDest(yt("title", "a <b>")), 400, "must not contain < or >"},
		{"bad privacy", "/api2/atom/a/uploads", withDest(yt("privacyStatus", "secret")), 400, "privacyStatus"},
		{"two youtubes", "/api2/atom/a/uploads", withDest(yt(), yt()), 400, "only one youtube destination"},
		{"title on s3Bucket", "/api2/atom/a/uploads", withDest(map[string]any{"type": "s3Bucket", "title": "x"}), 400, "apply only to youtube"},
		{"unknown field", "/api2/atom/a/uploads", with("colour", "red"), 400, `unknown field "colour"`},
		{"not JSON", "/api2/atom/a/uploads", "{nope", 400, "not valid JSON"},
		{"empty body", "/api2/atom/a/uploads", "", 400, "send a JSON body"},
		{"two objects", "/api2/atom/a/uploads", `{"filename":"a"} {}`, 400, "one JSON object"},
		{"too large", "/api2/atom/a/uploads", `{"filename":"` + strings.Repeat("a", 70<<10) + `"}`, 413, "larger than 65536 bytes"},
		{"bad atom id", "/api2/atom/a.b/uploads", startBody(1), 400, "atomId"},
		{"bad upload id", "/api2/atom/a/uploads/not-an-id/credentials", nil, 400, "uploadId"},
		{"several problems at once", "/api2/atom/a/uploads", map[string]any{"filename": "", "size": 0, "destinations": []any{}}, 400, "filename is required; size must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do(t, "POST", tt.path, token, tt.body)
			msg := decode[struct{ Message string }](t, r).Message
			if r.status != tt.code || !strings.Contains(msg, tt.want) {
				t.Errorf("got %d %q, want %d with %q", r.status, msg, tt.code, tt.want)
			}
		})
	}
	if r := h.do(t, "GET", "/api2/atom/a/uploads?limit=500", token, nil); r.status != 400 {
		t.Errorf("limit=500: got %d, want 400", r.status)
	}
	if r := h.do(t, "PUT", "/api2/atom/a/uploads", token, nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("PUT: got %d, want 405", r.status)
	}
}

func TestNoCredentialInTableOrLogs(t *testing.T) {
	h := newHarness(t)
	started := decode[record](t, h.do(t, "POST", "/api2/atom/atom-1/uploads", token, startBody(20<<20)))
	refreshed := decode[record](t, h.do(t, "POST", "/api2/atom/atom-1/uploads/"+started.ID+"/credentials", token, nil))
	h.do(t, "GET", "/api2/atom/atom-1/uploads/"+started.ID, token, nil)
	secrets := []string{token}
	for _, c := range []*record{&started, &refreshed} {
		if c.Credentials == nil {
			t.Fatal("no credentials issued")
		}
		secrets = append(secrets, c.Credentials.AccessID, c.Credentials.SecretKey, c.Credentials.SessionToken)
	}
	scan, err := h.stack.DynamoDB.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(h.stack.Table)})
	if err != nil {
		t.Fatal(err)
	}
	if len(scan.Items) != 1 {
		t.Fatalf("table has %d items, want 1", len(scan.Items))
	}
	items := fmt.Sprintf("%#v", scan.Items)
	logs := h.logs.String()
	if !strings.Contains(logs, started.ID) {
		t.Fatalf("the logs do not mention the upload; is logging wired? %s", logs)
	}
	for _, s := range secrets {
		if strings.Contains(items, s) {
			t.Errorf("the table holds a credential (%.4s…)", s)
		}
		if strings.Contains(logs, s) {
			t.Errorf("the logs hold a credential (%.4s…)", s)
		}
	}
}

// TestOpenAPIMatchesRoutes fails when a route and api/openapi.yaml disagree.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	h := newHarness(t)
	r := h.do(t, "GET", "/api2/openapi.yaml", token, nil)
	if r.status != 200 {
		t.Fatalf("GET openapi.yaml: %d", r.status)
	}
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			if method != "parameters" {
				documented = append(documented, strings.ToUpper(method)+" "+path)
			}
		}
	}
	served := h.srv.Routes()
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Errorf("routes and openapi.yaml disagree:\nserved:     %v\ndocumented: %v", served, documented)
	}
}

// BenchmarkStartUpload measures POST /uploads against the local stack
// (DynamoDB Local for the record, MinIO's STS for the credentials).
func BenchmarkStartUpload(b *testing.B) {
	h := newHarness(b)
	body, _ := json.Marshal(startBody(10 << 30))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", h.url+"/api2/atom/bench/uploads", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusCreated {
				b.Fatalf("status %d", res.StatusCode)
			}
		}
	})
}
