// Package api serves the REST contract of atom-uploads (api/openapi.yaml)
// with echo v4: start, list, get, refresh credentials and cancel uploads,
// plus GET /healthcheck. Every route but /healthcheck needs a bearer token.
// Domain errors map to HTTP statuses in one place, errorHandler. The bodies
// are the wire types of package rest; view converts the domain's records,
// and recordWriter writes them to the answer a record (and a part) at a
// time, so that an answer's memory is bounded by one record (render.go).
//
// Middleware, outermost first: requestID (a short plain client id or a new
// one), accessLog (one line per request; it cuts an answer that failed
// after it began), recoverPanic (a panic is a 500), the body limit, and
// deadline (the request timeout, for the context and the body).
package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"go.uber.org/zap"

	"atomuploads/api/rest"
	"atomuploads/credentials"
	"atomuploads/metrics"
	"atomuploads/upload"
)

// Uploads is the progress table as the API uses it.
type Uploads interface {
	Create(ctx context.Context, u *upload.Upload) error
	Get(ctx context.Context, atomID, id string) (*upload.Upload, error)
	// List hands up to limit uploads of the atom to fn, newest first,
	// starting after the upload id after (when set), keeping only the
	// given statuses (when any); next is where the following page starts,
	// "" when there is none.
	List(ctx context.Context, atomID, after string, statuses []upload.Status, limit int, fn func(*upload.Upload) error) (next string, err error)
	Update(ctx context.Context, atomID, id string, fn func(*upload.Upload) error) (*upload.Upload, error)
}

// Issuer issues the browser's temporary credentials for one upload.
type Issuer interface {
	Issue(ctx context.Context, atomID, uploadID string) (credentials.Credentials, error)
}

// SessionCanceller aborts a YouTube resumable session.
type SessionCanceller interface {
	Cancel(ctx context.Context, sessionURI string) error
}

// Config is what the API needs to know.
type Config struct {
	Tokens         []string      // accepted bearer tokens
	Region         string        // reported in records
	Bucket         string        // reported in records
	PartSize       int64         // preferred part size of the plan
	MaxBodyBytes   int64         // larger bodies get 413
	RequestTimeout time.Duration // deadline of one request
	YouTube        bool          // youtube destinations are enabled
	Transcode      bool          // s3Bucket destinations are enabled
	Page           http.Handler  // the uploads page at / and /static/ (package web); nil: none
	// Metrics counts the requests and tells GET /healthcheck?detail=1 the
	// process's health; nil: nothing is counted, and the detail is bare.
	Metrics *metrics.Metrics
}

// Server is the HTTP API.
type Server struct {
	e        *echo.Echo
	cfg      Config
	uploads  Uploads
	issuer   Issuer
	sessions SessionCanceller
	log      *zap.Logger
	tokens   [][32]byte
	now      func() time.Time
	entropy  io.Reader
	draining atomic.Bool

	driver        Driver  // WithRetry's
	objects       Objects // WithRetry's
	objectsBucket string
}

//go:embed openapi.yaml
var openAPI []byte

// New returns the API. sessions may be nil when YouTube is disabled.
func New(cfg Config, uploads Uploads, issuer Issuer, sessions SessionCanceller, log *zap.Logger, opts ...Option) *Server {
	s := &Server{
		cfg: cfg, uploads: uploads, issuer: issuer, sessions: sessions, log: log,
		now: time.Now, entropy: rand.Reader,
	}
	for _, o := range opts {
		o(s)
	}
	for _, t := range cfg.Tokens {
		s.tokens = append(s.tokens, sha256.Sum256([]byte(t)))
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.errorHandler
	e.Use(s.requestID)
	e.Use(s.accessLog)
	e.Use(recoverPanic)
	e.Use(middleware.BodyLimit(strconv.FormatInt(cfg.MaxBodyBytes, 10) + "B"))
	e.Use(s.deadline)

	e.GET("/healthcheck", s.healthcheck)
	// Authentication is per route, not a group middleware: echo answers
	// 404 instead of 405 under a group with middleware.
	auth := s.authenticate
	e.GET("/api2/openapi.yaml", s.openAPI, auth)
	e.POST("/api2/atom/:atomId/uploads", s.start, auth)
	e.GET("/api2/atom/:atomId/uploads", s.list, auth)
	e.GET("/api2/atom/:atomId/uploads/:uploadId", s.get, auth)
	e.POST("/api2/atom/:atomId/uploads/:uploadId/credentials", s.refresh, auth)
	e.DELETE("/api2/atom/:atomId/uploads/:uploadId", s.cancel, auth)
	if s.driver != nil {
		e.POST("/api2/atom/:atomId/uploads/:uploadId/retry", s.retry, auth)
	}
	if cfg.Page != nil { // the page is not an API route: no token to fetch it, not in Routes
		page := []string{http.MethodGet, http.MethodHead}
		e.Match(page, "/", echo.WrapHandler(cfg.Page))
		e.Match(page, "/static/*", echo.WrapHandler(cfg.Page))
	}
	s.e = e
	var patterns []string
	for _, r := range e.Routes() {
		patterns = append(patterns, r.Path)
	}
	cfg.Metrics.Routes(patterns...) // the only route labels: never a path a client made up
	return s
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.e.ServeHTTP(w, r) }

// Drain makes /healthcheck answer 503, so that a load balancer stops
// sending requests while the process shuts down.
func (s *Server) Drain() {
	s.draining.Store(true)
	s.cfg.Metrics.Health().Drain()
}

// Routes lists "METHOD path" of every route, paths in OpenAPI form.
func (s *Server) Routes() []string {
	var out []string
	for _, r := range s.e.Routes() {
		if r.Method == echo.RouteNotFound || strings.HasSuffix(r.Path, "/*") || r.Path == "/" {
			continue
		}
		parts := strings.Split(r.Path, "/")
		for i, p := range parts {
			if strings.HasPrefix(p, ":") {
				parts[i] = "{" + p[1:] + "}"
			}
		}
		out = append(out, r.Method+" "+strings.Join(parts, "/"))
	}
	return out
}

// healthcheck answers 200 {"status":"ok"} while the process serves, 503
// while it drains; with ?detail=1 it says why: each dependency's last
// success and failure, the known problems (YouTube refusing the
// credentials), whether it drains. Nothing in it is a secret.
func (s *Server) healthcheck(c echo.Context) error {
	if c.QueryParam("detail") != "" {
		metrics.WriteReport(c.Response(), s.cfg.Metrics.Health().Report(s.draining.Load()))
		return nil
	}
	if s.draining.Load() {
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "draining"})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) openAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", openAPI)
}

