package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"atomuploads/api"
	"atomuploads/metrics"
)

// newBareServer is the API without a table or an issuer: enough for the
// health check and for requests that authentication turns away.
func newBareServer(t *testing.T, m *metrics.Metrics) *api.Server {
	t.Helper()
	return api.New(api.Config{
		Tokens: []string{token}, Region: "eu-west-1", Bucket: "b", PartSize: 8 << 20,
		MaxBodyBytes: 65536, RequestTimeout: 10 * time.Second, Metrics: m,
	}, nil, nil, nil, zap.NewNop())
}

func serveRecorded(s *api.Server, method, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

// TestHealthcheckDetail: /healthcheck stays {"status":"ok"} for the load
// balancer; ?detail=1 says why, and both say draining (503) once the
// process drains.
func TestHealthcheckDetail(t *testing.T) {
	m := metrics.New("test")
	m.Health().Expect(metrics.DepSQSReceive, metrics.DepYouTubeToken)
	m.Health().Observe(metrics.DepSQSReceive, true)
	m.Health().AddCheck("youtubeCredentials", func() (bool, time.Time, string) {
		return true, time.Now(), "YouTube refuses the service's credentials"
	})
	s := newBareServer(t, m)

	if rec := serveRecorded(s, http.MethodGet, "/healthcheck"); rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"status":"ok"}` {
		t.Errorf("/healthcheck = %d %s, want 200 {\"status\":\"ok\"}", rec.Code, rec.Body.String())
	}
	rec := serveRecorded(s, http.MethodGet, "/healthcheck?detail=1")
	var r metrics.Report
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("detail = %d %s (%v)", rec.Code, rec.Body.String(), err)
	}
	if r.Status != "ok" || r.Dependencies[metrics.DepSQSReceive].LastSuccess == nil ||
		r.Dependencies[metrics.DepYouTubeToken].LastSuccess != nil || r.Checks["youtubeCredentials"].OK || len(r.Problems) != 1 {
		t.Errorf("detail = %s, want the receive's success, no token yet, and the credentials refused", rec.Body.String())
	}
	for _, secret := range []string{token, "Bearer"} {
		if strings.Contains(rec.Body.String(), secret) {
			t.Errorf("the detail shows %q", secret)
		}
	}

	s.Drain()
	if rec := serveRecorded(s, http.MethodGet, "/healthcheck"); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("/healthcheck while draining = %d, want 503", rec.Code)
	}
	rec = serveRecorded(s, http.MethodGet, "/healthcheck?detail=1")
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"draining":true`) {
		t.Errorf("detail while draining = %d %s, want 503 and draining", rec.Code, rec.Body.String())
	}
	if !m.Health().Draining() {
		t.Error("the API drained, but the health (and the metrics listener) does not say so")
	}
}

// TestRequestsAreCountedByRoute: requests count under their route's
// pattern, method and status class; a path or a method a client made up
// counts as "other", never as itself (it could hold ids).
func TestRequestsAreCountedByRoute(t *testing.T) {
	m := metrics.New("test")
	s := newBareServer(t, m)
	serveRecorded(s, http.MethodGet, "/healthcheck")
	serveRecorded(s, http.MethodGet, "/api2/atom/atom-7f3a/uploads")                               // no token: 401
	serveRecorded(s, http.MethodDelete, "/api2/atom/atom-7f3a/uploads/01M899983R3070777E1D50S2BK") // no token: 401
	serveRecorded(s, http.MethodGet, "/api2/atom/atom-7f3a/uploads/01M899983R3070777E1D50S2BK/nonsense")
	serveRecorded(s, "BREW", "/01M899983R3070777E1D50S2BK")

	want := map[[3]string]float64{
		{"/healthcheck", "GET", "2xx"}:                            1,
		{"/api2/atom/:atomId/uploads", "GET", "4xx"}:              1,
		{"/api2/atom/:atomId/uploads/:uploadId", "DELETE", "4xx"}: 1,
		{metrics.Other, "GET", "4xx"}:                             1,
		{metrics.Other, metrics.Other, "4xx"}:                     1,
	}
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[[3]string]float64{}
	for _, f := range families {
		if f.GetName() != "atomuploads_http_requests_total" {
			continue
		}
		for _, mt := range f.GetMetric() {
			got[[3]string{label(mt, "route"), label(mt, "method"), label(mt, "status_class")}] = mt.GetCounter().GetValue()
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("http_requests_total%v = %v, want %v", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected series http_requests_total%v = %v", k, got[k])
		}
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
