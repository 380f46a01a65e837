// Package atomapitest is a stand-in for the media tool's atom API, as far as
// atom-uploads uses it, shaped like media-atom-maker's:
//
//   - POST /api2/atoms/{atomId}/assets with
//     {"uri": "https://www.youtube.com/watch?v=<id>"} adds an asset (a new
//     version, even when the atom has that video already, as media-atom-maker
//     does) and answers the atom;
//   - GET /api2/atoms/{atomId} answers the atom:
//     {"id": …, "atomType": "media", "assets": [{"assetType": "Video",
//     "platform": "Youtube", "id": "<videoId>", "version": 1}, …]}.
//
// A Server is an http.Handler; tests wrap it in httptest.NewServer. It
// authenticates every request like media-atom-maker does for services: when
// Options.HMACSecret is set, the X-Gu-Tools-HMAC-Date header must be an HTTP
// date within 5 minutes of the server's clock and X-Gu-Tools-HMAC-Token must
// be "HMAC " + base64(HMAC-SHA256(secret, date + "\n" + path)), path being
// the request URL's path; when Options.Token is set, "Authorization: Bearer
// <token>" is accepted too. Anything else is 401.
//
// Every accepted asset is recorded (Calls), so a test can assert that an
// upload added its video exactly once. Options.OnAsset lets a test act at
// the moment an asset is recorded and before the answer leaves, e.g. kill
// the caller.
package atomapitest

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// MaxSkew is how far the HMAC date may be from the server's clock.
const MaxSkew = 5 * time.Minute

// Options configure a Server.
type Options struct {
	// HMACSecret, when set, is the shared secret of HMAC-signed requests.
	HMACSecret string
	// Token, when set, is accepted as a bearer token.
	Token string
	// Atoms, when not nil, are the only atoms that exist; assets for any
	// other atom answer 404. When nil, every atom exists.
	Atoms []string
	// Now is the server's clock. Default time.Now.
	Now func() time.Time
	// OnAsset, when set, is called with each accepted asset after it is
	// recorded and before the answer is written.
	OnAsset func(Call)
}

// Call is one accepted asset addition.
type Call struct {
	AtomID string
	URI    string
	// Auth is "hmac" or "bearer".
	Auth string
	// Service is the X-Gu-Tools-Service-Name of an HMAC-signed call.
	Service string
	At      time.Time
}

// Server is the stand-in. It is safe for concurrent use.
type Server struct {
	opts Options

	mu         sync.Mutex
	failNext   int
	failStatus int
	calls      []Call
	requests   int
	rejected   []string
}

// New returns a Server.
func New(opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Server{opts: opts}
}

// FailNext makes the next n requests answer 503.
func (s *Server) FailNext(n int) { s.FailNextWith(n, http.StatusServiceUnavailable) }

// FailNextWith makes the next n requests answer the given status.
func (s *Server) FailNextWith(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext, s.failStatus = n, status
}

// Calls returns the accepted asset additions for the atom, in order.
func (s *Server) Calls(atomID string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if c.AtomID == atomID {
			out = append(out, c)
		}
	}
	return out
}

// CallCount returns the number of accepted asset additions, all atoms.
func (s *Server) CallCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// Requests returns the number of requests served, accepted or not.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Rejected returns why requests were refused (authentication or validation
// failures, not injected ones), in order.
func (s *Server) Rejected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.rejected)
}

var (
	atomPath   = regexp.MustCompile(`^/api2/atoms/([A-Za-z0-9][A-Za-z0-9_-]*)$`)
	assetsPath = regexp.MustCompile(`^/api2/atoms/([A-Za-z0-9][A-Za-z0-9_-]*)/assets$`)
	watchURL   = regexp.MustCompile(`^https://www\.youtube\.com/watch\?v=[A-Za-z0-9_-]{11}$`)
)

