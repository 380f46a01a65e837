// Package youtube is the YouTube Data API v3 client of atom-uploads: OAuth2
// access tokens from a refresh token, the resumable upload session protocol
// used to relay a file to YouTube chunk by chunk while the rest of it is
// still arriving, and the video's processing status once it is uploaded.
//
// Access tokens come from the OAuth2 token endpoint with the refresh-token
// grant (golang.org/x/oauth2) and are reused until they expire. A 401 from
// YouTube drops the cached token; the call is tried once more with a fresh
// one, and a second 401 is a permanent error.
//
// The resumable protocol (https://developers.google.com/youtube/v3/guides/using_resumable_upload_protocol)
// is spoken directly over HTTP, because the session must outlive the process
// that started it: the session URI is stored and any instance can go on
// from the offset YouTube reports. The steps and the methods that do them:
//
//   - Step 1, start a resumable session: StartSession POSTs the video
//     resource to upload/youtube/v3/videos?uploadType=resumable and keeps
//     the Location header, the session URI.
//   - Step 3, upload the file in chunks: PutChunk PUTs bytes start..start+n-1
//     with Content-Range: bytes start-end/total. Every chunk but the last must
//     be a multiple of 256 KiB. 308 Resume Incomplete with Range: bytes=0-X
//     means YouTube has bytes 0..X (no Range: nothing yet); 200 or 201 means
//     the upload is complete and the body is the video resource.
//   - Step 4.1, check the status of an upload: Offset PUTs an empty body with
//     Content-Range: bytes */total and gets the same answers. YouTube may
//     commit less than a chunk it was sent, so callers continue from the
//     committed offset Offset or PutChunk reports, never from their own count.
//   - Cancelling: Cancel DELETEs the session URI.
//   - 404 Not Found or 410 Gone on a session URI means the session expired:
//     ErrSessionGone, and the upload starts again from byte 0 in a new session.
//
// Processing reads status and processingDetails with videos.list through the
// generated client (google.golang.org/api/youtube/v3).
//
// Errors are classified at this boundary: see Error, IsTemporary,
// ErrSessionGone and ErrVideoNotFound. The package never logs; error texts
// never hold tokens, the client secret or a session URI (a session URI is a
// capability: whoever has it can write to the upload).
package youtube

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/api/option"
	yt "google.golang.org/api/youtube/v3"

	"atomuploads/retry"
	"atomuploads/upload"
)

// Defaults of Config.
const (
	DefaultAPIBaseURL     = "https://www.googleapis.com/"
	DefaultTokenURL       = "https://oauth2.googleapis.com/token"
	DefaultRequestTimeout = 30 * time.Second
	DefaultMaxAttempts    = 5
	DefaultBaseDelay      = 500 * time.Millisecond
)

// Config configures a Client. The secrets (ClientSecret, RefreshToken) come
// from the caller, which reads them from the environment.
type Config struct {
	// APIBaseURL is the base under which upload/youtube/v3/videos and
	// youtube/v3/videos live. Default DefaultAPIBaseURL.
	APIBaseURL string
	// TokenURL is the OAuth2 token endpoint. Default DefaultTokenURL.
	TokenURL     string
	ClientID     string
	ClientSecret string
	RefreshToken string
	// RequestTimeout bounds each call that does not stream a chunk (start,
	// offset query, cancel, processing, token refresh). Default 30s.
	RequestTimeout time.Duration
	// MaxAttempts bounds the attempts of Offset, which retries temporary
	// failures itself. Default 5.
	MaxAttempts int
	// BaseDelay is the first backoff pause of Offset's retries; each retry
	// doubles it, with jitter. Default 500ms.
	BaseDelay time.Duration
}

// Client talks to YouTube. It is safe for concurrent use.
type Client struct {
	sealer      cipher.AEAD // seals session URIs into handles (handle.go)
	base        string      // APIBaseURL with a trailing slash
	http        *http.Client
	svc         *yt.Service
	tokens      *tokenCache
	timeout     time.Duration
	offsetRetry retry.Policy // Offset's retries of temporary failures
}

