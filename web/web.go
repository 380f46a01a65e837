// Package web is the browser side of atom-uploads: the reference uploader
// module (uploader.js, what a media tool embeds to send a file straight to
// S3 in parts) and the uploads page that uses it, served by the service at
// / with the files under /static/. The files are embedded in the binary:
// nothing is built to run them, and they need no token to be fetched (the
// API calls the page makes carry the bearer token the person enters).
//
// aws4fetch (vendor/, MIT, pinned to the npm release named in its file
// name) signs the S3 requests with SigV4; see vendor/README.md.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

//go:embed index.html app.js uploader.js style.css vendor/aws4fetch-1.0.20.esm.js vendor/aws4fetch-1.0.20.LICENSE
var files embed.FS

// Config is what the page needs to know about the service it is served by.
type Config struct {
	// S3Endpoint is the S3 endpoint the browser PUTs the parts to, such as
	// http://127.0.0.1:9000 for the local stack; empty: AWS's own
	// (https://<bucket>.s3.<region>.amazonaws.com).
	S3Endpoint string
	// S3PathStyle puts the bucket in the path (MinIO) instead of the host.
	S3PathStyle bool
	// YouTube and SelfHosted say which destinations the service takes, so
	// that the page offers only those.
	YouTube    bool
	SelfHosted bool
}

// clientConfig is /static/config.json, read by the page.
type clientConfig struct {
	S3 struct {
		Endpoint  string `json:"endpoint"`
		PathStyle bool   `json:"pathStyle"`
	} `json:"s3"`
	Destinations struct {
		YouTube    bool `json:"youtube"`
		SelfHosted bool `json:"s3Bucket"`
	} `json:"destinations"`
}

type asset struct {
	body  []byte
	ctype string
	etag  string
}

// Handler serves the page: GET / is index.html, GET /static/<file> the
// other files and /static/config.json the Config. Every other path is 404.
type Handler struct {
	assets map[string]asset // by URL path
	csp    string
}

// New returns the page's handler.
func New(cfg Config) (*Handler, error) {
	h := &Handler{assets: map[string]asset{}}
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		ctype := mime.TypeByExtension(path.Ext(p))
		switch path.Ext(p) {
		case ".js":
			ctype = "text/javascript; charset=utf-8" // whatever the host's mime.types says
		case ".LICENSE":
			ctype = "text/plain; charset=utf-8"
		}
		urlPath := "/static/" + p
		if p == "index.html" {
			urlPath = "/"
		}
		h.assets[urlPath] = newAsset(b, ctype)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var cc clientConfig
	cc.S3.Endpoint = strings.TrimRight(cfg.S3Endpoint, "/")
	cc.S3.PathStyle = cfg.S3PathStyle
	cc.Destinations.YouTube = cfg.YouTube
	cc.Destinations.SelfHosted = cfg.SelfHosted
	b, err := json.Marshal(cc)
	if err != nil {
		return nil, err
	}
	h.assets["/static/config.json"] = newAsset(b, "application/json")
	h.csp, err = contentSecurityPolicy(cc.S3.Endpoint)
	if err != nil {
		return nil, err
	}
	return h, nil
}

func newAsset(b []byte, ctype string) asset {
	sum := sha256.Sum256(b)
	return asset{body: b, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
}

// contentSecurityPolicy lets the page run its own scripts only and talk to
// the service and to S3, nothing else.
func contentSecurityPolicy(s3Endpoint string) (string, error) {
	s3 := "https://*.amazonaws.com"
	if s3Endpoint != "" {
		u, err := url.Parse(s3Endpoint)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return "", fmt.Errorf("the S3 endpoint %q is not an absolute URL such as http://127.0.0.1:9000", s3Endpoint)
		}
		s3 = u.Scheme + "://" + u.Host
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self' " + s3 + "; base-uri 'none'; form-action 'none'; frame-ancestors 'none'", nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a, ok := h.assets[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.ctype)
	hd.Set("ETag", a.etag)
	// Revalidated on every load, so a new version of the service is picked
	// up at once; the ETag makes that a 304.
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	if r.URL.Path == "/" {
		hd.Set("Content-Security-Policy", h.csp)
		hd.Set("X-Frame-Options", "DENY")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
