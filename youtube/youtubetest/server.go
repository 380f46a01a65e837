// Package youtubetest is a strict stand-in for the parts of YouTube that
// atom-uploads uses: the OAuth2 token endpoint (refresh-token grant), the
// resumable upload protocol of the Data API v3 (videos.insert with
// uploadType=resumable) and videos.list for the processing status.
//
// A Server is an http.Handler. Tests wrap it in httptest.NewServer and give
// clients the server URL + "/" as the API base URL and the server URL +
// "/token" as the token URL; a development binary can serve it on a
// loopback port.
//
// # What is enforced
//
// The token endpoint accepts only a POST with grant_type=refresh_token and
// the configured client id, client secret (in the form or in Basic auth)
// and refresh token. Every API request must carry an access token that the
// token endpoint issued and that has not expired, else it is answered 401.
//
// Breaches of the upload protocol are answered 400 and recorded
// (Violations), so that a test can assert that a client sent every byte
// exactly once, in order, in chunks that are multiples of 256 KiB but for
// the last. These are:
//
//   - at initiation: an X-Upload-Content-Length that is not a length of 1
//     byte to 256 GB (MaxFileSize), a Content-Type other than
//     application/json, a body that is not a JSON video resource;
//   - on a session: a malformed Content-Range (a request without one sends
//     the whole file, so it needs a body), a total that differs from the
//     declared length or exceeds 256 GiB, a status query with a body or
//     with a total below what is committed, and a chunk that leaves a gap or
//     overlaps what is committed, whose Content-Length differs from its
//     range, that is not a multiple of 256 KiB (ChunkAlign) without ending
//     the file, that arrives while another chunk of the session is being
//     read (more than one writer) or after the upload completed.
//
// YouTube's own checks are answered 400 with its error reasons, but are not
// violations: an uploadType other than resumable (multipart and media
// uploads in the initiation request are not supported), a missing or
// unknown part, an X-Upload-Content-Type that is not a video type, and
// metadata YouTube refuses (a blank title, or one longer than
// MaxTitleRunes characters or with < or >; a description longer than 5000
// bytes or with < or >; a non-numeric category id; a privacy status other
// than private, unlisted or public).
//
// Chunk bodies are streamed into a SHA-256 hasher; nothing of a file is
// kept in memory, so tests may send gigabytes.
//
// # Protocol forms
//
// Both forms of the protocol are spoken:
//
//   - The documented one: PUT <session URI> with Content-Range: bytes
//     a-b/total, answered 308 Resume Incomplete with Range: bytes=0-X (no
//     Range while nothing is committed) or 200 with the video resource once
//     the last byte is in; Content-Range: bytes */total with an empty body
//     asks for the status.
//   - The one of the Go client library (google.golang.org/api's gensupport):
//     requests with X-GUploader-No-308: yes, chunks POSTed with
//     Content-Range: bytes a-b/* until the last one (bytes a-b/total, or
//     bytes */total with no body when the file ends on a chunk boundary).
//     "Resume incomplete" is then 200 with X-Http-Status-Code-Override: 308.
//     That library resends whole chunks and ignores Range, so in this form
//     the server never commits part of a chunk (no short commits, and
//     injected failures commit nothing).
//
// # Faults
//
// Faults can be injected (Options, and setters safe for concurrent use):
// 503s on chunks, short commits, slow chunks, quota errors, the next N
// requests failing, expired sessions, revoked tokens, failed processing.
// Random choices come from a generator seeded by Options.Seed, so a
// sequential test sees the same faults on every run.
//
// # Other behaviour
//
// DELETE on a session answers 499 (as Google answers a cancelled resumable
// upload) and later requests on it get 404; an expired session answers 404.
// A chunk whose body ends early (the client went away) is answered 400 and
// commits nothing, but is not a violation. Unknown paths answer 404 and
// other methods on known paths 405.
package youtubetest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Protocol limits enforced by the server.
const (
	// ChunkAlign is the resumable protocol's granularity: every chunk but
	// the last must be a multiple of 256 KiB.
	ChunkAlign = 256 << 10
	// MaxFileSize is YouTube's documented limit for one file, 256 GB.
	MaxFileSize = 256_000_000_000
	// MaxTitleRunes is YouTube's limit for a title.
	MaxTitleRunes = 100
)

