package metrics

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Dependencies of the service, as Health and dependency_requests_total
// name them.
const (
	DepSQSReceive   = "sqsReceive" // ReceiveMessage on the queue (and the dead-letter queue)
	DepSQS          = "sqs"
	DepDynamoDB     = "dynamodb"
	DepS3           = "s3"
	DepSTS          = "sts"
	DepMediaConvert = "mediaconvert"
	DepYouTube      = "youtube"      // the YouTube Data API and its resumable uploads
	DepYouTubeToken = "youtubeToken" // the OAuth2 token endpoint: the refresh token at work
	DepAtomAPI      = "atomApi"
)

var dependencies = set(DepSQSReceive, DepSQS, DepDynamoDB, DepS3, DepSTS, DepMediaConvert, DepYouTube, DepYouTubeToken, DepAtomAPI)

// Health is what the process knows of its own health: when each
// dependency last answered well and last failed, the checks of known
// problems (such as YouTube refusing the credentials), and whether the
// process is draining. It holds no secret: times, names and sentences
// written by the service. A nil *Health records nothing and reports
// nothing but the draining flag's zero value.
type Health struct {
	started  time.Time
	draining atomic.Bool

	mu     sync.Mutex
	deps   map[string]*depState
	checks map[string]Check
}

type depState struct {
	lastSuccess, lastFailure time.Time
}

// Check reports a known problem of the process: failing, since when, and
// what it means, in a sentence for people.
type Check func() (failing bool, since time.Time, problem string)

func newHealth() *Health {
	return &Health{started: time.Now(), deps: map[string]*depState{}, checks: map[string]Check{}}
}

// Expect lists dependencies in the report before their first call, so
// that one never reached shows as never having answered.
func (h *Health) Expect(deps ...string) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, d := range deps {
		d = dependencies.of(d)
		if h.deps[d] == nil {
			h.deps[d] = &depState{}
		}
	}
}

// Observe records a call to a dependency that answered well (ok) or not.
func (h *Health) Observe(dep string, ok bool) {
	if h == nil {
		return
	}
	now := time.Now()
	dep = dependencies.of(dep)
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.deps[dep]
	if s == nil {
		s = &depState{}
		h.deps[dep] = s
	}
	if ok {
		s.lastSuccess = now
	} else {
		s.lastFailure = now
	}
}

// AddCheck adds a named check of a known problem.
func (h *Health) AddCheck(name string, c Check) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks[name] = c
}

// Drain records that the process is shutting down.
func (h *Health) Drain() {
	if h == nil {
		return
	}
	h.draining.Store(true)
}

// Draining reports whether the process is shutting down.
func (h *Health) Draining() bool { return h != nil && h.draining.Load() }

// Report is the health detail (GET /healthcheck?detail=1).
type Report struct {
	// Status is "ok", or "draining" while the process shuts down (the
	// health check then answers 503).
	Status   string `json:"status"`
	Draining bool   `json:"draining"`
	// StartedAt is when the process started.
	StartedAt *time.Time `json:"startedAt,omitempty"`
	// Dependencies says, for each dependency, when it last answered well
	// and when it last failed (absent: never).
	Dependencies map[string]DependencyReport `json:"dependencies"`
	// Checks are the known problems the process watches, failing or not.
	Checks map[string]CheckReport `json:"checks,omitempty"`
	// Problems says in sentences what is wrong now; empty when nothing.
	Problems []string `json:"problems"`
}

// DependencyReport is one dependency's part of the Report.
type DependencyReport struct {
	LastSuccess *time.Time `json:"lastSuccess"`
	LastFailure *time.Time `json:"lastFailure,omitempty"`
}

// CheckReport is one check's part of the Report.
type CheckReport struct {
	OK      bool       `json:"ok"`
	Since   *time.Time `json:"since,omitempty"`
	Problem string     `json:"problem,omitempty"`
}

// Report says how the process is; draining is the caller's own view of
// it (the API's listener drains on its own), or'ed with Health's.
func (h *Health) Report(draining bool) Report {
	r := Report{Status: "ok", Dependencies: map[string]DependencyReport{}, Problems: []string{}}
	if h == nil {
		if draining {
			r.Status, r.Draining = "draining", true
		}
		return r
	}
	r.StartedAt = timePtr(h.started)
	if draining || h.Draining() {
		r.Status, r.Draining = "draining", true
	}
	h.mu.Lock()
	for name, s := range h.deps {
		r.Dependencies[name] = DependencyReport{LastSuccess: timePtr(s.lastSuccess), LastFailure: timePtr(s.lastFailure)}
	}
	checks := maps.Clone(h.checks)
	h.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(checks)) {
		failing, since, problem := checks[name]()
		if r.Checks == nil {
			r.Checks = map[string]CheckReport{}
		}
		if !failing {
			r.Checks[name] = CheckReport{OK: true}
			continue
		}
		r.Checks[name] = CheckReport{Since: timePtr(since), Problem: problem}
		r.Problems = append(r.Problems, problem)
	}
	return r
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

var (
	lastSuccessDesc = prometheus.NewDesc(namespace+"_dependency_last_success_timestamp_seconds",
		"When each dependency last answered well (Unix time); absent before the first time.", []string{"dependency"}, nil)
	checkFailingDesc = prometheus.NewDesc(namespace+"_health_check_failing",
		"1 while a known problem is present (youtubeCredentials: YouTube refuses the service's credentials), else 0.", []string{"check"}, nil)
	drainingDesc = prometheus.NewDesc(namespace+"_draining", "1 while the process shuts down.", nil, nil)
)

// Describe implements prometheus.Collector.
func (h *Health) Describe(ch chan<- *prometheus.Desc) {
	ch <- lastSuccessDesc
	ch <- checkFailingDesc
	ch <- drainingDesc
}

// Collect implements prometheus.Collector.
func (h *Health) Collect(ch chan<- prometheus.Metric) {
	draining := 0.0
	if h.Draining() {
		draining = 1
	}
	ch <- prometheus.MustNewConstMetric(drainingDesc, prometheus.GaugeValue, draining)
	h.mu.Lock()
	for name, s := range h.deps {
		if !s.lastSuccess.IsZero() {
			ch <- prometheus.MustNewConstMetric(lastSuccessDesc, prometheus.GaugeValue, float64(s.lastSuccess.UnixNano())/1e9, name)
		}
	}
	checks := maps.Clone(h.checks)
	h.mu.Unlock()
	for name, c := range checks {
		v := 0.0
		if failing, _, _ := c(); failing {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(checkFailingDesc, prometheus.GaugeValue, v, name)
	}
}
