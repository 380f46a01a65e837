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
// The protocol is enforced strictly, and every breach is answered 400 and
// recorded (Violations), so that a test can assert that a client sent every
// byte exactly once, in order, in chunks that are multiples of 256 KiB but
// for the last. Chunk bodies are streamed into a SHA-256 hasher; nothing of
// a file is kept in memory, so tests may send gigabytes.
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
// Faults can be injected (Options, and setters safe for concurrent use):
// 503s on chunks, short commits, slow chunks, quota errors, the next N
// requests failing, expired sessions. Random choices come from a generator
// seeded by Options.Seed, so a sequential test sees the same faults on every
// run.
//
// Other behaviour worth knowing: DELETE on a session answers 499 (as Google
// answers a cancelled resumable upload) and later requests on it get 404;
// an expired session answers 404; uploadType=multipart and media uploads in
// the initiation request are not supported (400).
package youtubetest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Protocol limits enforced by the server.
const (
	// ChunkAlign is the resumable protocol's granularity: every chunk but
	// the last must be a multiple of 256 KiB.
	ChunkAlign = 256 << 10
	// MaxFileSize is YouTube's limit for one file, 256 GiB.
	MaxFileSize = 256 << 30
	// MaxTitleRunes is YouTube's limit for a title.
	MaxTitleRunes = 100
)

// Defaults of Options.
const (
	DefaultTokenTTL        = time.Hour
	DefaultProcessingSteps = 3
)

// Options configure a Server.
type Options struct {
	// ClientID, ClientSecret and RefreshToken are the only credentials the
	// token endpoint accepts.
	ClientID     string
	ClientSecret string
	RefreshToken string
	// TokenTTL is the lifetime of the access tokens issued. Default 1h.
	TokenTTL time.Duration
	// SessionTTL is how long a resumable session lives; older sessions
	// answer 404. 0 means forever.
	SessionTTL time.Duration
	// ProcessingSteps is how many videos.list polls a finished upload
	// reports "processing" (one part more each poll) before "succeeded".
	// Default 3.
	ProcessingSteps int

	// Seed seeds the random choices of fault injection.
	Seed uint64
	// FailRate is the fraction of chunk requests answered 503: half of them
	// before reading the body, half after reading part of it (and, in the
	// documented form, committing a 256 KiB-aligned prefix of what was read).
	FailRate float64
	// ShortCommitRate is the fraction of chunk requests (documented form)
	// of which only a 256 KiB-aligned prefix is committed: the whole body is
	// read and the answer is 308 with the smaller Range, as Google may do.
	ShortCommitRate float64
	// Slow delays the answer to every chunk request that succeeds, after
	// its body was read and committed (or until the client goes away).
	Slow time.Duration
	// QuotaExceeded makes session initiations answer 403 quotaExceeded.
	QuotaExceeded bool

	// Now is the clock (for session and token expiry). Default time.Now.
	Now func() time.Time
}

// Server is the stand-in. It is safe for concurrent use.
type Server struct {
	clientID, clientSecret, refreshToken string
	tokenTTL, sessionTTL                 time.Duration
	steps                                int
	now                                  func() time.Time

	mu            sync.Mutex
	rng           *mrand.Rand
	failRate      float64
	shortRate     float64
	slow          time.Duration
	quota         bool
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
	return &Server{
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
}

// Request kinds counted by Requests.
const (
	KindToken        = "token"        // token endpoint
	KindInitiate     = "initiate"     // session initiation
	KindChunk        = "chunk"        // chunk with bytes
	KindStatus       = "status"       // status query (bytes */total)
	KindCancel       = "cancel"       // DELETE on a session
	KindList         = "list"         // videos.list
	KindUnauthorized = "unauthorized" // refused for a missing or bad token
	KindInjected     = "injected"     // answered with an injected failure
	KindOther        = "other"        // anything else
)

// ServeHTTP routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const uploadPath, listPath = "/upload/youtube/v3/videos", "/youtube/v3/videos"
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

// --- fault injection setters -------------------------------------------

// SetFailRate changes Options.FailRate.
func (s *Server) SetFailRate(f float64) { s.mu.Lock(); s.failRate = f; s.mu.Unlock() }

// SetShortCommitRate changes Options.ShortCommitRate.
func (s *Server) SetShortCommitRate(f float64) { s.mu.Lock(); s.shortRate = f; s.mu.Unlock() }

// SetSlow changes Options.Slow.
func (s *Server) SetSlow(d time.Duration) { s.mu.Lock(); s.slow = d; s.mu.Unlock() }

// SetQuotaExceeded changes Options.QuotaExceeded.
func (s *Server) SetQuotaExceeded(b bool) { s.mu.Lock(); s.quota = b; s.mu.Unlock() }

// FailNext makes the next n API requests (any but the token endpoint's)
// answer 503 backendError before anything else is looked at.
func (s *Server) FailNext(n int) { s.mu.Lock(); s.failNext = n; s.mu.Unlock() }

// FailTokenNext makes the next n token requests answer 503.
func (s *Server) FailTokenNext(n int) { s.mu.Lock(); s.failTokenNext = n; s.mu.Unlock() }

// RevokeTokens forgets every access token issued, so the next API request
// gets 401 until the client fetches a new one.
func (s *Server) RevokeTokens() { s.mu.Lock(); clear(s.tokens); s.mu.Unlock() }

// ExpireSession makes the session with the given upload id expire now; it
// reports whether there was such a session.
func (s *Server) ExpireSession(uploadID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[uploadID]
	if ok {
		sess.expired = true
	}
	return ok
}

// ExpireAllSessions makes every session expire now.
func (s *Server) ExpireAllSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sess := range s.sessions {
		sess.expired = true
	}
}

