package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"atomuploads/devstack/stacktest"
	"atomuploads/metrics"
	"atomuploads/youtube/youtubetest"
)

// TestMetricsAfterAnUpload runs an upload to both destinations through the
// service on the local stack, then scrapes its /metrics listener: the
// counters moved by what happened (every byte committed to YouTube once,
// in one session; one lag sample per part; each destination complete once;
// one transcode, one reassembly of every byte, one asset), no label holds
// an id, and the health detail has every dependency answering.
func TestMetricsAfterAnUpload(t *testing.T) {
	st := stacktest.New(t)
	yt, ytURL, _, atomURL := newStandIns(t, youtubetest.Options{ProcessingSteps: 1})
	env := serviceEnv(t, st, ytURL, atomURL)
	env["UPLOADS_TRANSCODE_BACKEND"] = "ffmpeg"
	env["UPLOADS_TRANSCODE_OUTPUT_BUCKET"] = st.OutputBucket
	env["UPLOADS_TRANSCODE_FFMPEG_PRESET"] = "ultrafast"
	env["UPLOADS_LOG_LEVEL"] = "info"
	svc := startService(t, env)
	svc.waitHealthy(t)
	scrapeURL := "http://" + svc.metricsAddr + "/metrics"
	if f := scrape(t, scrapeURL); f["go_goroutines"] == nil || f["process_start_time_seconds"] == nil {
		t.Error("no Go runtime or process metrics")
	}

	// A 3 s video of about 11 MB: 3 parts of 5 MiB.
	video := filepath.Join(t.TempDir(), "clip.mp4")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=3",
		"-vf", "noise=alls=60:allf=t", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", video).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, out)
	}
	file, err := os.ReadFile(video)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(file))

	ctx := testCtx(t, 4*time.Minute)
	base := "http://" + svc.addr + "/api2/atom/metrics-atom/uploads"
	rec, code, err := apiCall(ctx, "POST", base, map[string]any{
		"filename": "clip.mp4", "size": size, "contentType": "video/mp4",
		"destinations": []map[string]any{{"type": "youtube", "title": "Metrics"}, {"type": "s3Bucket"}},
	})
	if err != nil || code != http.StatusCreated {
		t.Fatalf("start upload: %d %v", code, err)
	}
	parts := len(rec.Parts)
	if parts < 2 {
		t.Fatalf("%d parts, want several", parts)
	}
	order := make([]int, parts) // the last part first: the relay waits for part 0
	for i := range order {
		order[i] = parts - 1 - i
	}
	if err := browserPut(ctx, st, rec, file, order); err != nil {
		t.Fatal(err)
	}
	var videoID, jobID string
	for {
		got, _, err := apiCall(ctx, "GET", base+"/"+rec.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == "complete" || got.Status == "failed" {
			if got.Status != "complete" {
				t.Fatalf("upload %s: %+v", got.Status, got.Destinations)
			}
			for _, d := range got.Destinations {
				videoID, jobID = videoID+d.Details.VideoID, jobID+d.Details.JobID
			}
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The counters of the last steps move right after the record does:
	// wait for them, then every number must be what happened.
	var f map[string]*dto.MetricFamily
	deadline := time.Now().Add(30 * time.Second)
	for {
		f = scrape(t, scrapeURL)
		if get(f, "atomuploads_upload_transitions_total", "status", "complete") == 1 &&
			get(f, "atomuploads_relays_parked", "waiting_for", "youtubeQuota") == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the upload's completion and the census never showed in /metrics:\n%s", svc.out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Every byte reached YouTube once, in one session: exactly these lines.
	want := expectedText(f, "atomuploads_relay_bytes_committed_total", fmt.Sprintf("atomuploads_relay_bytes_committed_total %d", size)) +
		expectedText(f, "atomuploads_relay_sessions_total",
			`atomuploads_relay_sessions_total{event="restarted"} 0`,
			`atomuploads_relay_sessions_total{event="resumed"} 0`,
			`atomuploads_relay_sessions_total{event="started"} 1`) +
		expectedText(f, "atomuploads_reassembly_bytes_copied_total", fmt.Sprintf("atomuploads_reassembly_bytes_copied_total %d", size))
	if err := testutil.ScrapeAndCompare(scrapeURL, strings.NewReader(want),
		"atomuploads_relay_bytes_committed_total", "atomuploads_relay_sessions_total", "atomuploads_reassembly_bytes_copied_total"); err != nil {
		t.Error(err)
	}
	if n := f["atomuploads_relay_part_lag_seconds"].GetMetric()[0].GetHistogram().GetSampleCount(); n != uint64(parts) {
		t.Errorf("part lag: %d samples, want one per part (%d)", n, parts)
	}
	if n := f["atomuploads_relay_last_part_to_complete_seconds"].GetMetric()[0].GetHistogram().GetSampleCount(); n != 1 {
		t.Errorf("last part to YouTube complete: %d samples, want 1", n)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"atomuploads_destination_transitions_total", []string{"type", "youtube", "status", "upload"}, 1},
		{"atomuploads_destination_transitions_total", []string{"type", "youtube", "status", "complete"}, 1},
		{"atomuploads_destination_transitions_total", []string{"type", "s3Bucket", "status", "complete"}, 1},
		{"atomuploads_destination_transitions_total", []string{"type", "youtube", "status", "failed"}, 0},
		{"atomuploads_upload_transitions_total", []string{"status", "processing"}, 1},
		{"atomuploads_reassemblies_total", []string{"outcome", "done"}, 1},
		{"atomuploads_transcode_jobs_total", []string{"outcome", "started"}, 1},
		{"atomuploads_transcode_jobs_total", []string{"outcome", "complete"}, 1},
		{"atomuploads_ffmpeg_jobs_running", nil, 0},
		{"atomuploads_atomapi_asset_calls_total", []string{"outcome", "added"}, 1},
		{"atomuploads_queue_messages_handled_total", []string{"kind", "part", "outcome", "dead_lettered"}, 0},
		{"atomuploads_http_requests_total", []string{"route", "/api2/atom/:atomId/uploads", "method", "POST", "status_class", "2xx"}, 1},
		{"atomuploads_youtube_errors_total", []string{"class", "credentials"}, 0},
		{"atomuploads_health_check_failing", []string{"check", "youtubeCredentials"}, 0},
		{"atomuploads_queue_depth", []string{"queue", "dead_letter", "state", "visible"}, 0},
	} {
		if got := get(f, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := get(f, "atomuploads_queue_messages_handled_total", "kind", "part", "outcome", "done"); got < float64(parts) {
		t.Errorf("part messages done = %v, want at least the %d parts", got, parts)
	}
	for _, typ := range []string{"youtube", "s3Bucket"} {
		if n := histogramOf(f, "atomuploads_destination_time_to_complete_seconds", "type", typ).GetSampleCount(); n != 1 {
			t.Errorf("time to complete of %s: %d samples, want 1", typ, n)
		}
	}
	if n := histogramOf(f, "atomuploads_ffmpeg_job_duration_seconds", "outcome", "complete").GetSampleCount(); n != 1 {
		t.Errorf("ffmpeg job durations: %d, want 1", n)
	}
	if n := histogramOf(f, "atomuploads_transcode_job_duration_seconds", "outcome", "complete").GetSampleCount(); n != 1 {
		t.Errorf("transcode job durations (as the worker follows them): %d, want 1", n)
	}
	checkNoIDLabels(t, f, "metrics-atom", rec.ID, videoID, jobID)
	if v, ok := yt.Video(videoID); !ok || v.Size != size {
		t.Errorf("the stand-in has %+v", v)
	}

	// The health detail: every dependency answered, nothing is wrong,
	// on the metrics listener and on the API's ?detail=1.
	for _, url := range []string{"http://" + svc.metricsAddr + "/healthcheck", "http://" + svc.addr + "/healthcheck?detail=1"} {
		var r metrics.Report
		if code := getJSON(t, url, &r); code != http.StatusOK || r.Status != "ok" || r.Draining || len(r.Problems) != 0 || !r.Checks["youtubeCredentials"].OK {
			t.Errorf("%s: %d %+v", url, code, r)
		}
		for _, dep := range []string{"sqsReceive", "dynamodb", "s3", "sts", "youtube", "youtubeToken", "atomApi"} {
			if d, ok := r.Dependencies[dep]; !ok || d.LastSuccess == nil {
				t.Errorf("%s: %s never answered: %+v", url, dep, d)
			}
		}
	}
}

// TestHealthDetailShowsRefusedYouTubeCredentials: with a refresh token
// YouTube refuses, the relay parks, and the health detail and the metrics
// say why, not only a log line.
func TestHealthDetailShowsRefusedYouTubeCredentials(t *testing.T) {
	st := stacktest.New(t)
	_, ytURL, _, atomURL := newStandIns(t, youtubetest.Options{})
	env := serviceEnv(t, st, ytURL, atomURL)
	env["UPLOADS_YOUTUBE_REFRESH_TOKEN"] = "revoked-refresh-token"
	svc := startService(t, env)
	svc.waitHealthy(t)

	ctx := testCtx(t, 2*time.Minute)
	base := "http://" + svc.addr + "/api2/atom/creds-atom/uploads"
	file := make([]byte, 6<<20)
	rec, code, err := apiCall(ctx, "POST", base, map[string]any{
		"filename": "clip.mp4", "size": len(file), "contentType": "video/mp4",
		"destinations": []map[string]any{{"type": "youtube", "title": "Refused"}},
	})
	if err != nil || code != http.StatusCreated {
		t.Fatalf("start upload: %d %v", code, err)
	}
	if err := browserPut(ctx, st, rec, file, []int{0, 1}); err != nil {
		t.Fatal(err)
	}

	var r metrics.Report
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		getJSON(t, "http://"+svc.addr+"/healthcheck?detail=1", &r)
		if len(r.Problems) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the health detail never said the credentials are refused: %+v\n%s", r, svc.out.String())
		}
	}
	c := r.Checks["youtubeCredentials"]
	if r.Status != "ok" || c.OK || c.Since == nil || !strings.Contains(r.Problems[0], "credentials") {
		t.Errorf("detail = %+v, want ok to serve, the credentials check failing since a time, and the problem said", r)
	}
	if d := r.Dependencies["youtubeToken"]; d.LastFailure == nil || d.LastSuccess != nil {
		t.Errorf("youtubeToken = %+v, want failures and no success", d)
	}
	// The load balancer's health check is unchanged: the process serves.
	if code := healthcheckCmd("http://" + svc.addr + "/healthcheck"); code != 0 {
		t.Errorf("healthcheck exit %d, want 0", code)
	}
	var f map[string]*dto.MetricFamily
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		f = scrape(t, "http://"+svc.metricsAddr+"/metrics")
		if get(f, "atomuploads_relays_parked", "waiting_for", "youtubeCredentials") == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("relays_parked{youtubeCredentials} = %v, want the census to count the parked relay", get(f, "atomuploads_relays_parked", "waiting_for", "youtubeCredentials"))
		}
	}
	if got := get(f, "atomuploads_health_check_failing", "check", "youtubeCredentials"); got != 1 {
		t.Errorf("health_check_failing{youtubeCredentials} = %v, want 1", got)
	}
	if got := get(f, "atomuploads_youtube_errors_total", "class", "credentials"); got < 1 {
		t.Errorf("youtube_errors_total{credentials} = %v, want the refusal counted", got)
	}
	if strings.Contains(fmt.Sprint(r), "revoked-refresh-token") || strings.Contains(fmt.Sprint(r), "client-secret") {
		t.Error("the health detail shows a secret")
	}
}

