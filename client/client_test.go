package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"atomuploads/api"
	"atomuploads/api/rest"
	"atomuploads/credentials"
	"atomuploads/devstack/stacktest"
	"atomuploads/store"
	"atomuploads/upload"
)

const (
	testToken = "client-test-token-0123456789"
	testAtom  = "atom-client-1"
	// 12 MiB + 3 bytes in 5 MiB parts: 5 MiB, 5 MiB, 2 MiB + 3.
	testSize     = 12*upload.MiB + 3
	testPartSize = 5 * upload.MiB
	testParts    = 3
)

// harness is the real API, in process, on one test's slice of the local
// stack. It counts the credential refreshes it serves.
type harness struct {
	url       string
	st        *stacktest.Stack
	store     *store.Store
	refreshes atomic.Int64
}

// newHarness serves the API (with YouTube destinations switched off, as
// the client tests need no YouTube) on the test's stack.
func newHarness(t testing.TB) *harness {
	t.Helper()
	st := stacktest.New(t)
	log, _ := stacktest.NewLogger(t)
	s := store.New(st.DynamoDB, st.Table, time.Hour)
	srv := api.New(api.Config{
		Tokens:         []string{testToken},
		Region:         st.AWS.Region,
		Bucket:         st.Bucket,
		PartSize:       testPartSize,
		MaxBodyBytes:   64 << 10,
		RequestTimeout: 10 * time.Second,
		YouTube:        false,
		Transcode:      true,
	}, s, credentials.NewIssuer(st.STS, "arn:aws:iam::000000000000:role/upload", st.Bucket, time.Hour), nil, log)
	h := &harness{st: st, store: s}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/credentials") {
			h.refreshes.Add(1)
		}
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	h.url = hs.URL
	return h
}

// baseArgs are the flags every upload through the harness needs.
func (h *harness) baseArgs() []string {
	return []string{"--api", h.url, "--token", testToken, "--atom", testAtom,
		"--s3-endpoint", os.Getenv("AWS_ENDPOINT_URL_S3")}
}

func (h *harness) client(s3HTTP *http.Client) *Client {
	return &Client{BaseURL: h.url, Token: testToken, S3Endpoint: os.Getenv("AWS_ENDPOINT_URL_S3"),
		S3PathStyle: true, S3HTTPClient: s3HTTP, RetryBackoff: 10 * time.Millisecond}
}

// writeFile writes size random bytes to a new .mp4 file and returns its
// path and SHA-256.
func writeFile(t testing.TB, size int64) (string, [32]byte) {
	t.Helper()
	b := make([]byte, size)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "clip.mp4")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, sha256.Sum256(b)
}

// s3Recorder counts the part PUTs sent to S3 and the access keys that
// signed them; after, when set, runs after each successful PUT.
type s3Recorder struct {
	base  http.RoundTripper
	puts  atomic.Int64
	after func()

	mu   sync.Mutex
	keys map[string]bool // access key ids in the Authorization headers
	sts  bool            // every PUT carried a session token
}

var credentialPattern = regexp.MustCompile(`Credential=([^/]+)/`)

func newS3Recorder() *s3Recorder {
	return &s3Recorder{base: http.DefaultTransport, keys: map[string]bool{}, sts: true}
}

func (r *s3Recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPut {
		r.puts.Add(1)
		r.mu.Lock()
		if m := credentialPattern.FindStringSubmatch(req.Header.Get("Authorization")); m != nil {
			r.keys[m[1]] = true
		}
		if req.Header.Get("X-Amz-Security-Token") == "" {
			r.sts = false
		}
		r.mu.Unlock()
	}
	res, err := r.base.RoundTrip(req)
	if err == nil && req.Method == http.MethodPut && res.StatusCode == http.StatusOK && r.after != nil {
		r.after()
	}
	return res, err
}

func (r *s3Recorder) httpClient() *http.Client { return &http.Client{Transport: r} }

var startedPattern = regexp.MustCompile(`upload ([0-9A-Z]{26}) started`)

func uploadID(t testing.TB, stdout string) string {
	t.Helper()
	m := startedPattern.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("stdout = %q, want a line 'upload <id> started'", stdout)
	}
	return m[1]
}

// partsInBucket lists the part numbers of the upload in the bucket.
func partsInBucket(t testing.TB, h *harness, id string) []int {
	t.Helper()
	out, err := h.st.S3.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{
		Bucket: aws.String(h.st.Bucket), Prefix: aws.String(upload.PartsPrefix(testAtom, id)),
	})
	if err != nil {
		t.Fatal(err)
	}
	var ns []int
	for _, o := range out.Contents {
		n, err := strconv.Atoi(strings.TrimPrefix(aws.ToString(o.Key), upload.PartsPrefix(testAtom, id)))
		if err != nil {
			t.Fatalf("unexpected key %s in the bucket", aws.ToString(o.Key))
		}
		ns = append(ns, n)
	}
	sort.Ints(ns)
	return ns
}

