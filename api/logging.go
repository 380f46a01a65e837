package api

import (
	"crypto/rand"
	"regexp"
	"strconv"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"
)

// maxShown caps every string of a client's making that the API logs or
// repeats in a message (ids, methods, routes): a request can carry
// megabytes in one of them, a log line must not. A valid atom id (100
// characters at most) is never cut.
const maxShown = 128

// maxErrorShown caps a logged error's text, which may quote what a
// dependency answered.
const maxErrorShown = 2048

// clip returns s, or its first maxShown bytes (whole UTF-8 characters) and
// how long it was.
func clip(s string) string { return clipTo(s, maxShown) }

func clipTo(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

// errorField logs err's text, capped.
func errorField(err error) zap.Field {
	if err == nil {
		return zap.Skip()
	}
	return zap.String("error", clipTo(err.Error(), maxErrorShown))
}

// requestIDPattern is what a client's X-Request-ID must be to be kept: short
// and plain, so that it can go in logs and answers as it is.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Keys of the echo context.
const (
	authenticatedKey     = "atomuploads.authenticated"
	rejectedRequestIDKey = "atomuploads.rejectedRequestId"
)

// requestID gives every request an id, answered in X-Request-ID and logged
// with each of its lines: the client's own when it is short and plain (so
// that a media tool can follow its request through our logs), a new one
// otherwise (only the length of the one refused is logged).
func (s *Server) requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		rid := c.Request().Header.Get(echo.HeaderXRequestID)
		if !requestIDPattern.MatchString(rid) {
			if rid != "" {
				c.Set(rejectedRequestIDKey, len(rid))
			}
			rid = rand.Text()
		}
		c.Response().Header().Set(echo.HeaderXRequestID, rid)
		return next(c)
	}
}

// requestFields are the fields of a request's log lines: its id and path
// parameters (paramFields).
func requestFields(c echo.Context) []zap.Field {
	return append(idFields(c), paramFields(c)...)
}

// idFields are the request's id and, when the client's was refused, its
// length.
func idFields(c echo.Context) []zap.Field {
	f := []zap.Field{zap.String("requestId", c.Response().Header().Get(echo.HeaderXRequestID))}
	if n, ok := c.Get(rejectedRequestIDKey).(int); ok {
		f = append(f, zap.Int("refusedRequestIdBytes", n))
	}
	return f
}

// paramFields are the request's path parameters, capped; an
// unauthenticated request's only by their length (anyone can send one, of
// any size).
func paramFields(c echo.Context) []zap.Field {
	var f []zap.Field
	authenticated, _ := c.Get(authenticatedKey).(bool)
	for _, name := range []string{"atomId", "uploadId"} {
		v := c.Param(name)
		switch {
		case authenticated:
			f = append(f, zap.String(name, clip(v)))
		case v != "":
			f = append(f, zap.Int(name+"Bytes", len(v)))
		}
	}
	return f
}