// ServeHTTP handles a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	if s.failNext > 0 {
		s.failNext--
		status := s.failStatus
		s.mu.Unlock()
		writeMessage(w, status, "injected failure")
		return
	}
	s.mu.Unlock()

	if m := atomPath.FindStringSubmatch(r.URL.Path); m != nil {
		if r.Method != http.MethodGet {
			s.reject(w, http.StatusMethodNotAllowed, r.Method+" is not allowed")
			return
		}
		if _, _, ok := s.admit(w, r, m[1]); ok {
			s.mu.Lock()
			atom := s.atomLocked(m[1])
			s.mu.Unlock()
			writeJSON(w, atom)
		}
		return
	}
	m := assetsPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		s.reject(w, http.StatusNotFound, "no such route: "+r.Method+" "+r.URL.Path)
		return
	}
	if r.Method != http.MethodPost {
		s.reject(w, http.StatusMethodNotAllowed, r.Method+" is not allowed")
		return
	}
	atomID := m[1]
	auth, service, ok := s.admit(w, r, atomID)
	if !ok {
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		s.reject(w, http.StatusUnsupportedMediaType, "the body must be application/json")
		return
	}
	var body struct {
		URI string `json:"uri"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		s.reject(w, http.StatusBadRequest, "the body is not {\"uri\": …}: "+err.Error())
		return
	}
	if !watchURL.MatchString(body.URI) {
		s.reject(w, http.StatusBadRequest, "uri "+body.URI+" is not a YouTube watch URL")
		return
	}
	call := Call{AtomID: atomID, URI: body.URI, Auth: auth, Service: service, At: s.opts.Now()}
	s.mu.Lock()
	s.calls = append(s.calls, call)
	atom := s.atomLocked(atomID)
	s.mu.Unlock()
	if s.opts.OnAsset != nil {
		s.opts.OnAsset(call)
	}
	writeJSON(w, atom)
}

// admit authenticates a request about atomID and checks that the atom
// exists, answering the request when not. It returns the kind of
// authentication and the service name, as authenticate does.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, atomID string) (auth, service string, ok bool) {
	auth, service, problem := s.authenticate(r)
	if problem != "" {
		s.reject(w, http.StatusUnauthorized, problem)
		return "", "", false
	}
	if s.opts.Atoms != nil && !slices.Contains(s.opts.Atoms, atomID) {
		s.reject(w, http.StatusNotFound, "atom "+atomID+" does not exist")
		return "", "", false
	}
	return auth, service, true
}

// atom is the atom's JSON, as media-atom-maker answers it (the fields
// atom-uploads reads, and a few more).
type atom struct {
	ID       string  `json:"id"`
	AtomType string  `json:"atomType"`
	Assets   []asset `json:"assets"`
}

type asset struct {
	AssetType string `json:"assetType"`
	Platform  string `json:"platform"`
	ID        string `json:"id"`
	Version   int    `json:"version"`
}

// atomLocked builds the atom from the calls; s.mu must be held.
func (s *Server) atomLocked(atomID string) atom {
	a := atom{ID: atomID, AtomType: "media", Assets: []asset{}}
	for _, c := range s.calls {
		if c.AtomID == atomID {
			id := strings.TrimPrefix(c.URI, "https://www.youtube.com/watch?v=")
			a.Assets = append(a.Assets, asset{AssetType: "Video", Platform: "Youtube", ID: id, Version: len(a.Assets) + 1})
		}
	}
	return a
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(v)
}

// authenticate checks the HMAC headers or the bearer token. It returns the
// kind of authentication and the service name, or a problem.
func (s *Server) authenticate(r *http.Request) (auth, service, problem string) {
	if tok := r.Header.Get("X-Gu-Tools-HMAC-Token"); tok != "" && s.opts.HMACSecret != "" {
		date := r.Header.Get("X-Gu-Tools-HMAC-Date")
		t, err := time.Parse(http.TimeFormat, date)
		if err != nil {
			return "", "", "X-Gu-Tools-HMAC-Date is not an HTTP date"
		}
		if d := s.opts.Now().Sub(t); d > MaxSkew || d < -MaxSkew {
			return "", "", "X-Gu-Tools-HMAC-Date is more than 5 minutes away"
		}
		mac := hmac.New(sha256.New, []byte(s.opts.HMACSecret))
		_, _ = io.WriteString(mac, date+"\n"+r.URL.Path) // a hash.Hash never fails to write
		want := "HMAC " + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		if !hmac.Equal([]byte(tok), []byte(want)) {
			return "", "", "X-Gu-Tools-HMAC-Token does not match"
		}
		service = r.Header.Get("X-Gu-Tools-Service-Name")
		if service == "" {
			return "", "", "X-Gu-Tools-Service-Name is missing"
		}
		return "hmac", service, ""
	}
	if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && s.opts.Token != "" {
		if subtle.ConstantTimeCompare([]byte(bearer), []byte(s.opts.Token)) == 1 {
			return "bearer", "", ""
		}
		return "", "", "the bearer token is wrong"
	}
	return "", "", "no credentials"
}

func (s *Server) reject(w http.ResponseWriter, status int, problem string) {
	s.mu.Lock()
	s.rejected = append(s.rejected, problem)
	s.mu.Unlock()
	writeMessage(w, status, problem)
}

func writeMessage(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}