// checkAllParts asserts that every planned part is in the bucket with the
// planned size and that, concatenated, they are the file.
func checkAllParts(t testing.TB, h *harness, id string, want [32]byte) {
	t.Helper()
	ctx := context.Background()
	u, err := h.store.Get(ctx, testAtom, id)
	if err != nil {
		t.Fatal(err)
	}
	if got := partsInBucket(t, h, id); len(got) != u.PartCount() {
		t.Fatalf("parts in the bucket = %v, want all %d", got, u.PartCount())
	}
	sum := sha256.New()
	for i, p := range u.Parts() {
		out, err := h.st.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(h.st.Bucket), Key: aws.String(u.PartKey(i))})
		if err != nil {
			t.Fatalf("get part %d: %v", i, err)
		}
		n, err := io.Copy(sum, out.Body)
		out.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if n != p.Size() {
			t.Errorf("part %d is %d bytes, want %d", i, n, p.Size())
		}
	}
	if got := [32]byte(sum.Sum(nil)); got != want {
		t.Errorf("sha256 of the parts = %x, want the file's %x", got, want)
	}
}

func TestUploadPutsEveryPartWithTemporaryCredentials(t *testing.T) {
	h := newHarness(t)
	path, sum := writeFile(t, testSize)
	rec := newS3Recorder()
	var stdout, stderr bytes.Buffer
	args := append(h.baseArgs(), "--s3", "--no-follow", "--parallel", "3", path)
	code := run(context.Background(), args, &stdout, &stderr, options{getenv: noEnv, s3HTTP: rec.httpClient()})
	if code != 0 {
		t.Fatalf("exit = %d, want 0; stderr:\n%s", code, &stderr)
	}
	id := uploadID(t, stdout.String())
	checkAllParts(t, h, id, sum)

	u, err := h.store.Get(context.Background(), testAtom, id)
	if err != nil {
		t.Fatal(err)
	}
	if u.Filename != "clip.mp4" || u.ContentType != "video/mp4" || u.Size != testSize ||
		len(u.Destinations) != 1 || u.Destinations[0].Type != upload.S3Bucket {
		t.Errorf("record = %s %s %d bytes %+v, want clip.mp4 video/mp4 %d bytes to s3Bucket",
			u.Filename, u.ContentType, u.Size, u.Destinations, testSize)
	}
	if got := rec.puts.Load(); got != testParts {
		t.Errorf("PUTs = %d, want one per part (%d)", got, testParts)
	}
	if rec.keys[os.Getenv("AWS_ACCESS_KEY_ID")] || len(rec.keys) != 1 || !rec.sts {
		t.Errorf("PUTs signed with access keys %v (session token on all: %v), want only the temporary credentials", rec.keys, rec.sts)
	}
	if got := h.refreshes.Load(); got != 0 {
		t.Errorf("credential refreshes = %d, want 0: the start's credentials are good for an hour", got)
	}
	// Not a terminal: plain lines, no bar.
	out := stderr.String()
	if strings.Contains(out, "\r") {
		t.Errorf("stderr has \\r on a non-terminal:\n%q", out)
	}
	for i := 1; i <= testParts; i++ {
		if !strings.Contains(out, "part "+strconv.Itoa(i)+"/3 uploaded (") {
			t.Errorf("stderr = %q, want a line for part %d/3", out, i)
		}
	}
	if !strings.Contains(out, "(100.0%)") {
		t.Errorf("stderr = %q, want the last part at 100.0%%", out)
	}
	if !strings.Contains(stdout.String(), "--resume "+id) {
		t.Errorf("stdout = %q, want how to follow with --resume %s", &stdout, id)
	}
	if all := stdout.String() + stderr.String(); strings.Contains(all, testToken) {
		t.Errorf("output shows the token:\n%s", all)
	}
}

