package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"atomuploads/devstack/stacktest"
	"atomuploads/youtube/youtubetest"
)

// The browser tests drive the uploads page (package web) in headless
// Chromium (Debian's chromium, installed by scripts/test) against the real
// service on the local stack. The page is served by the service (or by a
// proxy in front of it) on 127.0.0.x, and the parts go to MinIO on another
// port: another origin, so every PUT needs MinIO's CORS rule
// (scripts/stack, MINIO_API_CORS_ALLOW_ORIGIN).

const browserToken = "test-token-0123456789"

// chromiumPath finds the browser scripts/stack installs.
func chromiumPath(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("the browser tests need Chromium: run scripts/stack install chromium (scripts/test does)")
	return ""
}

// browser is one headless Chromium with one tab.
type browser struct {
	t       testing.TB
	ctx     context.Context //nolint:containedctx // chromedp's tab is its context: every action on the tab goes through it
	console *lockedBuffer
	shots   string // where screenshots go
}

func newBrowser(t testing.TB) *browser {
	t.Helper()
	b := &browser{t: t, console: &lockedBuffer{}, shots: t.TempDir()}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()), // empty: no state from another run
		chromedp.WindowSize(1280, 900),
		// This machine reaches nothing but loopback: Chromium must not try.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter"),
		chromedp.Flag("force-color-profile", "srgb"),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithBrowserOption(chromedp.WithConsolef(func(format string, args ...any) {
		fmt.Fprintf(b.console, format+"\n", args...)
	})))
	b.ctx = ctx
	t.Cleanup(func() {
		if t.Failed() {
			b.screenshot("at-failure")
			t.Logf("browser console:\n%s", b.console.String())
		}
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start Chromium: %v", err)
	}
	return b
}

func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// eval evaluates JavaScript in the page, awaiting a promise, and decodes
// its JSON value into T.
func eval[T any](b *browser, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// waitFor waits until the JavaScript condition is true in the page.
func (b *browser) waitFor(what, cond string, timeout time.Duration) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](cond,
		chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(100*time.Millisecond)))
	if err != nil {
		text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
		b.t.Fatalf("waiting for %s: %v\npage text:\n%s", what, err, text)
	}
}

// screenshot saves a PNG of the whole page in the test's temp dir, and in
// $ATOM_UPLOADS_SCREENSHOTS when set (to look at after the run).
func (b *browser) screenshot(name string) {
	buf, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
	}
	if dir := os.Getenv("ATOM_UPLOADS_SCREENSHOTS"); dir != "" {
		_ = os.MkdirAll(dir, 0o755)
		_ = os.WriteFile(filepath.Join(dir, b.t.Name()+"-"+name+".png"), buf, 0o644)
	}
	b.t.Logf("screenshot: %s", path)
}

