package youtube

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"

	"golang.org/x/oauth2"
	"google.golang.org/api/googleapi"
)

// ErrSessionGone means YouTube no longer knows the resumable session (404 Not
// Found or 410 Gone on the session URI): it expired or was cancelled. The
// caller starts a new session and sends the file again from byte 0.
var ErrSessionGone = errors.New("YouTube upload session is gone (expired or cancelled)")

// ErrVideoNotFound means videos.list did not return the video: it does not
// exist or does not belong to the authorised channel.
var ErrVideoNotFound = errors.New("YouTube has no such video")

// Error is a failure answered by YouTube or its OAuth2 token endpoint, or a
// failure to reach them. Its message is readable and safe to show or log: it
// never holds a token, the client secret or a session URI.
type Error struct {
	// Status is the HTTP status YouTube (or the token endpoint) answered;
	// 0 when no answer came (network error, timeout).
	Status int
	// Reason is the first errors[].reason of Google's JSON error body (such
	// as "quotaExceeded"), or the OAuth2 error code (such as "invalid_grant").
	Reason string
	// Message says what happened, for people.
	Message string
	// Temporary is true when the same call may succeed later (5xx, 429,
	// rate limits, network errors, timeouts); false when it will not without
	// someone changing something (quota, credentials, bad metadata).
	Temporary bool

	credentials bool  // the token endpoint refused the client or refresh token
	err         error // the cause, for errors.Is and errors.As
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the cause: a *googleapi.Error, an *oauth2.RetrieveError or
// a network error.
func (e *Error) Unwrap() error { return e.err }

// Class says what the caller should do about an error, from the documented
// errors[].reason values of videos.insert and the resumable protocol.
type Class int

// Classes of errors.
const (
	// ClassTemporary: retry with backoff (5xx, backendError,
	// rateLimitExceeded, userRateLimitExceeded, timeouts, network).
	ClassTemporary Class = iota + 1
	// ClassQuota: the project's daily quota is spent (quotaExceeded,
	// dailyLimitExceeded); it resets at midnight Pacific time.
	ClassQuota
	// ClassUploadLimit: the channel may upload no more for now
	// (uploadLimitExceeded); that can last days.
	ClassUploadLimit
	// ClassCredentials: the OAuth2 client or refresh token is refused
	// (invalid_grant, unauthorized_client, a second 401, the channel
	// forbidden): nothing works until someone fixes the secret.
	ClassCredentials
	// ClassRequest: the request itself is wrong (invalidTitle, …): Field
	// names the metadata field.
	ClassRequest
	// ClassRefused: refused for another reason; retrying does not help.
	ClassRefused
)

// String names the class.
func (c Class) String() string {
	switch c {
	case ClassTemporary:
		return "temporary"
	case ClassQuota:
		return "quota"
	case ClassUploadLimit:
		return "uploadLimit"
	case ClassCredentials:
		return "credentials"
	case ClassRequest:
		return "request"
	case ClassRefused:
		return "refused"
	}
	return "unknown"
}

// Reasons of the request-is-wrong class, with the metadata field each is
// about.
var requestReasons = map[string]string{
	"invalidTitle":            "title",
	"invalidDescription":      "description",
	"invalidTags":             "tags",
	"invalidCategoryId":       "categoryId",
	"invalidVideoMetadata":    "metadata",
	"invalidFilename":         "filename",
	"invalidPublishAt":        "publishAt",
	"invalidRecordingDetails": "recordingDetails",
	"invalidVideoGameRating":  "metadata",
	"mediaBodyRequired":       "the file",
	"defaultLanguageNotSet":   "defaultLanguage",
}

// Class says what to do about the error.
func (e *Error) Class() Class {
	switch {
	case e.credentials:
		return ClassCredentials
	case e.Temporary:
		return ClassTemporary
	case e.Reason == "quotaExceeded" || e.Reason == "dailyLimitExceeded":
		return ClassQuota
	case e.Reason == "uploadLimitExceeded":
		return ClassUploadLimit
	case e.Status == http.StatusUnauthorized, e.Reason == "forbidden", e.Reason == "insufficientPermissions",
		e.Reason == "youtubeSignupRequired", e.Reason == "invalid_grant", e.Reason == "unauthorized_client", e.Reason == "invalid_client":
		return ClassCredentials
	case requestReasons[e.Reason] != "":
		return ClassRequest
	}
	return ClassRefused
}

// Field names the metadata field a ClassRequest error is about, or "".
func (e *Error) Field() string { return requestReasons[e.Reason] }

// ClassOf is the class of err's *Error; errors that are not YouTube's
// answers (a context ended, a session gone) are ClassTemporary.
func ClassOf(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class()
	}
	return ClassTemporary
}

