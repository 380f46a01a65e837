package api_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"atomuploads/upload"
)

// fakeDriver records the uploads it is asked to drive.
type fakeDriver struct {
	mu     sync.Mutex
	driven []string
}

func (f *fakeDriver) Drive(_ context.Context, u *upload.Upload) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.driven = append(f.driven, u.ID)
	return nil
}

func (f *fakeDriver) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.driven)
}

// TestRetryRoute: a failed destination whose parts are in S3 is retried
// and driven; nothing failed, a cancelled upload and parts no longer in S3
// are 409s that say why; another atom's upload is a 404.
func TestRetryRoute(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	start := func() record {
		t.Helper()
		return decode[record](t, h.do(t, "POST", "/api2/atom/atom-1/uploads", token, startBody(100)))
	}
	fail := func(u record, withPart bool) {
		t.Helper()
		if withPart {
			if _, err := h.stack.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(h.stack.Bucket), Key: aws.String(u.Parts[0].Key),
				Body: strings.NewReader(strings.Repeat("x", 100))}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := h.store.CompletePart(ctx, "atom-1", u.ID, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := h.store.Update(ctx, "atom-1", u.ID, func(r *upload.Upload) error {
			r.Fail("YouTube refused the upload (somethingElse)", time.Now())
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	path := func(u record) string { return "/api2/atom/atom-1/uploads/" + u.ID + "/retry" }

	u := start()
	fail(u, true)
	res := h.do(t, "POST", path(u), token, nil)
	got := decode[record](t, res)
	if res.status != http.StatusOK || got.Status != "processing" || got.Destinations[0].Status != "waiting" || h.driver.count() != 1 {
		t.Fatalf("retry = %d: %s, youtube %s, %d driven; want 200 processing, waiting, driven once", res.status, got.Status, got.Destinations[0].Status, h.driver.count())
	}
	for _, tt := range []struct {
		name string
		path string
		want string
	}{
		{"again: nothing failed", path(u), "nothing to retry"},
		{"cancelled", "", "was cancelled"},
		{"parts gone", "", "no longer in S3"},
	} {
		p := tt.path
		switch tt.name {
		case "cancelled":
			c := start()
			h.do(t, "DELETE", "/api2/atom/atom-1/uploads/"+c.ID, token, nil)
			p = path(c)
		case "parts gone":
			g := start()
			fail(g, false)
			p = path(g)
		}
		if r := h.do(t, "POST", p, token, nil); r.status != http.StatusConflict || !strings.Contains(string(r.body), tt.want) {
			t.Errorf("%s: %d %s, want 409 saying %q", tt.name, r.status, r.body, tt.want)
		}
	}
	if r := h.do(t, "POST", "/api2/atom/atom-2/uploads/"+u.ID+"/retry", token, nil); r.status != http.StatusNotFound {
		t.Errorf("another atom's upload: %d, want 404", r.status)
	}
	if r := h.do(t, "POST", path(u), "", nil); r.status != http.StatusUnauthorized {
		t.Errorf("without a token: %d, want 401", r.status)
	}
	if n := h.driver.count(); n != 1 {
		t.Errorf("%d uploads driven, want only the one retried", n)
	}
}
