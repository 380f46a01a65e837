package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// untimedKey holds, in the echo context, the request's context before the
// request deadline: a streamed answer bounds its waits one at a time
// (stallContext) instead.
const untimedKey = "atomuploads.untimedContext"

// deadline bounds a request by cfg.RequestTimeout: its context ends then,
// so a call still waiting on a dependency fails with 503 (errorHandler),
// and its body must have arrived by then, or reading it fails (408, bind).
//
// The body's deadline is the connection's read deadline. It is lifted once
// the body is read (or at once when there is none): net/http reads on in
// the background during the handler to notice a client that goes away, and
// a read deadline passing there, the server's ReadTimeout included, would
// cancel the request's context in the middle of a long answer.
func (s *Server) deadline(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		rc := http.NewResponseController(c.Response())
		if req.ContentLength == 0 { // no body (a chunked one is -1)
			_ = rc.SetReadDeadline(time.Time{}) // not supported by a test recorder: no connection to bound
		} else {
			_ = rc.SetReadDeadline(time.Now().Add(s.cfg.RequestTimeout))
			req.Body = &deadlineBody{ReadCloser: req.Body, lift: func() { _ = rc.SetReadDeadline(time.Time{}) }}
		}
		c.Set(untimedKey, req.Context())
		ctx, cancel := context.WithTimeout(req.Context(), s.cfg.RequestTimeout)
		defer cancel()
		c.SetRequest(req.WithContext(ctx))
		return next(c)
	}
}

// deadlineBody lifts the read deadline once the whole body is read.
type deadlineBody struct {
	io.ReadCloser
	lift func()
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && b.lift != nil {
		b.lift()
		b.lift = nil
	}
	return n, err
}

// errStalled ends a stallContext.
var errStalled = errors.New("no progress within the request timeout")

// stallContext is for an answer written while it is read (a list): the
// whole answer may take longer than the request timeout (its delivery is
// bounded by the server's write timeout), but every wait for the table must
// not. The context ends when it has been waiting (not paused) for the
// request timeout in one go, or when the client goes away. Pause it while
// writing, resume it before the next wait; stop releases it.
func (s *Server) stallContext(c echo.Context) (ctx context.Context, pause, resume, stop func()) {
	parent, ok := c.Get(untimedKey).(context.Context)
	if !ok {
		parent = c.Request().Context()
	}
	d := s.cfg.RequestTimeout
	ctx, cancel := context.WithCancelCause(parent)
	t := time.AfterFunc(d, func() { cancel(errStalled) })
	return ctx, func() { t.Stop() }, func() { t.Reset(d) }, func() { t.Stop(); cancel(nil) }
}

// stalled makes err a deadline error when ctx ended for want of progress,
// so that it becomes the same 503 as a request past its deadline.
func stalled(ctx context.Context, err error) error {
	if err != nil && errors.Is(context.Cause(ctx), errStalled) {
		return fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	}
	return err
}