// New returns a Client that makes its HTTP requests with base's Transport
// and Jar (http.DefaultClient's when base is nil). base's Timeout and
// CheckRedirect are not used: chunk uploads stream for as long as they take,
// bounded by their context; other calls are bounded by RequestTimeout; and
// redirects are never followed.
func New(cfg Config, base *http.Client) (*Client, error) {
	if base == nil {
		base = http.DefaultClient
	}
	if cfg.APIBaseURL == "" {
		cfg.APIBaseURL = DefaultAPIBaseURL
	}
	if !strings.HasSuffix(cfg.APIBaseURL, "/") {
		cfg.APIBaseURL += "/"
	}
	if cfg.TokenURL == "" {
		cfg.TokenURL = DefaultTokenURL
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.BaseDelay <= 0 {
		cfg.BaseDelay = DefaultBaseDelay
	}
	var problems []string
	for _, u := range []struct{ name, value string }{{"API base URL", cfg.APIBaseURL}, {"token URL", cfg.TokenURL}} {
		p, err := url.Parse(u.value)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			problems = append(problems, u.name+" must be an absolute http(s) URL")
		}
	}
	if cfg.ClientID == "" {
		problems = append(problems, "client id is required")
	}
	if cfg.ClientSecret == "" {
		problems = append(problems, "client secret is required")
	}
	if cfg.RefreshToken == "" {
		problems = append(problems, "refresh token is required")
	}
	if len(problems) > 0 {
		return nil, upload.Errorf(upload.EINVALID, "youtube config: %s", strings.Join(problems, "; "))
	}

	transport := base.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	// The token endpoint is called from inside the API client's transport,
	// where no request context reaches it, so its client gets the timeout.
	tokenHTTP := &http.Client{Transport: transport, Timeout: cfg.RequestTimeout}
	conf := &oauth2.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret,
		Endpoint:     oauth2.Endpoint{TokenURL: cfg.TokenURL, AuthStyle: oauth2.AuthStyleInParams},
	}
	// The x/oauth2 pattern: the token source keeps this construction-time
	// context, which only carries the HTTP client for the token endpoint.
	tctx := context.WithValue(context.Background(), oauth2.HTTPClient, tokenHTTP)
	refreshToken := cfg.RefreshToken
	tokens := &tokenCache{newSource: func() oauth2.TokenSource {
		// Config.TokenSource is a reuse token source: it refreshes only
		// when the cached access token is (about to be) expired.
		return oauth2.ReuseTokenSource(nil, conf.TokenSource(tctx, &oauth2.Token{RefreshToken: refreshToken}))
	}}
	tokens.src = tokens.newSource()

	api := &http.Client{
		Transport: &oauth2.Transport{Source: tokens, Base: transport},
		Jar:       base.Jar,
		// Never follow redirects: 308 is Resume Incomplete here, and the
		// bearer token must not travel to another host.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	svc, err := yt.NewService(context.Background(), option.WithEndpoint(cfg.APIBaseURL), option.WithHTTPClient(api))
	if err != nil {
		return nil, upload.Errorf(upload.EINVALID, "youtube config: %v", err)
	}
	sealer, err := newSealer(cfg.ClientSecret)
	if err != nil {
		return nil, fmt.Errorf("youtube session sealer: %w", err)
	}
	return &Client{
		sealer:      sealer,
		base:        cfg.APIBaseURL,
		http:        api,
		svc:         svc,
		tokens:      tokens,
		timeout:     cfg.RequestTimeout,
		offsetRetry: retry.Policy{Base: cfg.BaseDelay, Cap: 32 * cfg.BaseDelay, Attempts: cfg.MaxAttempts},
	}, nil
}

// tokenCache is the token source of the API client, with a way to drop a
// cached access token that YouTube refused (401) so that the next request
// refreshes it.
type tokenCache struct {
	newSource func() oauth2.TokenSource
	mu        sync.Mutex
	src       oauth2.TokenSource
}

func (c *tokenCache) Token() (*oauth2.Token, error) {
	c.mu.Lock()
	src := c.src
	c.mu.Unlock()
	return src.Token()
}

func (c *tokenCache) invalidate() {
	c.mu.Lock()
	c.src = c.newSource()
	c.mu.Unlock()
}

// maxBody bounds how much of a (non-chunk) response body is read.
const maxBody = 1 << 20

// answer is a response read in full.
type answer struct {
	resp *http.Response // Body already read and closed
	body []byte
}

// exchange sends the request made by build (with ctx; bounded by the client's
// request timeout when timed) and reads the answer. On 401 it drops the cached
// token and, if retry401 is set, builds and sends the request once more.
// Transport errors are classified by transportError.
func (c *Client) exchange(ctx context.Context, timed, retry401 bool, build func(context.Context) (*http.Request, error)) (answer, error) {
	for try := 0; ; try++ {
		a, err := c.exchangeOnce(ctx, timed, build)
		if err != nil {
			return answer{}, err
		}
		if a.resp.StatusCode == http.StatusUnauthorized {
			c.tokens.invalidate()
			if retry401 && try == 0 {
				continue
			}
		}
		return a, nil
	}
}

func (c *Client) exchangeOnce(ctx context.Context, timed bool, build func(context.Context) (*http.Request, error)) (answer, error) {
	rctx := ctx
	if timed {
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := build(rctx)
	if err != nil {
		return answer{}, fmt.Errorf("build request: %w", withoutURL(err))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return answer{}, transportError(ctx, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return answer{}, transportError(ctx, err)
	}
	return answer{resp: resp, body: body}, nil
}

// isStatus reports whether err is an *Error with the given HTTP status.
func isStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}