func TestResumePutsOnlyMissingParts(t *testing.T) {
	h := newHarness(t)
	path, sum := writeFile(t, testSize)

	// First run: Ctrl-C once the first part is in.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := newS3Recorder()
	first.after = cancel
	var stdout, stderr bytes.Buffer
	code := run(ctx, append(h.baseArgs(), "--s3", "--parallel", "1", path), &stdout, &stderr,
		options{getenv: noEnv, s3HTTP: first.httpClient()})
	if code != exitInterrupted {
		t.Fatalf("interrupted run: exit = %d, want %d; stderr:\n%s", code, exitInterrupted, &stderr)
	}
	id := uploadID(t, stdout.String())
	if !strings.Contains(stderr.String(), "--resume "+id) {
		t.Errorf("stderr = %q, want how to resume with --resume %s", &stderr, id)
	}
	in := partsInBucket(t, h, id)
	if len(in) == 0 || len(in) == testParts {
		t.Fatalf("parts in the bucket after the interrupt = %v, want some but not all", in)
	}
	// The worker marks the parts it sees arrive; stand in for it.
	for _, n := range in {
		if _, err := h.store.CompletePart(context.Background(), testAtom, id, n); err != nil {
			t.Fatal(err)
		}
	}

	second := newS3Recorder()
	stdout.Reset()
	stderr.Reset()
	code = run(context.Background(), append(h.baseArgs(), "--resume", id, "--no-follow", path), &stdout, &stderr,
		options{getenv: noEnv, s3HTTP: second.httpClient()})
	if code != 0 {
		t.Fatalf("resumed run: exit = %d, want 0; stderr:\n%s", code, &stderr)
	}
	if got, want := second.puts.Load(), int64(testParts-len(in)); got != want {
		t.Errorf("resumed run PUTs = %d, want %d (parts %v were complete)", got, want, in)
	}
	if got := h.refreshes.Load(); got != 1 {
		t.Errorf("credential refreshes = %d, want 1 (a resume asks for fresh credentials first)", got)
	}
	checkAllParts(t, h, id, sum)
}

func TestCredentialsRefreshBeforeExpiry(t *testing.T) {
	h := newHarness(t)
	path, sum := writeFile(t, testSize)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := h.client(nil)
	// The API's credentials last an hour: a two-hour window makes them
	// always due for a refresh.
	c.RefreshBefore = 2 * time.Hour
	ctx := context.Background()
	rec, err := c.Start(ctx, testAtom, rest.StartRequest{Filename: "clip.mp4", Size: testSize, ContentType: "video/mp4",
		Destinations: []rest.DestinationRequest{{Type: S3Bucket}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.PutParts(ctx, rec, f, PutOptions{Parallel: 2}); err != nil {
		t.Fatalf("PutParts: %v", err)
	}
	if got := h.refreshes.Load(); got < 1 {
		t.Errorf("credential refreshes = %d, want at least 1", got)
	}
	checkAllParts(t, h, rec.ID, sum)
}

func TestRefusedCredentialsAreRefreshedAndPartRetried(t *testing.T) {
	h := newHarness(t)
	path, sum := writeFile(t, testSize)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec := newS3Recorder()
	c := h.client(rec.httpClient())
	ctx := context.Background()
	r, err := c.Start(ctx, testAtom, rest.StartRequest{Filename: "clip.mp4", Size: testSize, ContentType: "video/mp4",
		Destinations: []rest.DestinationRequest{{Type: S3Bucket}}})
	if err != nil {
		t.Fatal(err)
	}
	r.Credentials.SecretAccessKey = "not-the-secret" // S3 refuses the signature
	var retries []Progress
	err = c.PutParts(ctx, r, f, PutOptions{Parallel: 1, Progress: func(p Progress) {
		if p.Retry {
			retries = append(retries, p)
		}
	}})
	if err != nil {
		t.Fatalf("PutParts: %v", err)
	}
	if len(retries) != 1 || retries[0].Part != 0 || retries[0].Attempt != 1 {
		t.Errorf("retries = %+v, want one, of part 0 after attempt 1", retries)
	}
	if got := h.refreshes.Load(); got != 1 {
		t.Errorf("credential refreshes = %d, want 1 after S3 refused the first credentials", got)
	}
	if got := rec.puts.Load(); got != testParts+1 {
		t.Errorf("PUTs = %d, want %d (one per part and one refused)", got, testParts+1)
	}
	checkAllParts(t, h, r.ID, sum)
}

func TestStartErrorShowsAPIMessage(t *testing.T) {
	h := newHarness(t)
	path, _ := writeFile(t, 1024)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append(h.baseArgs(), "--youtube-title", "A clip", path), &stdout, &stderr, options{getenv: noEnv})
	if code != 1 {
		t.Fatalf("exit = %d, want 1; stderr:\n%s", code, &stderr)
	}
	if got := stderr.String(); !strings.Contains(got, "400 Bad Request") || !strings.Contains(got, "youtube destinations are not enabled") {
		t.Errorf("stderr = %q, want the API's 400 message", got)
	}
}

func noEnv(string) string { return "" }