// Server is the stand-in. It is safe for concurrent use.
type Server struct {
	clientID, clientSecret, refreshToken string
	tokenTTL, sessionTTL                 time.Duration
	steps                                int
	now                                  func() time.Time
	link                                 link // bandwidth cap and round trip (link.go)

	mu            sync.Mutex
	rng           *mrand.Rand
	failRate      float64
	shortRate     float64
	slow          time.Duration
	quota         bool
	refusals      map[string]refusal // by request kind: answered with a Google error until cleared
	failNext      int
	failTokenNext int

	tokens     map[string]time.Time // access token → expiry
	sessions   map[string]*session  // by upload id
	order      []*session           // in creation order
	videos     map[string]*video    // by video id
	videoOrder []*video
	violations []string
	requests   map[string]int
	received   int64 // chunk body bytes read
	committed  int64 // chunk body bytes committed
}

// New returns a Server with the given options.
func New(opts Options) *Server {
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = DefaultTokenTTL
	}
	if opts.ProcessingSteps <= 0 {
		opts.ProcessingSteps = DefaultProcessingSteps
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		clientID:     opts.ClientID,
		clientSecret: opts.ClientSecret,
		refreshToken: opts.RefreshToken,
		tokenTTL:     opts.TokenTTL,
		sessionTTL:   opts.SessionTTL,
		steps:        opts.ProcessingSteps,
		now:          opts.Now,
		rng:          mrand.New(mrand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		failRate:     opts.FailRate,
		shortRate:    opts.ShortCommitRate,
		slow:         opts.Slow,
		quota:        opts.QuotaExceeded,
		tokens:       map[string]time.Time{},
		sessions:     map[string]*session{},
		videos:       map[string]*video{},
		requests:     map[string]int{},
	}
	s.link.set(opts.LinkRate, opts.LinkRTT)
	return s
}

// ServeHTTP routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const uploadPath, listPath = "/upload/youtube/v3/videos", "/youtube/v3/videos"
	if !s.link.through(r) {
		return // the client went away during the round trip
	}
	if r.URL.Path == "/token" {
		s.serveToken(w, r)
		return
	}
	known := r.URL.Path == uploadPath || r.URL.Path == listPath
	s.mu.Lock()
	if known && s.failNext > 0 {
		s.failNext--
		s.requests[KindInjected]++
		s.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, "backendError", "Backend Error (injected)")
		return
	}
	s.mu.Unlock()
	if !known {
		s.count(KindOther)
		writeError(w, http.StatusNotFound, "notFound", "Not Found")
		return
	}
	if !s.authorized(r) {
		s.count(KindUnauthorized)
		w.Header().Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "authError", "Request had invalid authentication credentials. Expected OAuth 2 access token.")
		return
	}
	switch {
	case r.URL.Path == listPath && r.Method == http.MethodGet:
		s.serveList(w, r)
	case r.URL.Path == uploadPath && r.URL.Query().Has("upload_id"):
		s.serveSession(w, r, r.URL.Query().Get("upload_id"))
	case r.URL.Path == uploadPath && r.Method == http.MethodPost:
		s.serveInitiate(w, r)
	default:
		s.count(KindOther)
		writeError(w, http.StatusMethodNotAllowed, "methodNotAllowed", r.Method+" is not allowed on "+r.URL.Path)
	}
}

func (s *Server) count(kind string) {
	s.mu.Lock()
	s.requests[kind]++
	s.mu.Unlock()
}

// violation records a protocol violation; s.mu must be held.
func (s *Server) violation(format string, args ...any) {
	s.violations = append(s.violations, fmt.Sprintf(format, args...))
}

// authorized reports whether r carries an issued, unexpired access token.
func (s *Server) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tokens[tok]
	return ok && s.now().Before(exp)
}

