package youtubetest

import (
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// metadata is what a session was started with.
type metadata struct {
	Title         string
	Description   string
	Tags          []string
	CategoryID    string
	PrivacyStatus string
}

type session struct {
	id          string
	meta        metadata
	contentType string
	declared    int64 // total length; -1 while unknown
	created     time.Time

	committed int64
	hashState []byte // SHA-256 state of bytes [0, committed)
	chunks    []Chunk
	busy      bool // a chunk's body is being read
	cancelled bool
	expired   bool
	video     *video // once complete
}

func (s *Server) expired(sess *session, now time.Time) bool {
	return sess.expired || s.sessionTTL > 0 && now.Sub(sess.created) >= s.sessionTTL
}

var privacyStatuses = map[string]bool{"": true, "private": true, "unlisted": true, "public": true}

// serveInitiate starts a resumable session: POST
// /upload/youtube/v3/videos?uploadType=resumable&part=… with the video
// resource as JSON, X-Upload-Content-Length (optional, as in Google's
// protocol: the Go client library leaves it out) and X-Upload-Content-Type.
func (s *Server) serveInitiate(w http.ResponseWriter, r *http.Request) {
	s.count(KindInitiate)
	q := r.URL.Query()
	if q.Get("uploadType") != "resumable" {
		writeError(w, http.StatusBadRequest, "invalidParameter", fmt.Sprintf("uploadType %q is not supported by this stand-in; use resumable", q.Get("uploadType")))
		return
	}
	if _, problem := checkParts(q); problem != "" {
		writeError(w, http.StatusBadRequest, "invalidParameter", problem)
		return
	}
	s.mu.Lock()
	quota := s.quota
	s.mu.Unlock()
	if quota {
		writeQuotaError(w)
		return
	}
	if s.refused(w, KindInitiate) {
		return
	}

	declared := int64(-1)
	if h := r.Header.Get("X-Upload-Content-Length"); h != "" {
		n, err := strconv.ParseInt(h, 10, 64)
		if err != nil || n <= 0 || n > MaxFileSize || strconv.FormatInt(n, 10) != h {
			s.mu.Lock()
			s.violation("initiate: X-Upload-Content-Length %q is not a length of 1 to %d bytes", h, int64(MaxFileSize))
			s.mu.Unlock()
			writeError(w, http.StatusBadRequest, "invalidValue", "X-Upload-Content-Length must be a positive integer of at most 256 GiB")
			return
		}
		declared = n
	}
	contentType := r.Header.Get("X-Upload-Content-Type")
	if contentType != "" {
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil || !strings.HasPrefix(mt, "video/") && mt != "application/octet-stream" {
			writeError(w, http.StatusBadRequest, "invalidValue", fmt.Sprintf("X-Upload-Content-Type %q is not a video type", contentType))
			return
		}
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		s.mu.Lock()
		s.violation("initiate: Content-Type %q, want application/json", r.Header.Get("Content-Type"))
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, "badContent", "the video resource must be sent as application/json")
		return
	}
	var body struct {
		Snippet *struct {
			Title       string   `json:"title"`
			Description string   `json:"description"`
			Tags        []string `json:"tags"`
			CategoryID  string   `json:"categoryId"`
		} `json:"snippet"`
		Status *struct {
			PrivacyStatus string `json:"privacyStatus"`
		} `json:"status"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		s.mu.Lock()
		s.violation("initiate: the body is not a JSON video resource: %v", err)
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, "parseError", "Parse Error")
		return
	}
	var m metadata
	if body.Snippet != nil {
		m = metadata{Title: body.Snippet.Title, Description: body.Snippet.Description, Tags: body.Snippet.Tags, CategoryID: body.Snippet.CategoryID}
	}
	if body.Status != nil {
		m.PrivacyStatus = body.Status.PrivacyStatus
	}
	if reason, msg := checkMetadata(m); reason != "" {
		writeError(w, http.StatusBadRequest, reason, msg)
		return
	}
	if m.PrivacyStatus == "" {
		m.PrivacyStatus = "public" // YouTube's default
	}

	now := s.now()
	sess := &session{
		id:          randomString(36),
		meta:        m,
		contentType: contentType,
		declared:    declared,
		created:     now,
		hashState:   hashState(sha256.New()),
	}
	s.mu.Lock()
	s.sessions[sess.id] = sess
	s.order = append(s.order, sess)
	s.mu.Unlock()

	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	w.Header().Set("Location", fmt.Sprintf("%s://%s/upload/youtube/v3/videos?uploadType=resumable&upload_id=%s", scheme, r.Host, sess.id))
	w.Header().Set("X-GUploader-UploadID", sess.id)
	w.WriteHeader(http.StatusOK)
}

// checkMetadata applies YouTube's rules to the metadata; it returns an
// error reason and message, or "" when the metadata is acceptable.
func checkMetadata(m metadata) (string, string) {
	switch {
	case strings.TrimSpace(m.Title) == "":
		return "invalidTitle", "The request metadata specifies an empty video title."
	case utf8.RuneCountInString(m.Title) > MaxTitleRunes:
		return "invalidTitle", fmt.Sprintf("The video title is longer than %d characters.", MaxTitleRunes)
	case strings.ContainsAny(m.Title, "<>"):
		return "invalidTitle", "The video title must not contain < or >."
	case len(m.Description) > 5000 || strings.ContainsAny(m.Description, "<>"):
		return "invalidDescription", "The request metadata specifies an invalid video description."
	case m.CategoryID != "" && strings.Trim(m.CategoryID, "0123456789") != "":
		return "invalidCategoryId", "The snippet.categoryId property specifies an invalid category ID."
	case !privacyStatuses[m.PrivacyStatus]:
		return "invalidVideoMetadata", fmt.Sprintf("privacyStatus %q is not private, unlisted or public.", m.PrivacyStatus)
	}
	return "", ""
}

var (
	rangePattern = regexp.MustCompile(`^bytes ([0-9]+)-([0-9]+)/([0-9]+|\*)$`)
	queryPattern = regexp.MustCompile(`^bytes \*/([0-9]+)$`)
)

// contentRange is a parsed Content-Range request header.
type contentRange struct {
	query       bool  // bytes */total
	first, last int64 // bytes first-last/…
	total       int64 // -1 for *
}

func parseContentRange(h string) (contentRange, error) {
	if m := queryPattern.FindStringSubmatch(h); m != nil {
		t, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || t <= 0 {
			return contentRange{}, fmt.Errorf("total %q is not a positive length", m[1])
		}
		return contentRange{query: true, total: t}, nil
	}
	m := rangePattern.FindStringSubmatch(h)
	if m == nil {
		return contentRange{}, errors.New(`it is neither "bytes first-last/total", "bytes first-last/*" nor "bytes */total"`)
	}
	first, err1 := strconv.ParseInt(m[1], 10, 64)
	last, err2 := strconv.ParseInt(m[2], 10, 64)
	if err1 != nil || err2 != nil || last < first {
		return contentRange{}, errors.New("the last byte is before the first")
	}
	cr := contentRange{first: first, last: last, total: -1}
	if m[3] != "*" {
		t, err := strconv.ParseInt(m[3], 10, 64)
		if err != nil || t <= last {
			return contentRange{}, errors.New("the range goes beyond the total")
		}
		cr.total = t
	}
	return cr, nil
}

// serveSession handles requests on a session URI: chunks and status
// queries (PUT, or POST from the Go client library) and DELETE.
func (s *Server) serveSession(w http.ResponseWriter, r *http.Request, id string) {
	noOverride := r.Header.Get("X-GUploader-No-308") == "yes"
	kind := KindChunk
	if r.Method == http.MethodDelete {
		kind = KindCancel
	} else if strings.HasPrefix(r.Header.Get("Content-Range"), "bytes */") {
		kind = KindStatus
	}
	s.mu.Lock()
	s.requests[kind]++
	sess := s.sessions[id]
	if sess == nil || sess.cancelled || s.expired(sess, s.now()) {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "notFound", "The upload session does not exist or has expired.")
		return
	}
	switch r.Method {
	case http.MethodDelete:
		sess.cancelled = true
		s.mu.Unlock()
		w.WriteHeader(499) // Client Closed Request: what Google answers a cancelled upload
		return
	case http.MethodPut, http.MethodPost:
	default:
		s.mu.Unlock()
		writeError(w, http.StatusMethodNotAllowed, "methodNotAllowed", r.Method+" is not allowed on a session")
		return
	}
	if _, ok := s.refusals[kind]; ok && kind == KindChunk {
		// Refused before a byte is read, so nothing is committed.
		s.mu.Unlock()
		s.refused(w, kind)
		return
	}

	h := r.Header.Get("Content-Range")
	bad := func(format string, args ...any) {
		problem := fmt.Sprintf(format, args...)
		s.violation("session %.8s…: %s with Content-Range %q: %s", sess.id, r.Method, h, problem)
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, "badRequest", problem)
	}
	var cr contentRange
	if h == "" {
		// A request without Content-Range sends the whole file at once.
		if r.ContentLength <= 0 {
			bad("no Content-Range and no body")
			return
		}
		cr = contentRange{first: 0, last: r.ContentLength - 1, total: r.ContentLength}
	} else {
		var err error
		if cr, err = parseContentRange(h); err != nil {
			bad("malformed Content-Range: %v", err)
			return
		}
	}
	if cr.total >= 0 && sess.declared >= 0 && cr.total != sess.declared {
		bad("total %d differs from the declared length %d", cr.total, sess.declared)
		return
	}
	if cr.total > MaxFileSize {
		bad("total %d is above 256 GiB", cr.total)
		return
	}

	if cr.query {
		if r.ContentLength != 0 {
			bad("a status query must have an empty body, got Content-Length %d", r.ContentLength)
			return
		}
		if cr.total < sess.committed {
			bad("total %d is below the %d bytes already committed", cr.total, sess.committed)
			return
		}
		sess.declared = cr.total
		if sess.video == nil && !sess.busy && sess.committed == sess.declared {
			s.complete(sess)
		}
		s.answer(w, sess, noOverride)
		return
	}

	// A chunk.
	n := cr.last - cr.first + 1
	total := cr.total
	if total < 0 {
		total = sess.declared
	}
	switch {
	case sess.video != nil:
		bad("the upload is already complete")
		return
	case sess.busy:
		bad("another chunk of this session is still being received (more than one writer)")
		return
	case cr.first != sess.committed:
		what := "a gap"
		if cr.first < sess.committed {
			what = "an overlap"
		}
		bad("the chunk starts at byte %d but %d bytes are committed: %s", cr.first, sess.committed, what)
		return
	case r.ContentLength != n:
		bad("Content-Length %d differs from the range's %d bytes", r.ContentLength, n)
		return
	}
	final := total >= 0 && cr.last+1 == total
	if !final && n%ChunkAlign != 0 {
		bad("a chunk that does not end the file must be a multiple of 256 KiB, got %d bytes", n)
		return
	}

	// Accepted: decide the faults, then read the body without the lock.
	sess.busy = true
	fail := s.rng.Float64() < s.failRate
	failAfter := fail && s.rng.IntN(2) == 1
	commit := n
	if fail {
		commit = 0
		if failAfter && !noOverride {
			commit = alignedPrefix(s.rng, n)
		}
	} else if !noOverride && s.rng.Float64() < s.shortRate {
		commit = alignedPrefix(s.rng, n)
	}
	read := n // bytes to read from the body
	if fail {
		read = 0
		if failAfter {
			read = commit + (n-commit)/2
		}
	}
	slow := s.slow
	start := sess.hashState
	if cr.total >= 0 {
		sess.declared = cr.total
	}
	s.mu.Unlock()

	hasher := restoreHash(start)
	got, err := io.CopyN(hasher, r.Body, commit)
	if err == nil && read > commit {
		var more int64
		more, err = io.CopyN(io.Discard, r.Body, read-commit)
		got += more
	}

	s.mu.Lock()
	sess.busy = false
	s.received += got
	if err != nil {
		// The client went away mid-chunk: nothing of it is committed.
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, "badRequest", "the chunk body ended early")
		return
	}
	if commit > 0 {
		sess.chunks = append(sess.chunks, Chunk{Start: sess.committed, Length: commit})
		sess.committed += commit
		sess.hashState = hashState(hasher)
		s.committed += commit
	}
	if fail {
		s.requests[KindInjected]++
		s.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, "backendError", "Backend Error (injected)")
		return
	}
	if sess.declared >= 0 && sess.committed == sess.declared {
		s.complete(sess)
	}
	if slow > 0 {
		// The answer is late; what was committed stays committed. (The
		// request context ends when the client goes away, now that the
		// body has been read.)
		s.mu.Unlock()
		t := time.NewTimer(slow)
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
		t.Stop()
		s.mu.Lock()
	}
	s.answer(w, sess, noOverride)
}

// alignedPrefix returns a random multiple of ChunkAlign below n.
func alignedPrefix(rng interface{ Int64N(int64) int64 }, n int64) int64 {
	return ChunkAlign * rng.Int64N((n-1)/ChunkAlign+1)
}

// answer tells the client where the session is: the video when complete,
// else "resume incomplete" with the committed range. It releases s.mu.
func (s *Server) answer(w http.ResponseWriter, sess *session, noOverride bool) {
	if sess.video != nil {
		body := s.videoResource(sess.video, []string{"snippet", "status"})
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, body)
		return
	}
	committed := sess.committed
	s.mu.Unlock()
	if committed > 0 {
		w.Header().Set("Range", fmt.Sprintf("bytes=0-%d", committed-1))
	}
	if noOverride {
		w.Header().Set("X-Http-Status-Code-Override", "308")
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusPermanentRedirect) // 308 Resume Incomplete
}

// complete turns a session that has every byte into a video; s.mu is held.
func (s *Server) complete(sess *session) {
	var id string
	for id == "" || s.videos[id] != nil {
		id = randomString(9)[:11] // 11 characters of [A-Za-z0-9_-], like YouTube's ids
	}
	v := &video{id: id, sess: sess, sha256: hex.EncodeToString(restoreHash(sess.hashState).Sum(nil)), uploaded: s.now()}
	sess.video = v
	s.videos[id] = v
	s.videoOrder = append(s.videoOrder, v)
}

type hashMarshaler interface {
	io.Writer
	Sum([]byte) []byte
	encoding.BinaryMarshaler
	encoding.BinaryUnmarshaler
}

func hashState(h io.Writer) []byte {
	b, err := h.(hashMarshaler).MarshalBinary()
	if err != nil {
		panic(fmt.Sprintf("youtubetest: sha256 state: %v", err)) // crypto/sha256 always marshals
	}
	return b
}

func restoreHash(state []byte) hashMarshaler {
	h := sha256.New().(hashMarshaler)
	if err := h.UnmarshalBinary(state); err != nil {
		panic(fmt.Sprintf("youtubetest: sha256 state: %v", err))
	}
	return h
}
