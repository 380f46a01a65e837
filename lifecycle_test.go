package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"atomuploads/devstack/stacktest"
	"atomuploads/youtube/youtubetest"
)

// logLines returns the JSON log lines of the services with the message
// about the upload.
func logLines(svcs []*service, msg, uploadID string) []map[string]any {
	var out []map[string]any
	for _, s := range svcs {
		for _, line := range strings.Split(s.out.String(), "\n") {
			var l map[string]any
			if json.Unmarshal([]byte(line), &l) != nil || l["msg"] != msg || (uploadID != "" && l["uploadId"] != uploadID) {
				continue
			}
			out = append(out, l)
		}
	}
	return out
}

// partsInS3 is how many objects are under the upload's parts prefix.
func partsInS3(t testing.TB, ctx context.Context, st *stacktest.Stack, rec record) int {
	t.Helper()
	out, err := st.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(st.Bucket), Prefix: aws.String("uploads/" + rec.AtomID + "/" + rec.ID + "/parts/")})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Contents)
}

// TestTwoServicesExpireAndCleanUp: two service processes, configured by
// the environment alone, end the lives of uploads once, between them: an
// upload left after its first part expires (its session cancelled, its
// credentials refused), and the parts of it, of a completed upload and of
// a cancelled one are deleted, the completed upload's original kept.
func TestTwoServicesExpireAndCleanUp(t *testing.T) {
	st := stacktest.New(t)
	yt, ytURL, atom, atomURL := newStandIns(t, youtubetest.Options{ProcessingSteps: 1})
	env := serviceEnv(t, st, ytURL, atomURL)
	// Long enough for the uploads that are not abandoned to get their
	// parts recorded on a loaded machine.
	env["UPLOADS_UPLOADS_ABANDON_AFTER"] = "10s"
	env["UPLOADS_UPLOADS_DELETE_PARTS_AFTER"] = "2s"
	a := startService(t, env) // at debug level: its "swept" lines count the rounds
	env2 := map[string]string{}
	for k, v := range env {
		env2[k] = v
	}
	env2["UPLOADS_HTTP_ADDR"] = freeAddr(t)
	b := startService(t, env2)
	a.waitHealthy(t)
	b.waitHealthy(t)
	svcs := []*service{a, b}
	base := "http://" + a.addr + "/api2/atom/life-atom/uploads"
	ctx := testCtx(t, 4*time.Minute)

	const size = 2*5<<20 + 4321 // 3 parts
	file := make([]byte, size)
	_, _ = rand.Read(file)
	start := func(title string) record {
		t.Helper()
		rec, status, err := apiCall(ctx, "POST", base, map[string]any{
			"filename": "clip.mp4", "size": size, "contentType": "video/mp4",
			"destinations": []map[string]any{{"type": "youtube", "title": title}},
		})
		if err != nil || status != http.StatusCreated {
			t.Fatalf("start: %d %v", status, err)
		}
		return rec
	}
	get := func(rec record) record {
		t.Helper()
		got, status, err := apiCall(ctx, "GET", base+"/"+rec.ID, nil)
		if err != nil || status != http.StatusOK {
			t.Fatalf("get: %d %v", status, err)
		}
		return got
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("gave up waiting for %s", what)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	completed := start("Completed")
	if err := browserPut(ctx, st, completed, file, []int{2, 0, 1}); err != nil {
		t.Fatal(err)
	}
	wait("the completed upload's parts", func() bool {
		got := get(completed)
		if got.Status == "expired" {
			t.Fatalf("the upload whose parts were all put expired: %q", got.Error)
		}
		return got.Status != "uploading"
	})
	cancelled := start("Cancelled")
	if err := browserPut(ctx, st, cancelled, file, []int{1}); err != nil {
		t.Fatal(err)
	}
	if _, status, err := apiCall(ctx, "DELETE", base+"/"+cancelled.ID, nil); err != nil || status != http.StatusOK {
		t.Fatalf("cancel: %d %v", status, err)
	}
	abandoned := start("Abandoned")
	if err := browserPut(ctx, st, abandoned, file, []int{0}); err != nil {
		t.Fatal(err)
	}

	wait("the expiry", func() bool { return get(abandoned).Status == "expired" })
	got := get(abandoned)
	if got.Error != "upload abandoned: no part arrived for 10s" || got.Destinations[0].Status != "failed" || got.Destinations[0].Error != got.Error {
		t.Errorf("expired record: %s %q, youtube %s %q", got.Status, got.Error, got.Destinations[0].Status, got.Destinations[0].Error)
	}
	if _, status, _ := apiCall(ctx, "POST", base+"/"+abandoned.ID+"/credentials", nil); status != http.StatusConflict {
		t.Errorf("credentials for the expired upload: %d, want 409", status)
	}
	wait("the completed upload", func() bool {
		got := get(completed)
		if got.Status == "failed" {
			t.Fatalf("the completed upload failed: %q", got.Error)
		}
		return got.Status == "complete"
	})
	for _, rec := range []record{abandoned, completed, cancelled} {
		wait("the clean-up of "+rec.ID, func() bool { return len(logLines(svcs, "parts deleted", rec.ID)) > 0 })
		if n := partsInS3(t, ctx, st, rec); n != 0 {
			t.Errorf("upload %s: %d parts left, want none", rec.ID, n)
		}
	}
	if _, err := st.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(st.Bucket), Key: aws.String("uploads/life-atom/" + completed.ID + "/full")}); err != nil {
		t.Errorf("the completed upload's original: %v, want it kept", err)
	}
	var states []string
	for _, s := range yt.Sessions() {
		if s.Title == "Abandoned" {
			states = append(states, s.State)
		}
	}
	if len(states) != 1 || states[0] != youtubetest.SessionCancelled {
		t.Errorf("the abandoned upload's YouTube sessions: %v, want one, cancelled", states)
	}
	if calls := atom.Calls("life-atom"); len(calls) != 1 {
		t.Errorf("%d asset calls, want 1 (the completed upload's)", len(calls))
	}

	// Some more rounds of both: nothing happens twice, nothing errs.
	mark := len(logLines(svcs, "swept", ""))
	wait("more rounds", func() bool { return len(logLines(svcs, "swept", "")) >= mark+12 })
	if n := len(logLines(svcs, "upload expired", abandoned.ID)); n != 1 {
		t.Errorf("%d expiry lines, want 1", n)
	}
	for _, rec := range []record{abandoned, completed, cancelled} {
		if n := len(logLines(svcs, "parts deleted", rec.ID)); n != 1 {
			t.Errorf("upload %s: %d clean-up lines, want 1", rec.ID, n)
		}
	}
	if n := len(logLines(svcs, "sweep failed; the next round tries again", "")); n != 0 {
		t.Errorf("%d failed sweeps, want none", n)
	}
}
