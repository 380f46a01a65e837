package youtubetest

import "time"

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

	// LinkRate caps the link to the server (link.go): request bodies of
	// all sessions share a token bucket of this many bytes per second.
	// 0 means no cap (loopback).
	LinkRate float64
	// LinkRTT is a round trip added to every request before it is looked
	// at. 0 means none.
	LinkRTT time.Duration

	// Now is the clock (for session and token expiry). Default time.Now.
	Now func() time.Time
}

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

// Refuse makes every request of a kind (KindInitiate, KindChunk) answer
// Google's JSON error with the given status and errors[].reason, such as
// 403 quotaExceeded or 400 uploadLimitExceeded, until Refuse(kind, 0, "")
// clears it. A refused chunk is answered before its body is read: nothing
// is committed.
func (s *Server) Refuse(kind string, status int, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status == 0 {
		delete(s.refusals, kind)
		return
	}
	if s.refusals == nil {
		s.refusals = map[string]refusal{}
	}
	s.refusals[kind] = refusal{status: status, reason: reason}
}

// RejectVideo makes YouTube reject the video (status.uploadStatus
// "rejected" with the given status.rejectionReason, such as "duplicate");
// it reports whether the video exists.
func (s *Server) RejectVideo(videoID, reason string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.videos[videoID]
	if ok {
		v.rejected = reason
	}
	return ok
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
