package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/netutil"
)

// Listener configures the HTTP server of the API. Zero values are
// net/http's defaults (no limit).
type Listener struct {
	Addr              string        // where to listen, e.g. ":8080"
	ReadHeaderTimeout time.Duration // slow-loris guard: the headers must arrive within it
	ReadTimeout       time.Duration // the headers and body must arrive within it
	WriteTimeout      time.Duration // the answer must be written within it of the headers
	IdleTimeout       time.Duration // a keep-alive connection without a request is closed after it
	// MaxConnections caps the connections served at once: more wait to be
	// accepted (in the kernel's listen backlog) until one closes, so a
	// flood of connections cannot exhaust file descriptors or memory.
	MaxConnections int
	// DrainDelay is how long Stop keeps serving with /healthcheck
	// answering 503, so that a load balancer stops sending first.
	DrainDelay time.Duration
}

// HTTP is the API's listener as a component of the service: Start listens
// and serves in the background, Stop drains and shuts down gracefully.
type HTTP struct {
	api  *Server
	cfg  Listener
	log  *zap.Logger
	srv  *http.Server
	errc chan error
	addr net.Addr
}

// NewHTTP returns the listener of api.
func NewHTTP(api *Server, cfg Listener, log *zap.Logger) *HTTP {
	return &HTTP{api: api, cfg: cfg, log: log, errc: make(chan error, 1)}
}

// Start listens on the configured address and serves in the background.
// A failure of the server after it started is sent on Err.
func (h *HTTP) Start(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", h.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", h.cfg.Addr, err)
	}
	h.addr = ln.Addr()
	if h.cfg.MaxConnections > 0 {
		ln = netutil.LimitListener(ln, h.cfg.MaxConnections)
	}
	h.srv = &http.Server{
		Handler:           h.api,
		ReadHeaderTimeout: h.cfg.ReadHeaderTimeout,
		ReadTimeout:       h.cfg.ReadTimeout,
		WriteTimeout:      h.cfg.WriteTimeout,
		IdleTimeout:       h.cfg.IdleTimeout,
		ErrorLog:          zap.NewStdLog(h.log),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	go func() {
		defer func() {
			if p := recover(); p != nil {
				h.errc <- fmt.Errorf("API server panicked: %v", p)
			}
		}()
		if err := h.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			h.errc <- fmt.Errorf("API server: %w", err)
		}
	}()
	return nil
}

// Addr is the address the server listens on, once started.
func (h *HTTP) Addr() net.Addr { return h.addr }

// Err delivers a failure of the running server.
func (h *HTTP) Err() <-chan error { return h.errc }

// Stop makes /healthcheck answer 503, keeps serving for the drain delay
// (or until ctx is done), then stops accepting and waits for the requests
// in progress until ctx is done.
func (h *HTTP) Stop(ctx context.Context) error {
	h.api.Drain()
	if h.srv == nil {
		return nil
	}
	t := time.NewTimer(h.cfg.DrainDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	if err := h.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("stop API server: %w", err)
	}
	return nil
}
