package youtube

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	yt "google.golang.org/api/youtube/v3"

	"atomuploads/upload"
)

// Progress is what YouTube reports about a resumable session.
type Progress struct {
	// Committed is the number of bytes YouTube has stored, from byte 0;
	// the next chunk starts there.
	Committed int64
	// Done is set when YouTube has the whole file and created the video.
	Done bool
	// VideoID is the id of the new video when Done.
	VideoID string
}

// StartSession starts a resumable upload session for a file of size bytes
// and returns the session URI (step 1 of the guide):
//
//	POST {APIBaseURL}upload/youtube/v3/videos?uploadType=resumable&part=snippet,status
//	Authorization: Bearer <token>
//	Content-Type: application/json; charset=UTF-8
//	X-Upload-Content-Length: <size>
//	X-Upload-Content-Type: <contentType>
//
//	{"snippet": {"title", "description", "tags", "categoryId"}, "status": {"privacyStatus"}}
//
// YouTube answers 200 OK with the session URI in Location. The URI is a
// capability: StartSession returns it sealed, as an opaque handle (see
// handle.go) that the caller may store and log nowhere but the table.
func (c *Client) StartSession(ctx context.Context, meta upload.YouTubeMetadata, size int64, contentType string) (string, error) {
	if size <= 0 {
		return "", upload.Errorf(upload.EINVALID, "start session: size must be positive, got %d", size)
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	body, err := json.Marshal(&yt.Video{
		Snippet: &yt.VideoSnippet{
			Title:       meta.Title,
			Description: meta.Description,
			Tags:        meta.Tags,
			CategoryId:  meta.CategoryID,
		},
		Status: &yt.VideoStatus{PrivacyStatus: meta.PrivacyStatus},
	})
	if err != nil {
		return "", fmt.Errorf("start session: encode metadata: %w", err)
	}
	endpoint := c.base + "upload/youtube/v3/videos?uploadType=resumable&part=snippet,status"
	a, err := c.exchange(ctx, true, true, func(rctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(rctx, http.MethodPost, endpoint, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json; charset=UTF-8")
		req.Header.Set("X-Upload-Content-Length", strconv.FormatInt(size, 10))
		req.Header.Set("X-Upload-Content-Type", contentType)
		return req, nil
	})
	if err != nil {
		return "", fmt.Errorf("start session: %w", err)
	}
	if a.resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("start session: %w", apiError(a.resp, a.body))
	}
	loc := a.resp.Header.Get("Location")
	u, err := a.resp.Request.URL.Parse(loc)
	if loc == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("start session: %w", &Error{
			Status:    a.resp.StatusCode,
			Message:   fmt.Sprintf("YouTube answered %d without a usable session URI in Location", a.resp.StatusCode),
			Temporary: true,
		})
	}
	return c.seal(u.String())
}

// PutChunk sends bytes [start, start+n) of a file of total bytes, read from
// body, to the session (step 3 of the guide):
//
//	PUT <session URI>
//	Content-Length: <n>
//	Content-Range: bytes <start>-<start+n-1>/<total>
//
// The body is streamed: exactly n bytes are read from body while they are
// sent, and nothing is buffered. start must be the committed offset YouTube
// last reported, and n a multiple of 256 KiB unless the chunk ends the file.
//
// YouTube answers 308 Resume Incomplete with Range: bytes=0-X when it has
// bytes 0..X (which may be fewer than were sent: continue from
// Progress.Committed), or 200/201 with the video when the file is complete.
// 404/410 give ErrSessionGone. Other failures are *Error; after a temporary
// one, ask Offset where to continue. The call is bounded by ctx only.
func (c *Client) PutChunk(ctx context.Context, session string, body io.Reader, start, n, total int64) (Progress, error) {
	op := fmt.Sprintf("PUT chunk bytes %d-%d/%d", start, start+n-1, total)
	if start < 0 || n <= 0 || start+n > total {
		return Progress{}, upload.Errorf(upload.EINVALID, "%s: the range is not within the file", op)
	}
	sessionURI, err := c.open(session)
	if err != nil {
		return Progress{}, fmt.Errorf("%s: %w", op, err)
	}
	if err := checkSessionURI(sessionURI); err != nil {
		return Progress{}, fmt.Errorf("%s: %w", op, err)
	}
	src := &source{r: body, n: n}
	a, err := c.exchange(ctx, false, false, func(rctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(rctx, http.MethodPut, sessionURI, src)
		if err != nil {
			return nil, err
		}
		req.ContentLength = n
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+n-1, total))
		return req, nil
	})
	if err != nil {
		if serr := src.failure(); serr != nil && ctx.Err() == nil {
			// The caller's reader failed, not YouTube: not a *Error.
			return Progress{}, fmt.Errorf("%s: read the chunk: %w", op, serr)
		}
		return Progress{}, fmt.Errorf("%s: %w", op, err)
	}
	p, err := progress(a, total)
	if err != nil {
		if e := (*Error)(nil); errors.As(err, &e) && e.Status == http.StatusUnauthorized {
			// The body cannot be sent again; the token is dropped and
			// the next call (Offset) tries a fresh one.
			e.Temporary = true
		}
		return Progress{}, fmt.Errorf("%s: %w", op, err)
	}
	return p, nil
}

