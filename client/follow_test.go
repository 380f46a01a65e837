package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"atomuploads/api/rest"
)

const fakeID = "01J0000000000000000000TEST"

// fakeAPI serves GET of one upload record, moving through states: each read
// answers the next state, then the last one for ever. A state with a
// non-zero status code answers that error instead.
type fakeAPI struct {
	mu     sync.Mutex
	states []fakeState
	reads  int
	other  []string // requests other than the GET
}

type fakeState struct {
	code int
	rec  rest.Upload
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+testToken {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodGet || r.URL.Path != "/api2/atom/"+testAtom+"/uploads/"+fakeID {
		f.other = append(f.other, r.Method+" "+r.URL.Path)
		w.WriteHeader(http.StatusTeapot)
		return
	}
	s := f.states[min(f.reads, len(f.states)-1)]
	f.reads++
	w.Header().Set("Content-Type", "application/json")
	if s.code != 0 {
		w.WriteHeader(s.code)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": "try later"})
		return
	}
	_ = json.NewEncoder(w).Encode(s.rec)
}

func newFake(t testing.TB, states ...fakeState) (*fakeAPI, *Client) {
	t.Helper()
	f := &fakeAPI{states: states}
	hs := httptest.NewServer(f)
	t.Cleanup(hs.Close)
	return f, &Client{BaseURL: hs.URL, Token: testToken}
}

// rec is a 10-byte upload in one complete part, with one s3Bucket
// destination in the given state.
func rec(status, dest string, progress float64, edit ...func(*rest.Upload)) fakeState {
	r := rest.Upload{
		ID: fakeID, AtomID: testAtom, Filename: "clip.mp4", Size: 10, ContentType: "video/mp4",
		Status: status, Region: "eu-west-1", Bucket: "b",
		Destinations: []rest.Destination{{Type: S3Bucket, Status: dest, Progress: progress}},
		Parts:        []rest.Part{{Start: 0, End: 10, Key: "uploads/" + testAtom + "/" + fakeID + "/parts/0", Complete: true}},
	}
	for _, e := range edit {
		e(&r)
	}
	return fakeState{rec: r}
}

func TestFollowPrintsChangesUntilComplete(t *testing.T) {
	f, c := newFake(t,
		rec("uploading", "waiting", 0),
		rec("processing", "transcoding", 10),
		rec("processing", "transcoding", 10), // no change: no line
		fakeState{code: http.StatusServiceUnavailable},
		rec("processing", "transcoding", 55.55),
		rec("complete", "complete", 100, func(r *rest.Upload) {
			r.Destinations[0].Details.Outputs = []rest.Output{{Key: "out/a.mp4", Kind: "mp4"}, {Key: "out/a.jpg", Kind: "poster"}}
		}),
	)
	var out bytes.Buffer
	final, err := c.Follow(context.Background(), testAtom, fakeID, time.Millisecond, &out)
	if err != nil {
		t.Fatalf("Follow: %v", err)
	}
	if final.Status != StatusComplete || exitCode(final) != 0 {
		t.Errorf("final status = %s (exit %d), want complete (exit 0)", final.Status, exitCode(final))
	}
	want := []string{
		"upload " + fakeID + ": uploading",
		"s3Bucket: waiting",
		"upload " + fakeID + ": processing",
		"s3Bucket: transcoding 10.0%",
		"could not read upload " + fakeID + " (will try again): get upload " + fakeID + ": 503 Service Unavailable: try later",
		"s3Bucket: transcoding 55.5%",
		"upload " + fakeID + ": complete",
		"s3Bucket: complete",
	}
	if got := strings.Split(strings.TrimSpace(out.String()), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Follow printed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if f.reads != 6 {
		t.Errorf("reads = %d, want 6 (it stops at complete)", f.reads)
	}

	var sum bytes.Buffer
	PrintSummary(&sum, final)
	if got := sum.String(); !strings.Contains(got, "upload "+fakeID+" complete: clip.mp4, 10 B") ||
		!strings.Contains(got, "s3Bucket: complete  outputs: out/a.mp4, out/a.jpg") {
		t.Errorf("summary = %q, want the status and the outputs", got)
	}
}

func TestFollowStopsOnNotFound(t *testing.T) {
	_, c := newFake(t, fakeState{code: http.StatusNotFound})
	_, err := c.Follow(context.Background(), testAtom, fakeID, time.Millisecond, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "404 Not Found") {
		t.Errorf("Follow error = %v, want the 404 at once", err)
	}
}

// writeFake writes the 10-byte file of the fake record.
func writeFake(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "clip.mp4")
	if err := os.WriteFile(path, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMainFollowsToComplete(t *testing.T) {
	youTubeUploading := func(r *rest.Upload) {
		r.Destinations = append([]rest.Destination{{Type: YouTube, Status: "upload", Progress: 40}}, r.Destinations...)
	}
	f, c := newFake(t,
		rec("processing", "waiting", 0, youTubeUploading), // read by --resume
		rec("processing", "waiting", 0, youTubeUploading), // Follow's first read
		rec("processing", "transcoding", 50, func(r *rest.Upload) {
			r.Destinations = append([]rest.Destination{{Type: YouTube, Status: "transcoding", Progress: 20,
				Details: rest.Details{VideoID: "abc", URL: "https://www.youtube.com/watch?v=abc", ProcessingStatus: "processing"}}}, r.Destinations...)
		}),
		rec("complete", "complete", 100, func(r *rest.Upload) {
			r.Destinations = append([]rest.Destination{{Type: YouTube, Status: "complete", Progress: 100,
				Details: rest.Details{VideoID: "abc", URL: "https://www.youtube.com/watch?v=abc"}}}, r.Destinations...)
			r.Destinations[1].Details.Outputs = []rest.Output{{Key: "out/clip.mp4", Kind: "mp4"}}
		}),
	)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--api", c.BaseURL, "--token", testToken, "--atom", testAtom,
		"--resume", fakeID, "--poll", "1ms", writeFake(t)}, &stdout, &stderr, options{getenv: noEnv})
	if code != 0 {
		t.Fatalf("exit = %d, want 0; stderr:\n%s", code, &stderr)
	}
	out := stdout.String()
	for _, want := range []string{
		"upload " + fakeID + " is processing: every part is in",
		"youtube: upload 40.0%",
		"youtube: transcoding 20.0% (processing)",
		"youtube: video https://www.youtube.com/watch?v=abc",
		"s3Bucket: transcoding 50.0%",
		"upload " + fakeID + " complete: clip.mp4",
		"  youtube: complete  https://www.youtube.com/watch?v=abc",
		"  s3Bucket: complete  outputs: out/clip.mp4",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout = %q, want a line %q", out, want)
		}
	}
	if strings.Contains(out+stderr.String(), "\r") {
		t.Errorf("output has \\r on a non-terminal: %q", out)
	}
	if len(f.other) != 0 {
		t.Errorf("other requests = %v, want none: every part is in, so no credentials and no PUTs", f.other)
	}
}