// IsTemporary reports whether err (or an error it wraps) is a temporary
// YouTube failure worth retrying later. ErrSessionGone, context errors and
// permanent failures are not temporary.
func IsTemporary(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Temporary
}

// Reasons Google reports in errors[].reason that only go away by waiting.
var temporaryReasons = map[string]bool{
	"rateLimitExceeded":     true,
	"userRateLimitExceeded": true,
	"backendError":          true,
	"internalError":         true,
}

// apiError classifies a non-2xx answer of the YouTube API. body is the
// (possibly truncated) response body.
func apiError(resp *http.Response, body []byte) *Error {
	err := googleapi.CheckResponseWithBody(resp, body)
	var gerr *googleapi.Error
	if !errors.As(err, &gerr) {
		gerr = &googleapi.Error{Code: resp.StatusCode}
		err = gerr
	}
	return fromGoogleError(gerr, err)
}

// fromGoogleError classifies a *googleapi.Error; cause is the error to wrap
// (gerr itself or an error wrapping it).
func fromGoogleError(gerr *googleapi.Error, cause error) *Error {
	e := &Error{Status: gerr.Code, err: cause}
	if len(gerr.Errors) > 0 {
		e.Reason = gerr.Errors[0].Reason
	}
	switch {
	case gerr.Code >= 500, gerr.Code == http.StatusTooManyRequests, gerr.Code == http.StatusRequestTimeout:
		e.Temporary = true
	case temporaryReasons[e.Reason]:
		e.Temporary = true
	}
	msg := gerr.Message
	if msg == "" && len(gerr.Errors) > 0 {
		msg = gerr.Errors[0].Message
	}
	if msg == "" {
		msg = http.StatusText(gerr.Code)
	}
	e.Message = fmt.Sprintf("YouTube answered %d", gerr.Code)
	if e.Reason != "" {
		e.Message += " " + e.Reason
	}
	e.Message += ": " + msg
	return e
}

// transportError classifies an error returned by http.Client.Do (or by the
// generated client, which returns those unchanged). The *url.Error layer is
// dropped: its text holds the request URL, and a session URI is a secret. If
// the caller's ctx is done, its error is returned as is (not temporary).
func transportError(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	err = withoutURL(err)
	var rerr *oauth2.RetrieveError
	if errors.As(err, &rerr) {
		return tokenError(rerr)
	}
	var gerr *googleapi.Error
	if errors.As(err, &gerr) {
		return fromGoogleError(gerr, err)
	}
	var nerr net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &nerr) && nerr.Timeout() {
		return &Error{Message: "YouTube did not answer in time: " + err.Error(), Temporary: true, err: err}
	}
	return &Error{Message: "cannot reach YouTube: " + err.Error(), Temporary: true, err: err}
}

// tokenError classifies a failure of the OAuth2 token endpoint. A 4xx
// (invalid_grant, invalid_client) means the configured credentials are wrong
// or revoked: permanent. Anything else is the endpoint's trouble: temporary.
func tokenError(rerr *oauth2.RetrieveError) *Error {
	status := 0
	if rerr.Response != nil {
		status = rerr.Response.StatusCode
	}
	e := &Error{Status: status, Reason: rerr.ErrorCode, err: rerr}
	detail := rerr.ErrorCode
	if rerr.ErrorDescription != "" {
		detail += " (" + rerr.ErrorDescription + ")"
	}
	if detail == "" {
		detail = http.StatusText(status)
	}
	if status >= 400 && status < 500 && status != http.StatusTooManyRequests && status != http.StatusRequestTimeout {
		e.Message = fmt.Sprintf("YouTube refresh token rejected: %d %s", status, detail)
		e.credentials = true
		return e
	}
	e.Temporary = true
	e.Message = fmt.Sprintf("YouTube token endpoint answered %d %s", status, detail)
	return e
}

// withoutURL drops the *url.Error layers of err, whose text holds the
// request URL (a session URI is a secret).
func withoutURL(err error) error {
	var uerr *url.Error
	for errors.As(err, &uerr) {
		err = uerr.Err
	}
	return err
}