// authenticate accepts a request whose bearer token is one of the
// configured tokens, compared in constant time.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		auth := c.Request().Header.Get(echo.HeaderAuthorization)
		scheme, token, ok := strings.Cut(auth, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="atom-uploads"`)
			return upload.Errorf(upload.EUNAUTHORIZED, "send Authorization: Bearer <token>")
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
		match := 0
		for _, t := range s.tokens {
			match |= subtle.ConstantTimeCompare(sum[:], t[:])
		}
		if match != 1 {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="atom-uploads", error="invalid_token"`)
			return upload.Errorf(upload.EUNAUTHORIZED, "the bearer token is not valid")
		}
		c.Set(authenticatedKey, true)
		return next(c)
	}
}

// errorHandler is the one place where errors become HTTP statuses.
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		// Too late for a status: the answer has begun (a streamed record
		// or list). accessLog cuts the connection, so the client sees a
		// broken answer, never a well-formed short one.
		fields := append(requestFields(c), zap.String("path", clip(c.Path())), errorField(err), stackField(err))
		var we *writeError
		if errors.As(err, &we) {
			s.log.Info("answer not delivered: the client stopped reading", fields...)
			return
		}
		s.log.Error("request failed after its answer began; the answer is cut", fields...)
		return
	}
	status, msg := http.StatusInternalServerError, ""
	var he *echo.HTTPError
	switch {
	case errors.As(err, &he):
		status = he.Code
		msg = http.StatusText(he.Code)
		if m, ok := he.Message.(string); ok {
			msg = m
		}
		if status == http.StatusRequestEntityTooLarge {
			msg = "request body is larger than " + strconv.FormatInt(s.cfg.MaxBodyBytes, 10) + " bytes"
		}
		if status == http.StatusServiceUnavailable && errors.Is(err, context.DeadlineExceeded) {
			msg = "the request took too long; try again"
		}
	case errors.Is(err, context.DeadlineExceeded):
		status, msg = http.StatusServiceUnavailable, "the request took too long; try again"
	default:
		switch upload.ErrorCode(err) {
		case upload.EINVALID:
			status = http.StatusBadRequest
		case upload.ENOTFOUND:
			status = http.StatusNotFound
		case upload.ECONFLICT:
			status = http.StatusConflict
		case upload.EUNAUTHORIZED:
			status = http.StatusUnauthorized
		case upload.EUNAVAILABLE:
			status = http.StatusServiceUnavailable
		}
		msg = upload.ErrorMessage(err)
	}
	if status >= 500 {
		// The edge: the only place a failed request's cause is logged.
		rid := c.Response().Header().Get(echo.HeaderXRequestID)
		s.log.Error("request failed", append(requestFields(c), zap.String("path", clip(c.Path())), errorField(err), stackField(err))...)
		if status == http.StatusInternalServerError {
			msg = "internal error (request " + rid + ")"
		}
	}
	var werr error
	if c.Request().Method == http.MethodHead {
		werr = c.NoContent(status)
	} else {
		werr = c.JSON(status, rest.Error{Message: msg})
	}
	if werr != nil {
		s.log.Warn("write error response", append(requestFields(c), errorField(werr))...)
	}
}

// accessLog writes one line per request, and counts it.
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		// An error after the answer began cannot become a status.
		cut := err != nil && c.Response().Committed
		if err != nil {
			c.Error(err)
		}
		cutField := zap.Skip()
		if cut {
			cutField = zap.Bool("cut", true)
			// After the line below: net/http drops the connection without
			// ending the answer, so the client sees it broken.
			defer panic(http.ErrAbortHandler)
		}
		res := c.Response()
		s.cfg.Metrics.Request(c.Path(), c.Request().Method, res.Status, time.Since(start))
		if c.Path() == "/healthcheck" {
			return nil
		}
		fields := append(idFields(c),
			zap.String("method", clip(c.Request().Method)),
			zap.String("route", clip(c.Path())),
			zap.Int("status", res.Status))
		fields = append(fields, paramFields(c)...)
		s.log.Info("request", append(fields,
			zap.Int64("bytes", res.Size),
			zap.Int64("durationMs", time.Since(start).Milliseconds()),
			cutField,
		)...)
		return nil
	}
}