// open loads the page and enters the token and the atom as a person does.
func (b *browser) open(pageURL, atomID string) {
	b.t.Helper()
	b.do(chromedp.Navigate(pageURL),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), browserToken),
		chromedp.Click(chromedp.CSS(`#token-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("token-forget")),
		chromedp.SendKeys(chromedp.ID("atom"), atomID),
		chromedp.Click(chromedp.CSS(`#atom-form button[type=submit]`)))
	b.waitFor("the list of uploads", `!/Loading|Enter the API token/.test(document.querySelector('#list-state').textContent)`, 20*time.Second)
}

// startFromPage picks the file in the form, YouTube (and self-hosted, when
// asked) as destinations, starts the upload and returns its id, once its
// card is on the page.
func (b *browser) startFromPage(file, title string, selfHosted bool) string {
	b.t.Helper()
	before := eval[int](b, `document.querySelectorAll('article.upload').length`)
	b.do(chromedp.SetUploadFiles(chromedp.ID("file"), []string{file}),
		chromedp.SetValue(chromedp.ID("yt-title"), title),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector('#dest-youtube').checked = true;
			document.querySelector('#dest-s3').checked = %t`, selfHosted)),
		chromedp.Click(chromedp.ID("start")))
	b.waitFor("the new upload's card", fmt.Sprintf(`document.querySelectorAll('article.upload').length > %d`, before), 30*time.Second)
	return eval[string](b, `document.querySelector('article.upload').dataset.uploadId`)
}

func (b *browser) card(id string) string {
	return fmt.Sprintf(`document.querySelector('[data-upload-id=%q]')`, id)
}

// waitComplete waits until the page shows the upload complete, and fails
// at once when it shows the upload stopped: failed, or no longer sent with
// an error.
func (b *browser) waitComplete(id string, timeout time.Duration) {
	b.t.Helper()
	c := b.card(id)
	b.waitFor("upload "+id+" complete on the page", `(() => {
		const card = `+c+`;
		const status = card?.querySelector('[data-status]')?.dataset.status;
		const stopped = ['failed', 'cancelled', 'expired'].includes(status) ||
			(card?.querySelector('[data-error]')?.textContent && card.querySelector('[data-resume]').hidden === false);
		return status === 'complete' || !!stopped;
	})()`, timeout)
	if st := eval[string](b, c+`.querySelector('[data-status]').dataset.status`); st != "complete" {
		b.t.Fatalf("upload %s stopped (%s): %s", id, st, eval[string](b, c+`.innerText`))
	}
}

// bars returns the value of each progress bar of an upload's card.
func (b *browser) bars(id string) map[string]float64 {
	b.t.Helper()
	return eval[map[string]float64](b, `Object.fromEntries([...`+b.card(id)+`.querySelectorAll('progress[data-bar]')]
		.map((p) => [p.dataset.bar, Number(p.getAttribute('value'))]))`)
}

// writeRandom writes n random bytes to a file in dir.
func writeRandom(t testing.TB, dir, name string, n int) (string, []byte) {
	t.Helper()
	data := make([]byte, n)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, data
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// getRecord reads an upload's record through the API.
func getRecord(t testing.TB, base, atomID, id string) record {
	t.Helper()
	req, err := http.NewRequest("GET", base+"/api2/atom/"+atomID+"/uploads/"+id, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+browserToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var r record
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

// s3Object reads an object of the stack's S3.
func s3Object(t testing.TB, st *stacktest.Stack, bucket, key string) []byte {
	t.Helper()
	out, err := st.S3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// putLog records the part PUTs the browser sends to S3, as DevTools sees
// them: which part, with which session token, signed at what time.
type putLog struct {
	mu   sync.Mutex
	puts []partPut
}

type partPut struct {
	part  int
	token string
	date  time.Time // X-Amz-Date
	phase int       // the test's phase when it was sent
}

func (l *putLog) listen(t testing.TB, b *browser, phase func() int) {
	t.Helper()
	err := chromedp.Listen(b.ctx, func(ev any) {
		e, ok := ev.(*network.EventRequestWillBeSent)
		if !ok || e.Request.Method != http.MethodPut {
			return
		}
		i := strings.LastIndex(e.Request.URL, "/parts/")
		if i < 0 {
			return
		}
		n, err := strconv.Atoi(e.Request.URL[i+len("/parts/"):])
		if err != nil {
			return
		}
		p := partPut{part: n, phase: phase()}
		for k, v := range e.Request.Headers {
			s, _ := v.(string)
			switch strings.ToLower(k) {
			case "x-amz-security-token":
				p.token = s
			case "x-amz-date":
				p.date, _ = time.Parse("20060102T150405Z", s)
			}
		}
		l.mu.Lock()
		l.puts = append(l.puts, p)
		l.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (l *putLog) all() []partPut {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]partPut(nil), l.puts...)
}

// proxy is an HTTP server in front of the service, on addr: a page served
// by it has the proxy's origin. rewrite, when set, may change an API
// answer's JSON body.
func newProxy(t testing.TB, addr, service string, rewrite func(r *http.Request, body map[string]any) bool) string {
	t.Helper()
	target, err := url.Parse("http://" + service)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	if rewrite != nil {
		rp.ModifyResponse = func(res *http.Response) error {
			if !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
				return nil
			}
			raw, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil {
				return err
			}
			var body map[string]any
			if json.Unmarshal(raw, &body) == nil && rewrite(res.Request, body) {
				if raw, err = json.Marshal(body); err != nil {
					return err
				}
			}
			res.Body = io.NopCloser(bytes.NewReader(raw))
			res.ContentLength = int64(len(raw))
			res.Header.Set("Content-Length", strconv.Itoa(len(raw)))
			return nil
		}
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// browserEnv is the service on the test's stack, for the page.
type browserEnv struct {
	st   *stacktest.Stack
	svc  *service
	base string // the service's URL
	yt   *youtubetest.Server
}

func browserService(t *testing.T, selfHosted bool, extra map[string]string) *browserEnv {
	t.Helper()
	st := stacktest.New(t)
	yt, ytURL, _, atomURL := newStandIns(t, youtubetest.Options{ProcessingSteps: 2})
	env := serviceEnv(t, st, ytURL, atomURL)
	env["UPLOADS_LOG_LEVEL"] = "info"
	if selfHosted {
		env["UPLOADS_TRANSCODE_BACKEND"] = "ffmpeg"
		env["UPLOADS_TRANSCODE_OUTPUT_BUCKET"] = st.OutputBucket
		env["UPLOADS_TRANSCODE_FFMPEG_PRESET"] = "ultrafast"
	}
	for k, v := range extra {
		env[k] = v
	}
	svc := startService(t, env)
	svc.waitHealthy(t)
	return &browserEnv{st: st, svc: svc, base: "http://" + svc.addr, yt: yt}
}

// videoSHA is the sha256 of what YouTube got for the video, and whether it
// came in one session by the protocol.
func (e *browserEnv) videoSHA(t testing.TB, videoID string) (string, bool) {
	t.Helper()
	v, ok := e.yt.Video(videoID)
	if viol := e.yt.Violations(); len(viol) > 0 {
		t.Errorf("YouTube protocol violations: %v", viol)
	}
	return v.SHA256, ok && v.Sessions == 1
}

// TestBrowserUploadPage uploads a generated video from the page to both
// destinations, then reloads the page half-way through another upload and
// resumes it from the file picker.
func TestBrowserUploadPage(t *testing.T) {
	e := browserService(t, true, nil)
	st, base := e.st, e.base
	dir := t.TempDir()
	video := filepath.Join(dir, "clip.mp4")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=3",
		"-f", "lavfi", "-i", "sine=frequency=440:duration=3",
		"-vf", "noise=alls=60:allf=t", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0",
		"-c:a", "aac", "-shortest", video).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, out)
	}
	data, err := os.ReadFile(video)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) <= 5<<20 {
		t.Fatalf("the test video has %d bytes: want more than one 5 MiB part", len(data))
	}

	b := newBrowser(t)
	var phase sync.Map // the reload's phase, read by the listener
	phase.Store("n", 0)
	puts := &putLog{}
	puts.listen(t, b, func() int { v, _ := phase.Load("n"); return v.(int) })
	const atomID = "browser-atom"
	b.open(base+"/", atomID)

	// 1. A video to YouTube and self-hosted, from the file picker.
	id := b.startFromPage(video, "From the browser", true)
	b.waitComplete(id, 3*time.Minute)
	for bar, v := range b.bars(id) {
		if v != 100 {
			t.Errorf("progress bar %s at %v, want 100", bar, v)
		}
	}
	if n := len(b.bars(id)); n != 4 {
		t.Errorf("%d progress bars, want 4 (S3, YouTube bytes, YouTube processing, transcode)", n)
	}
	link := eval[string](b, b.card(id)+`.querySelector('[data-youtube-link]')?.href ?? ''`)
	outputs := eval[int](b, b.card(id)+`.querySelectorAll('[data-outputs] li').length`)
	rec := getRecord(t, base, atomID, id)
	var videoID string
	var kinds []string
	for _, d := range rec.Destinations {
		switch d.Type {
		case "youtube":
			videoID = d.Details.VideoID
		case "s3Bucket":
			for _, o := range d.Details.Outputs {
				kinds = append(kinds, o.Kind)
			}
		}
	}
	if link != "https://www.youtube.com/watch?v="+videoID || videoID == "" {
		t.Errorf("YouTube link on the page %q, video %q", link, videoID)
	}
	// The clip is below the default ladder: one rendition at its own size.
	if want := "hls,hlsVideo,hlsAudio,mp4,poster"; outputs != len(kinds) || strings.Join(kinds, ",") != want {
		t.Errorf("%d self-hosted outputs listed, of %v in the record; want every one of %s", outputs, kinds, want)
	}
	if sum, one := e.videoSHA(t, videoID); sum != sha256Hex(data) || !one {
		t.Errorf("YouTube got sha256 %s (one session: %t), want the file's %s", sum, one, sha256Hex(data))
	}
	full := s3Object(t, st, st.Bucket, "uploads/"+atomID+"/"+id+"/full")
	if !bytes.Equal(full, data) {
		t.Errorf("full is %d bytes (sha256 %s), want the file's %d (%s)", len(full), sha256Hex(full), len(data), sha256Hex(data))
	}
	b.screenshot("uploads-page")

	// 2. Another upload, reloaded half-way: the browser holds the last
	// part's PUT (DevTools' Fetch interception) until the others are in, the
	// page is reloaded, and the file is chosen again under Resume.
	second, data2 := writeRandom(t, dir, "second.mp4", 2*(5<<20)+123457) // 3 parts
	hold := newPartHolder(t, b, 2)
	phase.Store("n", 1)
	id2 := b.startFromPage(second, "Reloaded half-way", false)
	deadline := time.Now().Add(time.Minute)
	for {
		r := getRecord(t, base, atomID, id2)
		if len(r.Parts) != 3 {
			t.Fatalf("%d parts, want 3", len(r.Parts))
		}
		if r.Parts[0].Complete && r.Parts[1].Complete && hold.held() {
			if r.Parts[2].Complete {
				t.Fatal("the held part is complete")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("parts 0 and 1 not complete with part 2 held: %+v (held: %t)", r.Parts, hold.held())
		}
		time.Sleep(100 * time.Millisecond)
	}
	phase.Store("n", 2)
	hold.release()
	b.do(chromedp.Reload())
	b.waitFor("the resume control", b.card(id2)+`?.querySelector('[data-resume]')?.hidden === false`, 20*time.Second)
	if msg := eval[string](b, `document.querySelector('#notice').textContent`); !strings.Contains(msg, "reloaded") {
		t.Errorf("after the reload the page says %q, want that it was reloaded while sending", msg)
	}
	b.screenshot("after-reload")
	b.do(chromedp.SetUploadFiles(chromedp.ID("resume-"+id2), []string{second}))
	b.waitComplete(id2, 2*time.Minute)
	var before, after []int
	for _, p := range puts.all() {
		switch p.phase {
		case 1:
			before = append(before, p.part)
		case 2:
			after = append(after, p.part)
		}
	}
	if fmt.Sprint(after) != "[2]" {
		t.Errorf("after the reload the page PUT parts %v, want only the missing part [2]", after)
	}
	if len(before) != 3 {
		t.Errorf("before the reload the page PUT parts %v, want 0, 1 and 2 (held)", before)
	}
	rec2 := getRecord(t, base, atomID, id2)
	if sum, one := e.videoSHA(t, rec2.Destinations[0].Details.VideoID); sum != sha256Hex(data2) || !one {
		t.Errorf("YouTube got sha256 %s (one session: %t) for the resumed upload, want %s", sum, one, sha256Hex(data2))
	}
	b.screenshot("resumed")
}

// partHolder pauses the browser's PUT of one part (DevTools' Fetch
// interception) until released; every other request goes on.
type partHolder struct {
	mu      sync.Mutex
	holding bool
	paused  int
}

func newPartHolder(t testing.TB, b *browser, part int) *partHolder {
	t.Helper()
	h := &partHolder{holding: true}
	suffix := fmt.Sprintf("/parts/%d", part)
	err := chromedp.Listen(b.ctx, func(ev any) {
		e, ok := ev.(*fetch.EventRequestPaused)
		if !ok {
			return
		}
		h.mu.Lock()
		hold := h.holding && e.Request.Method == http.MethodPut && strings.HasSuffix(e.Request.URL, suffix)
		if hold {
			h.paused++
		}
		h.mu.Unlock()
		if !hold {
			// Not from the listener's goroutine: a command from there would wait forever.
			go func() {
				_, _ = chromedp.Call(b.ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: e.RequestID})
			}()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(b.ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{
		{URLPattern: "*" + suffix, RequestStage: fetch.RequestStageRequest},
	}}); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *partHolder) held() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.paused > 0
}

// release lets the next PUTs of the part through; the one held stays held
// until the page that sent it goes away.
func (h *partHolder) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.holding = false
}

// TestBrowserCredentialsRefresh proves that the uploader refreshes the
// upload's credentials before it sends a part with credentials about to
// expire. STS issues nothing shorter than 15 minutes, so a proxy in front
// of the API states an expiry 4 s away, and the browser's network is
// throttled so that the first parts take longer than that: the parts sent
// after them need fresh credentials, and each PUT is checked, as DevTools
// saw it, against the expiry stated for its session token.
func TestBrowserCredentialsRefresh(t *testing.T) {
	e := browserService(t, false, nil)
	const life = 4 * time.Second
	var mu sync.Mutex
	expiryOf := map[string]time.Time{} // session token → the expiry the page was told
	refreshes, startToken := 0, ""
	proxyURL := newProxy(t, "127.0.0.1:0", e.svc.addr, func(r *http.Request, body map[string]any) bool {
		creds, _ := body["credentials"].(map[string]any)
		if creds == nil {
			return false
		}
		token, _ := creds["sessionToken"].(string)
		exp := time.Now().Add(life)
		creds["expiry"] = exp.Unix()
		mu.Lock()
		defer mu.Unlock()
		expiryOf[token] = time.Unix(exp.Unix(), 0)
		if strings.HasSuffix(r.URL.Path, "/credentials") {
			refreshes++
		} else {
			startToken = token
		}
		return true
	})

	b := newBrowser(t)
	puts := &putLog{}
	puts.listen(t, b, func() int { return 0 })
	// A slow link: 4 MB/s up. Four 5 MiB parts in flight take about 5 s,
	// more than the stated life of the first credentials.
	if _, err := chromedp.Call(b.ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
		MatchedNetworkConditions: []*network.Conditions{{Latency: 20, DownloadThroughput: 4e6, UploadThroughput: 4e6}},
	}); err != nil {
		t.Fatal(err)
	}
	const atomID = "refresh-atom"
	b.open(proxyURL+"/", atomID)
	file, data := writeRandom(t, t.TempDir(), "slow.mp4", 6*(5<<20)-4096) // 6 parts, 4 in flight at once
	id := b.startFromPage(file, "Slow link", false)
	b.waitComplete(id, 2*time.Minute)
	b.screenshot("slow-link")

	all := puts.all()
	mu.Lock()
	defer mu.Unlock()
	if refreshes == 0 {
		t.Error("the page never refreshed the credentials")
	}
	first, fresh := 0, 0
	var sent []int
	for _, p := range all {
		sent = append(sent, p.part)
		exp, ok := expiryOf[p.token]
		if !ok {
			t.Errorf("part %d was sent with a session token the API never gave", p.part)
			continue
		}
		if !p.date.Before(exp) {
			t.Errorf("part %d was signed at %s with credentials stated to expire at %s", p.part, p.date.Format(time.TimeOnly), exp.Format(time.TimeOnly))
		}
		if p.token == startToken {
			first++
		} else {
			fresh++
		}
	}
	if len(all) < 6 || first == 0 || fresh == 0 {
		t.Errorf("parts sent %v: %d with the first credentials, %d with refreshed ones; want both", sent, first, fresh)
	}
	rec := getRecord(t, proxyURL, atomID, id)
	if sum, one := e.videoSHA(t, rec.Destinations[0].Details.VideoID); sum != sha256Hex(data) || !one {
		t.Errorf("YouTube got sha256 %s (one session: %t), want %s", sum, one, sha256Hex(data))
	}
	t.Logf("%d part PUTs, %d with the first credentials and %d with %d refreshed ones", len(all), first, fresh, refreshes)
}

// TestBrowserCORS calls the uploader module from pages of two origins: one
// the local S3's CORS rule allows (the service's own, 127.0.0.1), whose
// parts land with their ETag readable by the page, and one it does not
// (127.0.0.2, through a proxy), whose PUTs the browser refuses with a
// message that names CORS and the origin.
func TestBrowserCORS(t *testing.T) {
	e := browserService(t, false, nil)
	st, base := e.st, e.base
	allowed := os.Getenv("ATOM_UPLOADS_S3_CORS_ORIGINS")
	if allowed == "" || allowed == "*" || strings.Contains(allowed, "127.0.0.2") {
		t.Fatalf("the stack allows S3 CORS for %q: scripts/stack sets it to the page's local origins", allowed)
	}
	refused := newProxy(t, "127.0.0.2:0", e.svc.addr, nil)
	b := newBrowser(t)

	const script = `(async () => {
		const m = await import('/static/uploader.js');
		const cfg = await (await fetch('/static/config.json')).json();
		const api = { baseUrl: location.origin, token: %q, s3: cfg.s3 };
		const file = new File([new Uint8Array(%d).fill(7)], 'cors.mp4', { type: 'video/mp4' });
		const events = [];
		try {
			const rec = await m.startUpload(api, 'cors-atom', file, [{ type: 'youtube', title: 'CORS' }],
				{ follow: false, attempts: 1, onProgress: (e) => events.push(e) });
			return { id: rec.id, parts: events.filter((e) => e.type === 'part').map((e) => ({ part: e.part, etag: e.etag })) };
		} catch (err) {
			const started = events.find((e) => e.type === 'started');
			return { id: started ? started.upload.id : '', error: err.message };
		}
	})()`
	type result struct {
		ID    string `json:"id"`
		Error string `json:"error"`
		Parts []struct {
			Part int    `json:"part"`
			ETag string `json:"etag"`
		} `json:"parts"`
	}
	size := 5<<20 + 1000 // 2 parts

	b.do(chromedp.Navigate(base + "/static/config.json"))
	ok := eval[result](b, fmt.Sprintf(script, browserToken, size))
	if ok.Error != "" || len(ok.Parts) != 2 {
		t.Fatalf("upload from the allowed origin %s: %+v", base, ok)
	}
	for _, p := range ok.Parts {
		head, err := st.S3.HeadObject(context.Background(), &s3.HeadObjectInput{
			Bucket: aws.String(st.Bucket), Key: aws.String(fmt.Sprintf("uploads/cors-atom/%s/parts/%d", ok.ID, p.Part)),
		})
		if err != nil {
			t.Fatalf("part %d: %v", p.Part, err)
		}
		if p.ETag == "" || p.ETag != aws.ToString(head.ETag) {
			t.Errorf("part %d: the page read ETag %q, S3 has %q (CORS must expose ETag)", p.Part, p.ETag, aws.ToString(head.ETag))
		}
	}

	b.do(chromedp.Navigate(refused + "/static/config.json"))
	no := eval[result](b, fmt.Sprintf(script, browserToken, size))
	if no.ID == "" || !strings.Contains(no.Error, "CORS") || !strings.Contains(no.Error, refused) {
		t.Errorf("upload from %s, an origin the CORS rule does not allow: %+v; want a refusal that names CORS and the origin", refused, no)
	}
	list, err := st.S3.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{
		Bucket: aws.String(st.Bucket), Prefix: aws.String("uploads/cors-atom/" + no.ID + "/"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Contents) != 0 {
		t.Errorf("%d parts reached S3 from the refused origin", len(list.Contents))
	}
}

// TestBrowserCancelAndRetry cancels an upload from its card while a part is
// in flight, and asks for a retry of an upload whose YouTube destination
// failed. The retry route is another change's (POST …/retry), so a proxy
// answers it here as the contract says it answers when nothing can be
// retried: 409 with a reason, which the page must show.
func TestBrowserCancelAndRetry(t *testing.T) {
	e := browserService(t, false, map[string]string{"UPLOADS_WORKER_MAX_ATTEMPTS": "2"})
	const reason = "nothing to retry: the YouTube destination is not retryable yet (from the test's proxy)"
	var mu sync.Mutex
	var retries []string // Authorization of each retry request
	target, err := url.Parse(e.base)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/retry") {
			mu.Lock()
			retries = append(retries, r.Header.Get("Authorization"))
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusConflict)
			_ = json.NewEncoder(w).Encode(map[string]string{"message": reason})
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)

	b := newBrowser(t)
	const atomID = "cancel-atom"
	b.open(proxy.URL+"/", atomID)
	dir := t.TempDir()

	// Cancel while the last part is held in the browser.
	big, _ := writeRandom(t, dir, "cancel.mp4", 2*(5<<20)+1000)
	hold := newPartHolder(t, b, 2)
	id := b.startFromPage(big, "Cancelled", false)
	deadline := time.Now().Add(30 * time.Second)
	for !hold.held() {
		if time.Now().After(deadline) {
			t.Fatal("the page never sent the last part")
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.do(chromedp.Click(chromedp.CSS(`[data-upload-id="` + id + `"] [data-action="cancel"]`)))
	b.waitFor("the upload cancelled on the page", b.card(id)+`.querySelector('[data-status]').dataset.status === 'cancelled'`, 20*time.Second)
	if rec := getRecord(t, proxy.URL, atomID, id); rec.Status != "cancelled" {
		t.Errorf("record status %s after Cancel, want cancelled", rec.Status)
	}
	if hidden := eval[bool](b, b.card(id)+`.querySelector('[data-action="cancel"]').hidden`); !hidden {
		t.Error("the Cancel button is still offered on a cancelled upload")
	}
	hold.release()

	// A YouTube destination that fails (YouTube answers 503 to everything,
	// and the service gives up after 2 attempts), then Retry.
	e.yt.FailNext(1 << 20)
	small, _ := writeRandom(t, dir, "fails.mp4", 300_000)
	id2 := b.startFromPage(small, "Fails", false)
	b.waitFor("the failed upload's Retry button", b.card(id2)+`?.querySelector('[data-action="retry"]')?.hidden === false`, time.Minute)
	errText := eval[string](b, b.card(id2)+`.querySelector('[data-dest="youtube"]').innerText`)
	if !strings.Contains(errText, "Failed") || !strings.Contains(errText, "gave up") {
		t.Errorf("the failed destination reads %q, want Failed and the service's reason", errText)
	}
	b.do(chromedp.Click(chromedp.CSS(`[data-upload-id="` + id2 + `"] [data-action="retry"]`)))
	b.waitFor("the retry's answer", b.card(id2)+`.querySelector('[data-action-msg]').textContent.includes('Not retried')`, 20*time.Second)
	if msg := eval[string](b, b.card(id2)+`.querySelector('[data-action-msg]').textContent`); !strings.Contains(msg, reason) {
		t.Errorf("after Retry the card says %q, want the 409's message %q", msg, reason)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(retries) != 1 || retries[0] != "Bearer "+browserToken {
		t.Errorf("retry requests with Authorization %q, want one with the bearer token", retries)
	}
	b.screenshot("cancel-and-retry")
}

// TestBrowserPartRetry drops the first PUT of a part in the browser (DevTools'
// Fetch interception answers it with a connection reset): the uploader
// reports the retry and sends the part again, and the upload completes.
func TestBrowserPartRetry(t *testing.T) {
	e := browserService(t, false, nil)
	b := newBrowser(t)
	puts := &putLog{}
	puts.listen(t, b, func() int { return 0 })
	var mu sync.Mutex
	dropped := 0
	err := chromedp.Listen(b.ctx, func(ev any) {
		p, ok := ev.(*fetch.EventRequestPaused)
		if !ok {
			return
		}
		mu.Lock()
		drop := p.Request.Method == http.MethodPut && dropped == 0
		if drop {
			dropped++
		}
		mu.Unlock()
		go func() {
			if drop {
				_, _ = chromedp.Call(b.ctx, fetch.FailRequest, fetch.FailRequestParams{RequestID: p.RequestID, ErrorReason: network.ErrorReasonConnectionReset})
				return
			}
			_, _ = chromedp.Call(b.ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: p.RequestID})
		}()
	})
	if err != nil {
		t.Fatal(err)
	}
	b.do(chromedp.Navigate(e.base + "/static/config.json"))
	if _, err := chromedp.Call(b.ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{
		{URLPattern: "*/parts/*", RequestStage: fetch.RequestStageRequest},
	}}); err != nil {
		t.Fatal(err)
	}
	type result struct {
		ID      string   `json:"id"`
		Error   string   `json:"error"`
		Retries []int    `json:"retries"`
		Parts   []int    `json:"parts"`
		Types   []string `json:"types"`
	}
	res := eval[result](b, fmt.Sprintf(`(async () => {
		const m = await import('/static/uploader.js');
		const cfg = await (await fetch('/static/config.json')).json();
		const api = { baseUrl: location.origin, token: %q, s3: cfg.s3 };
		const file = new File([new Uint8Array(%d).fill(9)], 'retry.mp4', { type: 'video/mp4' });
		const events = [];
		try {
			const rec = await m.startUpload(api, 'retry-atom', file, [{ type: 'youtube', title: 'Retry' }],
				{ follow: false, backoffMs: 200, onProgress: (e) => events.push(e) });
			return { id: rec.id, retries: events.filter((e) => e.type === 'retry').map((e) => e.part),
				parts: events.filter((e) => e.type === 'part').map((e) => e.part),
				types: [...new Set(events.map((e) => e.type))] };
		} catch (err) {
			return { error: err.message };
		}
	})()`, browserToken, 5<<20+1000))
	if res.Error != "" {
		t.Fatalf("upload: %s", res.Error)
	}
	if len(res.Retries) != 1 || len(res.Parts) != 2 {
		t.Errorf("retries of parts %v and parts in %v: want one retry and both parts in", res.Retries, res.Parts)
	}
	for _, want := range []string{"started", "credentials", "bytes", "part", "retry", "sent"} {
		if !slices.Contains(res.Types, want) {
			t.Errorf("no %q event among %v", want, res.Types)
		}
	}
	counts := map[int]int{}
	for _, p := range puts.all() {
		counts[p.part]++
	}
	if len(res.Retries) == 1 && counts[res.Retries[0]] != 2 {
		t.Errorf("PUTs per part %v: want the dropped part sent twice", counts)
	}
	rec := getRecord(t, e.base, "retry-atom", res.ID)
	for i, p := range rec.Parts {
		head, err := e.st.S3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(e.st.Bucket), Key: aws.String(p.Key)})
		if err != nil {
			t.Errorf("part %d in S3: %v", i, err)
		} else if n := aws.ToInt64(head.ContentLength); n != p.End-p.Start {
			t.Errorf("part %d: %d bytes in S3, want %d", i, n, p.End-p.Start)
		}
	}
}