// FailProcessing makes the video's processing fail with the given reason
// (a status.failureReason such as "codec"); it reports whether the video
// exists.
func (s *Server) FailProcessing(videoID, reason string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.videos[videoID]
	if ok {
		v.failure = reason
	}
	return ok
}

// UploadID returns the upload_id of a session URI, "" if it has none.
func UploadID(sessionURI string) string {
	u, err := url.Parse(sessionURI)
	if err != nil {
		return ""
	}
	return u.Query().Get("upload_id")
}

// --- inspection ----------------------------------------------------------

// Chunk is one accepted chunk: Length bytes committed from Start.
type Chunk struct {
	Start  int64
	Length int64
}

// Video is an uploaded video as the server holds it.
type Video struct {
	ID            string
	Title         string
	Description   string
	Tags          []string
	CategoryID    string
	PrivacyStatus string
	ContentType   string // X-Upload-Content-Type of the session
	Size          int64
	SHA256        string // hex SHA-256 of the bytes committed, in order
	// Sessions counts the sessions started with the same title and
	// declared length as the one that completed, itself included: more
	// than 1 means the client restarted the upload.
	Sessions int
	// Chunks are the accepted chunks of the completing session, in order.
	Chunks []Chunk
}

// Session states reported by SessionInfo.
const (
	SessionActive    = "active"
	SessionComplete  = "complete"
	SessionCancelled = "cancelled"
	SessionExpired   = "expired"
)

// SessionInfo describes one resumable session.
type SessionInfo struct {
	UploadID  string
	Title     string
	Declared  int64 // X-Upload-Content-Length, or the total once a request gave it; -1 while unknown
	Committed int64
	State     string
	VideoID   string // when complete
	Created   time.Time
	// Receiving is set while a chunk's body is being read.
	Receiving bool
}

// Videos returns the uploaded videos in the order they were completed.
func (s *Server) Videos() []Video {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Video, 0, len(s.videoOrder))
	for _, v := range s.videoOrder {
		m := v.sess.meta
		n := 0
		for _, o := range s.order {
			if o.meta.Title == m.Title && o.declared == v.sess.declared {
				n++
			}
		}
		out = append(out, Video{
			ID:            v.id,
			Title:         m.Title,
			Description:   m.Description,
			Tags:          slices.Clone(m.Tags),
			CategoryID:    m.CategoryID,
			PrivacyStatus: m.PrivacyStatus,
			ContentType:   v.sess.contentType,
			Size:          v.sess.committed,
			SHA256:        v.sha256,
			Sessions:      n,
			Chunks:        slices.Clone(v.sess.chunks),
		})
	}
	return out
}

// Video returns the video with the given id.
func (s *Server) Video(id string) (Video, bool) {
	for _, v := range s.Videos() {
		if v.ID == id {
			return v, true
		}
	}
	return Video{}, false
}

// Sessions returns every session in creation order.
func (s *Server) Sessions() []SessionInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := make([]SessionInfo, 0, len(s.order))
	for _, sess := range s.order {
		info := SessionInfo{
			UploadID:  sess.id,
			Title:     sess.meta.Title,
			Declared:  sess.declared,
			Committed: sess.committed,
			State:     SessionActive,
			Created:   sess.created,
			Receiving: sess.busy,
		}
		switch {
		case sess.video != nil:
			info.State, info.VideoID = SessionComplete, sess.video.id
		case sess.cancelled:
			info.State = SessionCancelled
		case s.expired(sess, now):
			info.State = SessionExpired
		}
		out = append(out, info)
	}
	return out
}

// Violations returns the protocol violations seen, in order. A client that
// speaks the protocol correctly leaves it empty.
func (s *Server) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.violations)
}

// Requests returns how many requests of each kind (Kind…) were served.
func (s *Server) Requests() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.requests))
	for k, v := range s.requests {
		out[k] = v
	}
	return out
}

// BytesReceived returns the chunk body bytes read, committed or not.
func (s *Server) BytesReceived() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.received
}

// BytesCommitted returns the chunk body bytes committed to sessions.
func (s *Server) BytesCommitted() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.committed
}

// --- helpers -------------------------------------------------------------

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