// serveToken is the OAuth2 token endpoint: POST /token with the
// refresh-token grant; client credentials in the form or in Basic auth.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests[KindToken]++
	if s.failTokenNext > 0 {
		s.failTokenNext--
		s.requests[KindInjected]++
		s.mu.Unlock()
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable"})
		return
	}
	s.mu.Unlock()
	if r.Method != http.MethodPost {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "invalid_request", "error_description": "POST required"})
		return
	}
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "unreadable form"})
		return
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		id, _ = url.QueryUnescape(u)
		secret, _ = url.QueryUnescape(p)
	}
	if r.PostForm.Get("grant_type") != "refresh_token" || id != s.clientID || secret != s.clientSecret ||
		r.PostForm.Get("refresh_token") != s.refreshToken {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "Bad Request"})
		return
	}
	tok := "ya29.test-" + randomString(24)
	s.mu.Lock()
	s.tokens[tok] = s.now().Add(s.tokenTTL)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"token_type":   "Bearer",
		"expires_in":   int64(s.tokenTTL / time.Second),
		"scope":        "https://www.googleapis.com/auth/youtube.upload",
	})
}

// googleError is Google's JSON error body.
type googleError struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Errors  []struct {
			Message string `json:"message"`
			Domain  string `json:"domain"`
			Reason  string `json:"reason"`
		} `json:"errors"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, reason, message string) {
	var e googleError
	e.Error.Code = status
	e.Error.Message = message
	e.Error.Errors = append(e.Error.Errors, struct {
		Message string `json:"message"`
		Domain  string `json:"domain"`
		Reason  string `json:"reason"`
	}{message, "global", reason})
	writeJSON(w, status, e)
}

// refusal is a Google error answered to every request of a kind.
type refusal struct {
	status int
	reason string
}

// refused answers the request with the refusal set for its kind, if one
// is; s.mu must not be held.
func (s *Server) refused(w http.ResponseWriter, kind string) bool {
	s.mu.Lock()
	f, ok := s.refusals[kind]
	if ok {
		s.requests[KindInjected]++
	}
	s.mu.Unlock()
	if !ok {
		return false
	}
	var e googleError
	e.Error.Code = f.status
	e.Error.Message = refusalMessages[f.reason]
	if e.Error.Message == "" {
		e.Error.Message = "The request was refused: " + f.reason
	}
	domain := "youtube.video"
	switch f.reason {
	case "quotaExceeded", "dailyLimitExceeded":
		domain = "youtube.quota"
	case "forbidden", "insufficientPermissions":
		domain = "global"
	}
	e.Error.Errors = append(e.Error.Errors, struct {
		Message string `json:"message"`
		Domain  string `json:"domain"`
		Reason  string `json:"reason"`
	}{e.Error.Message, domain, f.reason})
	writeJSON(w, f.status, e)
	return true
}

// refusalMessages are the messages Google sends with some reasons.
var refusalMessages = map[string]string{
	"quotaExceeded":       "The request cannot be completed because you have exceeded your quota.",
	"dailyLimitExceeded":  "Daily Limit Exceeded. The quota will be reset at midnight Pacific Time (PT).",
	"uploadLimitExceeded": "The user has exceeded the number of videos they may upload.",
	"rateLimitExceeded":   "The request cannot be completed because you have exceeded your rate limit.",
	"invalidTitle":        "The request metadata specifies an invalid or empty video title.",
	"invalidDescription":  "The request metadata specifies an invalid video description.",
	"invalidTags":         "The request metadata specifies invalid video keywords.",
	"invalidCategoryId":   "The snippet.categoryId property specifies an invalid category ID.",
	"forbidden":           "The request is not properly authorized to upload to this channel.",
}

func writeQuotaError(w http.ResponseWriter) {
	var e googleError
	e.Error.Code = http.StatusForbidden
	e.Error.Message = "The request cannot be completed because you have exceeded your quota."
	e.Error.Errors = append(e.Error.Errors, struct {
		Message string `json:"message"`
		Domain  string `json:"domain"`
		Reason  string `json:"reason"`
	}{e.Error.Message, "youtube.quota", "quotaExceeded"})
	writeJSON(w, http.StatusForbidden, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// randomString returns n random bytes, base64url-encoded.
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return base64.RawURLEncoding.EncodeToString(b)
}
