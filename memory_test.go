package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"atomuploads/devstack/stacktest"
	"atomuploads/store"
	"atomuploads/upload"
	"atomuploads/youtube/youtubetest"
)

// listPeakBound is the most the service process's peak resident set
// (VmHWM) may be while it answers eight lists of 100 uploads of 256 GiB at
// once. Each such list is about 120 MB of JSON; the service writes it a
// record at a time as it reads DynamoDB pages of at most 20 items, so a
// request holds about one page (some MB decoded), not the page of 100: the
// idle service is about 35 MiB and the eight lists add about 35 MiB
// (measured 67 MiB in all; 3.0 GiB when the lists were built whole).
const listPeakBound = 100 << 20

// TestListsOfMaxSizeUploadsStayWithinMemoryBound puts 100 uploads of the
// largest size (about 10,000 parts each, nearly all complete) in the table,
// asks a real service process for eight full pages of them at once, and
// checks the process's peak resident set size (VmHWM in /proc) stays under
// listPeakBound. The service is a plain build of this package, not the
// race-instrumented test binary, whose memory overhead would hide the
// figure.
func TestListsOfMaxSizeUploadsStayWithinMemoryBound(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc to read a process's peak RSS")
	}
	st := stacktest.New(t)
	ctx := testCtx(t, 10*time.Minute)
	const atom, uploads = "memory-atom", 100
	db := store.New(st.DynamoDB, st.Table, 0)
	var parts int
	created := time.Now().Add(-time.Hour)
	for i := range uploads {
		u := maxSizeUpload(t, atom, created.Add(time.Duration(i)*time.Second))
		parts = u.PartCount()
		if err := db.Create(ctx, u); err != nil {
			t.Fatal(err)
		}
	}

	bin := buildService(t)
	_, ytURL, _, atomURL := newStandIns(t, youtubetest.Options{})
	env := serviceEnv(t, st, ytURL, atomURL)
	env["UPLOADS_LOG_LEVEL"] = "warn"
	s := startProcess(t, bin, nil, env)
	s.waitHealthy(t)
	pid := s.cmd.Process.Pid
	// One small list first, so that the baseline includes the clients and
	// code paths every list uses.
	if _, err := listBody(ctx, s.addr, 1, io.Discard); err != nil {
		t.Fatal(err)
	}
	before := procStatus(t, pid, "VmHWM")

	const lists = 8
	var wg sync.WaitGroup
	sizes := make([]int64, lists)
	errs := make([]error, lists)
	var first strings.Builder
	began := time.Now()
	for i := range lists {
		wg.Go(func() {
			w := io.Writer(io.Discard)
			if i == 0 {
				w = &first
			}
			sizes[i], errs[i] = listBody(ctx, s.addr, uploads, w)
		})
	}
	wg.Wait()
	took := time.Since(began)
	after := procStatus(t, pid, "VmHWM")
	for i, err := range errs {
		if err != nil {
			t.Fatalf("list %d: %v", i, err)
		}
	}
	var page struct {
		Uploads []struct {
			ID    string            `json:"id"`
			Parts []json.RawMessage `json:"parts"`
		} `json:"uploads"`
	}
	if err := json.Unmarshal([]byte(first.String()), &page); err != nil {
		t.Fatalf("decode a list: %v", err)
	}
	if len(page.Uploads) != uploads {
		t.Fatalf("a list has %d uploads, want %d", len(page.Uploads), uploads)
	}
	for _, u := range page.Uploads {
		if len(u.Parts) != parts {
			t.Fatalf("upload %s has %d parts, want %d", u.ID, len(u.Parts), parts)
		}
	}
	t.Logf("8 lists of %d uploads of %d parts, %.1f MB each, in %s: service VmHWM %.1f MiB before, %.1f MiB after (bound %d MiB)",
		uploads, parts, float64(sizes[0])/1e6, took.Round(time.Millisecond), float64(before)/(1<<20), float64(after)/(1<<20), listPeakBound>>20)
	if after > listPeakBound {
		t.Errorf("the service's peak RSS reached %.1f MiB, above the bound of %d MiB", float64(after)/(1<<20), listPeakBound>>20)
	}
}

// maxSizeUpload is an upload of the largest size the API takes, with every
// part complete but a few short runs.
func maxSizeUpload(t testing.TB, atomID string, created time.Time) *upload.Upload {
	t.Helper()
	id, err := upload.NewID(created, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, err := upload.New(upload.StartRequest{
		Filename: "a-long-evening-news-programme-recorded-in-full.mp4", Size: upload.MaxFileSize, ContentType: "video/mp4",
		Destinations: []upload.DestinationRequest{
			{Type: upload.YouTube, YouTube: upload.YouTubeMetadata{Title: "The evening news", Tags: []string{"news"}}},
			{Type: upload.S3Bucket},
		},
	}, atomID, id, created, "eu-west-1", "bucket", upload.DefaultPartSize)
	if err != nil {
		t.Fatal(err)
	}
	for n := range u.PartCount() {
		if n%1000 >= 3 {
			u.Completed[n] = true
		}
	}
	// Terminal, so that the service's worker and reconciler leave it be
	// while the test measures the API.
	u.Status, u.Error = upload.StatusFailed, "the browser stopped sending parts"
	for i := range u.Destinations {
		u.Destinations[i].Fail("the browser stopped sending parts")
	}
	return u
}

// listBody lists limit uploads of memory-atom and copies the body to w.
func listBody(ctx context.Context, addr string, limit int, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		"http://"+addr+"/api2/atom/memory-atom/uploads?limit="+strconv.Itoa(limit), http.NoBody)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer test-token-0123456789")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return 0, fmt.Errorf("status %d: %s", res.StatusCode, b)
	}
	return io.Copy(w, res.Body)
}

// buildService builds this package without the race detector.
func buildService(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "atom-uploads")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// procStatus reads a "kB" field of /proc/<pid>/status, in bytes.
func procStatus(t testing.TB, pid int, field string) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", field, err)
		}
		return kb << 10
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
