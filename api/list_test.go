package api_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"atomuploads/api"
	"atomuploads/credentials"
	"atomuploads/devstack/stacktest"
	"atomuploads/upload"
)

type page struct {
	Uploads []struct {
		ID            string  `json:"id"`
		Status        string  `json:"status"`
		Parts         []any   `json:"parts"`
		PartsTotal    *int    `json:"partsTotal"`
		PartsComplete *int    `json:"partsComplete"`
		PartsMissing  [][]int `json:"partsMissing"`
	} `json:"uploads"`
	NextCursor *string `json:"nextCursor"`
}

func (p page) ids() []string {
	var out []string
	for _, u := range p.Uploads {
		out = append(out, u.ID)
	}
	return out
}

// putUploads stores n uploads of the atom directly, the newest last; every
// fifth is failed, every seventh cancelled.
func putUploads(t testing.TB, h *harness, atomID string, n int) (newestFirst, failed []string) {
	t.Helper()
	base := time.Now().Add(-10 * time.Minute)
	for i := range n {
		created := base.Add(time.Duration(i) * time.Second)
		id, err := upload.NewID(created, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		u, err := upload.New(upload.StartRequest{
			Filename: "clip.mp4", Size: 100 * upload.MiB, ContentType: "video/mp4",
			Destinations: []upload.DestinationRequest{{Type: upload.S3Bucket}},
		}, atomID, id, created, "eu-west-1", h.stack.Bucket, 8*upload.MiB)
		if err != nil {
			t.Fatal(err)
		}
		u.Completed[0], u.Completed[5] = true, true
		switch {
		case i%5 == 0:
			u.Status = upload.StatusFailed
			failed = append([]string{id}, failed...)
		case i%7 == 0:
			u.Status = upload.StatusCancelled
		}
		if err := h.store.Create(context.Background(), u); err != nil {
			t.Fatal(err)
		}
		newestFirst = append([]string{id}, newestFirst...)
	}
	return newestFirst, failed
}

func TestListPagesWithCursor(t *testing.T) {
	h := newHarness(t)
	all, _ := putUploads(t, h, "atom-1", 45)
	other, _ := putUploads(t, h, "atom-2", 3)

	// The default page is 20, newest first; the cursor leads on without a
	// gap or a repeat; the last page has no cursor.
	var got []string
	path, pages := "/api2/atom/atom-1/uploads", 0
	for {
		r := h.do(t, "GET", path, token, nil)
		if r.status != 200 {
			t.Fatalf("GET %s: %d %s", path, r.status, r.body)
		}
		p := decode[page](t, r)
		pages++
		if len(p.Uploads) > 20 || len(p.Uploads[0].Parts) != 13 {
			t.Fatalf("page %d has %d uploads (%d parts each), want at most 20 full records", pages, len(p.Uploads), len(p.Uploads[0].Parts))
		}
		got = append(got, p.ids()...)
		if p.NextCursor == nil {
			if strings.Contains(string(r.body), "nextCursor") {
				t.Errorf("the last page shows a nextCursor: %s", r.body)
			}
			break
		}
		path = "/api2/atom/atom-1/uploads?cursor=" + url.QueryEscape(*p.NextCursor)
	}
	if !slices.Equal(got, all) || pages != 3 {
		t.Errorf("pages gave %d uploads in %d pages, want the atom's %d newest first in 3", len(got), pages, len(all))
	}
	p := decode[page](t, h.do(t, "GET", "/api2/atom/atom-1/uploads?limit=45", token, nil))
	if !slices.Equal(p.ids(), all) || p.NextCursor != nil {
		t.Errorf("limit=45: %d uploads, cursor %v; want all 45 and no cursor", len(p.Uploads), p.NextCursor)
	}
	p = decode[page](t, h.do(t, "GET", "/api2/atom/atom-1/uploads?limit=44", token, nil))
	if len(p.Uploads) != 44 || p.NextCursor == nil {
		t.Errorf("limit=44: %d uploads, cursor %v; want 44 and a cursor", len(p.Uploads), p.NextCursor)
	}
	// A cursor is a place in the atom of the path: another atom's cursor
	// reaches only that atom's uploads.
	for _, id := range decode[page](t, h.do(t, "GET", "/api2/atom/atom-2/uploads?cursor="+*p.NextCursor, token, nil)).ids() {
		if !slices.Contains(other, id) {
			t.Errorf("atom-2 with atom-1's cursor lists %s, not an upload of atom-2", id)
		}
	}
	if r := h.do(t, "GET", "/api2/atom/empty/uploads", token, nil); r.status != 200 || string(r.body) != "{\"uploads\":[]}\n" {
		t.Errorf("an atom without uploads: %d %q", r.status, r.body)
	}

	for _, q := range []string{"limit=0", "limit=101", "limit=500", "limit=ten", "limit=-1"} {
		r := h.do(t, "GET", "/api2/atom/atom-1/uploads?"+q, token, nil)
		if msg := decode[struct{ Message string }](t, r).Message; r.status != 400 || !strings.Contains(msg, "limit must be a whole number from 1 to 100") {
			t.Errorf("%s: %d %q, want 400 saying the limit's range", q, r.status, msg)
		}
	}
	for _, c := range []string{"garbage!", "MDFKWjRRN1Y5WDhZNlc1VDNTMlIxUDBOOU0x", strings.Repeat("QUFB", 1000), "eyJhdG9tSWQiOiJhdG9tLTIifQ"} {
		r := h.do(t, "GET", "/api2/atom/atom-1/uploads?cursor="+url.QueryEscape(c), token, nil)
		if msg := decode[struct{ Message string }](t, r).Message; r.status != 400 || !strings.Contains(msg, "cursor is not one this API gave") {
			t.Errorf("cursor %.20q: %d %q, want 400", c, r.status, msg)
		}
	}
}

func TestListFiltersByStatus(t *testing.T) {
	h := newHarness(t)
	all, failed := putUploads(t, h, "atom-1", 45)
	p := decode[page](t, h.do(t, "GET", "/api2/atom/atom-1/uploads?status=failed&limit=100", token, nil))
	if !slices.Equal(p.ids(), failed) || p.NextCursor != nil {
		t.Errorf("status=failed: %v, want %v", p.ids(), failed)
	}
	for _, u := range p.Uploads {
		if u.Status != "failed" {
			t.Errorf("status=failed lists a %s upload", u.Status)
		}
	}
	// Comma-separated and repeated say the same; a page of a filter fills
	// across DynamoDB's pages and goes on with its cursor.
	for _, q := range []string{"status=failed,cancelled", "status=failed&status=cancelled", "status=cancelled,failed,failed"} {
		var got []string
		path := "/api2/atom/atom-1/uploads?limit=4&" + q
		for {
			r := h.do(t, "GET", path, token, nil)
			p := decode[page](t, r)
			if r.status != 200 || len(p.Uploads) > 4 {
				t.Fatalf("%s: %d %s", q, r.status, r.body)
			}
			got = append(got, p.ids()...)
			if p.NextCursor == nil {
				break
			}
			path = "/api2/atom/atom-1/uploads?limit=4&" + q + "&cursor=" + *p.NextCursor
		}
		var want []string
		for i, id := range all {
			if n := 44 - i; n%5 == 0 || n%7 == 0 {
				want = append(want, id)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: %d uploads, want the %d failed or cancelled, newest first", q, len(got), len(want))
		}
	}
	if p := decode[page](t, h.do(t, "GET", "/api2/atom/atom-1/uploads?status=expired", token, nil)); len(p.Uploads) != 0 {
		t.Errorf("status=expired: %d uploads, want none", len(p.Uploads))
	}
	for _, q := range []string{"status=bogus", "status=failed,", "status=", "status=FAILED"} {
		r := h.do(t, "GET", "/api2/atom/atom-1/uploads?"+q, token, nil)
		msg := decode[struct{ Message string }](t, r).Message
		if r.status != 400 || !strings.Contains(msg, "uploading, processing, complete, failed, cancelled, expired") {
			t.Errorf("%s: %d %q, want 400 naming the valid statuses", q, r.status, msg)
		}
	}
}

func TestSummaryViewOfListAndGet(t *testing.T) {
	h := newHarness(t)
	all, _ := putUploads(t, h, "atom-1", 3)
	p := decode[page](t, h.do(t, "GET", "/api2/atom/atom-1/uploads?view=summary", token, nil))
	if len(p.Uploads) != 3 {
		t.Fatalf("%d uploads, want 3", len(p.Uploads))
	}
	for _, u := range p.Uploads {
		if u.Parts != nil || u.PartsTotal == nil || *u.PartsTotal != 13 || *u.PartsComplete != 2 ||
			!slices.EqualFunc(u.PartsMissing, [][]int{{1, 4}, {6, 12}}, slices.Equal) {
			t.Errorf("summary %+v, want 13 parts, 2 complete, [1,4] and [6,12] missing, no parts", u)
		}
	}
	r := h.do(t, "GET", "/api2/atom/atom-1/uploads/"+all[0]+"?view=summary", token, nil)
	if r.status != 200 || strings.Contains(string(r.body), `"parts":`) || !strings.Contains(string(r.body), `"partsMissing":[[1,4],[6,12]]`) {
		t.Errorf("GET view=summary: %d %s", r.status, r.body)
	}
	r = h.do(t, "GET", "/api2/atom/atom-1/uploads/"+all[0]+"?view=full", token, nil)
	if g := decode[record](t, r); r.status != 200 || len(g.Parts) != 13 || strings.Contains(string(r.body), "partsTotal") {
		t.Errorf("GET view=full: %d, %d parts", r.status, len(g.Parts))
	}
	for _, path := range []string{"/api2/atom/atom-1/uploads?view=compact", "/api2/atom/atom-1/uploads/" + all[0] + "?view=SUMMARY"} {
		if r := h.do(t, "GET", path, token, nil); r.status != 400 || !strings.Contains(string(r.body), "view must be full or summary") {
			t.Errorf("GET %s: %d %s, want 400", path, r.status, r.body)
		}
	}
}

// failingUploads is a progress table that fails on cue.
type failingUploads struct {
	api.Uploads
	list func(ctx context.Context, fn func(*upload.Upload) error) (string, error)
	get  func() (*upload.Upload, error)
}

func (f *failingUploads) List(ctx context.Context, _, _ string, _ []upload.Status, _ int, fn func(*upload.Upload) error) (string, error) {
	return f.list(ctx, fn)
}

func (f *failingUploads) Get(context.Context, string, string) (*upload.Upload, error) { return f.get() }

// newFakeAPI is the API on the given table, without the local stack (its
// credentials issuer has no STS).
func newFakeAPI(t testing.TB, uploads api.Uploads, timeout ...time.Duration) (*api.Server, *stacktest.Logs) {
	t.Helper()
	log, logs := stacktest.NewLogger(t)
	d := 10 * time.Second
	if len(timeout) > 0 {
		d = timeout[0]
	}
	return api.New(api.Config{
		Tokens: []string{token}, Region: "eu-west-1", Bucket: "bucket", PartSize: 8 * upload.MiB,
		MaxBodyBytes: 64 << 10, RequestTimeout: d,
	}, uploads, credentials.NewIssuer(nil, "arn:aws:iam::000000000000:role/upload", "bucket", time.Hour), nil, log), logs
}

// newFakeServer serves newFakeAPI with httptest.
func newFakeServer(t testing.TB, uploads api.Uploads, timeout ...time.Duration) (string, *stacktest.Logs) {
	t.Helper()
	srv, logs := newFakeAPI(t, uploads, timeout...)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return hs.URL, logs
}

func someUpload(t testing.TB) *upload.Upload {
	t.Helper()
	id, _ := upload.NewID(time.Now(), rand.Reader)
	u, err := upload.New(upload.StartRequest{
		Filename: "clip.mp4", Size: upload.MaxFileSize, ContentType: "video/mp4",
		Destinations: []upload.DestinationRequest{{Type: upload.S3Bucket}},
	}, "atom-1", id, time.Now(), "eu-west-1", "bucket", 8*upload.MiB)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// get answers the status and body of GET url, and the error of reading
// the body.
func get(t testing.TB, url string) (int, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, http.NoBody)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

// TestListFailureBeforeAndAfterTheAnswerBegins: the table failing before
// the first record is a clean 503; failing after records went out cuts the
// answer (the client sees a broken body, never a well-formed short list)
// and is logged.
func TestListFailureBeforeAndAfterTheAnswerBegins(t *testing.T) {
	busy := upload.Errorf(upload.EUNAVAILABLE, "the progress table is busy; try again")
	f := &failingUploads{list: func(context.Context, func(*upload.Upload) error) (string, error) { return "", busy }}
	base, logs := newFakeServer(t, f)
	status, body, err := get(t, base+"/api2/atom/atom-1/uploads")
	if err != nil || status != http.StatusServiceUnavailable || !strings.Contains(string(body), "busy") {
		t.Errorf("table failing before the first record: %d %s %v, want a clean 503", status, body, err)
	}

	f.list = func(_ context.Context, fn func(*upload.Upload) error) (string, error) {
		for range 3 {
			if err := fn(someUpload(t)); err != nil {
				return "", err
			}
		}
		return "", errors.Join(busy, errors.New("the second DynamoDB page failed"))
	}
	status, body, err = get(t, base+"/api2/atom/atom-1/uploads?limit=10")
	if err == nil || status != 200 || json.Valid(body) {
		t.Errorf("table failing mid-answer: %d, %d bytes, read error %v; want 200 and a body cut short (an error reading it)", status, len(body), err)
	}
	if !strings.Contains(logs.String(), "the second DynamoDB page failed") {
		t.Errorf("the cut answer's cause is not logged:\n%s", logs.String())
	}
}

// TestListRequestTimeoutBoundsEachWait: a list whose answer takes longer
// than the request timeout in all is delivered while every wait for the
// table is shorter; one wait longer than it fails the list.
func TestListRequestTimeoutBoundsEachWait(t *testing.T) {
	const timeout = 500 * time.Millisecond
	f := &failingUploads{list: func(ctx context.Context, fn func(*upload.Upload) error) (string, error) {
		for range 5 {
			time.Sleep(timeout / 2) // a page read
			if err := ctx.Err(); err != nil {
				return "", fmt.Errorf("query: %w", err)
			}
			if err := fn(someUpload(t)); err != nil {
				return "", err
			}
		}
		return "", nil
	}}
	base, _ := newFakeServer(t, f, timeout)
	began := time.Now()
	status, body, err := get(t, base+"/api2/atom/atom-1/uploads")
	if err != nil || status != 200 || !json.Valid(body) {
		t.Errorf("a list of five waits of %s each: %d, %d bytes, %v; want the whole list", timeout/2, status, len(body), err)
	}
	if took := time.Since(began); took < 2*timeout {
		t.Fatalf("the list took %s; the test wants it longer than the timeout", took)
	}

	base, _ = newFakeServer(t, stuckUploads{}, timeout)
	began = time.Now()
	status, body, _ = get(t, base+"/api2/atom/atom-1/uploads")
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), "took too long") || time.Since(began) > 10*timeout {
		t.Errorf("a list whose table does not answer: %d %s after %s, want 503 after about %s", status, body, time.Since(began), timeout)
	}
}

// stuckUploads never answers a list before its context ends.
type stuckUploads struct{ api.Uploads }

func (stuckUploads) List(ctx context.Context, _, _ string, _ []upload.Status, _ int, _ func(*upload.Upload) error) (string, error) {
	<-ctx.Done()
	return "", fmt.Errorf("query: %w", ctx.Err())
}
