// Package atomapi adds an uploaded YouTube video to its media atom through
// the media tool's atom API, once: it reads the atom and adds the asset
// only when the atom does not have it yet (see Client.AddAsset).
//
//	GET  {BaseURL}/api2/atoms/{atomId}
//	POST {BaseURL}/api2/atoms/{atomId}/assets
//	Content-Type: application/json
//
//	{"uri": "https://www.youtube.com/watch?v=<videoId>"}
//
// # Authentication
//
// When Config.HMACSecret is set, requests are signed the way
// media-atom-maker's own services sign theirs (the "panda-hmac" scheme),
// with three headers:
//
//	X-Gu-Tools-HMAC-Date:   <now as an HTTP date, e.g. "Tue, 15 Nov 1994 08:12:31 GMT">
//	X-Gu-Tools-HMAC-Token:  HMAC <base64(HMAC-SHA256(secret, date + "\n" + path))>
//	X-Gu-Tools-Service-Name: atom-uploads
//
// where path is the request URL's path alone (no scheme, host or query),
// e.g. "/api2/atoms/abc/assets" or "/api2/atoms/abc". The receiver
// recomputes the HMAC with the shared secret and accepts dates within a few
// minutes of its clock, so each request is signed afresh. Without a secret, the request carries
// "Authorization: Bearer <Config.Token>".
//
// AddAsset retries temporary failures (5xx, 429, 408, network errors and
// timeouts) with jittered exponential backoff, a bounded number of times.
// The package never logs, and its errors never hold the secret or the token.
package atomapi

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"atomuploads/retry"
	"atomuploads/upload"
)

// ServiceName is sent in X-Gu-Tools-Service-Name with HMAC-signed requests.
const ServiceName = "atom-uploads"

// Defaults of Config.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultMaxAttempts = 5
	DefaultBaseDelay   = 500 * time.Millisecond
)

// maxDelay caps one backoff pause.
const maxDelay = 30 * time.Second

// Config configures a Client.
type Config struct {
	// BaseURL is the media tool's base URL, e.g. https://video.example.com.
	BaseURL string
	// HMACSecret, when set, signs requests (see the package comment).
	HMACSecret string
	// Token is sent as a bearer token when there is no HMACSecret.
	Token string
	// Timeout bounds each request (an attempt is a read of the atom, then
	// perhaps the addition). Default 10s.
	Timeout time.Duration
	// MaxAttempts bounds the attempts of one AddAsset. Default 5.
	MaxAttempts int
	// BaseDelay is the first pause between attempts; it doubles with each
	// retry, with jitter, up to 30s. Default 500ms.
	BaseDelay time.Duration
}

// Client calls the atom API. It is safe for concurrent use.
type Client struct {
	cfg  Config
	http *http.Client
	now  func() time.Time
}

// New returns a Client that sends its requests with hc (http.DefaultClient
// when nil).
func New(cfg Config, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.BaseDelay <= 0 {
		cfg.BaseDelay = DefaultBaseDelay
	}
	return &Client{cfg: cfg, http: hc, now: time.Now}
}