// scrape reads the text exposition at url.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	f, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// get is the value of the counter or gauge with the labels (name, value,
// …), or -1 when there is no such series.
func get(f map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	for _, m := range f[name].GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		if m.GetCounter() != nil {
			return m.GetCounter().GetValue()
		}
		return m.GetGauge().GetValue()
	}
	return -1
}

func histogramOf(f map[string]*dto.MetricFamily, name string, labels ...string) *dto.Histogram {
	for _, m := range f[name].GetMetric() {
		if hasLabels(m, labels) {
			return m.GetHistogram()
		}
	}
	return nil
}

func hasLabels(m *dto.Metric, labels []string) bool {
	have := map[string]string{}
	for _, l := range m.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	if len(have) != len(labels)/2 {
		return false
	}
	for i := 0; i+1 < len(labels); i += 2 {
		if have[labels[i]] != labels[i+1] {
			return false
		}
	}
	return true
}

// expectedText is the exposition of one metric with the given sample
// lines, under the HELP and TYPE the service gives it.
func expectedText(f map[string]*dto.MetricFamily, name string, samples ...string) string {
	fam := f[name]
	return fmt.Sprintf("# HELP %s %s\n# TYPE %s %s\n%s\n", name, fam.GetHelp(), name,
		strings.ToLower(fam.GetType().String()), strings.Join(samples, "\n"))
}

// ulidPattern is the shape of upload ids.
var ulidPattern = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)

// checkNoIDLabels fails the test for every label value that holds one of
// ids or looks like an upload id.
func checkNoIDLabels(t *testing.T, f map[string]*dto.MetricFamily, ids ...string) {
	t.Helper()
	labels := 0
	for name, fam := range f {
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				labels++
				if ulidPattern.MatchString(l.GetValue()) {
					t.Errorf("%s{%s=%q}: an upload id", name, l.GetName(), l.GetValue())
				}
				for _, id := range ids {
					if id != "" && strings.Contains(l.GetValue(), id) {
						t.Errorf("%s{%s=%q} holds the id %q", name, l.GetName(), l.GetValue(), id)
					}
				}
			}
		}
	}
	if labels == 0 {
		t.Error("no labels at all")
	}
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %d %s: %v", url, res.StatusCode, b, err)
	}
	return res.StatusCode
}
