package devstack_test

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"atomuploads/devstack/stacktest"
)

// The local S3's CORS (scripts/stack sets MINIO_API_CORS_ALLOW_ORIGIN, the
// pinned MinIO's only CORS setting): a page of a listed origin may PUT a
// part with the headers the uploader signs and read the ETag; another
// origin gets no CORS headers, so its browser refuses the PUT.
func TestLocalS3CORS(t *testing.T) {
	st := stacktest.New(t)
	origins := os.Getenv("ATOM_UPLOADS_S3_CORS_ORIGINS")
	if origins == "" || origins == "*" {
		t.Fatalf("ATOM_UPLOADS_S3_CORS_ORIGINS=%q: scripts/stack lists the page's local origins", origins)
	}
	url := os.Getenv("AWS_ENDPOINT_URL_S3") + "/" + st.Bucket + "/uploads/a/01M8MGR6SQVEP8ZV1CX16D70DD/parts/0"
	signed := "authorization,content-type,x-amz-checksum-sha256,x-amz-content-sha256,x-amz-date,x-amz-security-token"
	preflight := func(origin string) http.Header {
		req, err := http.NewRequest(http.MethodOptions, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "PUT")
		req.Header.Set("Access-Control-Request-Headers", signed)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.Header
	}
	const page = "http://127.0.0.1:8080" // scripts/run's page
	h := preflight(page)
	if h.Get("Access-Control-Allow-Origin") != page || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "PUT") {
		t.Errorf("preflight from %s: %v", page, h)
	}
	for _, hd := range strings.Split(signed, ",") {
		if !strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), hd) {
			t.Errorf("preflight from %s does not allow %s: %v", page, hd, h)
		}
	}
	if h := preflight("https://elsewhere.example"); h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from an origin not listed was allowed: %v", h)
	}

	// The answer to the request itself exposes ETag to the page (an
	// unsigned GET: refused, but with the CORS headers all the same).
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", page)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if !strings.Contains(strings.ToLower(res.Header.Get("Access-Control-Expose-Headers")), "etag") {
		t.Errorf("ETag is not exposed: %v", res.Header)
	}
}