// Error is a failed call to the atom API. Its message says what the API
// answered and never holds a secret.
type Error struct {
	// Status is the HTTP status answered; 0 when no answer came.
	Status int
	// Message says what happened, for people.
	Message string
	// Temporary is true when trying again later may succeed.
	Temporary bool

	err error // the cause, for errors.Is and errors.As
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the cause (a network error), if any.
func (e *Error) Unwrap() error { return e.err }

// IsTemporary reports whether err is a temporary atom API failure.
func IsTemporary(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Temporary
}

// maxAtomBytes bounds the atom JSON read back from the API.
const maxAtomBytes = 4 << 20

// AddAsset makes sure the atom has the YouTube video at videoURL (a watch
// URL, https://www.youtube.com/watch?v=<id>) as an asset, adding it at most
// once: each attempt first reads the atom (GET /api2/atoms/{atomId}) and
// adds the asset (POST /api2/atoms/{atomId}/assets) only when none of the
// atom's assets is that video. media-atom-maker adds a new asset version
// for every POST, so an addition that reached the API but whose answer was
// lost (a timeout, a caller that died) must not simply be sent again; with
// the read first, neither a retry here nor the next caller repeats it.
// added reports whether this call added the asset; false with a nil error
// means the atom had it already.
//
// Any 2xx answer is success. A 4xx other than 408 and 429 is a permanent
// *Error; temporary failures are retried and, once the attempts are used up,
// returned as a temporary *Error. When ctx ends, its error is returned.
func (c *Client) AddAsset(ctx context.Context, atomID, videoURL string) (added bool, err error) {
	op := fmt.Sprintf("add asset to atom %s", atomID)
	if !upload.ValidAtomID(atomID) {
		return false, upload.Errorf(upload.EINVALID, "add asset: atom id %q is not valid", atomID)
	}
	videoID := watchID(videoURL)
	if videoID == "" {
		return false, upload.Errorf(upload.EINVALID, "%s: the video URL %q is not a YouTube watch URL", op, videoURL)
	}
	if c.cfg.BaseURL == "" {
		return false, upload.Errorf(upload.EINVALID, "%s: the atom API base URL is not configured", op)
	}
	atomURL, err := url.Parse(c.cfg.BaseURL + "/api2/atoms/" + atomID)
	if err != nil || (atomURL.Scheme != "http" && atomURL.Scheme != "https") || atomURL.Host == "" {
		return false, upload.Errorf(upload.EINVALID, "%s: the atom API base URL is not an absolute http(s) URL", op)
	}
	assetsURL := atomURL.JoinPath("assets")
	body, err := json.Marshal(struct {
		URI string `json:"uri"`
	}{videoURL})
	if err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	policy := retry.Policy{Base: c.cfg.BaseDelay, Cap: maxDelay, Attempts: c.cfg.MaxAttempts}
	attempts := 0
	err = policy.Do(ctx, IsTemporary, func(ctx context.Context, attempt int) error {
		attempts = attempt
		has, err := c.hasAsset(ctx, atomURL, videoID)
		if err != nil || has {
			return err
		}
		if _, err := c.do(ctx, http.MethodPost, assetsURL, body); err != nil {
			return err
		}
		added = true
		return nil
	})
	switch {
	case err == nil:
		return added, nil
	case ctx.Err() != nil:
		return false, fmt.Errorf("%s: %w (last error: %s)", op, ctx.Err(), err.Error())
	case IsTemporary(err) && attempts > 1:
		return false, fmt.Errorf("%s (%d attempts): %w", op, attempts, err)
	}
	return false, fmt.Errorf("%s: %w", op, err)
}

// watchID returns the video id of a YouTube watch URL, or "".
func watchID(videoURL string) string {
	u, err := url.Parse(videoURL)
	if err != nil || u.Scheme != "https" || u.Host != "www.youtube.com" || u.Path != "/watch" {
		return ""
	}
	return u.Query().Get("v")
}

// hasAsset reads the atom and reports whether one of its assets is the
// YouTube video videoID. media-atom-maker answers the atom as
// {"id": …, "assets": [{"assetType": "Video", "platform": "Youtube",
// "id": "<videoId>", "version": 1}, …], …}.
func (c *Client) hasAsset(ctx context.Context, atomURL *url.URL, videoID string) (bool, error) {
	b, err := c.do(ctx, http.MethodGet, atomURL, nil)
	if err != nil {
		return false, fmt.Errorf("read the atom: %w", err)
	}
	var atom struct {
		Assets []struct {
			ID       string `json:"id"`
			Platform string `json:"platform"`
		} `json:"assets"`
	}
	if err := json.Unmarshal(b, &atom); err != nil {
		return false, &Error{Status: http.StatusOK, Message: "the atom API answered an atom that is not JSON: " + err.Error(), err: err}
	}
	for _, a := range atom.Assets {
		if a.ID == videoID && (a.Platform == "" || strings.EqualFold(a.Platform, "youtube")) {
			return true, nil
		}
	}
	return false, nil
}

// do sends one request, signed, and returns the body of a 2xx answer.
func (c *Client) do(ctx context.Context, method string, u *url.URL, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), r)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.cfg.HMACSecret != "" {
		date := c.now().UTC().Format(http.TimeFormat)
		req.Header.Set("X-Gu-Tools-HMAC-Date", date)
		req.Header.Set("X-Gu-Tools-HMAC-Token", sign(c.cfg.HMACSecret, date, u.EscapedPath()))
		req.Header.Set("X-Gu-Tools-Service-Name", ServiceName)
	} else if c.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &Error{Message: "atom API unreachable: " + err.Error(), Temporary: true, err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxAtomBytes+1))
		if err != nil {
			return nil, &Error{Status: resp.StatusCode, Message: "read the atom API's answer: " + err.Error(), Temporary: true, err: err}
		}
		if len(b) > maxAtomBytes {
			return nil, &Error{Status: resp.StatusCode, Message: fmt.Sprintf("the atom API's answer is over %d MiB", maxAtomBytes>>20)}
		}
		return b, nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	e := &Error{
		Status:  resp.StatusCode,
		Message: fmt.Sprintf("atom API answered %s", resp.Status),
		Temporary: resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests ||
			resp.StatusCode == http.StatusRequestTimeout,
	}
	if s := summary(snippet); s != "" {
		e.Message += ": " + s
	}
	return nil, e
}

// sign returns the X-Gu-Tools-HMAC-Token value for a request to path made
// at date (an HTTP date): "HMAC " + base64(HMAC-SHA256(secret, date+"\n"+path)).
func sign(secret, date, path string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(date + "\n" + path))
	return "HMAC " + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// summary makes an error body fit in one line of a message: the "message"
// or "error" field of a JSON body, or the text itself, at most 200 runes.
func summary(body []byte) string {
	var j struct {
		Message string `json:"message"`
		Error   string `json:"error"`
	}
	s := string(body)
	if json.Unmarshal(body, &j) == nil {
		if s = j.Message; s == "" {
			s = j.Error
		}
	}
	s = strings.Join(strings.FieldsFunc(s, unicode.IsSpace), " ")
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return s
}
