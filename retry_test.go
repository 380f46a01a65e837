package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"atomuploads/devstack/stacktest"
	"atomuploads/youtube/youtubetest"
)

// TestRetryAFailedDestination: YouTube refuses the upload for good; the
// destination fails, readably. Once the cause is gone, POST …/retry
// restarts it and the upload completes byte-exact; retrying again, or
// retrying what did not fail, is a 409 that says why.
func TestRetryAFailedDestination(t *testing.T) {
	t.Parallel()
	st := stacktest.New(t)
	yt, ytURL, _, atomURL := newStandIns(t, youtubetest.Options{ProcessingSteps: 1})
	env := serviceEnv(t, st, ytURL, atomURL)
	base := "http://" + env["UPLOADS_HTTP_ADDR"] + "/api2/atom/retry-atom/uploads"
	ctx := testCtx(t, 3*time.Minute)
	svc := startService(t, env)
	svc.waitHealthy(t)

	yt.Refuse(youtubetest.KindInitiate, http.StatusForbidden, "somethingElse")
	const size = 5<<20 + 4321
	file := make([]byte, size)
	_, _ = rand.Read(file)
	sum := sha256.Sum256(file)
	rec, code, err := apiCall(ctx, "POST", base, map[string]any{
		"filename": "retry.mp4", "size": size, "contentType": "video/mp4", "sha256": hex.EncodeToString(sum[:]),
		"destinations": []map[string]any{{"type": "youtube", "title": "Retried"}},
	})
	if err != nil || code != http.StatusCreated {
		t.Fatalf("start upload: %d %v", code, err)
	}
	if err := browserPut(ctx, st, rec, file, []int{1, 0}); err != nil {
		t.Fatal(err)
	}
	poll := func(what string, cond func(record) bool) record {
		t.Helper()
		for {
			got, _, err := apiCall(ctx, "GET", base+"/"+rec.ID, nil)
			if err == nil && cond(got) {
				return got
			}
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s: %+v", what, got)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	failed := poll("the upload to fail", func(r record) bool { return r.Status == "failed" })
	if d := failed.Destinations[0]; d.Error != "YouTube refused the upload (somethingElse)" {
		t.Errorf("youtube error %q, want the refusal in words", d.Error)
	}

	yt.Refuse(youtubetest.KindInitiate, 0, "")
	got, code, err := apiCall(ctx, "POST", base+"/"+rec.ID+"/retry", nil)
	if err != nil || code != http.StatusOK || got.Status != "processing" || got.Destinations[0].Status != "waiting" || got.Destinations[0].Error != "" {
		t.Fatalf("retry = %d %v: upload %s, youtube %s %q; want 200 with it processing again", code, err, got.Status, got.Destinations[0].Status, got.Destinations[0].Error)
	}
	done := poll("the upload to complete", func(r record) bool { return r.Status == "complete" })
	d := done.Destinations[0]
	if v, ok := yt.Video(d.Details.VideoID); !ok || v.SHA256 != hex.EncodeToString(sum[:]) || d.Details.SHA256 != v.SHA256 {
		t.Errorf("video %+v, details sha256 %q; want the file, proven", v, d.Details.SHA256)
	}
	if _, code, err := apiCall(ctx, "POST", base+"/"+rec.ID+"/retry", nil); err != nil || code != http.StatusConflict {
		t.Errorf("retry of a complete upload = %d %v, want 409", code, err)
	}
	res, err := apiRaw(ctx, "POST", base+"/"+rec.ID+"/retry")
	if err != nil || !strings.Contains(res, "nothing to retry") {
		t.Errorf("409 body %q (%v), want it to say there is nothing to retry", res, err)
	}
}

// apiRaw makes an authenticated call and returns the answer's body.
func apiRaw(ctx context.Context, method, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer test-token-0123456789")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), err
}
