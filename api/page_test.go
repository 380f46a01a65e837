package api_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"go.uber.org/zap"

	"atomuploads/api"
)

// The page is mounted without a token and stays out of Routes (which
// openapi.yaml documents); the API still wants one.
func TestPageIsServedWithoutToken(t *testing.T) {
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("page " + r.URL.Path)) })
	srv := api.New(api.Config{Tokens: []string{token}, MaxBodyBytes: 1 << 10, RequestTimeout: 5e9, Page: page}, nil, nil, nil, zap.NewNop())
	without := api.New(api.Config{Tokens: []string{token}, MaxBodyBytes: 1 << 10, RequestTimeout: 5e9}, nil, nil, nil, zap.NewNop())
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/", 200}, {"HEAD", "/", 200}, {"GET", "/static/app.js", 200}, {"GET", "/static/vendor/x.js", 200},
		{"GET", "/api2/atom/a/uploads", 401}, {"POST", "/", 405},
	} {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		if rec.Code != c.want {
			t.Errorf("%s %s = %d, want %d", c.method, c.path, rec.Code, c.want)
		}
	}
	if got, want := len(srv.Routes()), len(without.Routes()); got != want {
		t.Errorf("the page added routes: %v", srv.Routes())
	}
}
