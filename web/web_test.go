package web_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"atomuploads/web"
)

type response struct {
	StatusCode int
	Header     http.Header
	Body       string
}

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return response{rec.Code, rec.Header(), rec.Body.String()}
}

func TestServesThePageItsFilesAndConfig(t *testing.T) {
	h, err := web.New(web.Config{S3Endpoint: "http://127.0.0.1:9000/", S3PathStyle: true, YouTube: true})
	if err != nil {
		t.Fatal(err)
	}
	page := get(t, h, "GET", "/", nil)
	html := page.Body
	if page.StatusCode != 200 || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s", page.StatusCode, page.Header.Get("Content-Type"))
	}
	csp := page.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "connect-src 'self' http://127.0.0.1:9000;") || !strings.Contains(csp, "script-src 'self';") {
		t.Errorf("CSP %q: want scripts from the page's origin only and connections to it and to S3", csp)
	}

	// Every file the page and its modules name is served, as JavaScript
	// where it is one.
	refs := regexp.MustCompile(`(?:src|href)="(static/[^"]+)"`).FindAllStringSubmatch(html, -1)
	app := get(t, h, "GET", "/static/app.js", nil).Body
	uploader := get(t, h, "GET", "/static/uploader.js", nil).Body
	for _, m := range regexp.MustCompile(`from '\./([^']+)'`).FindAllStringSubmatch(app+uploader, -1) {
		refs = append(refs, []string{"", "static/" + m[1]})
	}
	if len(refs) < 4 {
		t.Fatalf("found only %v referenced from the page and its modules", refs)
	}
	for _, r := range refs {
		res := get(t, h, "GET", "/"+r[1], nil)
		if res.StatusCode != 200 {
			t.Errorf("GET /%s = %d", r[1], res.StatusCode)
		}
		if strings.HasSuffix(r[1], ".js") && res.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
			t.Errorf("GET /%s: Content-Type %q, which a browser refuses for a module", r[1], res.Header.Get("Content-Type"))
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" || res.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("GET /%s: headers %v", r[1], res.Header)
		}
	}

	var cfg struct {
		S3 struct {
			Endpoint  string `json:"endpoint"`
			PathStyle bool   `json:"pathStyle"`
		} `json:"s3"`
		Destinations map[string]bool `json:"destinations"`
	}
	if err := json.Unmarshal([]byte(get(t, h, "GET", "/static/config.json", nil).Body), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.S3.Endpoint != "http://127.0.0.1:9000" || !cfg.S3.PathStyle || !cfg.Destinations["youtube"] || cfg.Destinations["s3Bucket"] {
		t.Errorf("config.json = %+v", cfg)
	}

	// Revalidation is a 304; other paths and methods are refused.
	etag := page.Header.Get("ETag")
	if res := get(t, h, "GET", "/", map[string]string{"If-None-Match": etag}); etag == "" || res.StatusCode != http.StatusNotModified {
		t.Errorf("GET / with If-None-Match %q = %d, want 304", etag, res.StatusCode)
	}
	for _, p := range []string{"/static/web.go", "/static/", "/index.html", "/static/../web.go", "/static/vendor/"} {
		if res := get(t, h, "GET", p, nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, res.StatusCode)
		}
	}
	if res := get(t, h, "POST", "/", nil); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST / = %d, want 405", res.StatusCode)
	}
}

func TestAWSEndpointByDefault(t *testing.T) {
	h, err := web.New(web.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if csp := get(t, h, "GET", "/", nil).Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self' https://*.amazonaws.com;") {
		t.Errorf("CSP %q: want connections to AWS's S3 when no endpoint is set", csp)
	}
	if _, err := web.New(web.Config{S3Endpoint: "127.0.0.1:9000"}); err == nil {
		t.Error("an S3 endpoint without a scheme was accepted")
	}
}

// The vendored signer is the pinned npm release, unchanged.
func TestVendoredAWS4FetchIsPinned(t *testing.T) {
	h, err := web.New(web.Config{})
	if err != nil {
		t.Fatal(err)
	}
	js := get(t, h, "GET", "/static/vendor/aws4fetch-1.0.20.esm.js", nil).Body
	lic := get(t, h, "GET", "/static/vendor/aws4fetch-1.0.20.LICENSE", nil).Body
	// dist/aws4fetch.esm.js of the npm tarball (vendor/README.md).
	const pinned = "3049cd99d00a2fb83ce0e77f0e6b3fb22c17d8e708b740821f906145a8f978e9"
	if sum := sha256.Sum256([]byte(js)); hex.EncodeToString(sum[:]) != pinned {
		t.Errorf("the vendored aws4fetch has sha256 %x, want the npm release's %s", sum, pinned)
	}
	if !strings.Contains(lic, "Permission is hereby granted") {
		t.Error("the vendored aws4fetch's licence is not served")
	}
}

// Every control of the page has a label a screen reader reads out.
func TestEveryControlIsLabelled(t *testing.T) {
	h, err := web.New(web.Config{})
	if err != nil {
		t.Fatal(err)
	}
	html := get(t, h, "GET", "/", nil).Body
	labelled := map[string]bool{}
	for _, m := range regexp.MustCompile(`<label for="([^"]+)"`).FindAllStringSubmatch(html, -1) {
		labelled[m[1]] = true
	}
	controls := regexp.MustCompile(`<(input|select|textarea)\b[^>]*>`).FindAllString(html, -1)
	if len(controls) < 8 {
		t.Fatalf("found only %d controls", len(controls))
	}
	for _, c := range controls {
		id := regexp.MustCompile(`\bid="([^"]+)"`).FindStringSubmatch(c)
		if id == nil || !labelled[id[1]] {
			t.Errorf("control without a label: %s", c)
		}
	}
	if !strings.Contains(html, `<html lang="en">`) || !strings.Contains(html, `aria-live="polite"`) {
		t.Error("the page has no language or no live region for its messages")
	}
}