// Offset asks YouTube how much of the file the session has (step 4.1 of the
// guide):
//
//	PUT <session URI>
//	Content-Length: 0
//	Content-Range: bytes */<total>
//
// with the same answers as PutChunk. Temporary failures (5xx, 429, network
// errors, timeouts) are retried with jittered exponential backoff, at most
// Config.MaxAttempts attempts in all, while ctx allows.
func (c *Client) Offset(ctx context.Context, session string, total int64) (Progress, error) {
	op := fmt.Sprintf("query offset bytes */%d", total)
	if total <= 0 {
		return Progress{}, upload.Errorf(upload.EINVALID, "%s: total must be positive", op)
	}
	sessionURI, err := c.open(session)
	if err != nil {
		return Progress{}, fmt.Errorf("%s: %w", op, err)
	}
	if err := checkSessionURI(sessionURI); err != nil {
		return Progress{}, fmt.Errorf("%s: %w", op, err)
	}
	build := func(rctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(rctx, http.MethodPut, sessionURI, http.NoBody)
		if err != nil {
			return nil, err
		}
		req.ContentLength = 0
		req.Header.Set("Content-Range", fmt.Sprintf("bytes */%d", total))
		return req, nil
	}
	var (
		p        Progress
		attempts int
	)
	err = c.offsetRetry.Do(ctx, IsTemporary, func(ctx context.Context, attempt int) error {
		attempts = attempt
		a, err := c.exchange(ctx, true, true, build)
		if err == nil {
			p, err = progress(a, total)
		}
		return err
	})
	switch {
	case err == nil:
		return p, nil
	case attempts > 1:
		return Progress{}, fmt.Errorf("%s (%d attempts): %w", op, attempts, err)
	}
	return Progress{}, fmt.Errorf("%s: %w", op, err)
}

// Cancel abandons the session, best effort: DELETE <session URI>. A session
// that is already gone (404, 410) or that YouTube reports cancelled (499
// Client Closed Request, as Google answers a cancelled resumable upload)
// counts as cancelled.
func (c *Client) Cancel(ctx context.Context, session string) error {
	sessionURI, err := c.open(session)
	if errors.Is(err, ErrSessionGone) {
		return nil // nothing this client can cancel
	}
	if err := checkSessionURI(sessionURI); err != nil {
		return fmt.Errorf("cancel session: %w", err)
	}
	a, err := c.exchange(ctx, true, true, func(rctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(rctx, http.MethodDelete, sessionURI, nil)
	})
	if err != nil {
		return fmt.Errorf("cancel session: %w", err)
	}
	switch s := a.resp.StatusCode; {
	case s/100 == 2, s == http.StatusNotFound, s == http.StatusGone, s == 499:
		return nil
	}
	return fmt.Errorf("cancel session: %w", apiError(a.resp, a.body))
}

// progress interprets an answer to a chunk or an offset query.
func progress(a answer, total int64) (Progress, error) {
	status := a.resp.StatusCode
	if status == http.StatusOK && a.resp.Header.Get("X-Http-Status-Code-Override") == "308" {
		status = http.StatusPermanentRedirect
	}
	switch status {
	case http.StatusPermanentRedirect: // 308 Resume Incomplete
		committed, err := parseRange(a.resp.Header.Get("Range"))
		if err != nil || committed > total {
			return Progress{}, &Error{
				Status:  status,
				Message: fmt.Sprintf("YouTube answered 308 with an unusable Range header %q", a.resp.Header.Get("Range")),
			}
		}
		return Progress{Committed: committed}, nil
	case http.StatusOK, http.StatusCreated:
		var v struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(a.body, &v); err != nil || v.ID == "" {
			return Progress{}, &Error{
				Status:    status,
				Message:   fmt.Sprintf("YouTube answered %d for a complete upload without a video id", status),
				Temporary: true, // asking for the offset again returns the video again
			}
		}
		return Progress{Committed: total, Done: true, VideoID: v.ID}, nil
	case http.StatusNotFound, http.StatusGone:
		return Progress{}, ErrSessionGone
	}
	return Progress{}, apiError(a.resp, a.body)
}

// parseRange parses a 308's Range header, "bytes=0-X", into X+1; no header
// means nothing is committed.
func parseRange(h string) (int64, error) {
	if h == "" {
		return 0, nil
	}
	first, last, ok := strings.Cut(strings.TrimPrefix(h, "bytes="), "-")
	if !ok || first != "0" || !strings.HasPrefix(h, "bytes=") {
		return 0, fmt.Errorf("range %q does not start at byte 0", h)
	}
	x, err := strconv.ParseInt(last, 10, 64)
	if err != nil || x < 0 {
		return 0, fmt.Errorf("range %q has no last byte", h)
	}
	return x + 1, nil
}

// checkSessionURI refuses what cannot be a session URI, without echoing it.
func checkSessionURI(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return upload.Errorf(upload.EINVALID, "the session URI is not an absolute http(s) URL")
	}
	return nil
}

// source is a chunk body: at most n bytes of r, remembering whether r
// failed or ended early. The transport reads it in its own goroutine, which
// may still be inside Read when the request has ended.
type source struct {
	r    io.Reader
	n    int64
	read int64 // only touched by Read

	mu  sync.Mutex
	err error
}

func (s *source) Read(p []byte) (int, error) {
	if s.read >= s.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), s.n-s.read)]
	k, err := s.r.Read(p)
	s.read += int64(k)
	switch {
	case errors.Is(err, io.EOF) && s.read < s.n:
		err = fmt.Errorf("the reader ended after %d of %d bytes: %w", s.read, s.n, io.ErrUnexpectedEOF)
		s.setErr(err)
	case err != nil && !errors.Is(err, io.EOF):
		s.setErr(err)
	}
	return k, err
}

func (s *source) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

// failure returns the reader's error, if it failed.
func (s *source) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