func TestMainExitsOneWhenFailed(t *testing.T) {
	_, c := newFake(t,
		rec("processing", "transcoding", 5),
		rec("failed", "failed", 5, func(r *rest.Upload) {
			r.Error = "a destination failed"
			r.Destinations[0].Error = "transcode: input is not a video"
		}),
	)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--api", c.BaseURL, "--token", testToken, "--atom", testAtom,
		"--resume", fakeID, "--poll", "1ms", writeFake(t)}, &stdout, &stderr, options{getenv: noEnv})
	if code != 1 {
		t.Fatalf("exit = %d, want 1; stderr:\n%s", code, &stderr)
	}
	for _, want := range []string{
		"s3Bucket: failed: transcode: input is not a video",
		"upload " + fakeID + " failed: clip.mp4, 10 B: a destination failed",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout = %q, want %q", &stdout, want)
		}
	}
}

func TestMainFollowInterrupted(t *testing.T) {
	_, c := newFake(t, rec("processing", "transcoding", 5))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"--api", c.BaseURL, "--token", testToken, "--atom", testAtom,
		"--resume", fakeID, "--poll", "5ms", writeFake(t)}, &stdout, &stderr, options{getenv: noEnv})
	if code != exitInterrupted {
		t.Fatalf("exit = %d, want %d; stderr:\n%s", code, exitInterrupted, &stderr)
	}
	if got := stderr.String(); !strings.Contains(got, "--resume "+fakeID) {
		t.Errorf("stderr = %q, want how to follow again with --resume", got)
	}
}

// TestFollowEndsWhenTheUploadExpires: expired is final, and not a success.
func TestFollowEndsWhenTheUploadExpires(t *testing.T) {
	const reason = "upload abandoned: no part arrived for 24h"
	f, c := newFake(t,
		rec("uploading", "waiting", 0),
		rec("expired", "failed", 0, func(r *rest.Upload) { r.Error, r.Destinations[0].Error = reason, reason }),
	)
	var out bytes.Buffer
	final, err := c.Follow(context.Background(), testAtom, fakeID, time.Millisecond, &out)
	if err != nil {
		t.Fatalf("Follow: %v", err)
	}
	if final.Status != StatusExpired || exitCode(final) != 1 || f.reads != 2 {
		t.Errorf("final %s (exit %d) after %d reads, want expired (exit 1) after 2", final.Status, exitCode(final), f.reads)
	}
	if !strings.Contains(out.String(), "s3Bucket: failed: "+reason) {
		t.Errorf("Follow printed %q, want the reason", &out)
	}
}
