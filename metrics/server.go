package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// ServerConfig configures the metrics listener.
type ServerConfig struct {
	Addr              string        // where to listen, e.g. ":9090"
	ReadHeaderTimeout time.Duration // slow-loris guard; 10s when 0
	// Linger is how long Stop keeps serving once the process drains, so
	// that the drain can be seen.
	Linger time.Duration
}

// Server is the metrics listener as a component of the service: GET
// /metrics (the Prometheus exposition of the service's registry) and GET
// /healthcheck (the health detail, 503 while draining), with no token. It
// listens apart from the API, so that neither is exposed with the other.
// Start listens and serves in the background; Stop shuts down.
type Server struct {
	m    *Metrics
	cfg  ServerConfig
	log  *zap.Logger
	srv  *http.Server
	errc chan error
	addr net.Addr
}

// NewServer returns the metrics listener of m.
func NewServer(m *Metrics, cfg ServerConfig, log *zap.Logger) *Server {
	if cfg.ReadHeaderTimeout == 0 {
		cfg.ReadHeaderTimeout = 10 * time.Second
	}
	return &Server{m: m, cfg: cfg, log: log, errc: make(chan error, 1)}
}

// Handler serves /metrics and /healthcheck.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	reg := s.m.Registry()
	mux.Handle("GET /metrics", promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:          zap.NewStdLog(s.log),
		Registry:          reg,
		EnableOpenMetrics: true,
		Timeout:           10 * time.Second,
	})))
	mux.HandleFunc("GET /healthcheck", func(w http.ResponseWriter, _ *http.Request) {
		WriteReport(w, s.m.Health().Report(false))
	})
	return mux
}

// WriteReport writes a health Report as JSON: 200, or 503 while draining.
func WriteReport(w http.ResponseWriter, r Report) {
	status := http.StatusOK
	if r.Draining {
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(r)
}

// Start listens on the configured address and serves in the background.
// A failure of the server after it started is sent on Err.
func (s *Server) Start(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	s.addr = ln.Addr()
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          zap.NewStdLog(s.log),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	go func() {
		defer func() {
			if p := recover(); p != nil {
				s.errc <- fmt.Errorf("metrics server panicked: %v", p)
			}
		}()
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.errc <- fmt.Errorf("metrics server: %w", err)
		}
	}()
	return nil
}

// Addr is the address the server listens on, once started.
func (s *Server) Addr() net.Addr { return s.addr }

// Err delivers a failure of the running server.
func (s *Server) Err() <-chan error { return s.errc }

// Stop records that the process drains (the health check answers 503),
// keeps serving for the linger (or until ctx is done), then stops
// accepting and waits for the scrapes in progress until ctx is done.
func (s *Server) Stop(ctx context.Context) error {
	s.m.Health().Drain()
	if s.srv == nil {
		return nil
	}
	t := time.NewTimer(s.cfg.Linger)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	if err := s.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("stop metrics server: %w", err)
	}
	return nil
}
